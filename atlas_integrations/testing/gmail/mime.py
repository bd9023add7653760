"""Text decoding helpers and the defensive RFC 822 parser: :func:`parse_mail` turns the raw bytes of a
message into what the server serves (Gmail's ``payload`` part tree, ``snippet``, attachments) and what it
threads on (Message-ID, In-Reply-To / References). Never raises on bad mail."""

from __future__ import annotations

import base64
import binascii
import email
import email.header
import email.policy
import email.utils
import hashlib
import html
import io
import re
from datetime import timezone
from email.generator import BytesGenerator
from email.message import Message as _EmailMessage
from email.parser import BytesParser


# --------------------------------------------------------------------------------------------------
# text helpers
# --------------------------------------------------------------------------------------------------
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
