"""Frappe's realtime server for the browser tests, as production runs it: ``node apps/frappe/socketio.js``
behind one front door that sends ``/socket.io/`` to it and everything else to the site's web server (what
nginx does in production; the plain ``frappe serve`` has no socket.io). The front door is a small
threaded HTTP proxy: socket.io's HTTP long-polling requests go through it (they get the Origin a websocket
would carry), and a websocket upgrade is tunnelled to the realtime server byte for byte, as nginx's
``proxy_set_header Upgrade`` location does, so the client upgrades as it would in production (a refused
upgrade leaves a console error on every page).
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from atlas_integrations.testing.site_web import free_port, wait_for_signal, wait_http

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
	"""``http://127.0.0.1:<port>``: ``/socket.io/`` to the realtime server, the rest to the web server.

	Args:
		web_url: the site's web server.
		socketio_port: the realtime server's port.
		site: the site's name, sent to the realtime server as ``X-Frappe-Site-Name`` (nginx's
			``proxy_set_header X-Frappe-Site-Name``): socketio.js otherwise takes a localhost request for
			the bench's ``default_site`` and refuses the site's namespace. None: leave it to that default.
		port: the front door's port (0: a free one).
	"""

	def __init__(self, web_url: str, socketio_port: int, site: str | None = None, port: int = 0):
		web = urllib.parse.urlsplit(web_url)
		self.targets = {"web": (web.hostname, web.port), "socketio": ("127.0.0.1", socketio_port)}
		targets = self.targets
		#: upstream failures seen (for a test's diagnostics), the latest last
		self.errors: list[str] = []
		errors = self.errors

		class Handler(BaseHTTPRequestHandler):
			protocol_version = "HTTP/1.1"

			def log_message(self, *args):
				pass

			def _proxy(self):
				host, port = targets["socketio" if self.path.startswith("/socket.io/") else "web"]
				if self.headers.get("Upgrade", "").lower() == "websocket":
					self._tunnel(host, port)
					return
				length = int(self.headers.get("Content-Length") or 0)
				body = self.rfile.read(length) if length else None
				headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
				if self.path.startswith("/socket.io/") and "Origin" not in self.headers:
					# same-origin polling XHRs carry no Origin; the websocket a browser opens behind nginx does,
					# and socketio.js checks it against Host
					headers["Origin"] = f"http://{self.headers.get('Host')}"
				if self.path.startswith("/socket.io/") and site:
					headers["X-Frappe-Site-Name"] = site
				conn = http.client.HTTPConnection(host, port, timeout=120)
				try:
					conn.request(self.command, self.path, body=body, headers=headers)
					resp = conn.getresponse()
					data = resp.read()
					status, reply_headers = resp.status, resp.getheaders()
				except OSError as exc:  # the upstream is down or timed out: 502, as nginx answers
					errors.append(f"{self.command} {self.path[:80]}: {type(exc).__name__}: {exc}")
					status, reply_headers, data = 502, [("Content-Type", "text/plain")], b"bad gateway"
				finally:
					conn.close()
				try:
					self.send_response(status)
					for key, value in reply_headers:
						if key.lower() not in HOP_HEADERS:
							self.send_header(key, value)
					self.send_header("Content-Length", str(len(data)))
					self.end_headers()
					self.wfile.write(data)
				except (BrokenPipeError, ConnectionResetError):  # the browser went away (a poll it aborted)
					pass

			def _tunnel(self, host: str, port: int) -> None:
				"""A websocket: the request goes upstream as it came (Upgrade and Connection kept, the site's
				name added), then bytes are copied both ways until either side closes."""
				try:
					upstream = socket.create_connection((host, port), timeout=10)
				except OSError as exc:
					errors.append(f"websocket {self.path[:80]}: {type(exc).__name__}: {exc}")
					self.send_response(502)
					self.send_header("Content-Length", "0")
					self.end_headers()
					return
				lines = [f"{self.command} {self.path} HTTP/1.1"]
				lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() != "x-frappe-site-name"]
				if site:
					lines.append(f"X-Frappe-Site-Name: {site}")
				upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
				upstream.settimeout(None)
				self.close_connection = True

				def pump(src: socket.socket, dst: socket.socket) -> None:
					try:
						while data := src.recv(65536):
							dst.sendall(data)
					except OSError:
						pass
					finally:
						try:
							dst.shutdown(socket.SHUT_WR)
						except OSError:
							pass

				back = threading.Thread(target=pump, args=(upstream, self.connection), daemon=True)
				back.start()
				pump(self.connection, upstream)
				back.join()
				upstream.close()

			do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = _proxy

		self.server = ThreadingHTTPServer(("127.0.0.1", free_port(port) if port else free_port()), Handler)
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


def main(argv=None) -> int:
	"""``python -m atlas_integrations.testing.realtime --web URL --socketio PORT --site SITE --port N``: serve
	the front door until killed (the demo runs it under honcho)."""
	import argparse

	parser = argparse.ArgumentParser(description="Front door: /socket.io/ to Frappe's realtime server, the rest to the web server.")
	parser.add_argument("--web", required=True, help="the site's web server, e.g. http://127.0.0.1:8001")
	parser.add_argument("--socketio", type=int, required=True, help="the realtime server's port")
	parser.add_argument("--site", default=None)
	parser.add_argument("--port", type=int, default=8000)
	args = parser.parse_args(argv)
	door = FrontDoor(args.web, args.socketio, site=args.site, port=args.port)
	door.thread.start()
	print(f"front door {door.url} -> web {args.web}, /socket.io/ -> 127.0.0.1:{args.socketio}", flush=True)
	wait_for_signal()
	door.stop()
	return 0


if __name__ == "__main__":
	import sys

	sys.exit(main())
