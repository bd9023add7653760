"""Turn one RFC 822 message (from any source: Gmail ``format=raw``, an inbound route) into the fields
Atlas stores.

Pure Python (``email`` stdlib, ``policy.default``); never raises on bad input: whatever could be read
is returned together with the errors met, so a broken message is stored, never dropped.
"""

from __future__ import annotations

import email
import email.policy
import io
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime

_WS = re.compile(r"\s+")
_MSGID = re.compile(r"<[^<>\s]+>")


@dataclass
class Attachment:
	"""One attachment of a message.

	* ``filename``: the readable original name, decoded (RFC 2231 / RFC 2047) the way ``email.policy.default``
	  decodes it and not sanitised (it may hold a path, markup or any character; the store layer derives
	  the stored name). A part without a name gets a default from its content type (``attachment.pdf``);
	  an enclosed message ``"<its subject>.eml"`` (``message.eml`` without one).
	* ``content_type``: lower-case ``type/subtype``; ``content``: the decoded bytes (for an enclosed
	  ``message/rfc822``, the enclosed message itself, headers included).
	* ``inline``: ``Content-Disposition: inline``, or no disposition but a Content-ID (an embedded part).
	* ``content_id``: the Content-ID without angle brackets (what a ``cid:`` URL names), or None.
	* ``error``: why the content is not (or not surely) the sender's bytes, e.g. a base64 payload that
	  does not decode, kept raw; None when it decoded cleanly.
	"""

	filename: str
	content_type: str
	content: bytes
	inline: bool = False
	content_id: str | None = None
	error: str | None = None

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
	#: the raw values of the headers triage reads (:data:`SIGNAL_HEADERS`, lower-case names), and the
	#: top-level Content-Type; see atlas_integrations/inbox/signals.py
	signal_headers: dict[str, str] = field(default_factory=dict)

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


def _strip_comments(value: str) -> str:
	"""``value`` without its RFC 5322 comments (``(...)``, nestable, outside quoted strings)."""
	out, depth, quoted, i = [], 0, False, 0
	while i < len(value):
		ch = value[i]
		if ch == "\\" and (quoted or depth):  # quoted-pair: kept inside quotes, dropped inside a comment
			if quoted:
				out.append(value[i : i + 2])
			i += 2
			continue
		if depth:
			depth += 1 if ch == "(" else -1 if ch == ")" else 0
		elif quoted:
			quoted = ch != '"'
			out.append(ch)
		elif ch == "(":
			depth = 1
			out.append(" ")
		else:
			quoted = ch == '"'
			out.append(ch)
		i += 1
	return "".join(out)


def _first_mailbox_text(value: str) -> tuple[str, str]:
	"""The first mailbox of an address header read literally: ``(text before its "<", address text)``.

	Comments are dropped and a group's ``name:`` prefix is skipped; everything else (quotes, dots, spaces,
	a missing domain) is kept as written. ``("", "")`` when the header names no mailbox."""
	text = _strip_comments(_WS.sub(" ", value))
	quoted = escaped = False
	angle = start = 0
	segment = None
	for i, ch in enumerate(text):
		if escaped:
			escaped = False
		elif quoted:
			escaped, quoted = ch == "\\", ch != '"'
		elif ch == '"':
			quoted = True
		elif ch == "<":
			angle += 1
		elif ch == ">":
			angle = max(angle - 1, 0)
		elif not angle and ch == ":":  # "group name:" (a route's ":" is inside the angle brackets)
			start = i + 1
		elif not angle and ch in ",;":
			if text[start:i].strip():
				segment = text[start:i]
				break
			start = i + 1
	segment = (text[start:] if segment is None else segment).strip()
	quoted = escaped = False
	for i, ch in enumerate(segment):
		if escaped:
			escaped = False
		elif quoted:
			escaped, quoted = ch == "\\", ch != '"'
		elif ch == '"':
			quoted = True
		elif ch == "<":
			addr = segment[i + 1 :]
			addr = (addr[: addr.rfind(">")] if ">" in addr else addr).strip().strip("<>").strip()
			if addr.startswith("@") and ":" in addr:  # obsolete source route "<@relay:user@x.org>"
				addr = addr.split(":", 1)[1].strip()
			return segment[:i].strip(), addr
	return "", segment


