"""Graph's per-mailbox limits for Outlook (learn.microsoft.com/graph/throttling-limits, "Outlook service
limits"): at most 4 concurrent requests and 10,000 requests per 10 minutes per app and mailbox, every request
inside a ``$batch`` counted. Beyond either: 429 with ``Retry-After`` (seconds) in Graph's error shape."""

from __future__ import annotations

import collections
import math
import threading
import time
from contextlib import contextmanager

CONCURRENCY = 4
WINDOW_REQUESTS, WINDOW_SECONDS = 10_000, 600


class Throttled(Exception):
	"""A request over a mailbox's limit: answer 429 with ``Retry-After: retry_after`` (seconds)."""

	def __init__(self, retry_after: int, message: str):
		super().__init__(message)
		self.retry_after, self.message = retry_after, message


class _ThrottleMixin:
	"""Mixed into :class:`~atlas_integrations.testing.graph.server.GraphTestServer`. ``throttle`` False
	turns both limits off; ``latency`` (seconds) is added to every mailbox request outside the server's lock,
	so that concurrent requests overlap as they do at Graph."""

	def _init_throttle(self) -> None:
		self.throttle = True
		self.concurrency, self.window = CONCURRENCY, (WINDOW_REQUESTS, WINDOW_SECONDS)
		self.latency = 0.0
		self._throttle_lock = threading.Lock()
		self._in_flight: collections.Counter = collections.Counter()
		self._recent: dict[str, collections.deque] = collections.defaultdict(collections.deque)
		self._batch_local = threading.local()  # .address: the mailbox whose slots the running $batch holds
		self.request_counts: collections.Counter = collections.Counter()  # address -> requests served
		self.throttled_counts: collections.Counter = collections.Counter()  # address -> 429s answered
		self.max_in_flight: collections.Counter = collections.Counter()  # address -> most slots ever held

	def _count(self, address: str, requests: int = 1) -> None:
		"""Take ``requests`` from the mailbox's 10-minute window. Raises :class:`Throttled`."""
		limit, seconds = self.window
		now = time.monotonic()
		with self._throttle_lock:
			recent = self._recent[address]
			while recent and recent[0] <= now - seconds:
				recent.popleft()
			if self.throttle and len(recent) + requests > limit:
				self.throttled_counts[address] += 1
				wait = recent[len(recent) + requests - limit - 1] + seconds - now if requests <= limit else seconds
				raise Throttled(max(1, math.ceil(wait)), "Too many requests for this mailbox in the last 10 minutes.")
			recent.extend([now] * requests)
			self.request_counts[address] += requests

	@contextmanager
	def _slots(self, address: str, slots: int = 1):
		"""Hold ``slots`` of the mailbox's concurrent requests for the block. Raises :class:`Throttled`."""
		with self._throttle_lock:
			if self.throttle and self._in_flight[address] + slots > self.concurrency:
				self.throttled_counts[address] += 1
				raise Throttled(1, "Application is over its MailboxConcurrency limit.")
			self._in_flight[address] += slots
			self.max_in_flight[address] = max(self.max_in_flight[address], self._in_flight[address])
		try:
			if self.latency:
				time.sleep(self.latency)
			yield
		finally:
			with self._throttle_lock:
				self._in_flight[address] -= slots
