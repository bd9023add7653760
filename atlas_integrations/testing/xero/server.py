"""HTTP wiring and :class:`XeroTestServer`: the threading HTTP server and request handler, and the
class that owns all state (``__init__``), its lifecycle (start / stop / url) and the request router
(``handle_http``). The rest of its methods come from the mixins of the sibling modules."""

from __future__ import annotations

import collections
import re
import secrets
import threading
import time
import urllib.parse

from atlas_integrations.testing.http import Handler, HTTPServer
from atlas_integrations.testing.xero.accounting import (
	APP_MINUTE_LIMIT,
	DAY_LIMIT,
	MINUTE_LIMIT,
	_AccountingMixin,
)
from atlas_integrations.testing.xero.api import _ApiMixin
from atlas_integrations.testing.xero.common import XeroUrls, _CaseDict, _json_resp, _problem
from atlas_integrations.testing.xero.oauth import _OAuthMixin
from atlas_integrations.testing.xero.payments import _PaymentsMixin
from atlas_integrations.testing.xero.quotes import _QuotesMixin
from atlas_integrations.testing.xero.state import ACCESS_TOKEN_TTL, REFRESH_GRACE, _StateMixin
from atlas_integrations.testing.xero.webhooks import _WebhooksMixin

MAX_BODY = 16 * 1024 * 1024
_CONNECTION_RE = re.compile(r"(?i)^/connections/([^/]+)/?$")


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------
class _Handler(Handler):
	server_version = "XeroTestServer/1.0"
	max_body = MAX_BODY
	headers_class_wrapper = _CaseDict

	def bad_request(self):
		return _json_resp(400, {"error": "invalid_request"})

	def internal_error(self):
		return _json_resp(500, {"Title": "Internal error in test server."})


_HTTPServer = HTTPServer


