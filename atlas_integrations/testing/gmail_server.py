"""A local Google-compatible Gmail v1 + OAuth 2.0 server for tests and demos.

The real ``google-api-python-client``, ``google-auth`` and ``google-auth-oauthlib`` talk to it over real
HTTP on 127.0.0.1, so a test exercises the same request framing, retries, token refreshes and batch
parsing that production does. Pure standard library: it never imports frappe and runs under any Python
>= 3.10.

Usage (Python)::

	server = GmailTestServer().start()
	server.register_client("cid", "secret")
	server.load_eml_dir("owner@example.com", "/work/shared/corpus", spread_days=20)
	...  # point Credentials(token_uri=server.url + "token") and build(..., client_options={"api_endpoint": server.url})
	server.stop()

Usage (CLI)::

	python -m atlas_integrations.testing.gmail_server --port 8765 \\
		--mailbox owner@example.com=/path/to/eml/dir --spread-days 20 --client ID:SECRET

It prints ``ready http://127.0.0.1:PORT/`` once listening and serves until killed. Tests in another
process drive it through ``/_atlas/*`` (see :meth:`GmailTestServer._control`).

What it models (shapes as Google documents them):

* OAuth 2.0: ``GET /o/oauth2/auth`` (consent is automatic: allow / deny / no_refresh), ``POST /token``
  (authorization_code with PKCE S256/plain, refresh_token), ``POST /revoke``, plus
  ``/oauth2/v3/userinfo`` and ``/oauth2/v3/tokeninfo``.
* Gmail v1 under ``/gmail/v1/users/{userId}/``: profile, labels, messages (list/get/modify/batchModify/
  trash/untrash/delete/batchDelete/send/insert/import/attachments), threads, history, watch/stop, and the
  ``/upload/gmail/v1/...`` media forms of send/insert/import.
* ``POST /batch/gmail/v1`` (and ``/batch``): Google's multipart/mixed batch; every part goes through the
  same dispatcher as a direct call, so faults, auth and stats apply per part.
* Per-mailbox stats with Gmail quota units, fault injection, token revocation and history expiry.
* Gmail push notifications (Gmail "Push notifications" guide): ``users.watch`` / ``users.stop`` keep a
  watch per mailbox; with :meth:`GmailTestServer.configure_push` every later mailbox change of a watched
  mailbox is delivered in a background thread as a Cloud Pub/Sub push request (JSON envelope, OIDC
  bearer JWT signed RS256 by a key of this server, or ``?token=`` shared token). ``GET
  /oauth2/v1/certs`` serves the signing certificate as Google does (``{kid: X.509 PEM}``), so
  ``google.oauth2.id_token.verify_token(..., certs_url=server.url + "oauth2/v1/certs")`` verifies the
  JWT. Signing needs ``cryptography`` (imported only then).

Choices where Google is unspecified or this server simplifies:

* ``after:``/``before:`` dates written ``YYYY/MM/DD`` are midnight **UTC** (Gmail uses the account's time
  zone); ``after:`` is inclusive (>=), ``before:`` exclusive (<). Free-text words and unknown operators are
  ignored (they match everything).
* Header values in ``payload.headers`` are unfolded and RFC 2047-decoded; ``body.data`` is the part's
  content-transfer-decoded bytes in its declared charset (no charset conversion).
* ``threadId`` is the id of the earliest (internalDate, then insertion order) message of the
  union-find component built from Message-ID / In-Reply-To / References.
* Quota units are charged for calls that pass authentication and are not answered by an injected fault.
* Push notifications of one mailbox are coalesced: while a delivery is queued and not yet sent, further
  changes ride on it (it carries the historyId current when it is sent), as Gmail drops notifications
  over its per-user rate. A delivery that is not acknowledged (Pub/Sub acks 102, 200, 201, 202, 204) is
  retried a few times with a short doubling delay, then recorded as failed (Pub/Sub would keep retrying
  until the message expires).
  ``http_requests`` counts Gmail HTTP requests only (direct calls and batch envelopes); OAuth token
  endpoint hits are counted separately in ``token_requests``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email
import email.header
import email.policy
import email.utils
import hashlib
import html
import io
import json
import re
import secrets
import signal
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from email.generator import BytesGenerator
from email.message import Message as _EmailMessage
from email.parser import BytesParser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["QUOTA_UNITS", "SYSTEM_LABELS", "GmailTestServer", "Mailbox", "Message", "main"]

#: Gmail's accepted topic name form (users.watch answers 400 otherwise).
TOPIC_RE = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
WATCH_TTL_MS = 7 * 86400 * 1000  # a watch expires 7 days after users.watch
#: HTTP statuses Pub/Sub counts as an acknowledgement of a push delivery (Pub/Sub "Push subscriptions").
PUSH_ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
GOOGLE_ISSUER = "https://accounts.google.com"
PUSH_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


SYSTEM_LABELS = (
	"INBOX",
	"SENT",
	"UNREAD",
	"STARRED",
	"IMPORTANT",
	"TRASH",
	"SPAM",
	"DRAFT",
	"CATEGORY_PERSONAL",
	"CATEGORY_SOCIAL",
	"CATEGORY_PROMOTIONS",
	"CATEGORY_UPDATES",
	"CATEGORY_FORUMS",
)

#: Gmail API quota units per method (Gmail "Usage limits" table).
QUOTA_UNITS = {
	"users.getProfile": 1,
	"users.watch": 100,
	"users.stop": 50,
	"labels.list": 1,
	"labels.get": 1,
	"labels.create": 5,
	"labels.delete": 5,
	"labels.patch": 5,
	"labels.update": 5,
	"messages.list": 5,
	"messages.get": 5,
	"messages.insert": 25,
	"messages.import": 25,
	"messages.send": 100,
	"messages.modify": 5,
	"messages.batchModify": 50,
	"messages.batchDelete": 50,
	"messages.delete": 10,
	"messages.trash": 5,
	"messages.untrash": 5,
	"messages.attachments.get": 5,
	"threads.list": 10,
	"threads.get": 10,
	"threads.modify": 10,
	"threads.trash": 10,
	"threads.untrash": 10,
	"threads.delete": 20,
	"history.list": 2,
}

MAX_BATCH_PARTS = 100
ACCESS_TOKEN_TTL = 3599  # seconds, as Google answers
AUTH_CODE_TTL = 600
FIRST_HISTORY_ID = 1000
MAX_BODY = 64 * 1024 * 1024

SCOPE_FULL = "https://mail.google.com/"
_G = "https://www.googleapis.com/auth/gmail."
SCOPE_MODIFY, SCOPE_READONLY, SCOPE_METADATA = _G + "modify", _G + "readonly", _G + "metadata"
SCOPE_COMPOSE, SCOPE_SEND, SCOPE_INSERT, SCOPE_LABELS = (
	_G + "compose",
	_G + "send",
	_G + "insert",
	_G + "labels",
)

_READ = {SCOPE_FULL, SCOPE_MODIFY, SCOPE_READONLY, SCOPE_METADATA}
_SCOPES_BY_METHOD = {
	"users.getProfile": _READ | {SCOPE_COMPOSE},
	"users.watch": _READ,
	"users.stop": _READ,
	"labels.list": _READ | {SCOPE_LABELS},
	"labels.get": _READ | {SCOPE_LABELS},
	"labels.create": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"labels.delete": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"labels.patch": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"labels.update": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"messages.list": _READ,
	"messages.get": _READ,
	"messages.attachments.get": _READ - {SCOPE_METADATA},
	"messages.insert": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_INSERT},
	"messages.import": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_INSERT},
	"messages.send": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_COMPOSE, SCOPE_SEND},
	"messages.modify": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.batchModify": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.trash": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.untrash": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.delete": {SCOPE_FULL},
	"messages.batchDelete": {SCOPE_FULL},
	"threads.list": _READ,
	"threads.get": _READ,
	"threads.modify": {SCOPE_FULL, SCOPE_MODIFY},
	"threads.trash": {SCOPE_FULL, SCOPE_MODIFY},
	"threads.untrash": {SCOPE_FULL, SCOPE_MODIFY},
	"threads.delete": {SCOPE_FULL},
	"history.list": _READ,
}

# (HTTP method, path segments after users/{userId}/, Gmail method name). "{x}" captures a segment.
_ROUTES = (
	("GET", ("profile",), "users.getProfile"),
	("POST", ("watch",), "users.watch"),
	("POST", ("stop",), "users.stop"),
	("GET", ("labels",), "labels.list"),
	("POST", ("labels",), "labels.create"),
	("GET", ("labels", "{id}"), "labels.get"),
	("DELETE", ("labels", "{id}"), "labels.delete"),
	("PATCH", ("labels", "{id}"), "labels.patch"),
	("PUT", ("labels", "{id}"), "labels.update"),
	("GET", ("messages",), "messages.list"),
	("POST", ("messages",), "messages.insert"),
	("POST", ("messages", "import"), "messages.import"),
	("POST", ("messages", "send"), "messages.send"),
	("POST", ("messages", "batchModify"), "messages.batchModify"),
	("POST", ("messages", "batchDelete"), "messages.batchDelete"),
	("GET", ("messages", "{id}"), "messages.get"),
	("DELETE", ("messages", "{id}"), "messages.delete"),
	("POST", ("messages", "{id}", "modify"), "messages.modify"),
	("POST", ("messages", "{id}", "trash"), "messages.trash"),
	("POST", ("messages", "{id}", "untrash"), "messages.untrash"),
	("GET", ("messages", "{messageId}", "attachments", "{id}"), "messages.attachments.get"),
	("GET", ("threads",), "threads.list"),
	("GET", ("threads", "{id}"), "threads.get"),
	("DELETE", ("threads", "{id}"), "threads.delete"),
	("POST", ("threads", "{id}", "modify"), "threads.modify"),
	("POST", ("threads", "{id}", "trash"), "threads.trash"),
	("POST", ("threads", "{id}", "untrash"), "threads.untrash"),
	("GET", ("history",), "history.list"),
)
_UPLOAD_METHODS = {"messages.send", "messages.insert", "messages.import"}

_STATUS_NAMES = {
	400: "INVALID_ARGUMENT",
	401: "UNAUTHENTICATED",
	403: "PERMISSION_DENIED",
	404: "NOT_FOUND",
	405: "METHOD_NOT_ALLOWED",
	409: "ALREADY_EXISTS",
	412: "FAILED_PRECONDITION",
	413: "OUT_OF_RANGE",
	429: "RESOURCE_EXHAUSTED",
	500: "INTERNAL",
	501: "UNIMPLEMENTED",
	502: "UNAVAILABLE",
	503: "UNAVAILABLE",
	504: "DEADLINE_EXCEEDED",
}
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
_USAGE_LIMIT_REASONS = {
	"rateLimitExceeded",
	"userRateLimitExceeded",
	"dailyLimitExceeded",
	"quotaExceeded",
	"limitExceeded",
	"concurrentLimitExceeded",
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

_JSON_CT = "application/json; charset=UTF-8"


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def _now_ms() -> int:
	return int(time.time() * 1000)


def b64url(data: bytes) -> str:
	"""base64url with padding, as Gmail sends ``raw`` / ``body.data``."""
	return base64.urlsafe_b64encode(data).decode("ascii")


def b64_any_decode(text) -> bytes:
	"""Decode standard or URL-safe base64, with or without padding; ValueError when it is not base64."""
	if isinstance(text, bytes):
		text = text.decode("ascii", "replace")
	s = re.sub(r"\s+", "", str(text)).replace("-", "+").replace("_", "/")
	s += "=" * (-len(s) % 4)
	try:
		return base64.b64decode(s, validate=True)
	except (binascii.Error, ValueError) as exc:
		raise ValueError(str(exc)) from None


_SURROGATES = re.compile("[\ud800-\udfff]")


def _codec(charset):
	if not charset:
		return None
	cs = str(charset).strip().strip('"').strip("'").lower()
	cs = cs.split("*", 1)[0]  # RFC 2231 language suffix
	import codecs

	try:
		return codecs.lookup(cs).name
	except (LookupError, ValueError, TypeError):
		return None


def _decode_bytes(data: bytes, charset=None) -> str:
	"""Best-effort text from bytes: declared charset, then UTF-8, then cp1252 with replacement."""
	codec = _codec(charset)
	for name in ([codec] if codec else []) + ["utf-8"]:
		try:
			return data.decode(name)
		except (UnicodeDecodeError, LookupError):
			continue
	if codec:
		try:
			return data.decode(codec, "replace")
		except LookupError:
			pass
	return data.decode("cp1252", "replace")


def _clean(value) -> str:
	"""A JSON-safe str: surrogate-escaped 8-bit bytes become text (UTF-8, else cp1252)."""
	if value is None:
		return ""
	if isinstance(value, bytes):
		return _decode_bytes(value)
	if not isinstance(value, str):
		try:
			value = str(value)
		except Exception:
			return ""
	if not _SURROGATES.search(value):
		return value
	try:
		raw = value.encode("utf-8", "surrogateescape")
	except UnicodeEncodeError:
		return _SURROGATES.sub("\ufffd", value)
	return _decode_bytes(raw)


def _header_text(value) -> str:
	"""Unfold and RFC 2047-decode a raw header value; never raises."""
	try:
		if isinstance(value, email.header.Header):
			value = str(value)
		s = _clean(value)
		s = re.sub(r"\r?\n(?=[ \t])", "", s).replace("\r", "").replace("\n", " ").strip()
		if "=?" not in s:
			return s
		try:
			out = []
			for chunk, charset in email.header.decode_header(s):
				if isinstance(chunk, bytes):
					out.append(
						_decode_bytes(chunk, charset) if charset else chunk.decode("raw-unicode-escape")
					)
				else:
					out.append(chunk)
			return _clean("".join(out))
		except Exception:
			return s
	except Exception:
		return ""


def _gmail_escape(text: str) -> str:
	return (
		text.replace("&", "&amp;")
		.replace("<", "&lt;")
		.replace(">", "&gt;")
		.replace('"', "&quot;")
		.replace("'", "&#39;")
	)


def _html_to_text(markup: str) -> str:
	s = re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", markup)
	s = re.sub(r"(?s)<!--.*?-->", " ", s)
	s = re.sub(r"(?s)<[^>]*>", " ", s)
	return html.unescape(s)


_MSGID_RE = re.compile(r"<([^<>\s]+)>")


def _msg_ids(value: str) -> list[str]:
	ids = [x.strip() for x in _MSGID_RE.findall(value or "")]
	if not ids:
		ids = [tok.strip("<>,;") for tok in (value or "").split() if "@" in tok]
	return [i for i in ids if i]


def _parse_date_ms(value: str) -> int | None:
	if not value:
		return None
	try:
		dt = email.utils.parsedate_to_datetime(value)
	except Exception:
		return None
	if dt is None:
		return None
	try:
		if dt.tzinfo is None:
			dt = dt.replace(tzinfo=timezone.utc)
		ms = int(dt.timestamp() * 1000)
	except (OverflowError, ValueError, OSError):
		return None
	return ms if ms > 0 else None


def _email_addr(value: str) -> str:
	try:
		return (email.utils.parseaddr(value or "")[1] or "").strip().lower()
	except Exception:
		return ""


class ApiError(Exception):
	"""An error answered in Google's JSON error format."""

	def __init__(
		self, code: int, message: str, reason: str | None = None, domain: str | None = None, headers=()
	):
		super().__init__(message)
		self.code = code
		self.message = message
		self.reason = reason
		self.domain = domain
		self.headers = list(headers)


