"""HTTP plumbing the local provider servers share (``testing/gmail``, ``testing/xero``): a keep-alive
request handler that reads any request body (Content-Length or chunked) and never dies on a bad request,
and a threading server that can cut its open connections. Standard library only; no Frappe."""

from __future__ import annotations

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
	"""Hands every request to ``server.app.handle_http(method, path, headers, body)`` ->
	``(status, [(header, value)], payload bytes)``. Subclasses name the server and give the answers for
	an unreadable body (:meth:`bad_request`) and for an exception in the app (:meth:`internal_error`)."""

	protocol_version = "HTTP/1.1"
	server_version = "AtlasTestServer/1.0"
	sys_version = ""
	timeout = 60  # idle keep-alive connections are dropped after this many seconds
	max_body = 64 * 1024 * 1024  # bytes
	headers_class_wrapper = None  # a case-insensitive dict type for the app (set by subclasses)

	def log_message(self, format, *args):
		pass

	def bad_request(self) -> tuple[int, list, bytes]:
		raise NotImplementedError

	def internal_error(self) -> tuple[int, list, bytes]:
		raise NotImplementedError

	def setup(self):
		super().setup()
		with self.server.conn_lock:
			self.server.conns.add(self.connection)

	def finish(self):
		try:
			super().finish()
		finally:
			with self.server.conn_lock:
				self.server.conns.discard(self.connection)

	def _read_body(self) -> bytes | None:
		te = (self.headers.get("Transfer-Encoding") or "").lower()
		if "chunked" in te:
			chunks, total = [], 0
			while True:
				line = self.rfile.readline(1024)
				if not line:
					break
				try:
					size = int(line.split(b";", 1)[0].strip() or b"0", 16)
				except ValueError:
					return None
				if size == 0:
					while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
						pass
					break
				total += size
				if total > self.max_body:
					return None
				chunks.append(self.rfile.read(size))
				self.rfile.readline(1024)
			return b"".join(chunks)
		try:
			length = int(self.headers.get("Content-Length") or 0)
		except ValueError:
			return None
		if length < 0 or length > self.max_body:
			return None
		return self.rfile.read(length) if length else b""

	def _handle(self):
		app = self.server.app
		try:
			body = self._read_body()
			if body is None:
				status, headers, payload = self.bad_request()
				self.close_connection = True
			else:
				status, headers, payload = app.handle_http(
					self.command, self.path, self.headers_class_wrapper(self.headers.items()), body
				)
		except Exception as exc:  # never die on a bad request
			app._record_error(exc)
			status, headers, payload = self.internal_error()
		try:
			self.send_response(status)
			for k, v in headers:
				self.send_header(k, v)
			self.send_header("Content-Length", str(len(payload)))
			self.end_headers()
			if self.command != "HEAD" and payload:
				self.wfile.write(payload)
		except (BrokenPipeError, ConnectionResetError, OSError):
			self.close_connection = True

	do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle


class HTTPServer(ThreadingHTTPServer):
	"""The threading server; ``app`` is set by the owner before serving."""

	daemon_threads = True
	block_on_close = False
	allow_reuse_address = True
	request_queue_size = 64

	def __init__(self, *args, **kwargs):
		self.conns = set()
		self.conn_lock = threading.Lock()
		super().__init__(*args, **kwargs)

	def close_connections(self) -> None:
		"""Cut open keep-alive connections so clients see the server gone."""
		with self.conn_lock:
			conns = list(self.conns)
		for conn in conns:
			try:
				conn.shutdown(socket.SHUT_RDWR)
			except OSError:
				pass

	def handle_error(self, request, client_address):  # no tracebacks on stderr
		exc = sys.exc_info()[1]
		if exc is not None and not isinstance(exc, (ConnectionError, TimeoutError, OSError)):
			self.app._record_error(exc)