# --------------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------------
class XeroTestServer(
	XeroUrls,
	_StateMixin, _OAuthMixin, _ApiMixin, _QuotesMixin, _PaymentsMixin, _WebhooksMixin, _AccountingMixin
):
	"""Xero's OAuth 2.0 identity service and api.xero.com over real HTTP on a loopback port.

	One port serves all three Xero hosts (their paths do not collide): point the login URL at
	``url + "identity/connect/authorize"``, the identity URL at ``url`` (``connect/token``,
	``connect/revocation``) and the API URL at ``url`` (``connections``, ``api.xro/2.0/...``).

	Args:
		host: interface to bind (default 127.0.0.1).
		port: TCP port; 0 picks a free one.
		clock: a callable returning the current time in epoch seconds (default ``time.time``); every
			expiry (codes, access tokens, the refresh grace period) reads it, so tests move time.
		access_token_ttl: seconds an access token lives (Xero: 1800).
		refresh_grace: seconds a rotated refresh token keeps working (Xero: 1800).
	"""

	def __init__(
		self,
		host: str = "127.0.0.1",
		port: int = 0,
		clock=None,
		access_token_ttl: int = ACCESS_TOKEN_TTL,
		refresh_grace: float = REFRESH_GRACE,
	):
		self.host = host
		self.port = port
		self._clock = clock or time.time
		self.access_token_ttl = int(access_token_ttl)
		self.refresh_grace = float(refresh_grace)
		self._lock = threading.RLock()
		self._signing_key = secrets.token_bytes(32)
		self._clients: dict[str, dict] = {}
		self._tenants: dict[str, dict] = {}
		self._consent = {"action": "allow", "tenants": None, "scopes": None}
		self._codes: dict[str, dict] = {}
		self._grants: dict[str, dict] = {}
		self._refresh: dict[str, dict] = {}
		self._access: dict[str, dict] = {}
		self._connections: dict[str, dict] = {}
		self._calls: collections.Counter = collections.Counter()
		# Accounting API (accounting.py): per-tenant stores, injected faults / delays, rate-limit usage
		self._books: dict[str, dict] = {}
		self._faults: list[dict] = []
		self._delays: list[dict] = []
		self._limits = {"day": DAY_LIMIT, "minute": MINUTE_LIMIT, "app_minute": APP_MINUTE_LIMIT}
		self._usage: dict[tuple, int] = {}
		self._seq = 0
		# webhooks (webhooks.py): the target, the pending (sequence, event) pairs
		self._webhook: dict | None = None
		self._events: list[tuple[int, dict]] = []
		self._event_seq = 0
		self._delivery_lock = threading.Lock()
		self.errors: list[str] = []  # unexpected exceptions caught while serving (for debugging)
		self._httpd: _HTTPServer | None = None
		self._thread: threading.Thread | None = None

	# -- lifecycle ----------------------------------------------------------------------------------
	def start(self) -> XeroTestServer:
		"""Bind and serve in a daemon thread. Returns self."""
		if self._httpd is not None:
			return self
		httpd = _HTTPServer((self.host, self.port), _Handler)
		httpd.app = self
		self._httpd = httpd
		self.port = httpd.server_address[1]
		self._thread = threading.Thread(
			target=httpd.serve_forever,
			kwargs={"poll_interval": 0.05},
			name=f"xero-test-server:{self.port}",
			daemon=True,
		)
		self._thread.start()
		return self

	def stop(self) -> None:
		"""Stop serving and close the socket and open keep-alive connections."""
		httpd, self._httpd = self._httpd, None
		if httpd is not None:
			httpd.shutdown()
			httpd.server_close()
			httpd.close_connections()
		if self._thread is not None:
			self._thread.join(timeout=5)
			self._thread = None

	def __enter__(self):
		return self.start()

	def __exit__(self, *exc):
		self.stop()

	@property
	def url(self) -> str:
		"""Root with trailing slash, e.g. ``http://127.0.0.1:PORT/``."""
		host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
		return f"http://{host}:{self.port}/"

	def _record_error(self, exc: BaseException) -> None:
		import traceback

		with self._lock:
			self.errors.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:])
			del self.errors[:-50]

	def tax_rates(self, tenant: str) -> list[dict]:
		"""The organisation's TaxRates (as ``GET /TaxRates`` lists them) of ``tenant`` (id or name)."""
		with self._lock:
			return [dict(r) for r in self._book(self._tenant_id(tenant))["tax_rates"]]

	def _control_call(self, body: bytes) -> tuple:
		"""``POST /_atlas/call {"method", "args", "kwargs"}``: a public method of this server, for a demo or
		test driving it from another process (:class:`atlas_integrations.testing.xero.remote.RemoteXero`).
		Answers ``{"result": ...}`` (JSON), 400 for an unknown or private method, 500 with the error."""
		import json

		try:
			call = json.loads(body.decode("utf-8") or "{}")
			name = str(call.get("method") or "")
			method = getattr(self, name, None) if name and not name.startswith("_") else None
			if not callable(method) or name in ("start", "stop", "handle_http"):
				return _json_resp(400, {"error": f"no such control: {name}"})
			def arg(value):  # bytes travel as {"__bytes__": base64}
				if isinstance(value, dict) and set(value) == {"__bytes__"}:
					import base64

					return base64.b64decode(value["__bytes__"])
				return value

			args = [arg(a) for a in call.get("args") or []]
			kwargs = {k: arg(v) for k, v in (call.get("kwargs") or {}).items()}
			result = method(*args, **kwargs)
		except Exception as exc:  # the caller reads the error
			return _json_resp(500, {"error": f"{type(exc).__name__}: {exc}"})
		return _json_resp(200, {"result": json.loads(json.dumps(result, default=str))})

	# -- HTTP entry -----------------------------------------------------------------------------------
	def handle_http(self, method: str, target: str, headers, body: bytes) -> tuple:
		"""Answer one HTTP request: ``(status, [(header, value)], body bytes)``."""
		parts = urllib.parse.urlsplit(target)
		path, query = parts.path or "/", parts.query
		m = method.upper()
		low = path.rstrip("/").lower()
		if low == "/identity/connect/authorize" and m == "GET":
			return self._authorize(query)
		if low == "/connect/token" and m == "POST":
			return self._token(headers, body)
		if low == "/connect/revocation" and m == "POST":
			return self._revocation(headers, body)
		if low == "/connections" and m == "GET":
			return self._connections_list(headers, query)
		conn = _CONNECTION_RE.match(path)
		if conn and m == "DELETE":
			return self._connection_delete(headers, conn.group(1))
		if low == "/api.xro/2.0/organisation" and m == "GET":
			return self._organisation(headers)
		if low.startswith("/api.xro/2.0/"):
			return self._accounting(m, path, query, headers, body)
		if low == "/_atlas/call" and m == "POST":
			return self._control_call(body)
		if low == "" and m == "GET":
			return _json_resp(200, {"server": "XeroTestServer", "tenants": self.tenant_ids()})
		with self._lock:
			self._calls["not_found"] += 1
		return _problem(404, f"The resource {path} was not found.")