def google_error_body(code: int, message: str, reason: str | None = None, domain: str | None = None) -> dict:
	"""``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}``."""
	reason = reason or {
		400: "badRequest",
		401: "authError",
		403: "forbidden",
		404: "notFound",
		409: "duplicate",
		429: "rateLimitExceeded",
	}.get(code, "backendError" if code >= 500 else "badRequest")
	domain = domain or ("usageLimits" if reason in _USAGE_LIMIT_REASONS else "global")
	return {
		"error": {
			"code": code,
			"message": message,
			"errors": [{"message": message, "domain": domain, "reason": reason}],
			"status": _STATUS_NAMES.get(code, "UNKNOWN"),
		}
	}


def _json_resp(status: int, obj, headers=()) -> tuple:
	body = (
		b""
		if obj is None
		else json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
	)
	hdrs = [("Content-Type", _JSON_CT)] + list(headers)
	return status, hdrs, body


def _error_resp(exc: ApiError) -> tuple:
	return _json_resp(exc.code, google_error_body(exc.code, exc.message, exc.reason, exc.domain), exc.headers)


def _oauth_error(status: int, error: str, description: str, headers=()) -> tuple:
	return _json_resp(status, {"error": error, "error_description": description}, headers)


def _html_resp(status: int, title: str, text: str) -> tuple:
	page = (
		f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
		f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
	).encode()
	return status, [("Content-Type", "text/html; charset=utf-8")], page


# --------------------------------------------------------------------------------------------------
# MIME parsing
# --------------------------------------------------------------------------------------------------
class ParsedMail:
	"""What the server needs from one RFC 822 message; built once at insertion, never raises."""

	__slots__ = (
		"attachments",
		"date_ms",
		"defective",
		"filenames",
		"from_addr",
		"headers",
		"message_id",
		"parents",
		"payload",
		"snippet",
		"subject",
	)

	def header(self, name: str) -> str:
		name = name.lower()
		for h in self.headers:
			if h["name"].lower() == name:
				return h["value"]
		return ""

	def header_all(self, name: str) -> list[str]:
		name = name.lower()
		return [h["value"] for h in self.headers if h["name"].lower() == name]


def _flatten(msg) -> bytes:
	try:
		fp = io.BytesIO()
		BytesGenerator(fp, mangle_from_=False, maxheaderlen=0).flatten(msg, unixfrom=False)
		return fp.getvalue()
	except Exception:
		try:
			return msg.as_string().encode("utf-8", "surrogateescape")
		except Exception:
			return b""


def _part_headers(part) -> list[dict]:
	out = []
	try:
		items = list(part.raw_items())
	except Exception:
		items = []
	for name, value in items:
		out.append({"name": _clean(name).strip(), "value": _header_text(value)})
	return out


def _raw_headers_fallback(raw: bytes) -> list[dict]:
	text = raw.decode("utf-8", "surrogateescape")
	head = re.split(r"\r?\n\r?\n", text, maxsplit=1)[0]
	out = []
	for line in re.split(r"\r?\n(?![ \t])", head):
		if ":" in line:
			name, _, value = line.partition(":")
			if name and not re.search(r"\s", name):
				out.append({"name": _clean(name), "value": _header_text(value)})
	return out


def _content_type(part) -> str:
	try:
		ctype = part.get_content_type()
		return _clean(ctype).lower() or "text/plain"
	except Exception:
		return "text/plain"


def _charset(part):
	try:
		cs = part.get_content_charset()
		return _clean(cs) if cs else None
	except Exception:
		return None


def _filename(part) -> str:
	try:
		name = part.get_filename()
	except Exception:
		name = None
	if not name:
		return ""
	return _header_text(name)


def _leaf_bytes(part, payload) -> bytes:
	if isinstance(payload, list):  # message/rfc822 and friends: the embedded message(s)
		return b"".join(_flatten(p) for p in payload if isinstance(p, _EmailMessage))
	try:
		data = part.get_payload(decode=True)
	except Exception:
		data = None
	if isinstance(data, bytes):
		return data
	if isinstance(payload, str):
		return payload.encode("utf-8", "surrogateescape")
	if isinstance(payload, bytes):
		return payload
	return b""


def _attachment_id(raw_digest: bytes, part_id: str) -> str:
	"""Long opaque ids shaped like Gmail's (``ANGjdJ...``); stable for the same bytes and part."""
	a = hashlib.sha512(raw_digest + b"\0" + part_id.encode()).digest()
	b = hashlib.sha512(a + raw_digest).digest()
	return "ANGjdJ" + base64.urlsafe_b64encode(a + b).decode().rstrip("=")


def _build_part(part, part_id: str, pm: ParsedMail, raw_digest: bytes, depth: int) -> dict:
	node = {
		"partId": part_id,
		"mimeType": _content_type(part),
		"filename": _filename(part),
		"headers": _part_headers(part),
	}
	try:
		payload = part.get_payload()
	except Exception:
		payload = None
	if isinstance(payload, list) and not node["mimeType"].startswith("message/") and depth < 40:
		children = [p for p in payload if isinstance(p, _EmailMessage)]
		node["parts"] = [
			_build_part(sub, f"{part_id}.{i}" if part_id else str(i), pm, raw_digest, depth + 1)
			for i, sub in enumerate(children)
		]
		return node
	data = _leaf_bytes(part, payload)
	node["_data"] = data
	node["_charset"] = _charset(part)
	if node["filename"]:
		aid = _attachment_id(raw_digest, part_id)
		node["_attachment_id"] = aid
		pm.attachments[aid] = data
		pm.filenames.append(node["filename"])
	return node


def _find_text(node: dict, mime: str):
	if "parts" in node:
		for child in node["parts"]:
			found = _find_text(child, mime)
			if found is not None:
				return found
		return None
	if node.get("mimeType") == mime and not node.get("filename") and "_data" in node:
		return node
	return None


def _make_snippet(payload: dict) -> str:
	try:
		node = _find_text(payload, "text/plain")
		is_html = False
		if node is None:
			node = _find_text(payload, "text/html")
			is_html = node is not None
		if node is None:
			return ""
		text = _decode_bytes(node["_data"][:20000], node.get("_charset"))
		if is_html:
			text = _html_to_text(text)
		text = re.sub(r"\s+", " ", text).strip()
		if len(text) > 200:
			text = text[:200].rstrip()
		return _gmail_escape(text)
	except Exception:
		return ""


def parse_mail(raw: bytes) -> ParsedMail:
	"""Parse raw RFC 822 bytes defensively; a message that cannot be split into parts is served whole."""
	pm = ParsedMail()
	pm.attachments = {}
	pm.filenames = []
	pm.defective = False
	digest = hashlib.sha256(raw).digest()
	try:
		msg = BytesParser(policy=email.policy.compat32).parsebytes(raw)
	except Exception:
		msg = None
	payload = None
	if msg is not None:
		try:
			payload = _build_part(msg, "", pm, digest, 0)
			pm.defective = bool(getattr(msg, "defects", None))
		except Exception:
			payload = None
			pm.attachments, pm.filenames = {}, []
	if payload is None:
		pm.defective = True
		headers = _part_headers(msg) if msg is not None else []
		if not headers:
			headers = _raw_headers_fallback(raw)
		payload = {
			"partId": "",
			"mimeType": "text/plain",
			"filename": "",
			"headers": headers,
			"_data": raw,
			"_charset": None,
		}
	pm.payload = payload
	pm.headers = payload.get("headers", [])
	mid = _msg_ids(pm.header("message-id"))
	pm.message_id = mid[0] if mid else None
	parents = []
	for value in pm.header_all("in-reply-to") + pm.header_all("references"):
		parents.extend(_msg_ids(value))
	pm.parents = list(dict.fromkeys(p for p in parents if p != pm.message_id))
	pm.from_addr = _email_addr(pm.header("from"))
	pm.date_ms = _parse_date_ms(pm.header("date"))
	pm.subject = pm.header("subject")
	pm.snippet = _make_snippet(payload)
	return pm


# --------------------------------------------------------------------------------------------------
# mailbox model
# --------------------------------------------------------------------------------------------------
class Message:
	"""One stored message. ``raw`` is exactly the bytes inserted; ``label_ids`` keeps Gmail's order."""

	__slots__ = (
		"history_id",
		"id",
		"internal_date",
		"label_ids",
		"mailbox",
		"parsed",
		"raw",
		"seq",
		"source",
	)

	def __init__(self, mailbox, mid, seq, raw, parsed, label_ids, internal_date, source=None):
		self.mailbox = mailbox
		self.id = mid
		self.seq = seq
		self.raw = raw
		self.parsed = parsed
		self.label_ids = list(label_ids)
		self.internal_date = int(internal_date)
		self.history_id = 0
		self.source = source

	@property
	def thread_id(self) -> str:
		return self.mailbox.thread_of(self.id)

	def ref(self, labels: bool = False) -> dict:
		d = {"id": self.id, "threadId": self.thread_id}
		if labels:
			d["labelIds"] = list(self.label_ids)
		return d

	def __repr__(self):
		return f"<Message {self.id} thread={self.thread_id} labels={self.label_ids}>"


class Mailbox:
	"""One Gmail account: messages, labels, history and the thread union-find."""

	def __init__(self, address: str):
		self.email = address
		self.messages: dict[str, Message] = {}
		self.seq = 0
		self.ids_ever: set[str] = set()
		self.history_id = FIRST_HISTORY_ID
		self.history: list[dict] = []
		self.history_floor = 0  # startHistoryId below this -> 404
		# users.watch state: {"topicName", "labelIds", "labelFilterBehavior", "expiration" (epoch ms)}
		self.watch: dict | None = None
		self.sent_from: set[str] = {address.lower()}
		self.labels: dict[str, dict] = {}
		self.next_label = 1
		for lid in SYSTEM_LABELS:
			hidden = lid.startswith("CATEGORY_") or lid in ("UNREAD", "STARRED", "IMPORTANT")
			self.labels[lid] = {
				"id": lid,
				"name": lid,
				"type": "system",
				"messageListVisibility": "hide",
				"labelListVisibility": "labelHide" if hidden else "labelShow",
			}
		self._uf_parent: dict[str, str] = {}
		self._uf_best: dict[str, tuple] = {}

	# -- threads (union-find over Message-ID / In-Reply-To / References) --
	def _find(self, node: str) -> str:
		parent = self._uf_parent
		if node not in parent:
			parent[node] = node
			return node
		root = node
		while parent[root] != root:
			root = parent[root]
		while parent[node] != root:
			parent[node], node = root, parent[node]
		return root

	def _union(self, a: str, b: str) -> None:
		ra, rb = self._find(a), self._find(b)
		if ra == rb:
			return
		best = [x for x in (self._uf_best.get(ra), self._uf_best.get(rb)) if x is not None]
		self._uf_parent[rb] = ra
		self._uf_best.pop(rb, None)
		if best:
			self._uf_best[ra] = min(best)

	def _thread_add(self, m: Message, join_thread: str | None = None) -> None:
		node = "g:" + m.id
		self._uf_parent[node] = node
		self._uf_best[node] = (m.internal_date, m.seq, m.id)
		if m.parsed.message_id:
			self._union(node, "m:" + m.parsed.message_id)
		for ref in m.parsed.parents:
			self._union(node, "m:" + ref)
		if join_thread and ("g:" + join_thread) in self._uf_parent:
			self._union(node, "g:" + join_thread)

	def thread_of(self, mid: str) -> str:
		best = self._uf_best.get(self._find("g:" + mid))
		return best[2] if best else mid

	def thread_messages(self, thread_id: str) -> list[Message]:
		msgs = [m for m in self.messages.values() if m.thread_id == thread_id]
		msgs.sort(key=lambda m: (m.internal_date, m.seq))
		return msgs

	def label_by_name(self, name: str):
		low = name.lower()
		for lab in self.labels.values():
			if lab["id"].lower() == low or lab["name"].lower() == low:
				return lab
		alt = low.replace("-", " ")
		for lab in self.labels.values():
			n = lab["name"].lower()
			if n.replace("-", " ").replace("/", " ") == alt.replace("/", " "):
				return lab
		return None