_SQUASH = re.compile(r'[\s"\\<>]')


def _several_addresses(text: str) -> bool:
	"""More than one space-separated word of ``text`` has an ``@`` (outside quotes): addresses run
	together without a comma (``a@x.org b@y.org``), which policy.default reads as the first of them."""
	words = _WS.split(re.sub(r'"(?:[^"\\]|\\.)*"', "q", text).strip())
	return sum("@" in w for w in words) > 1


def _sender(msg: Message, errors: list[str]) -> tuple[str, str]:
	"""The first From address as ``(display name, address)``.

	The address is ``email.policy.default``'s addr-spec: the header's address in canonical form, unusual
	ones kept as they are (``"john doe"@x.org`` keeps its quotes, ``john`` without a domain stays
	``john``, ``<>`` stays ``<>``). Where that reading loses part of what the header has (``a@b@c`` or
	``<<a@b>>`` read as ``<>``, ``user@ex ample.com`` cut to ``user@ex``, ``john;doe@x.org`` cut to
	``john``, a header policy.default cannot parse at all), the address text exactly as written in the
	header is given instead, and the difference is noted in ``errors``. Whether the address is valid is
	not decided here."""
	froms = _addresses(msg, "From", errors)
	name, addr = froms[0] if froms else ("", "")
	raw = _raw_header(msg, "From")
	if raw is None:
		return name, addr
	raw_name, raw_addr = _first_mailbox_text(unsurrogate(raw))
	if _SQUASH.sub("", addr) == _SQUASH.sub("", raw_addr) or _several_addresses(raw_addr):
		return name, addr
	errors.append(f"From header: address kept as written ({raw_addr!r}; policy.default reads {addr!r})")
	if not name and raw_name:
		name = _WS.sub(" ", _lenient_text(raw_name)).strip().strip('"').strip()
	return name, raw_addr


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
		payload = _payload_bytes(part)
		if payload is None:  # sub-parts, no text of its own
			return ""
	try:
		charset = part.get_content_charset() or "us-ascii"
	except Exception:
		charset = "us-ascii"
	try:
		return payload.decode(charset, errors="replace")
	except (LookupError, ValueError, TypeError):  # ValueError: a NUL in the charset name
		errors.append(f"{part.get_content_type()} part: unknown charset {charset!r}")
		return payload.decode("utf-8", errors="replace")


#: enclosed messages: each one is kept whole as one ``.eml`` attachment; its own parts are not looked into
ENCLOSED_TYPES = frozenset({"message/rfc822", "message/global"})
#: file-name extensions for nameless parts where Python's table has none (or a rarely used one)
_EXTENSIONS = {
	"message/rfc822": ".eml",
	"message/global": ".eml",
	"text/plain": ".txt",
	"image/jpeg": ".jpg",
	"image/jpg": ".jpg",
	"image/pjpeg": ".jpg",
	"application/octet-stream": ".bin",
	"application/pgp-signature": ".asc",
	"application/pgp-encrypted": ".asc",
	"application/pkcs7-signature": ".p7s",
	"application/x-pkcs7-signature": ".p7s",
	"application/pkcs7-mime": ".p7m",
	"application/x-pkcs7-mime": ".p7m",
	"text/calendar": ".ics",
	"application/ics": ".ics",
	"text/vcard": ".vcf",
	"text/x-vcard": ".vcf",
	"text/rfc822-headers": ".txt",
	"message/delivery-status": ".txt",
	"application/ms-tnef": ".dat",
}
_mime_types: mimetypes.MimeTypes | None = None
_MIME_HEADERS = ("content-type", "content-disposition")
_CTE = {
	"": "",
	"7bit": "7bit",
	"8bit": "8bit",
	"8bits": "8bit",
	"binary": "binary",
	"base64": "base64",
	"quotedprintable": "quoted-printable",
	"xuuencode": "x-uuencode",
	"uuencode": "x-uuencode",
	"uue": "x-uuencode",
	"xuue": "x-uuencode",
}
_OUT_POLICY = email.policy.compat32.clone(max_line_length=None)  # write enclosed messages back unfolded
#: an epilogue that holds what looks like more MIME parts (a boundary line, then a Content-* header)
_PARTS_IN_EPILOGUE = re.compile(r"^--\S[^\n]*\n(?:[^\n]+\n)*?content-[a-z-]+[ \t]*:", re.I | re.M)


