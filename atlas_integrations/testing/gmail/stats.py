"""Per-mailbox counters: HTTP requests, Gmail calls, batch envelopes, quota units, calls per method,
token requests and faults served (:class:`_StatsMixin`)."""

from __future__ import annotations


class _Stats:
	__slots__ = (
		"api_calls",
		"batch_requests",
		"by_method",
		"faults_served",
		"http_requests",
		"quota_refused",
		"quota_units",
		"token_requests",
	)

	def __init__(self):
		self.http_requests = self.api_calls = self.batch_requests = self.quota_units = 0
		self.token_requests = self.faults_served = self.quota_refused = 0
		self.by_method: dict[str, int] = {}

	def as_dict(self) -> dict:
		return {
			"http_requests": self.http_requests,
			"api_calls": self.api_calls,
			"batch_requests": self.batch_requests,
			"quota_units": self.quota_units,
			"quota_refused": self.quota_refused,
			"by_method": dict(self.by_method),
			"token_requests": self.token_requests,
			"faults_served": self.faults_served,
		}


class _StatsMixin:
	"""Stats of :class:`GmailTestServer` (state: ``_stats``, keyed by mailbox address; "" unattributed)."""

	# -- stats ----------------------------------------------------------------------------------------
	def _st(self, email: str | None) -> _Stats:
		key = email or ""
		st = self._stats.get(key)
		if st is None:
			st = self._stats[key] = _Stats()
		return st

	def stats(self, email: str | None = None) -> dict:
		"""Counters for one mailbox (or summed over everything when ``email`` is None).

		``{"http_requests", "api_calls", "batch_requests", "quota_units", "quota_refused" (calls answered 429
		userRateLimitExceeded by :meth:`set_user_quota`), "by_method", "token_requests", "faults_served"}``.
		"""
		with self._lock:
			if email:
				st = self._stats.get(email.strip().lower())
				return (st or _Stats()).as_dict()
			total = _Stats()
			for st in self._stats.values():
				total.http_requests += st.http_requests
				total.api_calls += st.api_calls
				total.batch_requests += st.batch_requests
				total.quota_units += st.quota_units
				total.token_requests += st.token_requests
				total.faults_served += st.faults_served
				for k, v in st.by_method.items():
					total.by_method[k] = total.by_method.get(k, 0) + v
			return total.as_dict()

	def reset_stats(self, email: str | None = None) -> None:
		with self._lock:
			if email:
				self._stats.pop(email.strip().lower(), None)
			else:
				self._stats.clear()
