"""Frappe's realtime server for the browser tests, as production runs it: ``node apps/frappe/socketio.js``
behind one front door that sends ``/socket.io/`` to it and everything else to the site's web server (what
nginx does in production; the plain ``frappe serve`` has no socket.io). The front door is a small
threaded HTTP proxy: socket.io's HTTP long-polling transport goes through it (a websocket upgrade is
refused, so the client stays on polling; the polling requests get the Origin a websocket would carry).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from atlas_integrations.testing.site_web import free_port, wait_http

HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
			   "transfer-encoding", "upgrade", "content-length"}


def start_socketio(bench: str, log=subprocess.DEVNULL) -> tuple[int, subprocess.Popen]:
	"""Start ``node apps/frappe/socketio.js`` in ``bench`` on a free port (``FRAPPE_SOCKETIO_PORT``).
	Returns ``(port, process)``; stop it with ``process.terminate()``."""
	port = free_port()
	env = {**os.environ, "FRAPPE_SOCKETIO_PORT": str(port)}
	proc = subprocess.Popen(["node", "apps/frappe/socketio.js"], cwd=bench, env=env, stdout=log, stderr=subprocess.STDOUT)
	deadline = time.monotonic() + 30
	while time.monotonic() < deadline:
		if proc.poll() is not None:
			raise RuntimeError(f"socketio.js exited with {proc.returncode}")
		try:
			conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
			conn.request("GET", "/socket.io/?EIO=4&transport=polling")
			conn.getresponse().read()
			return port, proc
		except OSError:
			time.sleep(0.2)
	proc.terminate()
	raise RuntimeError("socketio.js did not listen within 30 s")


class FrontDoor:
	"""``http://127.0.0.1:<port>``: ``/socket.io/`` to the realtime server, the rest to the web server."""

	def __init__(self, web_url: str, socketio_port: int):
		web = urllib.parse.urlsplit(web_url)
		self.targets = {"web": (web.hostname, web.port), "socketio": ("127.0.0.1", socketio_port)}
		targets = self.targets

		class Handler(BaseHTTPRequestHandler):
			protocol_version = "HTTP/1.1"

			def log_message(self, *args):
				pass

			def _proxy(self):
				if self.headers.get("Upgrade"):  # websocket: refused, socket.io keeps polling
					self.send_response(400)
					self.send_header("Content-Length", "0")
					self.end_headers()
					return
				host, port = targets["socketio" if self.path.startswith("/socket.io/") else "web"]
				length = int(self.headers.get("Content-Length") or 0)
				body = self.rfile.read(length) if length else None
				headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
				if self.path.startswith("/socket.io/") and "Origin" not in self.headers:
					# same-origin polling XHRs carry no Origin; the websocket a browser opens behind nginx does,
					# and socketio.js checks it against Host
					headers["Origin"] = f"http://{self.headers.get('Host')}"
				conn = http.client.HTTPConnection(host, port, timeout=120)
				try:
					conn.request(self.command, self.path, body=body, headers=headers)
					resp = conn.getresponse()
					data = resp.read()
				finally:
					conn.close()
				self.send_response(resp.status)
				for key, value in resp.getheaders():
					if key.lower() not in HOP_HEADERS:
						self.send_header(key, value)
				self.send_header("Content-Length", str(len(data)))
				self.end_headers()
				self.wfile.write(data)

			do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _proxy

		self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
		self.server.daemon_threads = True
		self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
		self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

	def start(self) -> FrontDoor:
		self.thread.start()
		wait_http(self.url + "/api/method/ping")
		return self

	def stop(self) -> None:
		self.server.shutdown()
		self.server.server_close()