def default_filename(content_type: str) -> str:
	"""The file name of a part that has none: ``attachment`` + an extension from its content type
	(``attachment.pdf``; ``attachment.bin`` for a type without one), ``message.eml`` for an enclosed message.
	Uses Python's own table of types only, so the name is the same on every machine."""
	global _mime_types
	ext = _EXTENSIONS.get(content_type)
	if ext is None:
		if _mime_types is None:
			_mime_types = mimetypes.MimeTypes()  # built-in table, not the system's mime.types
		ext = _mime_types.guess_extension(content_type) or ".bin"
	return ("message" if ext == ".eml" else "attachment") + ext


class _Mime:
	"""How ``email.policy.default`` reads the Content-Type / Content-Disposition of the parts of one message.

	The message is parsed with compat32 for speed (see :func:`_parsed_header`); for each part these two
	headers are re-read by policy.default from the same raw values, once, so dispositions and RFC 2231 /
	RFC 2047 file names come out exactly as ``message_from_bytes(raw, policy=policy.default)`` gives them.
	A header policy.default cannot read is recorded in ``errors``, never raised."""

	def __init__(self, errors: list[str]):
		self.errors = errors
		self._views: dict[int, EmailMessage] = {}

	def _view(self, part: Message) -> EmailMessage:
		view = self._views.get(id(part))
		if view is None:
			view = EmailMessage(policy=_DEFAULT)
			view._headers = [(k, v) for k, v in part._headers if k.lower() in _MIME_HEADERS]
			self._views[id(part)] = view
		return view

	def _read(self, part: Message, what: str, read, default):
		try:
			return read(self._view(part))
		except Exception as exc:
			error = f"{part.get_content_type()} part: {what} unreadable: {type(exc).__name__}: {exc}"
			if error not in self.errors:
				self.errors.append(error)
			return default

	def disposition(self, part: Message) -> str:
		"""``attachment``, ``inline``, another value, or "" when there is none."""
		return self._read(part, "Content-Disposition", lambda v: v.get_content_disposition() or "", "")

	def is_attachment(self, part: Message) -> bool:
		"""``Content-Disposition: attachment`` (``EmailMessage.is_attachment``)."""
		return self._read(part, "Content-Disposition", lambda v: v.is_attachment(), False)

	def param(self, part: Message, name: str) -> str | None:
		return self._read(part, "Content-Type", lambda v: v.get_param(name), None)

	def has_name(self, part: Message) -> bool:
		"""The part names a file (``EmailMessage.get_filename``); an unreadable name counts as one."""
		return self._read(part, "file name", lambda v: bool(v.get_filename()), True)

	def name(self, part: Message) -> str | None:
		"""The readable file name: policy.default's decoding of filename / name (RFC 2231, RFC 2047 and
		raw UTF-8 decoded), not sanitised. Where policy.default loses it (an unquoted name with spaces,
		``name=This is a.txt``, read as ``This``; an unquoted encoded word, ``name==?utf-8?B?...?=``, read
		as nothing) the raw parameter value is taken, RFC 2047-decoded."""
		name = self._read(part, "file name", lambda v: v.get_filename(), None)
		name = unsurrogate(str(name)) if name else None
		if name and "=?" in name:
			name = _lenient_text(name)
		try:
			raw = part.get_filename()
		except Exception:
			raw = None
		if raw:
			raw = unsurrogate(str(raw))
			raw = _lenient_text(raw) if "=?" in raw else raw
			if not name or (raw != name and raw.startswith(name) and "\ufffd" not in raw):
				name = raw
		return name if name and name.strip() else None


