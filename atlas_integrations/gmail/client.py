"""The one Gmail client: google-api-python-client with auth injected, timeouts, batching and backoff.

Every failure leaves this module as one of :mod:`atlas_integrations.gmail.errors`. The client counts the
Gmail API calls it makes (each request inside a batch is one call, as Google counts them for quota).
"""

from __future__ import annotations

import base64

import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import google_auth_httplib2
import httplib2
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.http import BatchHttpRequest

from atlas_integrations.gmail.errors import GmailError, Temporary, classify
from atlas_integrations.quota import QuotaWait

#: Least scope that covers reading mail, applying labels and sending (Gmail API scopes reference).
SCOPES = ["https://www.googleapis.com/auth/gmail.modify"]
#: Gmail recommends at most 50 requests per batch (Gmail API "Batching requests" guide); Google's hard
#: limit is 100.
BATCH_SIZE = 50
#: messages.list maximum page size.
LIST_PAGE_SIZE = 500
HTTP_TIMEOUT = 30  # seconds per HTTP request
MAX_ATTEMPTS = 6
MAX_BACKOFF = 64.0  # seconds

_DISCOVERY: dict | None = None


def _discovery() -> dict:
	"""Gmail v1 discovery document bundled with google-api-python-client (static discovery), parsed once."""
	global _DISCOVERY
	if _DISCOVERY is None:
		_DISCOVERY = json.loads(get_static_doc("gmail", "v1"))
	return _DISCOVERY


#: Gmail API quota units per method (developers.google.com/workspace/gmail/api/reference/quota); 5 for a
#: method not listed
QUOTA_UNITS = {
	"users.getProfile": 1, "users.watch": 100, "users.stop": 50, "labels.list": 1, "labels.get": 1,
	"labels.create": 5, "messages.list": 5, "messages.get": 5, "messages.send": 100, "messages.modify": 5,
	"messages.batchModify": 50, "history.list": 2, "settings.sendAs.list": 1,
}
#: Gmail's per-user limit: quota units in any moving minute ("Per user rate limit", 15,000)
USER_QUOTA_PER_MINUTE = 15_000


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
	"""Seconds to wait before retry number ``attempt`` (0-based).

	Exponential backoff with full jitter (``random.uniform(0, 2**attempt)`` capped at 64 s), as the Gmail
	"Resolve errors" guide asks; a server's Retry-After wins when it is longer.
	"""
	delay = random.uniform(0, min(MAX_BACKOFF, 2.0**attempt))
	if retry_after:
		delay = max(delay, min(float(retry_after), 600.0))
	return delay


@dataclass
class TokenState:
	"""OAuth client and token material for one mailbox. ``expiry`` is naive UTC (google-auth's form)."""

	client_id: str
	client_secret: str = field(repr=False)  # secrets never reach a repr, a log or an Error Log
	token_uri: str
	refresh_token: str = field(repr=False)
	access_token: str | None = field(default=None, repr=False)
	expiry: datetime | None = None
	scopes: list[str] = field(default_factory=lambda: list(SCOPES))

	def __repr__(self) -> str:
		return (f"TokenState(client_id={self.client_id!r}, token_uri={self.token_uri!r}, "
				f"expiry={self.expiry!r}, client_secret=***, refresh_token=***, access_token=***)")

	__str__ = __repr__

	def credentials(self) -> Credentials:
		"""A google-auth ``Credentials`` that refreshes itself against ``token_uri``."""
		return Credentials(
			token=self.access_token,
			refresh_token=self.refresh_token,
			token_uri=self.token_uri,
			client_id=self.client_id,
			client_secret=self.client_secret,
			scopes=self.scopes,
			expiry=self.expiry,
		)


