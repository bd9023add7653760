"""A local fake of an OpenAI-compatible chat completions endpoint, for the tests of
:mod:`atlas_integrations.inbox.llm`.

It serves ``POST /v1/chat/completions`` of the OpenAI Chat Completions API
(https://platform.openai.com/docs/api-reference/chat/create) on 127.0.0.1 with an ephemeral port
(stdlib ``http.server``), checks ``Authorization: Bearer <api_key>`` (401 otherwise), records every
request, and answers according to a programmable mode::

	with FakeLLM(api_key="sk-test") as llm:
		llm.url                   # "http://127.0.0.1:PORT/v1"
		llm.set_reply({"category": "Scheduling", "priority": "High", "summary": "Meet on Monday"})
		llm.set_delay(3.0)        # seconds to wait before answering
		llm.set_status(500)       # answer with this HTTP status and an OpenAI-style error body
		llm.set_raw("not json")   # assistant message content sent verbatim (invalid content)
		llm.reset()               # back to the default reply, no delay
		llm.requests              # parsed JSON bodies, in order (raw text when not JSON)

Default reply (no mode set): category ``"Quote request"`` when the user message contains "quote" (any
case), else ``"Personal or other"``; priority ``"Normal"``; summary the first line of the subject (the
``Subject:`` line of the user message).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_KEY = "sk-fake-llm-test-key"
PATH = "/v1/chat/completions"
MAX_BODY = 4 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
	protocol_version = "HTTP/1.1"
	server_version = "FakeLLM/1.0"
	sys_version = ""
	timeout = 30

	def log_message(self, format, *args):
		pass

	def handle(self):
		try:
			super().handle()
		except (ConnectionResetError, BrokenPipeError, TimeoutError):
			pass  # the client closed or reset a kept-alive connection (e.g. after a timeout or an error)

	def do_POST(self):
		self.server.fake._handle(self)

	def do_GET(self):
		self.server.fake._send_error(self, 404, "not found", "invalid_request_error")


class FakeLLM:
	"""A local OpenAI-compatible ``/v1/chat/completions`` endpoint.

	Args:
		api_key: the only Bearer key accepted.
		model: the ``model`` echoed in answers when a request names none.

	Attributes:
		url: the base URL, ``http://127.0.0.1:PORT/v1`` (after :meth:`start`).
		requests: every request body received (parsed JSON; the raw text when it is not JSON), in order,
			including the rejected ones.
		headers: the request headers of each entry of ``requests`` (dict, same order).
		errors: internal errors of the fake itself (tests may assert it stays empty).
	"""

	def __init__(self, api_key: str = DEFAULT_KEY, model: str = "fake-model"):
		self.api_key = api_key
		self.model = model
		self.requests: list = []
		self.headers: list[dict[str, str]] = []
		self.errors: list[str] = []
		self._lock = threading.Lock()
		self._stopping = threading.Event()
		self._httpd: ThreadingHTTPServer | None = None
		self._thread: threading.Thread | None = None
		self.reset()

	# ------------------------------------------------------------------ lifecycle
	def start(self) -> FakeLLM:
		"""Listen on 127.0.0.1 (ephemeral port) in a daemon thread; returns self."""
		if self._httpd is not None:
			return self
		self._stopping.clear()
		httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
		httpd.daemon_threads = True
		httpd.fake = self
		self._httpd = httpd
		self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
										name="FakeLLM", daemon=True)
		self._thread.start()
		return self

	def stop(self) -> None:
		"""Stop serving; wakes up delayed answers. Idempotent."""
		if self._httpd is None:
			return
		self._stopping.set()
		self._httpd.shutdown()
		self._httpd.server_close()
		if self._thread is not None:
			self._thread.join(timeout=5)
		self._httpd = self._thread = None

	def __enter__(self) -> FakeLLM:
		return self.start()

	def __exit__(self, *exc) -> None:
		self.stop()

	@property
	def port(self) -> int:
		if self._httpd is None:
			raise RuntimeError("FakeLLM is not started")
		return self._httpd.server_address[1]

	@property
	def url(self) -> str:
		"""The base URL to configure, ending in ``/v1``."""
		return f"http://127.0.0.1:{self.port}/v1"

	# ------------------------------------------------------------------ modes
	def reset(self) -> None:
		"""Back to the default reply, status 200 and no delay (recorded requests are kept)."""
		with self._lock:
			self._reply: dict | None = None
			self._raw: str | None = None
			self._status = 200
			self._delay = 0.0

	def set_reply(self, reply: dict) -> None:
		"""Answer ``json.dumps(reply)`` as the assistant message content."""
		with self._lock:
			self._reply, self._raw, self._status = dict(reply), None, 200

	def set_raw(self, text: str) -> None:
		"""Answer ``text`` verbatim as the assistant message content (e.g. invalid JSON)."""
		with self._lock:
			self._raw, self._reply, self._status = str(text), None, 200

	def set_status(self, code: int) -> None:
		"""Answer every authorised request with this HTTP status (an OpenAI-style error body unless 2xx)."""
		with self._lock:
			self._status = int(code)

	def set_delay(self, seconds: float) -> None:
		"""Wait this many seconds before answering (0 = none)."""
		with self._lock:
			self._delay = max(0.0, float(seconds))

	# ------------------------------------------------------------------ HTTP
	def _handle(self, h: BaseHTTPRequestHandler) -> None:
		try:
			length = int(h.headers.get("Content-Length") or 0)
			if length < 0 or length > MAX_BODY:
				h.close_connection = True
				return self._send_error(h, 413, "request too large", "invalid_request_error")
			raw = h.rfile.read(length) if length else b""
			text = raw.decode("utf-8", "replace")
			try:
				body = json.loads(text) if text else {}
			except ValueError:
				body = text
			with self._lock:
				self.requests.append(body)
				self.headers.append(dict(h.headers.items()))
				reply, raw_content, status, delay = self._reply, self._raw, self._status, self._delay
			path = h.path.split("?", 1)[0].rstrip("/")
			if path != PATH:
				return self._send_error(h, 404, f"unknown path {path}", "invalid_request_error")
			if h.headers.get("Authorization", "") != f"Bearer {self.api_key}":
				return self._send_error(h, 401, "Incorrect API key provided.", "invalid_request_error",
										code="invalid_api_key")
			if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
				return self._send_error(h, 400, "'messages' is a required property", "invalid_request_error")
			if delay and self._stopping.wait(delay):
				return
			if not 200 <= status < 300:
				return self._send_error(h, status, f"fake error {status}", "server_error")
			if raw_content is not None:
				content = raw_content
			else:
				content = json.dumps(reply if reply is not None else self._default_reply(body))
			self._send_json(h, status, self._completion(body, content))
		except (BrokenPipeError, ConnectionResetError):
			pass  # the client gave up (timeout) before the answer
		except Exception as e:  # pragma: no cover - a bug of the fake
			self.errors.append(f"{type(e).__name__}: {e}")
			try:
				self._send_error(h, 500, "fake internal error", "server_error")
			except Exception:
				pass

	@staticmethod
	def _user_text(body: dict) -> str:
		parts = []
		for message in body.get("messages") or []:
			if isinstance(message, dict) and message.get("role") == "user":
				content = message.get("content")
				if isinstance(content, list):  # content parts
					content = "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
				parts.append(str(content or ""))
		return "\n".join(parts)

	def _default_reply(self, body: dict) -> dict:
		user = self._user_text(body)
		subject = ""
		for line in user.splitlines():
			if line.lower().startswith("subject:"):
				subject = line.split(":", 1)[1].strip()
				break
		else:
			subject = next((line.strip() for line in user.splitlines() if line.strip()), "")
		return {
			"category": "Quote request" if "quote" in user.lower() else "Personal or other",
			"priority": "Normal",
			"summary": (subject.splitlines() or [""])[0].strip(),
		}

	def _completion(self, body: dict, content: str) -> dict:
		created = int(time.time())
		return {
			"id": f"chatcmpl-fake{len(self.requests)}",
			"object": "chat.completion",
			"created": created,
			"model": body.get("model") or self.model,
			"choices": [{"index": 0, "message": {"role": "assistant", "content": content},
						 "logprobs": None, "finish_reason": "stop"}],
			"usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
		}

	@staticmethod
	def _send_json(h: BaseHTTPRequestHandler, status: int, payload: dict) -> None:
		data = json.dumps(payload).encode("utf-8")
		h.send_response(status)
		h.send_header("Content-Type", "application/json")
		h.send_header("Content-Length", str(len(data)))
		h.end_headers()
		h.wfile.write(data)

	def _send_error(self, h: BaseHTTPRequestHandler, status: int, message: str, kind: str,
					code: str | None = None) -> None:
		self._send_json(h, status, {"error": {"message": message, "type": kind, "param": None, "code": code}})