def _content_id(part: Message) -> str | None:
	value = part.get("Content-ID")
	if value is None:
		return None
	value = "".join(unsurrogate(str(value)).split()).strip("<>")
	return value or None


def _payload_bytes(part: Message) -> bytes | None:
	"""The part's payload exactly as it came (transfer encoding not undone); None for sub-parts.
	``get_payload()`` would replace 8-bit bytes (kept by the parser as surrogates), so the stored value
	is read."""
	payload = part._payload
	if isinstance(payload, list):
		return None
	if isinstance(payload, bytes):
		return payload
	payload = str(payload or "")
	try:
		return payload.encode("ascii", "surrogateescape")
	except UnicodeEncodeError:
		return payload.encode("utf-8", "surrogateescape")


def _decoded(part: Message, errors: list[str]) -> tuple[bytes, str | None]:
	"""The part's content with its Content-Transfer-Encoding undone, and why it may not be the sender's
	bytes (None when it decoded cleanly). Never raises: what does not decode is returned raw."""
	raw = _payload_bytes(part)
	if raw is None:  # not a leaf; not reached
		return b"", "no content of its own"
	written = _WS.sub(" ", unsurrogate(str(part.get("Content-Transfer-Encoding", "")))).strip().lower()
	cte = _CTE.get(written, _CTE.get(re.sub(r"[^a-z0-9]", "", written)))
	if cte is None:
		return raw, f"unknown Content-Transfer-Encoding {written!r}: raw bytes kept"
	if cte != written:
		errors.append(
			f"{part.get_content_type()} part: Content-Transfer-Encoding {written!r} read as {cte!r}"
		)
	if cte in ("", "7bit", "8bit", "binary"):
		return raw, None
	stand_in = Message()  # email's own decoder, on a part that spells the encoding correctly
	stand_in["Content-Transfer-Encoding"] = cte
	stand_in.set_payload(raw)
	try:
		content = stand_in.get_payload(decode=True)
	except Exception as exc:
		return raw, f"{cte} payload does not decode ({type(exc).__name__}: {exc}): raw bytes kept"
	content = content if isinstance(content, bytes) else raw
	kinds = {type(d).__name__ for d in stand_in.defects}
	if "InvalidBase64LengthDefect" in kinds:
		return content, "base64 payload does not decode (impossible length): raw bytes kept"
	if "InvalidBase64CharactersDefect" in kinds:
		return content, "base64 payload has characters outside the base64 alphabet: they were skipped"
	if cte == "x-uuencode" and raw.strip() and content == raw:
		return raw, "x-uuencode payload does not decode: raw bytes kept"
	return content, None


def _attachment(part: Message, mime: _Mime, errors: list[str]) -> Attachment:
	"""A leaf part as an attachment: its decoded bytes, readable name (or a default), Content-ID."""
	ctype = part.get_content_type()
	content, error = _decoded(part, errors)
	name = mime.name(part) or default_filename(ctype)
	cid = _content_id(part)
	disposition = mime.disposition(part)
	if error:
		errors.append(f"attachment {name!r}: {error}")
	return Attachment(
		filename=name,
		content_type=ctype,
		content=content,
		content_id=cid,
		error=error,
		inline=disposition == "inline" or (not disposition and cid is not None),
	)


def _message_bytes(inner: Message, linesep: str) -> bytes:
	"""An enclosed message written back as bytes: its headers unfolded as they came, ``linesep`` line ends."""
	buf = io.BytesIO()
	BytesGenerator(buf, mangle_from_=False, policy=_OUT_POLICY.clone(linesep=linesep)).flatten(inner)
	return buf.getvalue()


