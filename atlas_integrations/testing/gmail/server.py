"""HTTP wiring and :class:`GmailTestServer`: the threading HTTP server and request handler, and the
class that owns all state (``__init__``), its lifecycle (start / stop / url) and the request router
(``handle_http``). The rest of its methods come from the mixins of the sibling modules."""

from __future__ import annotations

import re
import threading
import urllib.parse

from atlas_integrations.testing.http import Handler, HTTPServer
from atlas_integrations.testing.gmail.api import _GmailApiMixin
from atlas_integrations.testing.gmail.batch import _BatchMixin
from atlas_integrations.testing.gmail.common import (
	ApiError,
	_CaseDict,
	_Ctx,
	_error_resp,
	_json_resp,
	google_error_body,
)
from atlas_integrations.testing.gmail.control import _ControlMixin
from atlas_integrations.testing.gmail.faults import _Fault, _FaultsMixin
from atlas_integrations.testing.gmail.mailbox import Mailbox, _MailboxMixin
from atlas_integrations.testing.gmail.oauth import _OAuthMixin
from atlas_integrations.testing.gmail.push import _PushMixin, _PushSigner
from atlas_integrations.testing.gmail.stats import _Stats, _StatsMixin

MAX_BODY = 64 * 1024 * 1024


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------
class _Handler(Handler):
	server_version = "GmailTestServer/1.0"
	max_body = MAX_BODY
	headers_class_wrapper = _CaseDict

	def bad_request(self):
		return _json_resp(400, google_error_body(400, "Bad request body."))

	def internal_error(self):
		return _json_resp(
			500, google_error_body(500, "Internal error in test server.")
		)


_HTTPServer = HTTPServer


# --------------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------------
class GmailTestServer(
	_MailboxMixin,
	_OAuthMixin,
	_PushMixin,
	_FaultsMixin,
	_StatsMixin,
	_GmailApiMixin,
	_BatchMixin,
	_ControlMixin,
):
	"""Gmail v1 + Google OAuth 2.0 over real HTTP on a loopback port.

	Args:
		host: interface to bind (default 127.0.0.1).
		port: TCP port; 0 picks a free one.
		enforce_scopes: answer 403 insufficientPermissions when the token's scopes do not allow the
			method (as Gmail does; e.g. messages.delete needs https://mail.google.com/).
	"""

	def __init__(self, host: str = "127.0.0.1", port: int = 0, enforce_scopes: bool = True):
		self.host = host
		self.port = port
		self.enforce_scopes = enforce_scopes
		self._lock = threading.RLock()
		self._mailboxes: dict[str, Mailbox] = {}
		self._clients: dict[str, str] = {}
		self._codes: dict[str, dict] = {}
		self._grants: dict[str, dict] = {}
		self._refresh: dict[str, str] = {}
		self._access: dict[str, dict] = {}
		self._consent = {"email": None, "action": "allow"}
		self._faults: list[_Fault] = []
		self._delays: list[dict] = []  # delay_response(): applied, then answered late
		self._fault_seq = 0
		self._stats: dict[str, _Stats] = {}
		# set_user_quota(): Google's per-user quota, units per moving minute (None: not enforced)
		self.user_quota_per_minute: int | None = None
		self._quota_windows: dict[str, list] = {}  # user -> [[monotonic time, units], ...]
		self.errors: list[str] = []  # unexpected exceptions caught while serving (for debugging)
		# Pub/Sub push (configure_push): config, mailboxes with a queued delivery, finished deliveries
		self._push: dict | None = None
		self._push_pending: set[str] = set()
		self._push_threads: set[threading.Thread] = set()
		self._push_stop = threading.Event()
		self._push_cond = threading.Condition(threading.Lock())
		self._deliveries: list[dict] = []
		self._signer: _PushSigner | None = None
		self._wrong_signer: _PushSigner | None = None
		self._signer_lock = threading.Lock()
		self._httpd: _HTTPServer | None = None
		self._thread: threading.Thread | None = None

	# -- lifecycle ----------------------------------------------------------------------------------
	def start(self) -> GmailTestServer:
		"""Bind and serve in a daemon thread. Returns self."""
		if self._httpd is not None:
			return self
		self._push_stop.clear()
		httpd = _HTTPServer((self.host, self.port), _Handler)
		httpd.app = self
		self._httpd = httpd
		self.port = httpd.server_address[1]
		self._thread = threading.Thread(
			target=httpd.serve_forever,
			kwargs={"poll_interval": 0.05},
			name=f"gmail-test-server:{self.port}",
			daemon=True,
		)
		self._thread.start()
		return self

	def stop(self) -> None:
		"""Stop serving and close the socket; push deliveries in flight give up (no further retries)."""
		self._push_stop.set()
		with self._lock:
			threads = list(self._push_threads)
		for thread in threads:
			thread.join(timeout=5)
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
		"""API root with trailing slash, e.g. ``http://127.0.0.1:PORT/``."""
		host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
		return f"http://{host}:{self.port}/"

	def _record_error(self, exc: BaseException) -> None:
		import traceback

		with self._lock:
			self.errors.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:])
			del self.errors[:-50]

	# -- HTTP entry -----------------------------------------------------------------------------------
	def handle_http(self, method: str, target: str, headers, body: bytes) -> tuple:
		"""Answer one HTTP request: ``(status, [(header, value)], body bytes)``."""
		parts = urllib.parse.urlsplit(target)
		path, query = parts.path or "/", parts.query
		if path.startswith("/_atlas/"):
			return self._control(method, path, query, body)
		ctx = _Ctx()
		gmail = False
		try:
			if path.rstrip("/") in ("/batch/gmail/v1", "/batch"):
				gmail = True
				resp = self._batch(method, path, query, headers, body, ctx)
			elif re.match(r"^/(upload/|resumable/upload/)?gmail/v1/", path):
				gmail = True
				resp = self._dispatch_api(method, path, query, headers, body, ctx)
			elif path in ("/o/oauth2/auth", "/o/oauth2/v2/auth", "/oauth2/auth", "/o/oauth2/v2/auth/"):
				resp = self._authorize(method, path, query, ctx)
			elif path in ("/token", "/oauth2/v4/token", "/o/oauth2/token"):
				resp = self._token(method, path, query, headers, body, ctx)
			elif path in ("/revoke", "/o/oauth2/revoke"):
				resp = self._revoke(method, path, query, body, ctx)
			elif path in ("/oauth2/v3/userinfo", "/oauth2/v2/userinfo", "/oauth2/v1/userinfo"):
				resp = self._userinfo(method, path, query, headers, ctx)
			elif path in ("/oauth2/v3/tokeninfo", "/oauth2/v1/tokeninfo"):
				resp = self._tokeninfo(method, path, query, headers, body, ctx)
			elif path == "/oauth2/v1/certs" and method.upper() in ("GET", "HEAD"):
				resp = _json_resp(200, self.certs(), [("Cache-Control", "public, max-age=300")])
			elif path == "/":
				resp = _json_resp(
					200, {"server": "GmailTestServer", "mailboxes": [m.email for m in self.mailboxes]}
				)
			else:
				resp = _json_resp(
					404, google_error_body(404, f"The requested URL {path} was not found on this server.")
				)
		except ApiError as exc:
			resp = _error_resp(exc)
		if gmail:
			with self._lock:
				self._st(ctx.email).http_requests += 1
		return resp
