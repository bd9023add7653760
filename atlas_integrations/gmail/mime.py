"""Turn one RFC 822 message (Gmail ``format=raw`` bytes) into the fields Atlas stores.

Pure Python (``email`` stdlib, ``policy.default``); never raises on bad input: whatever could be read
is returned together with the errors met, so a broken message is stored, never dropped.
"""

from __future__ import annotations

import email
import email.policy
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime

_WS = re.compile(r"\s+")
_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass
class Attachment:
	"""One attachment: ``filename`` (decoded), ``content_type``, raw ``content`` bytes, ``inline`` flag."""

	filename: str
	content_type: str
	content: bytes
	inline: bool = False
	content_id: str | None = None

	@property
	def size(self) -> int:
		"""Size of the decoded content, in bytes."""
		return len(self.content)


@dataclass
class ParsedMessage:
	"""What Atlas keeps of one message. Addresses are ``(display name, addr-spec)`` pairs.

	``date`` is an aware UTC datetime or None when the Date header is missing or unreadable.
	``errors`` lists what went wrong while reading (header defects, undecodable parts).
	"""

	subject: str = ""
	sender: tuple[str, str] = ("", "")
	to: list[tuple[str, str]] = field(default_factory=list)
	cc: list[tuple[str, str]] = field(default_factory=list)
	bcc: list[tuple[str, str]] = field(default_factory=list)
	reply_to: list[tuple[str, str]] = field(default_factory=list)
	date: datetime | None = None
	message_id: str = ""
	in_reply_to: str = ""
	references: list[str] = field(default_factory=list)
	text: str = ""
	html: str = ""
	attachments: list[Attachment] = field(default_factory=list)
	raw_headers: str = ""
	errors: list[str] = field(default_factory=list)
	#: why the message looks machine-generated ("" when it does not): RFC 3834 Auto-Submitted,
	#: Precedence bulk/junk/list, List-Unsubscribe, multipart/report delivery notifications
	auto_generated: str = ""

	@property
	def parse_error(self) -> str:
		"""All errors as one line each; empty when the message read cleanly."""
		return "\n".join(self.errors)


_DEFAULT = email.policy.default


def _raw_header(msg: Message, name: str) -> str | None:
	"""First raw value of header ``name`` as stored by the parser (unfolded lines kept), or None."""
	lname = name.lower()
	for k, v in msg._headers:  # (name, raw value) pairs of the compat32 parse
		if k.lower() == lname:
			return v
	return None


def _parsed_header(msg: Message, name: str, errors: list[str]):
	"""Header ``name`` exactly as ``email.policy.default`` returns it on access (a header object).

	The compat32 parser keeps raw values the same way ``policy.default`` does (``header_source_parse``
	is identical), so running ``policy.default.header_fetch_parse`` on them gives the same object that
	``message_from_bytes(raw, policy=policy.default)[name]`` gives, at a fraction of the cost of
	parsing every header of every part.
	"""
	raw = _raw_header(msg, name)
	if raw is None:
		return None
	try:
		header = _DEFAULT.header_fetch_parse(name, raw)
	except Exception as exc:
		errors.append(f"{name} header: {type(exc).__name__}: {exc}")
		return None
	for defect in getattr(header, "defects", ()) or ():
		errors.append(f"{name} header: {type(defect).__name__}: {defect}")
	return header


def unsurrogate(text: str) -> str:
	"""Raw 8-bit header bytes come back from ``email`` as lone surrogates (``surrogateescape``), which no
	database can store. Read those bytes as UTF-8 (RFC 6532) and, when they are not UTF-8, as
	windows-1252 (what legacy clients that sent raw 8-bit headers used)."""
	if not any("\udc80" <= ch <= "\udcff" for ch in text):
		return text
	raw = text.encode("utf-8", "surrogateescape")
	try:
		return raw.decode("utf-8")
	except UnicodeDecodeError:
		return raw.decode("cp1252", "replace")


def _lenient_text(raw: str) -> str:
	try:
		return str(make_header(decode_header(raw)))
	except Exception:
		return raw


def _header_text(msg: Message, name: str, errors: list[str]) -> str:
	"""Decoded header value as ``email.policy.default`` gives it; lenient decoding on defects."""
	header = _parsed_header(msg, name, errors)
	if header is not None:
		return unsurrogate(str(header))
	raw = _raw_header(msg, name)
	return unsurrogate(_WS.sub(" ", _lenient_text(raw)).strip()) if raw else ""


