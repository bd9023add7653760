"""The one way to get an authorised xero-python client for a Company's Xero organisation.

xero-python would refresh an expired token on its own, outside any lock, against Xero's fixed identity
URL: the app refreshes first, under the grant's row lock (:func:`atlas_integrations.xero.oauth.access_token`),
and hands the SDK a token that is valid, so the SDK never refreshes. Every endpoint comes from site
config (``atlas_xero_api_url``), so tests and the demo use the local Xero-compatible server.
"""

from __future__ import annotations

import time

import frappe

from atlas_integrations import messages
from atlas_integrations.endpoints import conf_number, get_endpoint
from atlas_integrations.xero import oauth
from atlas_integrations.xero.errors import Temporary, from_http
from atlas_integrations.xero.rate_limit import RateLimited, TenantLimiter


#: xero-python treats a token as expired this many seconds early (``OAuth2Token.EXPIRATION_BUFFER_DEFAULT``)
SDK_EXPIRY_BUFFER = 60
DEFAULT_TIMEOUT = 30  # seconds per Xero request (site config ``atlas_xero_timeout`` overrides)


def request_timeout() -> tuple[float, float]:
	"""(connect, read) seconds for xero-python's ``_request_timeout`` (it ignores a plain float) on the
	batch writes: site config ``atlas_xero_timeout`` (default 30 s), connect at most 10 s."""
	read = conf_number("atlas_xero_timeout", DEFAULT_TIMEOUT)
	return (min(10.0, read), read)


def accounting_api(company: str):
	"""An ``AccountingApi`` for ``company``'s connected organisation (call it with the connection's
	``tenant_id`` as ``xero_tenant_id``).

	Raises:
		frappe.ValidationError: the Company has no connected Xero organisation.
		atlas_integrations.xero.errors.XeroAuthError: the grant was refused (now marked revoked).
	"""
	from xero_python.accounting import AccountingApi
	from xero_python.api_client import ApiClient, Configuration
	from xero_python.api_client.oauth2 import OAuth2Token

	conn = frappe.db.get_value(oauth.CONNECTION, company, ["status", "xero_grant"], as_dict=True)
	if not conn or conn.status != oauth.CONNECTED or not conn.xero_grant:
		messages.throw("Company {0} has no connected Xero organisation", company, title="Xero")
	client_id, secret = oauth.client_credentials()
	grant = conn.xero_grant
	held = {"token": oauth.access_token(grant), "until": time.time() + oauth.REFRESH_MARGIN}

	def current_token() -> dict:
		# asked before every request: a session that runs longer than the margin (a pull posting a thousand
		# Payment Entries) takes the grant's token again, refreshed under its lock when it is due
		if time.time() >= held["until"] - SDK_EXPIRY_BUFFER - 10:
			held.update(token=oauth.access_token(grant), until=time.time() + oauth.REFRESH_MARGIN)
		return {"access_token": held["token"], "token_type": "Bearer", "expires_at": held["until"],
				"expires_in": max(int(held["until"] - time.time()), 1), "scope": list(oauth.SCOPES)}

	api_client = ApiClient(
		Configuration(oauth2_token=OAuth2Token(client_id=client_id, client_secret=secret)),
		pool_threads=1,
		oauth2_token_getter=current_token,  # valid beyond the SDK's buffer on every call: it never refreshes
		oauth2_token_saver=lambda _token: None,
	)
	# urllib3 would re-send GET/PUT after a 429/503 itself, sleeping Retry-After (hours for a spent day
	# budget): the app's rate limiter decides instead
	api_client.rest_client.pool_manager.connection_pool_kw["retries"] = False
	return AccountingApi(api_client, base_url=get_endpoint("atlas_xero_api_url").rstrip("/") + "/api.xro/2.0")