# --------------------------------------------------------------------------------------------------
# search query (q=)
# --------------------------------------------------------------------------------------------------
_CATEGORIES = {
	"primary": "CATEGORY_PERSONAL",
	"personal": "CATEGORY_PERSONAL",
	"social": "CATEGORY_SOCIAL",
	"promotions": "CATEGORY_PROMOTIONS",
	"updates": "CATEGORY_UPDATES",
	"forums": "CATEGORY_FORUMS",
}
_IN_LABELS = {
	"inbox": "INBOX",
	"sent": "SENT",
	"trash": "TRASH",
	"spam": "SPAM",
	"starred": "STARRED",
	"important": "IMPORTANT",
	"drafts": "DRAFT",
	"draft": "DRAFT",
	"unread": "UNREAD",
}


def _q_date_ms(value: str) -> int | None:
	v = value.strip()
	if re.fullmatch(r"\d{9,}", v):
		return int(v) * 1000
	m = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", v)
	if not m:
		m2 = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", v)
		if not m2:
			return None
		month, day, year = (int(x) for x in m2.groups())
	else:
		year, month, day = (int(x) for x in m.groups())
	try:
		return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp() * 1000)
	except (ValueError, OverflowError):
		return None


def _size_bytes(value: str) -> int | None:
	m = re.fullmatch(r"(\d+)([kKmM]?)", value.strip())
	if not m:
		return None
	n = int(m.group(1))
	return n * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def _has_label(lid: str):
	return lambda msg: lid in msg.label_ids


def _date_at_least(ms: int):
	return lambda msg: msg.internal_date >= ms


def _date_before(ms: int):
	return lambda msg: msg.internal_date < ms


def _header_contains(names: list[str], needle: str):
	return lambda msg: any(needle in v.lower() for n in names for v in msg.parsed.header_all(n))


def _never(msg) -> bool:
	return False


def _always(msg) -> bool:
	return True


def build_query(q: str | None, mb: Mailbox, now_ms: int | None = None):
	"""Compile a Gmail search string into ``(predicate(Message) -> bool, includes_spam_trash)``.

	Supported: after:/before:/older:/newer: (epoch seconds or YYYY/MM/DD, UTC), newer_than:/older_than:
	(Nd, Nm, Ny, Nh), in:, is:, label:, category:, from:/to:/cc:/bcc:/subject:/deliveredto:/list:
	(substring), has:attachment, rfc822msgid:, filename:, larger:/smaller:, each negatable with ``-``.
	Anything else (free text, OR, braces, unknown operators) is ignored.
	"""
	now_ms = _now_ms() if now_ms is None else now_ms
	preds = []
	include_spam_trash = False
	for token in re.findall(r'-?[A-Za-z_]+:"[^"]*"|-?[A-Za-z_]+:\([^)]*\)|-?"[^"]*"|\S+', q or ""):
		neg = token.startswith("-") and len(token) > 1
		tok = token[1:] if neg else token
		m = re.fullmatch(r"([A-Za-z_]+):(.*)", tok, re.DOTALL)
		if not m:
			continue  # free text: ignored
		op, val = m.group(1).lower(), m.group(2).strip().strip('"').strip("()")
		low = val.lower()
		pred = None
		if op in ("after", "newer", "before", "older"):
			ts = _q_date_ms(val)
			if ts is not None:
				pred = _date_at_least(ts) if op in ("after", "newer") else _date_before(ts)
		elif op in ("newer_than", "older_than"):
			mm = re.fullmatch(r"(\d+)([hdmy])", low)
			if mm:
				unit = {"h": 3600, "d": 86400, "m": 30 * 86400, "y": 365 * 86400}[mm.group(2)]
				cut = now_ms - int(mm.group(1)) * unit * 1000
				pred = _date_at_least(cut) if op == "newer_than" else _date_before(cut)
		elif op == "in":
			if low in ("chats", "chat"):
				pred = _never  # no chats are stored here
			elif low in ("anywhere", "all"):
				pred = _always
				include_spam_trash = include_spam_trash or not neg
			elif low in _IN_LABELS:
				pred = _has_label(_IN_LABELS[low])
				if _IN_LABELS[low] in ("TRASH", "SPAM") and not neg:
					include_spam_trash = True
			else:
				lab = mb.label_by_name(val)
				pred = _has_label(lab["id"]) if lab else _never
		elif op == "is":
			if low == "read":
				pred = lambda msg: "UNREAD" not in msg.label_ids
			elif low in _IN_LABELS:
				pred = _has_label(_IN_LABELS[low])
		elif op == "label":
			lab = mb.label_by_name(val)
			if lab is None:
				pred = _never  # Gmail answers no results for an unknown label
			else:
				pred = _has_label(lab["id"])
				if lab["id"] in ("TRASH", "SPAM") and not neg:
					include_spam_trash = True
		elif op == "category":
			if low in _CATEGORIES:
				pred = _has_label(_CATEGORIES[low])
		elif op in ("from", "to", "cc", "bcc", "subject", "deliveredto", "list"):
			names = {"deliveredto": ["delivered-to"], "list": ["list-id", "list-post"]}.get(op, [op])
			pred = _header_contains(names, low)
		elif op == "has":
			if low == "attachment":
				pred = lambda msg: bool(msg.parsed.attachments)
			elif low == "userlabels":
				pred = lambda msg: any(lid.startswith("Label_") for lid in msg.label_ids)
			elif low == "nouserlabels":
				pred = lambda msg: not any(lid.startswith("Label_") for lid in msg.label_ids)
		elif op == "rfc822msgid":
			want = val.strip("<>")
			pred = lambda msg, want=want: msg.parsed.message_id == want
		elif op == "filename":
			pred = lambda msg, needle=low: any(needle in f.lower() for f in msg.parsed.filenames)
		elif op in ("larger", "smaller", "size"):
			n = _size_bytes(val)
			if n is not None:
				if op == "smaller":
					pred = lambda msg, n=n: len(msg.raw) < n
				else:
					pred = lambda msg, n=n: len(msg.raw) > n
		if pred is None:
			continue  # unknown operator or value: ignored
		preds.append((pred, neg))

	def predicate(msg) -> bool:
		return all(bool(p(msg)) != negated for p, negated in preds)

	return predicate, include_spam_trash


# --------------------------------------------------------------------------------------------------
# stats and faults
# --------------------------------------------------------------------------------------------------
class _Stats:
	__slots__ = (
		"api_calls",
		"batch_requests",
		"by_method",
		"faults_served",
		"http_requests",
		"quota_units",
		"token_requests",
	)

	def __init__(self):
		self.http_requests = self.api_calls = self.batch_requests = self.quota_units = 0
		self.token_requests = self.faults_served = 0
		self.by_method: dict[str, int] = {}

	def as_dict(self) -> dict:
		return {
			"http_requests": self.http_requests,
			"api_calls": self.api_calls,
			"batch_requests": self.batch_requests,
			"quota_units": self.quota_units,
			"by_method": dict(self.by_method),
			"token_requests": self.token_requests,
			"faults_served": self.faults_served,
		}


class _Fault:
	__slots__ = ("email", "id", "method", "pattern", "reason", "regex", "remaining", "retry_after", "status")


class _Ctx:
	"""Per-request attribution (which mailbox a request belongs to)."""

	__slots__ = ("email",)

	def __init__(self):
		self.email = None


class _CaseDict(dict):
	"""Header mapping with case-insensitive get."""

	def __init__(self, items=()):
		super().__init__()
		for k, v in items:
			self[k.lower()] = v

	def get(self, key, default=None):
		return super().get(key.lower(), default)


# --------------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
	protocol_version = "HTTP/1.1"
	server_version = "GmailTestServer/1.0"
	sys_version = ""
	timeout = 60  # idle keep-alive connections are dropped after this many seconds

	def log_message(self, format, *args):
		pass

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
				if total > MAX_BODY:
					return None
				chunks.append(self.rfile.read(size))
				self.rfile.readline(1024)
			return b"".join(chunks)
		try:
			length = int(self.headers.get("Content-Length") or 0)
		except ValueError:
			return None
		if length < 0 or length > MAX_BODY:
			return None
		return self.rfile.read(length) if length else b""

	def _handle(self):
		app = self.server.app
		try:
			body = self._read_body()
			if body is None:
				status, headers, payload = _json_resp(400, google_error_body(400, "Bad request body."))
				self.close_connection = True
			else:
				status, headers, payload = app.handle_http(
					self.command, self.path, _CaseDict(self.headers.items()), body
				)
		except Exception as exc:  # never die on a bad request
			app._record_error(exc)
			status, headers, payload = _json_resp(
				500, google_error_body(500, "Internal error in test server.")
			)
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


class _HTTPServer(ThreadingHTTPServer):
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
		import socket

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


# --------------------------------------------------------------------------------------------------
# Pub/Sub push: OIDC token signing
# --------------------------------------------------------------------------------------------------
def _b64url_nopad(data: bytes) -> str:
	return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _PushSigner:
	"""An RSA-2048 key with a self-signed X.509 certificate, as Google publishes its ID-token keys.

	``kid`` is the SHA-1 of the public key (40 hex digits, the shape of Google's key ids); ``cert_pem``
	is what ``/oauth2/v1/certs`` serves under ``kid``. Needs ``cryptography`` (imported here only).
	"""

	def __init__(self, common_name: str = "gmail-test-server.invalid"):
		from datetime import timedelta

		from cryptography import x509
		from cryptography.hazmat.primitives import hashes, serialization
		from cryptography.hazmat.primitives.asymmetric import rsa
		from cryptography.x509.oid import NameOID

		self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
		public_der = self._key.public_key().public_bytes(
			serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
		)
		self.kid = hashlib.sha1(public_der).hexdigest()
		name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
		now = datetime.now(timezone.utc)
		cert = (
			x509.CertificateBuilder()
			.subject_name(name)
			.issuer_name(name)
			.public_key(self._key.public_key())
			.serial_number(x509.random_serial_number())
			.not_valid_before(now - timedelta(days=1))
			.not_valid_after(now + timedelta(days=30))
			.sign(self._key, hashes.SHA256())
		)
		self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

	def sign(self, data: bytes) -> bytes:
		"""RSASSA-PKCS1-v1_5 with SHA-256 (JWS ``RS256``)."""
		from cryptography.hazmat.primitives import hashes
		from cryptography.hazmat.primitives.asymmetric import padding

		return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _http_post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, str]:
	"""POST without proxies; ``(status, body text)``, status 0 when no HTTP answer came."""
	opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
	req = urllib.request.Request(url, data=body, headers=headers, method="POST")
	try:
		with opener.open(req, timeout=timeout) as resp:
			return resp.status, resp.read().decode("utf-8", "replace")
	except urllib.error.HTTPError as exc:
		try:
			text = exc.read().decode("utf-8", "replace")
		except Exception:
			text = ""
		return exc.code, text
	except (urllib.error.URLError, OSError, ValueError) as exc:
		return 0, f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------------