def _address_list(msg: Message, name: str) -> list[tuple[str, str]]:
	"""Recipients (To/Cc/Bcc/Reply-To) the cheap way: encoded words decoded, then ``getaddresses``."""
	raw = _raw_header(msg, name)
	if not raw:
		return []
	text = _lenient_text(raw) if "=?" in raw else raw
	return [(unsurrogate(n), unsurrogate(a)) for n, a in getaddresses([_WS.sub(" ", text)]) if a or n]


def _addresses(msg: Message, name: str, errors: list[str]) -> list[tuple[str, str]]:
	"""Addresses of header ``name`` exactly as ``email.policy.default`` parses them."""
	header = _parsed_header(msg, name, errors)
	addrs = getattr(header, "addresses", None) if header is not None else None
	if addrs is not None:
		try:
			return [
				(unsurrogate(a.display_name or ""), unsurrogate(a.addr_spec or ""))
				for a in addrs
				if a.addr_spec or a.display_name
			]
		except Exception as exc:
			errors.append(f"{name} header: {type(exc).__name__}: {exc}")
	raw = _raw_header(msg, name)
	if not raw:
		return []
	return [(unsurrogate(n), unsurrogate(a)) for n, a in getaddresses([_lenient_text(raw)]) if a or n]


def _date(msg: Message, errors: list[str]) -> datetime | None:
	raw = _raw_header(msg, "Date")
	if raw is None:
		return None
	header = _parsed_header(msg, "Date", errors)
	dt = getattr(header, "datetime", None)
	if dt is None:
		try:
			dt = parsedate_to_datetime(raw)
		except Exception as exc:
			errors.append(f"Date header: unreadable ({type(exc).__name__})")
			return None
	if dt.tzinfo is None:  # RFC 5322 "-0000": no zone information; take it as UTC
		dt = dt.replace(tzinfo=timezone.utc)
	try:
		return dt.astimezone(timezone.utc)
	except (OverflowError, ValueError) as exc:
		errors.append(f"Date header: {exc}")
		return None


def _part_text(part: Message, errors: list[str]) -> str:
	"""Decoded text of a text/* leaf: transfer encoding undone, charset applied (replacement on errors)."""
	try:
		payload = part.get_payload(decode=True)
	except Exception as exc:
		errors.append(f"{part.get_content_type()} part: {type(exc).__name__}: {exc}")
		payload = None
	if payload is None:
		payload = part.get_payload()
		if isinstance(payload, list):
			return ""
		payload = str(payload).encode("utf-8", errors="replace")
	charset = part.get_content_charset() or "us-ascii"
	try:
		return payload.decode(charset, errors="replace")
	except LookupError:
		errors.append(f"{part.get_content_type()} part: unknown charset {charset!r}")
		return payload.decode("utf-8", errors="replace")


def _filename(part: Message, index: int, errors: list[str]) -> str:
	try:
		name = part.get_filename()
	except Exception as exc:
		errors.append(f"attachment filename: {type(exc).__name__}: {exc}")
		name = None
	if name:
		name = _lenient_text(str(name)) if "=?" in str(name) else str(name)
		name = name.replace("\\", "/").rsplit("/", 1)[-1].strip() or None
	if not name:
		ctype = part.get_content_type()
		ext = ".eml" if ctype == "message/rfc822" else (mimetypes.guess_extension(ctype) or ".bin")
		name = f"attachment-{index}{ext}"
	return name


def _is_attachment(part: Message) -> bool:
	"""A leaf is an attachment when its disposition says so or it carries a file name."""
	if (part.get_content_disposition() or "").lower() == "attachment":
		return True
	try:
		return bool(part.get_filename())
	except Exception:
		return True


def _walk_leaves(msg: Message):
	"""Leaf parts in order; a message/rfc822 part is one leaf (kept whole as an .eml attachment)."""
	if msg.is_multipart() and msg.get_content_type() != "message/rfc822":
		payload = msg.get_payload()
		if isinstance(payload, list):
			for sub in payload:
				if isinstance(sub, Message):
					yield from _walk_leaves(sub)
		return
	yield msg