def _enclosed(part: Message, mime: _Mime, errors: list[str], linesep: str) -> Attachment:
	"""An enclosed message (mail forwarded as an attachment) as one ``.eml`` attachment: the enclosed
	message's bytes; named by the part's file name, else ``"<its subject>.eml"`` (``message.eml``)."""
	ctype = part.get_content_type()
	payload = part._payload
	inner = payload[0] if isinstance(payload, list) and payload and isinstance(payload[0], Message) else None
	error = None
	if inner is None:
		content, error = _decoded(part, errors)
	else:
		try:
			content = _message_bytes(inner, linesep)
		except Exception as exc:
			try:
				content = inner.as_bytes()
			except Exception:
				content = b""
			error = f"enclosed message not written back exactly ({type(exc).__name__}: {exc})"
		cte = _WS.sub("", str(part.get("Content-Transfer-Encoding", ""))).lower()
		if cte in ("base64", "quoted-printable"):  # RFC 2046 forbids it for message/rfc822, yet it is sent
			body = content.split(linesep.encode(), 1)[1] if content.startswith(linesep.encode()) else content
			stand_in = Message()
			stand_in["Content-Transfer-Encoding"] = cte
			stand_in.set_payload(body)
			content, error = _decoded(stand_in, errors)
			inner = None
	name = mime.name(part)
	if not name:
		if inner is None:
			try:
				inner = email.message_from_bytes(content, policy=email.policy.compat32)
			except Exception:
				inner = Message()
		subject = _WS.sub(" ", _header_text(inner, "Subject", [])).strip()
		name = f"{subject}.eml" if subject else default_filename(ctype)
	if error:
		errors.append(f"attachment {name!r}: {error}")
	cid = _content_id(part)
	disposition = mime.disposition(part)
	return Attachment(
		filename=name,
		content_type=ctype,
		content=content,
		content_id=cid,
		error=error,
		inline=disposition == "inline" or (not disposition and cid is not None),
	)


def _subparts(part: Message) -> list[Message]:
	payload = part._payload
	return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _find_body(root: Message, part: Message, subtype: str, mime: _Mime):
	"""``EmailMessage.get_body``'s walk (stdlib ``MIMEPart._find_body``) on the compat32 tree: the
	text/``subtype`` candidates in order; parts with ``Content-Disposition: attachment`` are never the body,
	a multipart/related is looked into only at its root part (``start`` parameter, else the first)."""
	if mime.is_attachment(part):
		return
	maintype, sub = part.get_content_type().split("/", 1)
	if maintype == "text":
		if sub == subtype:
			yield part
		return
	if maintype != "multipart" or not root.is_multipart():
		return
	children = _subparts(part)
	if sub != "related":
		for child in children:
			yield from _find_body(root, child, subtype, mime)
		return
	start = mime.param(part, "start")
	candidate = None
	if start:
		candidate = next((c for c in children if str(c.get("Content-ID", "")).strip() == start.strip()), None)
	if candidate is None and children:
		candidate = children[0]
	if candidate is not None:
		yield from _find_body(root, candidate, subtype, mime)


def _chosen_bodies(msg: Message, mime: _Mime) -> set[int]:
	"""ids of the parts ``get_body(("plain",))`` and ``get_body(("html",))`` pick: the text and HTML body.
	Such a part is read as the body even when it carries a file name (``inline; filename="msg.txt"``)."""
	chosen = set()
	for subtype in ("plain", "html"):
		for part in _find_body(msg, msg, subtype, mime):
			chosen.add(id(part))
			break
	return chosen


