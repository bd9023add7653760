"""HTTPS wiring and :class:`GraphTestServer`: state, lifecycle (start / stop / urls) and the router."""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import urllib.parse

from atlas_integrations.testing.gmail.common import _CaseDict
from atlas_integrations.testing.graph.api import _MailApiMixin
from atlas_integrations.testing.graph.faults import _FaultsMixin
from atlas_integrations.testing.graph.identity import IdentityError, IdentityState, _IdentityMixin
from atlas_integrations.testing.graph.notify import _NotifyMixin
from atlas_integrations.testing.graph.throttle import _ThrottleMixin
from atlas_integrations.testing.graph.tls import make_certificate
from atlas_integrations.testing.graph.write import _MailWriteMixin
from atlas_integrations.testing.http import Handler, HTTPServer

_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8"


def graph_error(status: int, code: str, message: str, headers=()) -> tuple[int, list, bytes]:
	"""An answer in Graph's error shape: ``{"error": {"code", "message", "innerError": {...}}}``."""
	body = {"error": {"code": code, "message": message,
					  "innerError": {"request-id": secrets.token_hex(8), "client-request-id": secrets.token_hex(8)}}}
	return status, [("Content-Type", _JSON), *headers], json.dumps(body).encode()


def _json(status: int, obj, headers=()) -> tuple[int, list, bytes]:
	return status, [("Content-Type", _JSON), *headers], json.dumps(obj, ensure_ascii=False).encode()


class _Handler(Handler):
	server_version = "GraphTestServer/1.0"
	headers_class_wrapper = _CaseDict

	def bad_request(self):
		return graph_error(400, "BadRequest", "Unreadable request body.")

	def internal_error(self):
		return graph_error(500, "InternalServerError", "Internal error in the test server.")


class _TLSServer(HTTPServer):
	"""The threading server, each accepted connection wrapped in TLS (handshake on the handler's thread)."""

	ssl_context: ssl.SSLContext

	def get_request(self):
		sock, addr = super().get_request()
		return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

	def finish_request(self, request, client_address):
		try:
			request.do_handshake()
		except (ssl.SSLError, OSError):
			return
		super().finish_request(request, client_address)


