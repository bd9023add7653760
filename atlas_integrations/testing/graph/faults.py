"""Faults the local Graph server injects on request, for the tests of what the app does when Graph fails:
an error answer (429 with ``Retry-After``, 5xx) instead of the work, or the work done and then an error or a
silence longer than the client waits ("Graph accepted, the client timed out"). A fault matches a method and
a path pattern (inner requests of a ``$batch`` included) and fires a given number of times."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass


@dataclass
class Fault:
	"""A fault to inject (see :meth:`_FaultsMixin.add_fault`); ``hits`` counts how often it fired."""

	method: str
	pattern: re.Pattern
	status: int | None  # None: answer what the work answered (after a delay)
	delay: float  # seconds of silence before answering
	after: bool  # do the work first (an accepted request whose answer is lost)
	times: int
	retry_after: int | None
	hits: int = 0


class _FaultsMixin:
	"""Mixed into :class:`~atlas_integrations.testing.graph.server.GraphTestServer`."""

	def _init_faults(self) -> None:
		self.faults: list[Fault] = []

	def add_fault(self, method: str, path_pattern: str, status: int | None = 503, delay: float = 0.0,
				  after: bool = False, times: int = 1, retry_after: int | None = None) -> Fault:
		"""Fail the next ``times`` requests whose method is ``method`` ("*" any) and whose path (``/v1.0/…``)
		matches ``path_pattern`` (a regular expression searched in it).

		Args:
			status: the HTTP status to answer (Graph's error shape); None answers what the work answered.
			delay: seconds to wait before answering (longer than the client's timeout: it sees none).
			after: do the work first, then delay / fail (the request took effect; its answer is lost).
			retry_after: seconds for a ``Retry-After`` header.
		"""
		fault = Fault(method.upper(), re.compile(path_pattern), status, delay, after, times, retry_after)
		with self._lock:
			self.faults.append(fault)
		return fault

	def _fault_for(self, method: str, path: str) -> Fault | None:
		with self._lock:
			for fault in self.faults:
				if fault.hits < fault.times and fault.method in ("*", method) and fault.pattern.search(path):
					fault.hits += 1
					return fault
		return None

	def _with_fault(self, fault: Fault, work) -> tuple:
		from atlas_integrations.testing.graph.server import graph_error

		answer = work() if fault.after else None
		if fault.delay:
			time.sleep(fault.delay)
		if fault.status is None:
			return answer if answer is not None else work()
		headers = [("Retry-After", str(fault.retry_after))] if fault.retry_after is not None else []
		code = {429: "TooManyRequests", 503: "ServiceNotAvailable", 504: "GatewayTimeout"}.get(fault.status, "generalException")
		return graph_error(fault.status, code, "Injected by the local Graph server.", headers)