def _auto_generated(msg: Message) -> str:
	auto = (_raw_header(msg, "Auto-Submitted") or "").strip().lower()
	if auto and not auto.startswith("no"):
		return f"Auto-Submitted: {auto.split(';')[0]}"
	precedence = (_raw_header(msg, "Precedence") or "").strip().lower()
	if precedence in ("bulk", "junk", "list"):
		return f"Precedence: {precedence}"
	if _raw_header(msg, "List-Unsubscribe"):
		return "List-Unsubscribe"
	if msg.get_content_type() == "multipart/report":
		return "delivery report"
	return ""


def parse_message(raw: bytes) -> ParsedMessage:
	"""Parse one message.

	Args:
		raw: the exact RFC 822 bytes (Gmail ``format=raw``, base64url-decoded).

	Returns:
		A :class:`ParsedMessage`. Headers are decoded exactly as ``email.policy.default`` decodes them
		(RFC 2047 encoded words, RFC 6532 UTF-8, any charset Python knows); on a defect the raw value is
		decoded leniently and the defect recorded in ``errors``. Never raises.
	"""
	out = ParsedMessage()
	ends = [x for x in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if x >= 0]
	cut = min(ends) if ends else len(raw)
	out.raw_headers = raw[:cut].decode("utf-8", errors="replace")
	try:
		msg = email.message_from_bytes(raw, policy=email.policy.compat32)
	except Exception as exc:  # pragma: no cover - the parser itself is very lenient
		out.errors.append(f"message: {type(exc).__name__}: {exc}")
		out.text = raw.decode("utf-8", errors="replace")
		return out

	errors = out.errors
	out.subject = _WS.sub(" ", _header_text(msg, "Subject", errors)).strip()
	froms = _addresses(msg, "From", errors)
	out.sender = froms[0] if froms else ("", "")
	out.to = _address_list(msg, "To")
	out.cc = _address_list(msg, "Cc")
	out.bcc = _address_list(msg, "Bcc")
	out.reply_to = _address_list(msg, "Reply-To")
	out.date = _date(msg, errors)
	out.message_id = _header_text(msg, "Message-ID", errors).strip().strip("<>").strip()
	irt = _MSGID.findall(_raw_header(msg, "In-Reply-To") or "")
	out.in_reply_to = irt[0].strip("<>") if irt else ""
	out.references = [r.strip("<>") for r in _MSGID.findall(_raw_header(msg, "References") or "")]
	out.auto_generated = _auto_generated(msg)

	try:
		text_parts, html_parts = [], []
		for index, part in enumerate(_walk_leaves(msg), start=1):
			for defect in getattr(part, "defects", []) or []:
				errors.append(f"{part.get_content_type()}: {type(defect).__name__}")
			ctype = part.get_content_type()
			if (part is not msg and ctype == "message/rfc822") or _is_attachment(part):
				if ctype == "message/rfc822":
					inner = part.get_payload()
					content = (
						inner[0].as_bytes()
						if isinstance(inner, list) and inner
						else (part.get_payload(decode=True) or b"")
					)
				else:
					content = part.get_payload(decode=True) or b""
				out.attachments.append(
					Attachment(
						filename=_filename(part, index, errors),
						content_type=ctype,
						content=content,
						inline=(part.get_content_disposition() or "") == "inline",
						content_id=(str(part.get("Content-ID") or "").strip("<> ") or None),
					)
				)
			elif ctype == "text/html":
				html_parts.append(_part_text(part, errors))
			elif ctype.startswith("text/") or part is msg:
				text_parts.append(_part_text(part, errors))
		out.text = "\n\n".join(t for t in text_parts if t).strip()
		out.html = "\n".join(h for h in html_parts if h).strip()
	except Exception as exc:
		errors.append(f"body: {type(exc).__name__}: {exc}")
		out.text = raw[cut:].decode("utf-8", errors="replace").strip()
	return out


def snippet_of(text: str, length: int = 200) -> str:
	"""A Gmail-like snippet: whitespace collapsed, at most ``length`` characters."""
	return _WS.sub(" ", text or "").strip()[:length]


def format_address(pair: tuple[str, str]) -> str:
	"""``("Ann", "ann@x.org")`` -> ``"Ann <ann@x.org>"`` as display text (names are not RFC 2047-encoded;
	a name with specials is quoted); the bare address when there is no name."""
	name, addr = pair
	if name and addr:
		if any(c in name for c in ',;:"<>@()[]\\'):
			name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
		return f"{name} <{addr}>"
	return addr or name