class GmailClient:
	"""Gmail v1 for one mailbox (``userId="me"``).

	Args:
		tokens: the mailbox's :class:`TokenState`.
		api_root: Gmail API root with trailing slash (``https://gmail.googleapis.com/`` or a local server).
		timeout: seconds per HTTP request.
		max_attempts: tries per request on :class:`Temporary` errors before giving up.
		sleep: the sleep function (seconds), replaceable to observe backoff.
		quota: the user's quota (:class:`atlas_integrations.quota.MovingWindow` of units per minute, shared
			by every worker): each request takes its units (:data:`QUOTA_UNITS`) before it is sent, so a
			sync paces itself at the quota instead of spending it in a burst and backing off; None: no pacing.

	Attributes:
		api_calls: Gmail API calls made so far (batch parts count one each; token refreshes do not).
		credentials: the live ``Credentials``; read ``.token``/``.expiry`` after use to keep a refreshed
			access token.
	"""

	def __init__(
		self,
		tokens: TokenState,
		api_root: str,
		timeout: int = HTTP_TIMEOUT,
		max_attempts: int = MAX_ATTEMPTS,
		sleep: Callable[[float], None] = time.sleep,
		quota=None,
	):
		self.api_root = api_root if api_root.endswith("/") else api_root + "/"
		self.credentials = tokens.credentials()
		self.http = google_auth_httplib2.AuthorizedHttp(self.credentials, http=httplib2.Http(timeout=timeout))
		self.service = build_from_document(
			_discovery(), http=self.http, client_options={"api_endpoint": self.api_root}
		)
		# new_batch_http_request() would use the discovery document's rootUrl (Google) whatever the
		# api_endpoint: build the batch URI from the configured root instead.
		self.batch_uri = self.api_root + "batch/gmail/v1"
		self.max_attempts = max_attempts
		self.sleep = sleep
		self.api_calls = 0
		self.quota = quota
		#: ``fn(wait_seconds) -> bool``: asked when the quota would make a request wait longer than
		#: :attr:`hand_over_after` seconds; True gives the worker up (:class:`atlas_integrations.quota.
		#: QuotaWait` is raised, nothing is taken) instead of waiting. None: always wait.
		self.hand_over = None
		self.hand_over_after = 2.0

	def take_quota(self, method: str, count: int = 1, may_hand_over: bool = True) -> None:
		"""Take the quota units of ``count`` calls of ``method`` (e.g. ``messages.get``) before sending
		them, waiting while the user's moving minute is spent (nothing when the client has no quota).

		Raises:
			atlas_integrations.quota.QuotaWait: the wait would pass :attr:`hand_over_after` seconds and
				:attr:`hand_over` chose to give the worker up (only when ``may_hand_over``: between requests
				whose answers nothing holds yet).
		"""
		if self.quota is None:
			return
		units = QUOTA_UNITS.get(method, 5) * count
		if self.hand_over is None or not may_hand_over:
			self.quota.take(units)
			return
		try:
			self.quota.take(units, deadline=self.hand_over_after)
		except QuotaWait as exc:
			if self.hand_over(exc.retry_after):
				raise
			self.quota.take(units)

	# -- plumbing -------------------------------------------------------------------------------
	def execute(self, request, context: str):
		"""Execute one API request with backoff on :class:`Temporary` errors.

		Returns:
			The decoded JSON response (dict), or None for empty bodies.

		Raises:
			AuthRevoked, CursorExpired, Permanent, Temporary (after ``max_attempts``).
		"""
		for attempt in range(self.max_attempts):
			self.take_quota(context)
			self.api_calls += 1
			try:
				return request.execute(num_retries=0)
			except Exception as exc:
				err = classify(exc, context)
				if isinstance(err, Temporary) and attempt + 1 < self.max_attempts:
					self.sleep(backoff_delay(attempt, err.retry_after))
					continue
				raise err from None
		raise AssertionError("unreachable")  # pragma: no cover

	# -- reads ----------------------------------------------------------------------------------
	def get_profile(self) -> dict:
		"""users.getProfile -> ``{"emailAddress", "messagesTotal", "threadsTotal", "historyId"}``."""
		return self.execute(self.service.users().getProfile(userId="me"), "users.getProfile")

	def list_labels(self) -> list[dict]:
		"""users.labels.list -> list of Label resources (``id``, ``name``, ``type``)."""
		return self.execute(self.service.users().labels().list(userId="me"), "labels.list").get("labels", [])

	def iter_message_ids(
		self, q: str | None = None, label_ids: list[str] | None = None, include_spam_trash: bool = False
	) -> Iterator[list[dict]]:
		"""users.messages.list, paged (500 per page).

		Args:
			q: Gmail search query (e.g. ``"after:1700000000"``, epoch seconds UTC).
			label_ids: only messages with all of these labels.
			include_spam_trash: include SPAM and TRASH.

		Yields:
			Pages: lists of ``{"id", "threadId"}``, newest first.
		"""
		for page in self.iter_message_pages(q=q, label_ids=label_ids, include_spam_trash=include_spam_trash):
			yield page.get("messages", [])

	def iter_message_pages(
		self, q: str | None = None, label_ids: list[str] | None = None, include_spam_trash: bool = False,
		page_token: str | None = None, page_size: int = LIST_PAGE_SIZE,
	) -> Iterator[dict]:
		"""users.messages.list, paged (``page_size`` per page, at most Gmail's 500), each page as Gmail
		answers it.

		Args: as :meth:`iter_message_ids`, and
			page_token: a ``nextPageToken`` of an earlier listing of the same query: start there.
			page_size: ``maxResults`` (1..500).

		Yields:
			Pages: ``{"messages": [{"id", "threadId"}, ...] (absent when empty), "resultSizeEstimate": int
			(Gmail's estimate of the messages the whole listing matches, all pages; rough on large
			mailboxes), "nextPageToken"?: str (absent on the last page)}``, newest first.
		"""
		kwargs = {"userId": "me", "maxResults": max(1, min(LIST_PAGE_SIZE, int(page_size))),
				  "includeSpamTrash": include_spam_trash}
		if q:
			kwargs["q"] = q
		if label_ids:
			kwargs["labelIds"] = label_ids
		yield from self._pages(self.service.users().messages().list, kwargs, "messages.list", token=page_token)

	def iter_history(self, start_history_id: str, history_types: list[str] | None = None) -> Iterator[dict]:
		"""users.history.list from ``start_history_id``, paged (500 records per page).

		Yields:
			Pages: ``{"history": [...], "historyId": str, "nextPageToken"?}`` (Gmail's History resource).

		Raises:
			CursorExpired: Gmail answered 404 — the start historyId is too old (Gmail keeps history for a
				limited time, typically a week; Gmail sync guide, "Partial synchronization").
		"""
		from atlas_integrations.gmail.errors import CursorExpired, Permanent

		kwargs = {"userId": "me", "startHistoryId": start_history_id, "maxResults": LIST_PAGE_SIZE}
		if history_types:
			kwargs["historyTypes"] = history_types
		try:
			yield from self._pages(self.service.users().history().list, kwargs, "history.list")
		except Permanent as exc:
			if exc.status == 404:
				raise CursorExpired(str(exc), 404, exc.reason) from None
			raise

	# -- sending (atlas_integrations/gmail/send.py) --------------------------------------------------
	def send_message(self, raw: bytes, thread_id: str | None = None) -> dict:
		"""users.messages.send of RFC 822 bytes in ``thread_id`` -> ``{"id", "threadId", "labelIds"}``.

		Tried **once**: a retry after a timeout could send twice, so the caller reconciles instead
		(:meth:`find_rfc822msgid`).

		Raises:
			Temporary: no (or a 5xx / 429) answer: Gmail may or may not hold the message.
			Permanent, AuthRevoked: Gmail refused it.
		"""
		body = {"raw": base64.urlsafe_b64encode(raw).decode()}
		if thread_id:
			body["threadId"] = thread_id
		self.api_calls += 1
		try:
			self.take_quota("messages.send")
			return self.service.users().messages().send(userId="me", body=body).execute(num_retries=0)
		except Exception as exc:
			raise classify(exc, "messages.send") from None

	def find_rfc822msgid(self, message_id: str) -> str | None:
		"""The Gmail id of the message with RFC 822 ``message_id`` in the mailbox (``rfc822msgid:``
		search, SENT and TRASH included), or None."""
		q = "rfc822msgid:" + message_id.strip().strip("<>")
		for page in self.iter_message_ids(q=q, include_spam_trash=True):
			for m in page:
				return m["id"]
		return None

	def get_message(self, message_id: str, fmt: str = "metadata", metadata_headers: list[str] | None = None) -> dict:
		"""users.messages.get of one message (``fmt`` ``metadata`` with ``metadata_headers`` by default)."""
		kwargs = {"userId": "me", "id": message_id, "format": fmt}
		if metadata_headers:
			kwargs["metadataHeaders"] = metadata_headers
		return self.execute(self.service.users().messages().get(**kwargs), "messages.get")

	def list_send_as(self) -> list[dict]:
		"""users.settings.sendAs.list -> SendAs resources (``sendAsEmail``, ``displayName``, ``isPrimary``,
		``verificationStatus``)."""
		answer = self.execute(self.service.users().settings().sendAs().list(userId="me"), "settings.sendAs.list")
		return (answer or {}).get("sendAs", [])

	def _pages(self, method, kwargs: dict, context: str, token: str | None = None) -> Iterator[dict]:
		"""Every page of a Gmail list method (follows ``nextPageToken``, from ``token`` when given); each
		page is a decoded dict."""
		while True:
			request = method(**kwargs, **({"pageToken": token} if token else {}))
			page = self.execute(request, context) or {}
			yield page
			token = page.get("nextPageToken")
			if not token:
				return

	def get_messages(
		self, ids: list[str], fmt: str = "raw", batch_size: int = BATCH_SIZE
	) -> tuple[dict[str, dict], dict[str, GmailError]]:
		"""users.messages.get for many ids through Gmail batch requests (``batch_size`` per batch).

		Parts that fail with a :class:`Temporary` error are retried in a later batch after backoff
		(honouring Retry-After); a batch envelope that fails is retried whole.

		Args:
			ids: Gmail message ids.
			fmt: ``raw`` | ``full`` | ``metadata`` | ``minimal``.

		Returns:
			``(messages, failures)``: Message resources by id, and the final error by id for those that
			could not be fetched (e.g. 404 for a message deleted since it was listed).

		Raises:
			AuthRevoked: the token was refused; nothing more can be fetched.
		"""
		from atlas_integrations.gmail.errors import AuthRevoked

		results: dict[str, dict] = {}
		failures: dict[str, GmailError] = {}
		pending = list(dict.fromkeys(ids))
		attempt = 0
		while pending:
			retry: dict[str, Temporary] = {}
			for start in range(0, len(pending), batch_size):
				chunk = pending[start : start + batch_size]

				def callback(request_id, response, exception):
					if exception is None:
						results[request_id] = response
						return
					err = classify(exception, "messages.get")
					if isinstance(err, Temporary):
						retry[request_id] = err
					else:
						failures[request_id] = err

				batch = BatchHttpRequest(callback=callback, batch_uri=self.batch_uri)
				messages = self.service.users().messages()
				for mid in chunk:
					batch.add(messages.get(userId="me", id=mid, format=fmt), request_id=mid)
				self.take_quota("messages.get", len(chunk), may_hand_over=not results and not failures)
				self.api_calls += len(chunk)
				try:
					batch.execute(http=self.http)
				except Exception as exc:
					err = classify(exc, "batch")
					if not isinstance(err, Temporary):
						raise err from None
					for mid in chunk:
						if mid not in results and mid not in failures:
							retry[mid] = err
			auth = [e for e in failures.values() if isinstance(e, AuthRevoked)]
			if auth:
				raise auth[0]
			if not retry:
				break
			attempt += 1
			if attempt >= self.max_attempts:
				failures.update(retry)
				break
			self.sleep(backoff_delay(attempt - 1, max((e.retry_after or 0) for e in retry.values()) or None))
			pending = list(retry)
		return results, failures