# the server
# --------------------------------------------------------------------------------------------------
class GmailTestServer:
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
		self._fault_seq = 0
		self._stats: dict[str, _Stats] = {}
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

	# -- setup ----------------------------------------------------------------------------------------
	def register_client(self, client_id: str, client_secret: str) -> None:
		"""Register an OAuth client (any redirect_uri is accepted)."""
		with self._lock:
			self._clients[client_id] = client_secret

	def add_mailbox(self, address: str, sent_from=None) -> Mailbox:
		"""Create (or return) the mailbox for ``address``. ``sent_from``: extra From addresses that mean SENT."""
		key = address.strip().lower()
		with self._lock:
			mb = self._mailboxes.get(key)
			if mb is None:
				mb = self._mailboxes[key] = Mailbox(address.strip())
			if sent_from:
				mb.sent_from.update(
					a.strip().lower() for a in ([sent_from] if isinstance(sent_from, str) else sent_from)
				)
			return mb

	def mailbox(self, address: str) -> Mailbox:
		"""The mailbox for ``address`` (KeyError if unknown)."""
		return self._mailboxes[address.strip().lower()]

	@property
	def mailboxes(self) -> list[Mailbox]:
		return list(self._mailboxes.values())

	def _default_labels(self, mb: Mailbox, pm: ParsedMail) -> list[str]:
		if pm.from_addr and pm.from_addr in mb.sent_from:
			return ["SENT"]
		return ["UNREAD", "INBOX"]

	def load_eml_dir(self, address: str, path, spread_days: float | None = None, sent_from=None) -> list[str]:
		"""Load every ``*.eml`` under ``path`` (recursively, sorted by path) into the mailbox.

		Args:
			spread_days: re-time the loaded messages evenly across the last N days ending now, keeping
				their chronological order by Date header (undated ones last).
			sent_from: From addresses whose messages get SENT instead of INBOX+UNREAD.

		Returns:
			Message ids in path order.
		"""
		root = Path(path)
		files = sorted(
			(p for p in root.rglob("*.eml") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
		)
		mb = self.add_mailbox(address, sent_from=sent_from)
		loaded = []
		for p in files:
			raw = p.read_bytes()
			loaded.append((p.relative_to(root).as_posix(), raw, parse_mail(raw)))
		now = _now_ms()
		dates = [pm.date_ms for _, _, pm in loaded]
		if spread_days is not None and loaded:
			window = int(float(spread_days) * 86400 * 1000)
			order = sorted(range(len(loaded)), key=lambda i: (dates[i] is None, dates[i] or 0, i))
			step = window / len(loaded)
			start = now - window
			for rank, i in enumerate(order):
				dates[i] = int(start + step * (rank + 0.5))
		else:
			dates = [d if d is not None else now for d in dates]
		ids = []
		with self._lock:
			for (rel, raw, pm), when in zip(loaded, dates):
				m = self._insert(mb, raw, pm, self._default_labels(mb, pm), when, source=rel)
				ids.append(m.id)
		return ids

	def insert_message(self, address: str, raw, label_ids=None, internal_date_ms: int | None = None) -> str:
		"""Store one RFC 822 message (bytes kept as-is) and return its id. Threads like Gmail.

		``label_ids`` None -> INBOX+UNREAD, or SENT when From is the mailbox (or a sent_from address).
		``internal_date_ms`` None -> now.
		"""
		if isinstance(raw, str):
			raw = raw.encode("utf-8")
		pm = parse_mail(raw)
		mb = self.add_mailbox(address)
		with self._lock:
			labels = self._default_labels(mb, pm) if label_ids is None else self._check_labels(mb, label_ids)
			when = _now_ms() if internal_date_ms is None else int(internal_date_ms)
			return self._insert(mb, raw, pm, labels, when).id

	def modify_message(self, address: str, msg_id: str, add_label_ids=(), remove_label_ids=()) -> list[str]:
		"""Change labels as if the user did it in Gmail (records history). Returns the new labelIds."""
		with self._lock:
			mb = self.mailbox(address)
			m = mb.messages[msg_id]
			self._modify(
				mb,
				[m],
				self._check_labels(mb, add_label_ids or []),
				self._check_labels(mb, remove_label_ids or []),
			)
			return list(m.label_ids)

	def delete_message(self, address: str, msg_id: str) -> None:
		"""Permanently delete a message as if the user did it (records messagesDeleted)."""
		with self._lock:
			mb = self.mailbox(address)
			self._delete(mb, [mb.messages[msg_id]])

	def expire_history(self, address: str) -> None:
		"""Drop every history record: any startHistoryId below the current historyId now answers 404."""
		with self._lock:
			mb = self.mailbox(address)
			mb.history.clear()
			mb.history_floor = mb.history_id

	# -- OAuth controls -------------------------------------------------------------------------------
	def set_consent(self, email: str | None = None, action: str = "allow") -> None:
		"""How the next consents answer: ``allow`` | ``deny`` | ``no_refresh`` (no refresh_token), and as whom."""
		if action not in ("allow", "deny", "no_refresh"):
			raise ValueError(f"unknown consent action {action!r}")
		if email:
			self.add_mailbox(email)
		with self._lock:
			self._consent = {"email": email.strip().lower() if email else None, "action": action}

	def revoke_tokens(self, address: str) -> int:
		"""Invalidate every grant of the mailbox (refresh -> 400 invalid_grant, API -> 401). Returns count."""
		key = address.strip().lower()
		n = 0
		with self._lock:
			for grant in self._grants.values():
				if grant["email"] == key and not grant["revoked"]:
					grant["revoked"] = True
					n += 1
		return n

	def expire_access_tokens(self, address: str | None = None) -> None:
		"""Make current access tokens expired (the next API call gets 401 and the client refreshes)."""
		key = address.strip().lower() if address else None
		with self._lock:
			for tok in self._access.values():
				if key is None or self._grants[tok["grant"]]["email"] == key:
					tok["expires"] = 0

	def issue_tokens(
		self, address: str, client_id: str | None = None, scopes=None, offline: bool = True
	) -> dict:
		"""Mint tokens without the consent dance (a shortcut for tests).

		Returns ``{"access_token", "refresh_token" (when offline), "scope", "expires_in", "token_type"}``.
		"""
		self.add_mailbox(address)
		with self._lock:
			if client_id is None:
				if not self._clients:
					raise ValueError("register_client() first")
				client_id = next(iter(self._clients))
			scope = " ".join(scopes) if isinstance(scopes, (list, tuple)) else (scopes or SCOPE_FULL)
			return self._new_grant(address.strip().lower(), client_id, scope, offline)

	def issued_refresh_tokens(self, address: str) -> list[str]:
		"""Every refresh token ever issued for the mailbox (revoked ones included), oldest first."""
		key = address.strip().lower()
		with self._lock:
			return [g["refresh"] for g in self._grants.values() if g["email"] == key and g["refresh"]]

	def issued_access_tokens(self, address: str) -> list[str]:
		"""Every access token ever issued for the mailbox (expired and revoked ones included)."""
		key = address.strip().lower()
		with self._lock:
			return [t for t, rec in self._access.items() if self._grants[rec["grant"]]["email"] == key]

	def token_is_revoked(self, token: str) -> bool:
		"""True when ``token`` (refresh or access) belongs to a revoked grant; False for live or unknown tokens."""
		with self._lock:
			gid = self._refresh.get(token) or (self._access.get(token) or {}).get("grant")
			return bool(gid and self._grants[gid]["revoked"])

	def dump_messages(self, address: str) -> list[dict]:
		"""Every stored message in insertion order: ``{"id", "threadId", "labelIds", "internalDate",
		"historyId", "raw" (base64url), "source" (path relative to the loaded dir, or None)}``."""
		with self._lock:
			mb = self.mailbox(address)
			return [
				{
					"id": m.id,
					"threadId": m.thread_id,
					"labelIds": list(m.label_ids),
					"internalDate": str(m.internal_date),
					"historyId": str(m.history_id),
					"raw": b64url(m.raw),
					"source": m.source,
				}
				for m in mb.messages.values()
			]

	# -- Pub/Sub push ---------------------------------------------------------------------------------
	def configure_push(
		self,
		endpoint_url: str | None,
		mode: str = "oidc",
		audience: str | None = None,
		service_account: str | None = None,
		token: str | None = None,
		subscription: str = "projects/p/subscriptions/s",
		sign_with_wrong_key: bool = False,
		issuer: str = GOOGLE_ISSUER,
		max_attempts: int = 3,
		retry_delay: float = 0.2,
		timeout: float = 10.0,
	) -> None:
		"""Deliver a Pub/Sub push request to ``endpoint_url`` after each change of a watched mailbox.

		Args:
			endpoint_url: the push endpoint; None stops deliveries.
			mode: ``oidc`` (``Authorization: Bearer <RS256 JWT>``) or ``token`` (``?token=`` appended to
				the URL; Pub/Sub itself sets no custom header).
			audience: JWT ``aud``; None -> the endpoint URL (Pub/Sub's default).
			service_account: JWT ``email`` claim (the push subscription's service account).
			token: the shared token of ``token`` mode.
			subscription: the envelope's ``subscription``.
			sign_with_wrong_key: sign the JWT with a key the certs endpoint does not publish (under the
				published ``kid``), so verification must fail.
			issuer: JWT ``iss``.
			max_attempts: tries per delivery (bounded; Pub/Sub retries for days).
			retry_delay: seconds before the first retry, doubled after each.
			timeout: seconds per HTTP request.

		Raises:
			ValueError: unknown mode, or token mode without a token.
		"""
		if endpoint_url is None:
			with self._lock:
				self._push = None
			return
		if mode not in ("oidc", "token"):
			raise ValueError(f"unknown push mode {mode!r} (oidc | token)")
		if mode == "token" and not token:
			raise ValueError("token mode needs a token")
		if mode == "oidc":
			self._signing_key(wrong=sign_with_wrong_key)  # create the key now, not in the delivery thread
		with self._lock:
			self._push = {
				"endpoint": endpoint_url,
				"mode": mode,
				"audience": audience or endpoint_url,
				"service_account": service_account or "pubsub-push@test-project.iam.gserviceaccount.com",
				"token": token,
				"subscription": subscription,
				"wrong_key": bool(sign_with_wrong_key),
				"issuer": issuer,
				"max_attempts": max(1, int(max_attempts)),
				"retry_delay": max(0.0, float(retry_delay)),
				"timeout": float(timeout),
			}

	def watch_of(self, address: str) -> dict | None:
		"""The mailbox's watch (``{"topicName", "labelIds", "labelFilterBehavior", "expiration"}``,
		expiration in epoch ms) or None (never watched, stopped)."""
		with self._lock:
			w = self.mailbox(address).watch
			return dict(w, labelIds=list(w["labelIds"])) if w else None

	def expire_watch(self, address: str) -> None:
		"""Make the mailbox's watch expired (no more pushes until users.watch is called again)."""
		with self._lock:
			w = self.mailbox(address).watch
			if w:
				w["expiration"] = 0

	def push_deliveries(self, email: str | None = None) -> list[dict]:
		"""Finished push deliveries, oldest first: ``{"email", "historyId" (int), "status" (HTTP status of
		the last attempt; 0 when the connection failed), "attempts", "statuses" (every attempt's),
		"messageId", "response" (last response body, at most 2,000 characters)}``."""
		key = email.strip().lower() if email else None
		with self._push_cond:
			return [dict(d) for d in self._deliveries if key is None or d["email"].lower() == key]

	def clear_push_deliveries(self) -> None:
		with self._push_cond:
			self._deliveries.clear()

	def wait_for_pushes(self, n: int, timeout: float = 10.0, email: str | None = None) -> list[dict]:
		"""Wait until at least ``n`` deliveries (of ``email``, or of any mailbox) have finished.

		Returns:
			:meth:`push_deliveries` at that moment (fewer than ``n`` when ``timeout`` seconds passed).
		"""
		key = email.strip().lower() if email else None
		deadline = time.monotonic() + timeout

		def done():
			return sum(1 for d in self._deliveries if key is None or d["email"].lower() == key) >= n

		with self._push_cond:
			while not done():
				left = deadline - time.monotonic()
				if left <= 0:
					break
				self._push_cond.wait(left)
		return self.push_deliveries(email)

	def notify(self, address: str) -> bool:
		"""Queue a push for the mailbox now, as after a change (needs a live watch and configure_push).

		Returns:
			True when a delivery was queued or one already queued will carry it.
		"""
		with self._lock:
			return self._schedule_push(self.mailbox(address))

	def certs(self) -> dict:
		"""Google's ``oauth2/v1/certs`` document: ``{kid: X.509 certificate PEM}`` of the signing key."""
		signer = self._signing_key()
		return {signer.kid: signer.cert_pem}

	def oidc_token(
		self,
		audience: str,
		email: str = "pubsub-push@test-project.iam.gserviceaccount.com",
		wrong_key: bool = False,
		issuer: str = GOOGLE_ISSUER,
		lifetime: int = 3600,
		**claims,
	) -> str:
		"""A Google-style OIDC ID token as Pub/Sub sends it (RS256, ``kid`` of the published key).

		Claims: ``aud``, ``azp`` and ``sub`` (a numeric id derived from ``email``), ``email``,
		``email_verified`` true, ``iat`` now, ``exp`` now + ``lifetime`` s, ``iss``; ``claims`` override
		or add any. ``wrong_key`` signs with an unpublished key (still under the published ``kid``).
		"""
		signer = self._signing_key()
		key = self._signing_key(wrong=True) if wrong_key else signer
		now = int(time.time())
		sub = str(int(hashlib.sha256(email.lower().encode()).hexdigest()[:15], 16))
		payload = {
			"aud": audience,
			"azp": sub,
			"email": email,
			"email_verified": True,
			"exp": now + int(lifetime),
			"iat": now,
			"iss": issuer,
			"sub": sub,
		}
		payload.update(claims)
		header = {"alg": "RS256", "kid": signer.kid, "typ": "JWT"}
		signing_input = (
			_b64url_nopad(json.dumps(header, separators=(",", ":")).encode())
			+ "."
			+ _b64url_nopad(json.dumps(payload, separators=(",", ":")).encode())
		)
		return signing_input + "." + _b64url_nopad(key.sign(signing_input.encode("ascii")))

	@staticmethod
	def pubsub_envelope(
		email: str,
		history_id: int,
		subscription: str = "projects/p/subscriptions/s",
		message_id: str | None = None,
	) -> dict:
		"""The JSON body of a Pub/Sub push of a Gmail notification.

		``{"message": {"attributes": {}, "data": base64(JSON {"emailAddress", "historyId" (number)}),
		"messageId", "message_id", "publishTime", "publish_time"}, "subscription"}`` (Pub/Sub sends both
		the camelCase and snake_case keys; ``data`` is standard base64).
		"""
		data = json.dumps({"emailAddress": email, "historyId": int(history_id)}).encode("utf-8")
		message_id = message_id or str(secrets.randbelow(10**16))
		published = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
		return {
			"message": {
				"attributes": {},
				"data": base64.b64encode(data).decode("ascii"),
				"messageId": message_id,
				"message_id": message_id,
				"publishTime": published,
				"publish_time": published,
			},
			"subscription": subscription,
		}

	def _signing_key(self, wrong: bool = False) -> _PushSigner:
		with self._signer_lock:
			if self._signer is None:
				self._signer = _PushSigner()
			if wrong and self._wrong_signer is None:
				self._wrong_signer = _PushSigner("not-google.invalid")
			return self._wrong_signer if wrong else self._signer

	def _push_changed(self, mb: Mailbox, msgs: list[Message], fields: dict) -> None:
		"""After a history record (lock held): queue a push when the watch's label filter lets it through."""
		w = mb.watch
		if w is None or self._push is None:
			return
		if w["labelIds"]:
			wanted = set(w["labelIds"])
			touched = set()
			for m in msgs:
				touched.update(m.label_ids)
			for items in fields.values():
				for item in items if isinstance(items, list) else []:
					touched.update(item.get("labelIds") or [])
					touched.update((item.get("message") or {}).get("labelIds") or [])
			hit = bool(touched & wanted)
			if (w["labelFilterBehavior"] == "include") != hit:
				return
		self._schedule_push(mb)

	def _schedule_push(self, mb: Mailbox) -> bool:
		"""Start a delivery thread for the mailbox unless one is queued already (lock held)."""
		w = mb.watch
		if self._push is None or w is None or w["expiration"] <= _now_ms() or self._push_stop.is_set():
			return False
		key = mb.email.lower()
		if key in self._push_pending:
			return True
		self._push_pending.add(key)
		thread = threading.Thread(target=self._deliver, args=(key,), name=f"gmail-push:{key}", daemon=True)
		self._push_threads.add(thread)
		thread.start()
		return True

	def _deliver(self, key: str) -> None:
		try:
			with self._lock:
				self._push_pending.discard(key)
				mb, cfg = self._mailboxes.get(key), self._push
				if mb is None or cfg is None:
					return
				email, history_id = mb.email, mb.history_id
			url = cfg["endpoint"]
			if cfg["mode"] == "token":
				url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(
					{"token": cfg["token"]}
				)
			envelope = self.pubsub_envelope(email, history_id, cfg["subscription"])
			body = json.dumps(envelope).encode("utf-8")
			record = {
				"email": email,
				"historyId": history_id,
				"status": None,
				"attempts": 0,
				"statuses": [],
				"messageId": envelope["message"]["messageId"],
				"response": "",
			}
			delay = cfg["retry_delay"]
			for attempt in range(cfg["max_attempts"]):
				if attempt and self._push_stop.wait(delay):
					break
				if attempt:
					delay *= 2
				headers = {"Content-Type": "application/json", "User-Agent": PUSH_USER_AGENT}
				if cfg["mode"] == "oidc":
					headers["Authorization"] = "Bearer " + self.oidc_token(
						cfg["audience"],
						cfg["service_account"],
						wrong_key=cfg["wrong_key"],
						issuer=cfg["issuer"],
					)
				status, text = _http_post(url, body, headers, cfg["timeout"])
				record["attempts"] += 1
				record["statuses"].append(status)
				record["status"] = status
				record["response"] = text[:2000]
				if status in PUSH_ACK_STATUSES:
					break
			with self._push_cond:
				self._deliveries.append(record)
				self._push_cond.notify_all()
		except Exception as exc:  # a delivery thread never dies loudly
			self._record_error(exc)
		finally:
			with self._lock:
				self._push_threads.discard(threading.current_thread())

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

	def clear_faults(self) -> None:
		with self._lock:
			self._faults.clear()

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

	# -- stats ----------------------------------------------------------------------------------------
	def _st(self, email: str | None) -> _Stats:
		key = email or ""
		st = self._stats.get(key)
		if st is None:
			st = self._stats[key] = _Stats()
		return st

	def stats(self, email: str | None = None) -> dict:
		"""Counters for one mailbox (or summed over everything when ``email`` is None).

		``{"http_requests", "api_calls", "batch_requests", "quota_units", "by_method", "token_requests",
		"faults_served"}``.
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

	# -- mailbox mutations (call with the lock held) ----------------------------------------------------
	def _check_labels(self, mb: Mailbox, label_ids) -> list[str]:
		if isinstance(label_ids, str):
			label_ids = [label_ids]
		out = []
		for lid in label_ids or []:
			if not isinstance(lid, str) or lid not in mb.labels:
				raise ApiError(400, f"Invalid label: {lid}", "invalidArgument")
			if lid not in out:
				out.append(lid)
		return out

	def _bump(self, mb: Mailbox, msgs: list[Message], **fields) -> int:
		mb.history_id += 1
		rec = {"id": mb.history_id, "messages": [m.ref() for m in msgs]}
		rec.update(fields)
		mb.history.append(rec)
		for m in msgs:
			m.history_id = mb.history_id
		self._push_changed(mb, msgs, fields)
		return mb.history_id

	def _insert(self, mb, raw, pm, labels, internal_date, source=None, join_thread=None) -> Message:
		mb.seq += 1
		salt = 0
		while True:
			mid = hashlib.sha1(f"{mb.email.lower()}\0{mb.seq}\0{salt}\0".encode() + raw).hexdigest()[:16]
			if mid not in mb.ids_ever:
				break
			salt += 1
		mb.ids_ever.add(mid)
		m = Message(mb, mid, mb.seq, raw, pm, labels, internal_date, source)
		mb.messages[mid] = m
		mb._thread_add(m, join_thread)
		self._bump(mb, [m], messagesAdded=[{"message": m.ref(labels=True)}])
		return m

	def _modify(self, mb, msgs, add, remove) -> None:
		for m in msgs:
			added = [lid for lid in add if lid not in m.label_ids and lid not in remove]
			removed = [lid for lid in remove if lid in m.label_ids]
			if not added and not removed:
				continue
			m.label_ids = [lid for lid in m.label_ids if lid not in removed] + added
			fields = {}
			if added:
				fields["labelsAdded"] = [{"message": m.ref(labels=True), "labelIds": added}]
			if removed:
				fields["labelsRemoved"] = [{"message": m.ref(labels=True), "labelIds": removed}]
			self._bump(mb, [m], **fields)

	def _delete(self, mb, msgs) -> None:
		for m in msgs:
			if mb.messages.pop(m.id, None) is None:
				continue
			self._bump(mb, [m], messagesDeleted=[{"message": m.ref(labels=True)}])

	# -- OAuth internals ------------------------------------------------------------------------------
	def _new_grant(self, email: str, client_id: str, scope: str, offline: bool) -> dict:
		gid = secrets.token_hex(8)
		refresh = ("1//0" + secrets.token_urlsafe(48)) if offline else None
		self._grants[gid] = {
			"email": email,
			"client_id": client_id,
			"scope": scope,
			"refresh": refresh,
			"revoked": False,
		}
		if refresh:
			self._refresh[refresh] = gid
		out = {"access_token": self._new_access(gid), "expires_in": ACCESS_TOKEN_TTL}
		if refresh:
			out["refresh_token"] = refresh
		out["scope"] = scope
		out["token_type"] = "Bearer"
		return out

	def _new_access(self, gid: str) -> str:
		token = "ya29.a0" + secrets.token_urlsafe(60)
		self._access[token] = {"grant": gid, "expires": time.time() + ACCESS_TOKEN_TTL}
		return token

	def _bearer(self, headers) -> tuple[dict | None, dict | None]:
		"""(grant, access token record) for an Authorization header; either may be None."""
		auth = headers.get("authorization") or ""
		m = re.match(r"(?i)\s*bearer\s+(\S+)", auth)
		if not m:
			return None, None
		tok = self._access.get(m.group(1))
		if tok is None:
			return None, None
		return self._grants.get(tok["grant"]), tok

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

	# -- Gmail dispatch (direct calls and batch parts) -------------------------------------------------
	def _dispatch_api(self, method, path, query, headers, body, ctx, in_batch=False) -> tuple:
		method = method.upper()
		m = re.match(r"^/(upload/|resumable/upload/)?gmail/v1/users/([^/]+)(?:/(.*))?$", path)
		if not m:
			return _json_resp(404, google_error_body(404, "Not Found"))
		upload = m.group(1)
		user = urllib.parse.unquote(m.group(2))
		rest = (m.group(3) or "").rstrip("/")
		segs = [urllib.parse.unquote(s) for s in rest.split("/")] if rest else []
		name, params = None, {}
		for r_method, pattern, r_name in _ROUTES:
			if r_method != method or len(pattern) != len(segs):
				continue
			captured = {}
			for pat, seg in zip(pattern, segs):
				if pat.startswith("{"):
					captured[pat[1:-1]] = seg
				elif pat != seg:
					break
			else:
				name, params = r_name, captured
				break
		if name is None or (upload and name not in _UPLOAD_METHODS):
			return _json_resp(
				404, google_error_body(404, f"The requested URL {path} was not found on this server.")
			)

		with self._lock:
			grant, tok = self._bearer(headers)
			email = grant["email"] if grant else (user.lower() if user.lower() in self._mailboxes else None)
			ctx.email = ctx.email or email
			st = self._st(email)
			st.api_calls += 1
			st.by_method[name] = st.by_method.get(name, 0) + 1
		fault = self._take_fault(method, path, query, email)
		if fault is not None:
			return self._fault_api_resp(fault)
		if grant is None or grant["revoked"] or tok is None or tok["expires"] < time.time():
			return _json_resp(
				401,
				google_error_body(
					401,
					"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
					"other valid authentication credential. See "
					"https://developers.google.com/identity/sign-in/web/devconsole-project.",
					"authError",
				),
				[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')],
			)
		if user.lower() not in ("me", grant["email"]):
			return _error_resp(ApiError(403, f"Delegation denied for {grant['email']}", "forbidden"))
		q = urllib.parse.parse_qs(query, keep_blank_values=True)
		scopes = set(grant["scope"].split())
		if self.enforce_scopes:
			allowed = _SCOPES_BY_METHOD.get(name, {SCOPE_FULL})
			if not (scopes & allowed):
				return _error_resp(
					ApiError(
						403, "Request had insufficient authentication scopes.", "insufficientPermissions"
					)
				)
			if scopes & allowed == {SCOPE_METADATA}:
				fmt = (q.get("format") or ["full"])[0].lower()
				if name in ("messages.get", "threads.get") and fmt in ("full", "raw"):
					return _error_resp(
						ApiError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
					)
				if name in ("messages.list", "threads.list") and (q.get("q") or [""])[0]:
					return _error_resp(
						ApiError(403, "Metadata scope does not support 'q' parameter", "forbidden")
					)
		handler = getattr(self, "_api_" + name.replace(".", "_"))
		try:
			with self._lock:
				mb = self._mailboxes.get(grant["email"])
				if mb is None:
					mb = self.add_mailbox(grant["email"])
				self._st(email).quota_units += QUOTA_UNITS.get(name, 0)
				call = _Call(mb, method, params, q, headers, body, upload, query)
				result = handler(call)
		except ApiError as exc:
			return _error_resp(exc)
		if result is None:
			return 204, [("Content-Type", _JSON_CT)], b""
		if isinstance(result, tuple):
			return _json_resp(result[0], result[1])
		return _json_resp(200, result)

	# -- rendering --------------------------------------------------------------------------------------
	@staticmethod
	def _render_payload(node: dict, fmt: str, header_filter=None) -> dict:
		out = {"partId": node["partId"], "mimeType": node["mimeType"], "filename": node["filename"]}
		headers = node["headers"]
		if header_filter is not None:
			headers = [h for h in headers if h["name"].lower() in header_filter]
		out["headers"] = [dict(h) for h in headers]
		if fmt == "metadata":
			return out
		if "parts" in node:
			out["body"] = {"size": 0}
			out["parts"] = [GmailTestServer._render_payload(p, fmt) for p in node["parts"]]
		else:
			data = node.get("_data", b"")
			if node.get("_attachment_id"):
				out["body"] = {"attachmentId": node["_attachment_id"], "size": len(data)}
			elif data:
				out["body"] = {"size": len(data), "data": b64url(data)}
			else:
				out["body"] = {"size": 0}
		return out

	def _render_message(self, m: Message, fmt: str = "full", metadata_headers=None) -> dict:
		d = {"id": m.id, "threadId": m.thread_id}
		if m.label_ids:
			d["labelIds"] = list(m.label_ids)
		d["snippet"] = m.parsed.snippet
		if fmt == "raw":
			d["raw"] = b64url(m.raw)
		elif fmt in ("full", "metadata"):
			filt = {h.lower() for h in metadata_headers} if (fmt == "metadata" and metadata_headers) else None
			d["payload"] = self._render_payload(m.parsed.payload, fmt, filt)
		d["sizeEstimate"] = len(m.raw)
		d["historyId"] = str(m.history_id)
		d["internalDate"] = str(m.internal_date)
		return d

	# -- Gmail handlers (lock held) --------------------------------------------------------------------
	def _api_users_getProfile(self, c):
		return {
			"emailAddress": c.mb.email,
			"messagesTotal": len(c.mb.messages),
			"threadsTotal": len({m.thread_id for m in c.mb.messages.values()}),
			"historyId": str(c.mb.history_id),
		}

	def _api_users_watch(self, c):
		body = c.json()
		topic = body.get("topicName")
		if not isinstance(topic, str) or not TOPIC_RE.match(topic):
			raise ApiError(
				400,
				"Invalid topicName does not match projects/SOME-PROJECT/topics/SOME-TOPIC",
				"invalidArgument",
			)
		labels = self._check_labels(c.mb, body.get("labelIds") or [])
		behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include").lower()
		if behavior not in ("include", "exclude"):
			raise ApiError(400, f"Invalid value at 'label_filter_behavior' ({behavior})", "invalidArgument")
		expiration = _now_ms() + WATCH_TTL_MS
		c.mb.watch = {
			"topicName": topic,
			"labelIds": labels,
			"labelFilterBehavior": behavior,
			"expiration": expiration,
		}
		return {"historyId": str(c.mb.history_id), "expiration": str(expiration)}

	def _api_users_stop(self, c):  # no result: 204 No Content, as Gmail answers
		c.mb.watch = None

	def _label_resource(self, mb, lab, counts=False) -> dict:
		d = {k: v for k, v in lab.items() if not k.startswith("_")}
		if counts:
			msgs = [m for m in mb.messages.values() if lab["id"] in m.label_ids]
			unread = [m for m in msgs if "UNREAD" in m.label_ids]
			d["messagesTotal"] = len(msgs)
			d["messagesUnread"] = len(unread)
			d["threadsTotal"] = len({m.thread_id for m in msgs})
			d["threadsUnread"] = len({m.thread_id for m in unread})
		return d

	def _api_labels_list(self, c):
		return {"labels": [self._label_resource(c.mb, lab) for lab in c.mb.labels.values()]}

	def _get_label(self, c) -> dict:
		lab = c.mb.labels.get(c.params["id"])
		if lab is None:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		return lab

	def _api_labels_get(self, c):
		return self._label_resource(c.mb, self._get_label(c), counts=True)

	def _label_name_taken(self, mb, name, except_id=None) -> bool:
		low = name.strip().lower()
		return any(lab["name"].lower() == low and lab["id"] != except_id for lab in mb.labels.values())

	def _api_labels_create(self, c):
		body = c.json()
		name = body.get("name")
		if not isinstance(name, str) or not name.strip():
			raise ApiError(400, "Invalid label name", "invalidArgument")
		if self._label_name_taken(c.mb, name):
			raise ApiError(409, "Label name exists or conflicts", "duplicate")
		lid = f"Label_{c.mb.next_label}"
		c.mb.next_label += 1
		lab = {
			"id": lid,
			"name": name.strip(),
			"messageListVisibility": body.get("messageListVisibility") or "show",
			"labelListVisibility": body.get("labelListVisibility") or "labelShow",
			"type": "user",
		}
		if isinstance(body.get("color"), dict):
			lab["color"] = body["color"]
		c.mb.labels[lid] = lab
		return self._label_resource(c.mb, lab)

	def _api_labels_patch(self, c):
		lab = self._get_label(c)
		if lab["type"] == "system":
			raise ApiError(400, "Invalid update request", "invalidArgument")
		body = c.json()
		if "name" in body:
			if not isinstance(body["name"], str) or not body["name"].strip():
				raise ApiError(400, "Invalid label name", "invalidArgument")
			if self._label_name_taken(c.mb, body["name"], lab["id"]):
				raise ApiError(409, "Label name exists or conflicts", "duplicate")
			lab["name"] = body["name"].strip()
		for key in ("messageListVisibility", "labelListVisibility", "color"):
			if key in body:
				lab[key] = body[key]
		return self._label_resource(c.mb, lab)

	_api_labels_update = _api_labels_patch

	def _api_labels_delete(self, c):
		lab = self._get_label(c)
		if lab["type"] == "system":
			raise ApiError(400, "Invalid delete request", "invalidArgument")
		msgs = [m for m in c.mb.messages.values() if lab["id"] in m.label_ids]
		self._modify(c.mb, msgs, [], [lab["id"]])
		del c.mb.labels[lab["id"]]

	def _get_message(self, c, key="id") -> Message:
		mid = c.params[key]
		if not re.fullmatch(r"[0-9A-Za-z]{1,40}", mid or ""):
			raise ApiError(400, "Invalid id value", "invalidArgument")
		m = c.mb.messages.get(mid)
		if m is None:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		return m

	def _list_filter(self, c):
		q = c.q1("q")
		label_ids = [x for v in c.query.get("labelIds", []) for x in v.split(",") if x]
		include = c.bool("includeSpamTrash")
		pred, q_spam = build_query(q, c.mb)
		include = include or q_spam or bool({"SPAM", "TRASH"} & set(label_ids))
		out = []
		for m in c.mb.messages.values():
			if not include and ("SPAM" in m.label_ids or "TRASH" in m.label_ids):
				continue
			if any(lid not in m.label_ids for lid in label_ids):
				continue
			if pred(m):
				out.append(m)
		out.sort(key=lambda m: (-m.internal_date, -m.seq))
		return out

	@staticmethod
	def _page_size(c, default=100, maximum=500) -> int:
		raw = c.q1("maxResults")
		if raw in (None, ""):
			return default
		try:
			n = int(raw)
		except ValueError:
			raise ApiError(400, f"Invalid value '{raw}' for maxResults", "invalidArgument") from None
		return max(1, min(maximum, n)) if n > 0 else default

	@staticmethod
	def _encode_token(*values) -> str:
		return base64.urlsafe_b64encode(":".join(str(v) for v in values).encode()).decode().rstrip("=")

	@staticmethod
	def _decode_token(token: str, n: int) -> list[str]:
		try:
			text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
			vals = text.split(":")
			if len(vals) != n:
				raise ValueError
			return vals
		except Exception:
			raise ApiError(400, "Invalid pageToken", "invalidArgument") from None

	def _api_messages_list(self, c):
		msgs = self._list_filter(c)
		size = self._page_size(c)
		token = c.q1("pageToken")
		start = 0
		if token:
			date_s, seq_s = self._decode_token(token, 2)
			key = (-int(date_s), -int(seq_s))
			while start < len(msgs) and (-msgs[start].internal_date, -msgs[start].seq) <= key:
				start += 1
		page = msgs[start : start + size]
		out = {}
		if page:
			out["messages"] = [m.ref() for m in page]
		if start + size < len(msgs) and page:
			out["nextPageToken"] = self._encode_token(page[-1].internal_date, page[-1].seq)
		out["resultSizeEstimate"] = len(msgs)
		return out

	def _api_messages_get(self, c):
		m = self._get_message(c)
		fmt = (c.q1("format") or "full").lower()
		if fmt not in ("full", "metadata", "minimal", "raw"):
			raise ApiError(400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
		return self._render_message(m, fmt, c.query.get("metadataHeaders"))

	def _api_messages_attachments_get(self, c):
		m = self._get_message(c, "messageId")
		data = m.parsed.attachments.get(c.params["id"])
		if data is None:
			raise ApiError(400, "Invalid attachment token", "invalidArgument")
		return {"size": len(data), "data": b64url(data)}

	def _api_messages_modify(self, c):
		m = self._get_message(c)
		body = c.json()
		add = self._check_labels(c.mb, body.get("addLabelIds") or [])
		remove = self._check_labels(c.mb, body.get("removeLabelIds") or [])
		self._modify(c.mb, [m], add, remove)
		return m.ref(labels=True) if m.label_ids else m.ref()

	def _api_messages_batchModify(self, c):
		body = c.json()
		ids = body.get("ids") or []
		if not isinstance(ids, list) or len(ids) > 1000:
			raise ApiError(
				400, "Too many ids (max 1000)" if isinstance(ids, list) else "Invalid ids", "invalidArgument"
			)
		add = self._check_labels(c.mb, body.get("addLabelIds") or [])
		remove = self._check_labels(c.mb, body.get("removeLabelIds") or [])
		msgs = [c.mb.messages[i] for i in ids if isinstance(i, str) and i in c.mb.messages]
		self._modify(c.mb, msgs, add, remove)

	def _api_messages_trash(self, c):
		m = self._get_message(c)
		self._modify(c.mb, [m], ["TRASH"], [])
		return m.ref(labels=True)

	def _api_messages_untrash(self, c):
		m = self._get_message(c)
		self._modify(c.mb, [m], [], ["TRASH"])
		return m.ref(labels=True) if m.label_ids else m.ref()

	def _api_messages_delete(self, c):
		self._delete(c.mb, [self._get_message(c)])

	def _api_messages_batchDelete(self, c):
		ids = c.json().get("ids") or []
		if not isinstance(ids, list) or len(ids) > 1000:
			raise ApiError(400, "Invalid ids", "invalidArgument")
		self._delete(c.mb, [c.mb.messages[i] for i in ids if isinstance(i, str) and i in c.mb.messages])

	def _raw_and_meta(self, c) -> tuple[bytes, dict]:
		"""The RFC 822 bytes and JSON metadata of send/insert/import (JSON ``raw`` or /upload forms)."""
		if c.upload:
			if c.upload.startswith("resumable"):
				raise ApiError(
					400, "Resumable uploads are not supported by the test server", "invalidArgument"
				)
			utype = (c.q1("uploadType") or "media").lower()
			ctype = c.headers.get("content-type") or ""
			if utype == "multipart" or ctype.lower().startswith("multipart/"):
				try:
					msg = BytesParser(policy=email.policy.compat32).parsebytes(
						b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + c.body
					)
					parts = msg.get_payload() if msg.is_multipart() else []
					meta = json.loads(parts[0].get_payload(decode=True) or b"{}") if len(parts) > 0 else {}
					raw = parts[1].get_payload(decode=True) if len(parts) > 1 else b""
				except Exception:
					raise ApiError(400, "Invalid multipart upload", "invalidArgument") from None
				return raw or b"", meta if isinstance(meta, dict) else {}
			return c.body, {}
		meta = c.json()
		raw_text = meta.get("raw")
		if not raw_text:
			raise ApiError(
				400,
				"'raw' RFC822 payload message string or uploading message via /upload/* URL required",
				"invalidArgument",
			)
		try:
			raw = b64_any_decode(raw_text)
		except ValueError:
			raise ApiError(400, "Invalid value for ByteString: raw", "invalidArgument") from None
		return raw, meta

	def _api_messages_send(self, c):
		raw, meta = self._raw_and_meta(c)
		pm = parse_mail(raw)
		if not any(pm.header(h).strip() for h in ("to", "cc", "bcc")):
			raise ApiError(400, "Recipient address required", "invalidArgument")
		# Gmail stamps what a sending MTA adds when absent.
		add = []
		if not pm.header("message-id"):
			add.append(f"Message-ID: <{secrets.token_hex(12)}@mail.gmail.com>")
		if not pm.header("date"):
			add.append("Date: " + email.utils.formatdate(localtime=False))
		if not pm.header("from"):
			add.append(f"From: {c.mb.email}")
		if add:
			eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
			raw = eol.join(a.encode() for a in add) + eol + raw
			pm = parse_mail(raw)
		join = meta.get("threadId") if isinstance(meta.get("threadId"), str) else None
		m = self._insert(c.mb, raw, pm, ["SENT"], _now_ms(), join_thread=join)
		return m.ref(labels=True)

	def _insert_like(self, c, default_labels, date_source_default):
		raw, meta = self._raw_and_meta(c)
		pm = parse_mail(raw)
		labels = (
			self._check_labels(c.mb, meta.get("labelIds")) if meta.get("labelIds") else list(default_labels)
		)
		source = (c.q1("internalDateSource") or date_source_default).lower()
		when = pm.date_ms if source == "dateheader" and pm.date_ms else _now_ms()
		join = meta.get("threadId") if isinstance(meta.get("threadId"), str) else None
		m = self._insert(c.mb, raw, pm, labels, when, join_thread=join)
		return m.ref(labels=True) if m.label_ids else m.ref()

	def _api_messages_insert(self, c):
		return self._insert_like(c, [], "receivedTime")

	def _api_messages_import(self, c):
		return self._insert_like(c, ["INBOX", "UNREAD"], "dateHeader")

	def _api_threads_list(self, c):
		msgs = self._list_filter(c)
		threads: dict[str, list] = {}
		for m in msgs:  # newest first
			threads.setdefault(m.thread_id, []).append(m)
		ordered = sorted(threads.items(), key=lambda kv: (-kv[1][0].internal_date, -kv[1][0].seq))
		size = self._page_size(c)
		start = 0
		token = c.q1("pageToken")
		if token:
			date_s, seq_s = self._decode_token(token, 2)
			key = (-int(date_s), -int(seq_s))
			while (
				start < len(ordered)
				and (-ordered[start][1][0].internal_date, -ordered[start][1][0].seq) <= key
			):
				start += 1
		page = ordered[start : start + size]
		out = {}
		if page:
			items = []
			for tid, tmsgs in page:
				all_msgs = c.mb.thread_messages(tid)
				latest = all_msgs[-1] if all_msgs else tmsgs[0]
				items.append(
					{
						"id": tid,
						"snippet": latest.parsed.snippet,
						"historyId": str(max(m.history_id for m in (all_msgs or tmsgs))),
					}
				)
			out["threads"] = items
		if start + size < len(ordered) and page:
			last = page[-1][1][0]
			out["nextPageToken"] = self._encode_token(last.internal_date, last.seq)
		out["resultSizeEstimate"] = len(ordered)
		return out

	def _get_thread(self, c) -> list[Message]:
		tid = c.params["id"]
		if not re.fullmatch(r"[0-9A-Za-z]{1,40}", tid or ""):
			raise ApiError(400, "Invalid id value", "invalidArgument")
		msgs = c.mb.thread_messages(tid)
		if not msgs:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		return msgs

	def _api_threads_get(self, c):
		msgs = self._get_thread(c)
		fmt = (c.q1("format") or "full").lower()
		if fmt not in ("full", "metadata", "minimal"):
			raise ApiError(400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
		return {
			"id": c.params["id"],
			"historyId": str(max(m.history_id for m in msgs)),
			"messages": [self._render_message(m, fmt, c.query.get("metadataHeaders")) for m in msgs],
		}

	def _thread_result(self, tid, msgs):
		return {"id": tid, "messages": [m.ref(labels=True) for m in msgs]}

	def _api_threads_modify(self, c):
		msgs = self._get_thread(c)
		body = c.json()
		add = self._check_labels(c.mb, body.get("addLabelIds") or [])
		remove = self._check_labels(c.mb, body.get("removeLabelIds") or [])
		self._modify(c.mb, msgs, add, remove)
		return self._thread_result(c.params["id"], msgs)

	def _api_threads_trash(self, c):
		msgs = self._get_thread(c)
		self._modify(c.mb, msgs, ["TRASH"], [])
		return self._thread_result(c.params["id"], msgs)

	def _api_threads_untrash(self, c):
		msgs = self._get_thread(c)
		self._modify(c.mb, msgs, [], ["TRASH"])
		return self._thread_result(c.params["id"], msgs)

	def _api_threads_delete(self, c):
		self._delete(c.mb, self._get_thread(c))

	def _api_history_list(self, c):
		raw = c.q1("startHistoryId")
		if not raw:
			raise ApiError(400, "Missing required parameter: startHistoryId", "required")
		try:
			start = int(raw)
		except ValueError:
			raise ApiError(400, f"Invalid value '{raw}' for startHistoryId", "invalidArgument") from None
		mb = c.mb
		if start < mb.history_floor:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		types = {t for v in c.query.get("historyTypes", []) for t in v.split(",") if t}
		kinds = {
			"messageAdded": "messagesAdded",
			"messageDeleted": "messagesDeleted",
			"labelAdded": "labelsAdded",
			"labelRemoved": "labelsRemoved",
		}
		wanted = {kinds[t] for t in types if t in kinds} if types else set(kinds.values())
		label = c.q1("labelId")
		size = self._page_size(c)
		token = c.q1("pageToken")
		after = start
		if token:
			try:
				after = max(start, int(self._decode_token(token, 1)[0]))
			except ValueError:
				raise ApiError(400, "Invalid pageToken", "invalidArgument") from None
		records = []
		more = False
		for rec in mb.history:
			if rec["id"] <= after:
				continue
			out = {"id": str(rec["id"])}
			keep = False
			for field in ("messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved"):
				if field not in rec or field not in wanted:
					continue
				entries = rec[field]
				if label:
					entries = [
						e
						for e in entries
						if label in e["message"].get("labelIds", []) or label in e.get("labelIds", [])
					]
				if entries:
					out[field] = [json.loads(json.dumps(e)) for e in entries]
					keep = True
			if not keep:
				continue
			if len(records) == size:
				more = True
				break
			records.append({"id": out.pop("id"), "messages": [dict(x) for x in rec["messages"]], **out})
		resp = {}
		if records:
			resp["history"] = records
		if more:
			resp["nextPageToken"] = self._encode_token(records[-1]["id"])
		resp["historyId"] = str(mb.history_id)
		return resp

	# -- batch ------------------------------------------------------------------------------------------
	def _batch(self, method, path, query, headers, body, ctx) -> tuple:
		ctype = headers.get("content-type") or ""
		parts = []
		if method.upper() == "POST" and ctype.lower().startswith("multipart/"):
			try:
				outer = BytesParser(policy=email.policy.compat32).parsebytes(
					b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + body
				)
				parts = outer.get_payload() if outer.is_multipart() else []
			except Exception:
				parts = []
		parts = [p for p in parts if isinstance(p, _EmailMessage)]
		with self._lock:  # attribute the envelope: outer Authorization, else the first part's
			grant, _ = self._bearer(headers)
			if grant is None and parts:
				try:
					inner = parts[0].get_payload(decode=False)
					grant, _ = (
						self._bearer(_parse_inner_request(inner)[2])
						if isinstance(inner, str)
						else (None, None)
					)
				except Exception:
					grant = None
			ctx.email = grant["email"] if grant else None
			self._st(ctx.email).batch_requests += 1
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_api_resp(fault)
		if method.upper() != "POST":
			raise ApiError(405, "Batch requests must be POSTed", "badRequest")
		if not ctype.lower().startswith("multipart/mixed") or "boundary" not in ctype.lower():
			raise ApiError(400, "Batch requests must be multipart/mixed with a boundary", "badRequest")
		if not parts:
			raise ApiError(400, "Batch request contains no parts", "badRequest")
		if len(parts) > MAX_BATCH_PARTS:
			raise ApiError(
				400,
				f"Too many requests in batch: {len(parts)} (a batch may hold at most {MAX_BATCH_PARTS})",
				"badRequest",
			)
		outer_auth = headers.get("authorization")
		answers = []
		for i, part in enumerate(parts):
			cid = _clean(part.get("Content-ID") or "").strip()
			if cid.startswith("<") and cid.endswith(">"):
				cid = cid[1:-1]
			cid = cid or f"item{i + 1}"
			part_ctx = _Ctx()
			try:
				inner = part.get_payload(decode=False)
				if not isinstance(inner, str):
					raise TypeError("nested multipart")
				i_method, i_target, i_headers, i_body = _parse_inner_request(inner)
				if outer_auth and not i_headers.get("authorization"):
					i_headers["authorization"] = outer_auth
				split = urllib.parse.urlsplit(i_target)
				if re.match(r"^/gmail/v1/", split.path or ""):
					resp = self._dispatch_api(
						i_method, split.path, split.query, i_headers, i_body, part_ctx, in_batch=True
					)
				else:
					resp = _json_resp(
						404, google_error_body(404, f"The requested URL {split.path} was not found.")
					)
			except ApiError as exc:
				resp = _error_resp(exc)
			except Exception:
				resp = _json_resp(
					400, google_error_body(400, "Failed to parse batch request part.", "badRequest")
				)
			answers.append((cid, resp))
		boundary = "batch_" + secrets.token_hex(12)
		out = []
		for cid, (status, hdrs, payload) in answers:
			try:
				phrase = HTTPStatus(status).phrase
			except ValueError:
				phrase = "Unknown"
			head = (
				f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: <response-{cid}>\r\n\r\n"
				f"HTTP/1.1 {status} {phrase}\r\n"
			)
			head += "".join(f"{k}: {v}\r\n" for k, v in hdrs)
			head += f"Content-Length: {len(payload)}\r\n\r\n"
			out.append(head.encode("utf-8") + payload + b"\r\n")
		out.append(f"--{boundary}--\r\n".encode())
		return 200, [("Content-Type", f"multipart/mixed; boundary={boundary}")], b"".join(out)

	# -- OAuth endpoints ----------------------------------------------------------------------------------
	def _authorize(self, method, path, query, ctx) -> tuple:
		q = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
		with self._lock:
			consent = dict(self._consent)
			hint = (q.get("login_hint") or "").strip().lower()
			if hint and hint in self._mailboxes:
				who = hint
			elif consent["email"]:
				who = consent["email"]
			elif len(self._mailboxes) == 1:
				who = next(iter(self._mailboxes))
			else:
				who = None
			ctx.email = who
		fault = self._take_fault(method.upper(), path, query, who)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		client_id = q.get("client_id") or ""
		if client_id not in self._clients:
			return _html_resp(400, "Error 401: invalid_client", "The OAuth client was not found.")
		redirect_uri = q.get("redirect_uri") or ""
		if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", redirect_uri):
			return _html_resp(400, "Error 400: invalid_request", "Missing required parameter: redirect_uri")
		state = q.get("state")

		def redirect(params: dict) -> tuple:
			ordered = ([("state", state)] if state is not None else []) + list(params.items())
			parts = urllib.parse.urlsplit(redirect_uri)
			extra = urllib.parse.urlencode(ordered, quote_via=urllib.parse.quote)
			new_q = parts.query + ("&" if parts.query else "") + extra
			loc = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, new_q, parts.fragment))
			return 302, [("Location", loc), ("Content-Type", "text/html; charset=utf-8")], b""

		if q.get("response_type") != "code":
			return redirect({"error": "unsupported_response_type"})
		scope = " ".join((q.get("scope") or "").split())
		if not scope:
			return _html_resp(400, "Error 400: invalid_request", "Missing required parameter: scope")
		if who is None:
			return _html_resp(
				400,
				"Error 400: no account",
				"Several mailboxes exist: call set_consent(email=...) or pass login_hint.",
			)
		if consent["action"] == "deny":
			return redirect({"error": "access_denied"})
		challenge = q.get("code_challenge")
		cmethod = q.get("code_challenge_method") or ("plain" if challenge else None)
		if challenge and cmethod not in ("S256", "plain"):
			return _html_resp(400, "Error 400: invalid_request", "Invalid code_challenge_method")
		code = "4/0" + secrets.token_urlsafe(40)
		with self._lock:
			self._add_mailbox_locked(who)
			self._codes[code] = {
				"client_id": client_id,
				"redirect_uri": redirect_uri,
				"scope": scope,
				"email": who,
				"offline": (q.get("access_type") or "online") == "offline"
				and consent["action"] != "no_refresh",
				"challenge": challenge,
				"method": cmethod,
				"expires": time.time() + AUTH_CODE_TTL,
			}
		return redirect({"code": code, "scope": scope, "authuser": "0", "prompt": "consent"})

	def _add_mailbox_locked(self, key):
		if key not in self._mailboxes:
			self._mailboxes[key] = Mailbox(key)

	@staticmethod
	def _client_auth(headers, form) -> tuple[str | None, str | None]:
		auth = headers.get("authorization") or ""
		m = re.match(r"(?i)\s*basic\s+(\S+)", auth)
		if m:
			try:
				decoded = base64.b64decode(m.group(1)).decode("utf-8", "replace")
				cid, _, secret = decoded.partition(":")
				return urllib.parse.unquote(cid), urllib.parse.unquote(secret)
			except (binascii.Error, ValueError):
				return None, None
		return form.get("client_id"), form.get("client_secret")

	def _token(self, method, path, query, headers, body, ctx) -> tuple:
		form = {
			k: v[0]
			for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
		}
		for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items():
			form.setdefault(k, v[0])
		grant_type = form.get("grant_type")
		with self._lock:
			if grant_type == "authorization_code":
				info = self._codes.get(form.get("code") or "")
				ctx.email = info["email"] if info else None
			elif grant_type == "refresh_token":
				gid = self._refresh.get(form.get("refresh_token") or "")
				ctx.email = self._grants[gid]["email"] if gid else None
			self._st(ctx.email).token_requests += 1
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		if method.upper() != "POST":
			return _oauth_error(405, "invalid_request", "Token requests must be POSTed.")
		client_id, secret = self._client_auth(headers, form)
		with self._lock:
			if not client_id or client_id not in self._clients:
				return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
			if self._clients[client_id] != (secret or ""):
				return _oauth_error(401, "invalid_client", "Unauthorized")
			if grant_type == "authorization_code":
				code = form.get("code") or ""
				info = self._codes.pop(code, None)  # single use, even when the exchange fails
				if info is None or info["expires"] < time.time():
					return _oauth_error(400, "invalid_grant", "Malformed auth code.")
				if info["client_id"] != client_id:
					return _oauth_error(400, "invalid_grant", "Unauthorized client for this code.")
				if (form.get("redirect_uri") or "") != info["redirect_uri"]:
					return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
				if info["challenge"]:
					verifier = form.get("code_verifier") or ""
					if not verifier:
						return _oauth_error(
							400, "invalid_request", "code_verifier or verifier is not needed."
						)
					if info["method"] == "S256":
						calc = (
							base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
							.decode()
							.rstrip("=")
						)
					else:
						calc = verifier
					if not secrets.compare_digest(calc, info["challenge"]):
						return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
				return _json_resp(
					200,
					self._new_grant(info["email"], client_id, info["scope"], info["offline"]),
					[("Cache-Control", "no-store")],
				)
			if grant_type == "refresh_token":
				gid = self._refresh.get(form.get("refresh_token") or "")
				grant = self._grants.get(gid) if gid else None
				if grant is None or grant["revoked"]:
					return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
				if grant["client_id"] != client_id:
					return _oauth_error(401, "unauthorized_client", "Unauthorized")
				want = set((form.get("scope") or "").split())
				if want and not want <= set(grant["scope"].split()):
					return _oauth_error(400, "invalid_scope", "Some requested scopes were invalid.")
				out = {
					"access_token": self._new_access(gid),
					"expires_in": ACCESS_TOKEN_TTL,
					"scope": grant["scope"],
					"token_type": "Bearer",
				}
				return _json_resp(200, out, [("Cache-Control", "no-store")])
			return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

	def _revoke(self, method, path, query, body, ctx) -> tuple:
		form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
		for k, v in urllib.parse.parse_qs(query).items():
			form.setdefault(k, v[0])
		token = form.get("token") or ""
		with self._lock:
			gid = self._refresh.get(token) or (self._access.get(token) or {}).get("grant")
			ctx.email = self._grants[gid]["email"] if gid else None
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		with self._lock:
			grant = self._grants.get(gid) if gid else None
			if grant is None or grant["revoked"]:
				return _oauth_error(400, "invalid_token", "Token expired or revoked")
			grant["revoked"] = True
		return _json_resp(200, {})

	def _userinfo(self, method, path, query, headers, ctx) -> tuple:
		with self._lock:
			grant, tok = self._bearer(headers)
			ctx.email = grant["email"] if grant else None
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		if grant is None or grant["revoked"] or tok["expires"] < time.time():
			return _json_resp(401, {"error": "invalid_request", "error_description": "Invalid Credentials"})
		sub = str(int(hashlib.sha1(grant["email"].encode()).hexdigest()[:15], 16))
		return _json_resp(
			200,
			{"sub": sub, "id": sub, "email": grant["email"], "email_verified": True, "verified_email": True},
		)

	def _tokeninfo(self, method, path, query, headers, body, ctx) -> tuple:
		form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
		for k, v in urllib.parse.parse_qs(query).items():
			form.setdefault(k, v[0])
		with self._lock:
			tok = self._access.get(form.get("access_token") or "")
			grant = self._grants.get(tok["grant"]) if tok else None
			if grant is None or grant["revoked"] or tok["expires"] < time.time():
				return _oauth_error(400, "invalid_token", "Invalid Value")
			sub = str(int(hashlib.sha1(grant["email"].encode()).hexdigest()[:15], 16))
			left = int(tok["expires"] - time.time())
			return _json_resp(
				200,
				{
					"azp": grant["client_id"],
					"aud": grant["client_id"],
					"sub": sub,
					"scope": grant["scope"],
					"exp": str(int(tok["expires"])),
					"expires_in": str(left),
					"email": grant["email"],
					"email_verified": "true",
					"access_type": "offline" if grant["refresh"] else "online",
				},
			)

	# -- /_atlas control endpoints --------------------------------------------------------------------
	def _control(self, method, path, query, body) -> tuple:
		"""``/_atlas/*``: the Python controls over HTTP (JSON bodies) for tests in another process.

		POST faults {path_regex, status, count, reason, retry_after, method, email} | DELETE faults;
		POST consent {email, action}; POST revoke {email}; POST insert {email, raw (base64), label_ids,
		internal_date_ms}; GET stats?email=; POST reset_stats {email}; POST expire_history {email};
		POST expire_access_tokens {email}; POST mailbox {email, sent_from}; POST client {client_id,
		client_secret}; POST load {email, path, spread_days, sent_from}; POST modify {email, id,
		add_label_ids, remove_label_ids}; POST delete {email, id}; POST tokens {email, client_id, scopes};
		GET messages?email= (dump_messages); POST push {endpoint_url, mode, audience, service_account,
		token, subscription, sign_with_wrong_key, max_attempts, retry_delay} (configure_push; endpoint_url
		null stops); GET push?email= (push_deliveries); DELETE push (clear_push_deliveries); GET
		watch?email= (watch_of); POST notify {email}.
		"""
		name = path[len("/_atlas/") :].strip("/")
		q = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
		try:
			data = json.loads(body.decode("utf-8")) if body.strip() else {}
			if not isinstance(data, dict):
				raise TypeError("JSON object expected")
		except (ValueError, TypeError) as exc:
			return _json_resp(400, {"error": f"bad JSON body: {exc}"})
		args = {**q, **data}
		m = method.upper()
		try:
			if name == "faults" and m == "POST":
				fid = self.inject_fault(
					args.get("path_regex") or args.get("path") or ".*",
					int(args.get("status", 500)),
					count=int(args.get("count", 1)),
					reason=args.get("reason"),
					retry_after=args.get("retry_after"),
					method=args.get("method"),
					email=args.get("email"),
				)
				return _json_resp(200, {"ok": True, "id": fid})
			if name == "faults" and m == "DELETE":
				self.clear_faults()
				return _json_resp(200, {"ok": True})
			if name == "faults" and m == "GET":
				return _json_resp(200, {"faults": self.pending_faults()})
			if name == "consent" and m == "POST":
				self.set_consent(args.get("email"), args.get("action") or "allow")
				return _json_resp(200, {"ok": True})
			if name == "revoke" and m == "POST":
				return _json_resp(200, {"ok": True, "revoked": self.revoke_tokens(args["email"])})
			if name == "insert" and m == "POST":
				raw = b64_any_decode(args["raw"])
				mid = self.insert_message(
					args["email"],
					raw,
					label_ids=args.get("label_ids"),
					internal_date_ms=args.get("internal_date_ms"),
				)
				return _json_resp(200, {"id": mid, "threadId": self.mailbox(args["email"]).thread_of(mid)})
			if name == "stats" and m == "GET":
				return _json_resp(200, self.stats(args.get("email")))
			if name == "reset_stats" and m == "POST":
				self.reset_stats(args.get("email"))
				return _json_resp(200, {"ok": True})
			if name == "expire_history" and m == "POST":
				self.expire_history(args["email"])
				return _json_resp(200, {"ok": True})
			if name == "expire_access_tokens" and m == "POST":
				self.expire_access_tokens(args.get("email"))
				return _json_resp(200, {"ok": True})
			if name == "mailbox" and m == "POST":
				self.add_mailbox(args["email"], sent_from=args.get("sent_from"))
				return _json_resp(200, {"ok": True})
			if name == "client" and m == "POST":
				self.register_client(args["client_id"], args["client_secret"])
				return _json_resp(200, {"ok": True})
			if name == "load" and m == "POST":
				ids = self.load_eml_dir(
					args["email"],
					args["path"],
					spread_days=args.get("spread_days"),
					sent_from=args.get("sent_from"),
				)
				return _json_resp(200, {"ids": ids})
			if name == "modify" and m == "POST":
				labels = self.modify_message(
					args["email"],
					args["id"],
					args.get("add_label_ids") or [],
					args.get("remove_label_ids") or [],
				)
				return _json_resp(200, {"id": args["id"], "labelIds": labels})
			if name == "delete" and m == "POST":
				self.delete_message(args["email"], args["id"])
				return _json_resp(200, {"ok": True})
			if name == "tokens" and m == "POST":
				return _json_resp(
					200,
					self.issue_tokens(
						args["email"], client_id=args.get("client_id"), scopes=args.get("scopes")
					),
				)
			if name == "push" and m == "POST":
				self.configure_push(
					args.get("endpoint_url"),
					mode=args.get("mode") or "oidc",
					audience=args.get("audience"),
					service_account=args.get("service_account"),
					token=args.get("token"),
					subscription=args.get("subscription") or "projects/p/subscriptions/s",
					sign_with_wrong_key=bool(args.get("sign_with_wrong_key")),
					max_attempts=int(args.get("max_attempts", 3)),
					retry_delay=float(args.get("retry_delay", 0.2)),
				)
				return _json_resp(200, {"ok": True})
			if name == "push" and m == "GET":
				return _json_resp(200, {"deliveries": self.push_deliveries(args.get("email"))})
			if name == "push" and m == "DELETE":
				self.clear_push_deliveries()
				return _json_resp(200, {"ok": True})
			if name == "watch" and m == "GET":
				return _json_resp(200, {"watch": self.watch_of(args["email"])})
			if name == "notify" and m == "POST":
				return _json_resp(200, {"queued": self.notify(args["email"])})
			if name == "messages" and m == "GET":
				items = self.dump_messages(args["email"])
				return _json_resp(
					200, {"messages": items, "historyId": str(self.mailbox(args["email"]).history_id)}
				)
		except KeyError as exc:
			return _json_resp(400, {"error": f"missing or unknown: {exc}"})
		except ApiError as exc:
			return _json_resp(400, {"error": exc.message})
		except (ValueError, TypeError, OSError, re.error) as exc:
			return _json_resp(400, {"error": str(exc)})
		return _json_resp(404, {"error": f"unknown control {m} /_atlas/{name}"})


class _Call:
	"""One Gmail call as seen by a handler."""

	__slots__ = ("_json", "body", "headers", "mb", "method", "params", "query", "raw_query", "upload")

	def __init__(self, mb, method, params, query, headers, body, upload, raw_query):
		self.mb = mb
		self.method = method
		self.params = params
		self.query = query
		self.headers = headers
		self.body = body or b""
		self.upload = upload
		self.raw_query = raw_query
		self._json = None

	def q1(self, name, default=None):
		vals = self.query.get(name)
		return vals[0] if vals else default

	def bool(self, name) -> bool:
		return (self.q1(name) or "").lower() in ("1", "true", "yes")

	def json(self) -> dict:
		if self._json is None:
			if not self.body.strip():
				self._json = {}
			else:
				try:
					data = json.loads(self.body.decode("utf-8"))
				except (ValueError, UnicodeDecodeError):
					raise ApiError(400, "Invalid JSON payload received.", "parseError") from None
				if not isinstance(data, dict):
					raise ApiError(400, "Invalid JSON payload received. Expected an object.", "parseError")
				self._json = data
		return self._json


def _parse_inner_request(text: str) -> tuple[str, str, _CaseDict, bytes]:
	"""Split one ``application/http`` batch part into (method, target, headers, body)."""
	text = text.lstrip("\r\n")
	m = re.search(r"\r?\n\r?\n", text)
	head, body = (text[: m.start()], text[m.end() :]) if m else (text, "")
	lines = re.split(r"\r?\n", head)
	request_line = lines[0].strip().split()
	if len(request_line) < 2:
		raise ValueError("bad request line")
	method, target = request_line[0].upper(), request_line[1]
	items = []
	for line in lines[1:]:
		if line[:1] in (" ", "\t") and items:
			items[-1] = (items[-1][0], items[-1][1] + " " + line.strip())
		elif ":" in line:
			k, _, v = line.partition(":")
			items.append((k.strip(), v.strip()))
	headers = _CaseDict(items)
	data = body.encode("utf-8", "surrogateescape")
	length = headers.get("content-length")
	if length and length.isdigit() and int(length) <= len(data):
		data = data[: int(length)]
	elif data.endswith(b"\r\n"):
		data = data[:-2]
	return method, target, headers, data


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
	parser = argparse.ArgumentParser(description="Local Google-compatible Gmail + OAuth server.")
	parser.add_argument("--host", default="127.0.0.1")
	parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
	parser.add_argument(
		"--mailbox",
		action="append",
		default=[],
		metavar="EMAIL[=EML_DIR]",
		help="mailbox, optionally loaded from a dir",
	)
	parser.add_argument("--spread-days", type=float, default=None)
	parser.add_argument("--sent-from", action="extend", nargs="+", default=[], metavar="ADDR")
	parser.add_argument("--client", action="append", default=[], metavar="ID:SECRET")
	parser.add_argument(
		"--consent", default=None, metavar="EMAIL", help="mailbox the consent screen logs in as"
	)
	args = parser.parse_args(argv)

	server = GmailTestServer(host=args.host, port=args.port)
	for spec in args.client:
		cid, sep, secret = spec.partition(":")
		if not sep:
			parser.error(f"--client expects ID:SECRET, got {spec!r}")
		server.register_client(cid, secret)
	for spec in args.mailbox:
		addr, sep, directory = spec.partition("=")
		if sep and directory:
			server.load_eml_dir(
				addr, directory, spread_days=args.spread_days, sent_from=args.sent_from or None
			)
		else:
			server.add_mailbox(addr, sent_from=args.sent_from or None)
	if args.consent:
		server.set_consent(args.consent)
	stop = threading.Event()
	for sig in (signal.SIGTERM, signal.SIGINT):
		try:
			signal.signal(sig, lambda *_: stop.set())
		except (ValueError, OSError):  # pragma: no cover - not in the main thread
			pass
	server.start()
	print(f"ready {server.url}", flush=True)
	try:
		while not stop.wait(0.5):
			pass
	finally:
		server.stop()
	return 0


if __name__ == "__main__":
	sys.exit(main())
