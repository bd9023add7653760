"""Fault injection: the next matching requests (Gmail calls, batch parts, batch envelopes, OAuth
endpoints) answer an injected HTTP status with a Google-style error body (:class:`_FaultsMixin`)."""

from __future__ import annotations

import re
from http import HTTPStatus

from atlas_integrations.testing.gmail.common import _json_resp, _oauth_error, google_error_body

# Defaults for injected faults when no reason is given.
_FAULT_REASONS = {
	400: "failedPrecondition",
	401: "authError",
	403: "userRateLimitExceeded",
	404: "notFound",
	409: "conflict",
	429: "rateLimitExceeded",
	500: "backendError",
	502: "backendError",
	503: "backendError",
	504: "backendError",
}
_REASON_MESSAGES = {
	"rateLimitExceeded": "Too many concurrent requests for user",
	"userRateLimitExceeded": "User-rate limit exceeded.",
	"dailyLimitExceeded": "Daily Limit Exceeded",
	"quotaExceeded": "Quota exceeded for quota metric 'Queries'.",
	"backendError": "Backend Error",
	"authError": "Invalid Credentials",
	"notFound": "Requested entity was not found.",
	"failedPrecondition": "Precondition check failed.",
}


class _Fault:
	__slots__ = ("email", "id", "method", "pattern", "reason", "regex", "remaining", "retry_after", "status")


class _FaultsMixin:
	"""Fault injection of :class:`GmailTestServer` (state: ``_faults``, ``_fault_seq``)."""

	# -- faults ---------------------------------------------------------------------------------------
	def inject_fault(
		self,
		path_regex: str,
		status: int,
		count: int = 1,
		reason: str | None = None,
		retry_after=None,
		method: str | None = None,
		email: str | None = None,
	) -> int:
		"""The next ``count`` matching requests answer ``status`` with a Google-style error body.

		Matches Gmail calls (batch parts individually), batch envelopes and OAuth endpoints;
		``path_regex`` is searched in the path (and in path?query). Returns the fault id.
		"""
		f = _Fault()
		with self._lock:
			self._fault_seq += 1
			f.id = self._fault_seq
		f.pattern = path_regex
		f.regex = re.compile(path_regex)
		f.status = int(status)
		f.remaining = int(count)
		f.reason = reason
		f.retry_after = retry_after
		f.method = method.upper() if method else None
		f.email = email.strip().lower() if email else None
		with self._lock:
			self._faults.append(f)
		return f.id

	def delay_response(self, path_regex: str, seconds: float, count: int = 1, method: str | None = None) -> None:
		"""The next ``count`` matching Gmail calls are *applied* (a send is stored, a label changed), then
		their answer waits ``seconds``: a client with a shorter timeout gives up although Gmail did the
		work (or its process is killed meanwhile)."""
		with self._lock:
			self._delays.append({"regex": re.compile(path_regex), "seconds": float(seconds), "remaining": int(count),
								 "method": method.upper() if method else None})

	def _take_delay(self, method: str, path: str) -> float:
		with self._lock:
			for d in getattr(self, "_delays", []):
				if d["remaining"] > 0 and (d["method"] is None or d["method"] == method.upper()) and d["regex"].search(path):
					d["remaining"] -= 1
					return d["seconds"]
		return 0.0

	def clear_faults(self) -> None:
		with self._lock:
			self._faults.clear()
			self._delays.clear()

	def pending_faults(self) -> list[dict]:
		with self._lock:
			return [
				{"id": f.id, "path_regex": f.pattern, "status": f.status, "remaining": f.remaining}
				for f in self._faults
				if f.remaining > 0
			]

	def _take_fault(self, method: str, path: str, query: str, email: str | None):
		with self._lock:
			for f in self._faults:
				if f.remaining <= 0:
					continue
				if f.method and f.method != method.upper():
					continue
				if f.email and f.email != email:
					continue
				if not (f.regex.search(path) or (query and f.regex.search(path + "?" + query))):
					continue
				f.remaining -= 1
				self._faults = [x for x in self._faults if x.remaining > 0]
				self._st(email).faults_served += 1
				return f
		return None

	@staticmethod
	def _fault_headers(f: _Fault) -> list:
		return [("Retry-After", str(f.retry_after))] if f.retry_after is not None else []

	def _fault_api_resp(self, f: _Fault) -> tuple:
		reason = f.reason or _FAULT_REASONS.get(f.status, "backendError" if f.status >= 500 else "badRequest")
		try:
			phrase = HTTPStatus(f.status).phrase
		except ValueError:
			phrase = reason
		message = _REASON_MESSAGES.get(reason, phrase)
		return _json_resp(f.status, google_error_body(f.status, message, reason), self._fault_headers(f))

	def _fault_oauth_resp(self, f: _Fault) -> tuple:
		error = f.reason or "invalid_grant"
		desc = (
			"Token has been expired or revoked."
			if error == "invalid_grant"
			else f"Injected fault ({f.status})."
		)
		return _oauth_error(f.status, error, desc, self._fault_headers(f))