def _leaves(msg: Message, errors: list[str]):
	"""Leaf parts in document order, the defects of every part recorded on the way. An enclosed message
	is one leaf (kept whole); any other part with sub-parts (multipart/*, message/delivery-status,
	message/external-body...) is looked into. A multipart whose boundary was not found is a leaf (its text
	is kept as body text). Iterative: no recursion limit on deeply nested mail."""
	stack = [iter((msg,))]
	while stack:
		part = next(stack[-1], None)
		if part is None:
			stack.pop()
			continue
		if not isinstance(part, Message):
			continue
		ctype = part.get_content_type()
		for defect in getattr(part, "defects", []) or []:
			errors.append(f"{ctype}: {type(defect).__name__}")
		payload = part._payload  # get_payload() decodes str payloads, and can raise doing it
		if ctype in ENCLOSED_TYPES or not isinstance(payload, list):
			yield part
			continue
		epilogue = part.epilogue or ""
		if _PARTS_IN_EPILOGUE.search(epilogue):
			errors.append(
				f"{ctype}: {len(epilogue)} characters after the closing boundary look like more "
				"parts; the parser does not read them"
			)
		stack.append(iter(payload))


#: headers the Smart Inbox's triage reads (atlas_integrations/inbox/signals.py), plus Delivered-To for rules
SIGNAL_HEADERS = ("auto-submitted", "precedence", "list-id", "list-unsubscribe", "x-autoreply", "x-autorespond",
				  "x-failed-recipients", "delivered-to", "x-original-to")


def signal_headers(msg: Message) -> dict[str, str]:
	"""The raw values (at most 500 characters each) of :data:`SIGNAL_HEADERS` present in ``msg``, and its
	top-level ``content-type`` with parameters."""
	out = {}
	for name in SIGNAL_HEADERS:
		value = _raw_header(msg, name)
		if value is not None:
			out[name] = _WS.sub(" ", str(value)).strip()[:500]
	out["content-type"] = _WS.sub(" ", str(_raw_header(msg, "Content-Type") or msg.get_content_type())).strip()[:500]
	return out


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

		Attachments, in document order: every enclosed message (``message/rfc822``, ``message/global``,
		the top level included) as one ``.eml`` (its own parts not extracted again); every other leaf with
		``Content-Disposition: attachment`` or a file name, inline ones included, except the part
		``get_body()`` picks as the text or HTML body; every nameless leaf that is not text (an embedded
		image known by its Content-ID). A part whose content does not decode is kept, raw, with
		``error`` set. ``tests/pure/test_mime_attachments.py`` holds these rules as an oracle.
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
	out.sender = _sender(msg, errors)
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
	out.signal_headers = signal_headers(msg)

	linesep = "\r\n" if b"\r\n" in raw[: cut + 4] else "\n"
	mime = _Mime(errors)
	try:
		bodies = _chosen_bodies(msg, mime)
	except Exception as exc:  # e.g. RecursionError on absurdly deep nesting
		errors.append(f"body choice: {type(exc).__name__}: {exc}")
		bodies = set()
	text_parts, html_parts = [], []
	try:
		for part in _leaves(msg, errors):
			try:
				ctype = part.get_content_type()
				if ctype in ENCLOSED_TYPES:
					out.attachments.append(_enclosed(part, mime, errors, linesep))
				elif id(part) in bodies:
					(html_parts if ctype == "text/html" else text_parts).append(_part_text(part, errors))
				elif mime.is_attachment(part) or mime.has_name(part):
					out.attachments.append(_attachment(part, mime, errors))
				elif ctype == "text/html":
					html_parts.append(_part_text(part, errors))
				elif ctype.startswith(("text/", "multipart/", "message/")):
					text_parts.append(_part_text(part, errors))  # other text; a multipart not split
				else:  # a nameless non-text part, e.g. an embedded image known only by its Content-ID
					out.attachments.append(_attachment(part, mime, errors))
			except Exception as exc:  # never skip a part: keep what can be had, say why
				ctype = part.get_content_type()
				error = f"part not read: {type(exc).__name__}: {exc}"
				errors.append(f"{ctype} part: {error}")
				try:
					content = _payload_bytes(part) or b""
				except Exception:
					content = b""
				out.attachments.append(
					Attachment(
						filename=default_filename(ctype), content_type=ctype, content=content, error=error
					)
				)
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