def tenant_limiter(tenant_id: str):
	"""The tenant's shared :class:`~atlas_integrations.xero.rate_limit.TenantLimiter`: Xero's 60 calls a
	rolling minute and 5 in flight, unless site config sets ``atlas_xero_minute_limit`` /
	``atlas_xero_rate_window`` (seconds) / ``atlas_xero_concurrent_limit`` (tests prove the limits in seconds)."""
	return TenantLimiter(frappe.cache, tenant_id, minute_limit=int(conf_number("atlas_xero_minute_limit", 60)),
						 window=conf_number("atlas_xero_rate_window", 60.0),
						 concurrent_limit=int(conf_number("atlas_xero_concurrent_limit", 5)))


def session_for(company: str, wait_budget: float = 30.0) -> "XeroSession":
	"""A :class:`XeroSession` on ``company``'s connected organisation.

	Raises:
		frappe.ValidationError, atlas_integrations.xero.errors.XeroAuthError: as :func:`accounting_api`.
	"""
	tenant = frappe.db.get_value(oauth.CONNECTION, company, "tenant_id")
	return XeroSession(accounting_api(company), tenant_limiter(tenant), tenant, wait_budget=wait_budget)


class XeroSession:
	"""Every Accounting API call of one run for one tenant: through the tenant's shared rate limiter
	(:class:`atlas_integrations.xero.rate_limit.TenantLimiter`), learning the budgets Xero reports on every
	answer (``X-DayLimit-Remaining``, ``X-MinLimit-Remaining``) and honouring a 429's ``Retry-After`` /
	``X-Rate-Limit-Problem`` by waiting and trying again, up to ``wait_budget`` seconds in all.

	Raises (from :meth:`call`), the family of :mod:`atlas_integrations.xero.errors`:
		Temporary: rate limited beyond the budget, a timeout or connection error, or a 5xx answer.
		TokenRejected: 401 (the access token was not accepted).
		Revoked: 403 (the organisation disconnected the app).
		Permanent: any other non-2xx answer (e.g. 400 ValidationErrors), with Xero's words.
	"""

	def __init__(self, api, limiter, tenant_id: str, wait_budget: float = 30.0):
		self.api, self.limiter, self.tenant_id, self.wait_budget = api, limiter, tenant_id, wait_budget
		self.calls = 0  # HTTP requests made (429s included)

	def call(self, method: str, *args, **kwargs):
		"""``AccountingApi.<method>(tenant_id, *args, **kwargs)``; returns the deserialised answer."""
		import urllib3
		from xero_python.exceptions import HTTPStatusException

		fn = getattr(self.api, method)
		deadline = time.monotonic() + self.wait_budget
		while True:
			try:
				slot = self.limiter.acquire(timeout=max(deadline - time.monotonic(), 0.0))
			except RateLimited as exc:
				raise Temporary(f"Xero rate limit ({exc.reason}): waiting {exc.retry_after:.0f} s",
							   retry_after=exc.retry_after, count_attempt=False) from None
			try:
				self.calls += 1
				data, status, headers = fn(self.tenant_id, *args, _return_http_data_only=False, **kwargs)
			except HTTPStatusException as exc:
				self.limiter.record(int(exc.status or 0), dict(exc.headers or {}))
				if exc.status == 429:
					if time.monotonic() >= deadline:
						raise Temporary("Xero rate limit (429 "
									   f"{(exc.headers or {}).get('X-Rate-Limit-Problem', '')})".strip() + ")",
									   retry_after=_seconds_or_none((exc.headers or {}).get("Retry-After")),
									   count_attempt=False) from None
					continue  # the limiter now holds the pause: acquire waits for it (or defers)
				raise from_http(exc) from None
			except (urllib3.exceptions.HTTPError, OSError) as exc:  # timeouts, refused, reset
				raise Temporary(f"Xero did not answer in time ({type(exc).__name__})") from None
			finally:
				self.limiter.release(slot)
			self.limiter.record(int(status or 200), dict(headers or {}))
			return data


def _seconds_or_none(value) -> float | None:
	try:
		return float(value)
	except (TypeError, ValueError):
		return None