class GraphTestServer(_IdentityMixin, _MailApiMixin, _MailWriteMixin, _NotifyMixin, _ThrottleMixin, _FaultsMixin):
	"""Microsoft identity platform + Graph v1.0 over HTTPS on a loopback port.

	Args:
		host: interface to bind (default 127.0.0.1).
		port: TCP port; 0 picks a free one.

	After :meth:`start`, :attr:`authority_host` is ``https://127.0.0.1:PORT`` (an MSAL authority is that
	plus ``/common``, ``/organizations`` or a tenant id), :attr:`graph_url` is ``…/v1.0`` and
	:attr:`ca_path` the PEM file a client trusts (``verify=``).
	"""

	def __init__(self, host: str = "127.0.0.1", port: int = 0):
		self.host, self.port = host, port
		self._lock = threading.RLock()
		self.identity = IdentityState()
		self.mailboxes: dict = {}  # address -> GraphMailbox
		self._snapshots: dict[str, dict] = {}  # $skiptoken -> the delta round it pages through
		self._init_throttle()
		self.sent: list[dict] = []  # every message sent (send / sendMail), in order
		self.send_lag = 0.0  # seconds between a draft's /send and its move to Sent Items
		self._init_notify()
		self._init_faults()
		self.signing_key = secrets.token_bytes(32)
		self.errors: list[str] = []
		self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
		self._httpd: _TLSServer | None = None
		self._thread: threading.Thread | None = None
		self.ca_path = self._key_path = ""

	# -- lifecycle ---------------------------------------------------------------------------------------
	def start(self) -> GraphTestServer:
		"""Make a certificate, bind and serve in a daemon thread. Returns self."""
		if self._httpd is not None:
			return self
		self.ca_path, self._key_path = make_certificate()
		context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
		context.load_cert_chain(self.ca_path, self._key_path)
		httpd = _TLSServer((self.host, self.port), _Handler)
		httpd.ssl_context = context
		httpd.app = self
		self._httpd, self.port = httpd, httpd.server_address[1]
		self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
										name=f"graph-test-server:{self.port}", daemon=True)
		self._thread.start()
		return self

	def stop(self) -> None:
		"""Stop serving and close the socket and every open connection."""
		httpd, self._httpd = self._httpd, None
		if httpd is not None:
			httpd.shutdown()
			httpd.server_close()
			httpd.close_connections()
		if self._thread is not None:
			self._thread.join(timeout=5)
			self._thread = None

	def __enter__(self) -> GraphTestServer:
		return self.start()

	def __exit__(self, *exc) -> None:
		self.stop()

	@property
	def base(self) -> str:
		"""``https://127.0.0.1:PORT``: the authority host (an MSAL authority is this plus a tenant)."""
		return f"https://127.0.0.1:{self.port}"

	authority_host = base

	@property
	def graph_url(self) -> str:
		"""Graph's v1.0 root on this server, ``https://127.0.0.1:PORT/v1.0`` (no trailing slash)."""
		return f"{self.base}/v1.0"

	def add_user(self, address: str) -> str:
		"""A mailbox user of the server's tenant. Returns its object id (a GUID)."""
		import uuid

		with self._lock:
			return self.identity.users.setdefault(address.lower(), str(uuid.uuid4()))

	def _record_error(self, exc: BaseException) -> None:
		import traceback

		with self._lock:
			self.errors.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[-4000:])
			del self.errors[:-50]

	# -- router ------------------------------------------------------------------------------------------
	def handle_http(self, method: str, target: str, headers, body: bytes) -> tuple[int, list, bytes]:
		"""Answer one request: ``(status, [(header, value)], body)``."""
		parts = urllib.parse.urlsplit(target)
		path, query = parts.path, dict(urllib.parse.parse_qsl(parts.query))
		with self._lock:
			self.requests.append((method, path))
		segments = [s for s in path.split("/") if s]
		if path.startswith("/v1.0/"):
			fault = self._fault_for(method, path)
			if fault is not None:
				return self._with_fault(fault, lambda: self._graph(method, segments[1:], query, headers, body))
			return self._graph(method, segments[1:], query, headers, body)
		if len(segments) >= 2 and segments[1:] == ["v2.0", ".well-known", "openid-configuration"]:
			return _json(200, self._openid_configuration(segments[0]))
		if len(segments) == 4 and segments[1:3] == ["oauth2", "v2.0"]:
			if segments[3] == "authorize" and method == "GET":
				return self._authorize(query)
			if segments[3] == "token" and method == "POST":
				form = dict(urllib.parse.parse_qsl(body.decode("utf-8", "replace")))
				try:
					return _json(200, self._token(segments[0], form, headers), [("Cache-Control", "no-store")])
				except IdentityError as exc:
					return _json(exc.status, exc.body())
		return graph_error(404, "NotFound", "No such endpoint on the local Graph server.")

	def _graph(self, method: str, segments: list[str], query: dict, headers, body: bytes) -> tuple[int, list, bytes]:
		grant = self.grant_for(headers.get("Authorization"))
		if grant is None:
			return graph_error(401, "InvalidAuthenticationToken", "Access token is empty or invalid.",
							   [("WWW-Authenticate", 'Bearer realm="", error="invalid_token"')])
		if segments == ["$batch"] and method == "POST":
			return self._batch(body, headers)
		if segments[:1] == ["subscriptions"]:
			try:
				data = json.loads(body) if body else {}
			except ValueError:
				return graph_error(400, "BadRequest", "Unable to read JSON request payload.")
			return self._subscriptions(method, segments, data, grant)
		if segments[:1] == ["me"] or (len(segments) >= 2 and segments[0] == "users"):
			return self._mail(method, segments, query, headers, grant, body)
		return graph_error(404, "NotFound", "No such Graph resource on the local server.")

	def _user_resource(self, address: str) -> dict:
		return {"@odata.context": f"{self.graph_url}/$metadata#users/$entity", "id": self.identity.users[address],
				"displayName": address.split("@")[0], "mail": address, "userPrincipalName": address}
