"""Turn one RFC 822 message (from any source: Gmail ``format=raw``, an inbound route) into the fields
Atlas stores.

Pure Python (``email`` stdlib, ``policy.default``); never raises on bad input: whatever could be read
is returned together with the errors met, so a broken message is stored, never dropped. Which decoder a
charset label names is decided in one place, :mod:`atlas_integrations.inbox.charsets` (the WHATWG
Encoding Standard's label table): header values are relabelled for the stdlib's parsers, body parts are
decoded by it.

Bounded work on any message (a stranger chooses its shape): the stdlib's header parsers are slow, and on
some shapes quadratic (``policy.default`` on 16,000 characters of ``;`` in a Content-Type: 0.6 s; its
legacy ``_parseparam`` likewise; ``email.header.decode_header`` on ``=?a?q?x`` repeated), and its MIME
parser checks every line against the boundary of every enclosing multipart (900 levels of nesting and
200,000 lines: 15 s). So the reader takes at most:

* :data:`HEADER_LIMIT` characters of any header value that a header parser reads, :data:`ADDRESS_HEADER_LIMIT`
  of an address list (To, Cc, Bcc, Reply-To), and :data:`HEADER_PARSE_BUDGET` characters of part headers
  per message through ``policy.default`` (later parts are read the compat32 way);
* :data:`MAX_DEPTH` levels of nested multipart / message parts (a part nested deeper is read as text);
* :data:`MAX_PARTS` leaf parts one by one (the rest are kept together as one ``.eml`` attachment);

and its MIME parser skips the boundary checks for lines that cannot be a boundary (not starting with
``--``). Whatever a bound leaves out is said in ``errors``; ``tests/pure/test_bounded_time.py`` and
``bench/adversarial.py`` hold every stage to it on 100 KB adversarial messages.
"""

from __future__ import annotations

import email
import email.feedparser
import email.policy
import hashlib
import io
import mimetypes
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.generator import BytesGenerator
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import getaddresses, parsedate_to_datetime
from functools import lru_cache

from atlas_integrations.inbox import charsets

_WS = re.compile(r"\s+")
_MSGID = re.compile(r"<[^<>\s]+>")

#: characters of one header value a header parser reads: Subject, From, Date, Message-ID, each part's
#: Content-Type / Content-Disposition (RFC 5322 section 2.1.1 limits a line to 998 characters; a longer,
#: folded value is cut here and the cut noted in ``errors``)
HEADER_LIMIT = 2_048
#: characters of the sender's address kept when it is taken as written (RFC 5321 section 4.5.3.1.3: a path
#: is at most 256 octets, its angle brackets included)
ADDRESS_LIMIT = 254
#: characters of an address list (To, Cc, Bcc, Reply-To) read: about 800 plain addresses (Gmail accepts
#: at most 500 recipients per message)
ADDRESS_HEADER_LIMIT = 32_768
#: characters of part headers (Content-Type + Content-Disposition) per message read with ``policy.default``
#: (about 5 µs a character, up to 15 µs on adversarial shapes); later parts are read the compat32 way
HEADER_PARSE_BUDGET = 16_384
#: nesting levels of multipart / message parts parsed; a container nested deeper is read as text/plain
MAX_DEPTH = 100
#: leaf parts read one by one; the parts after these are kept together as one ``.eml`` attachment
MAX_PARTS = 500
#: the headers a part's capped reads cover (see :class:`_Part`)
_CAPPED_HEADERS = frozenset({"content-type", "content-disposition"})


class _Part(Message):
	"""A compat32 message part whose Content-Type / Content-Disposition are read (by ``get`` and so by
	``get_param``, ``get_filename``, ``get_boundary``, ``get_content_charset`` — the stdlib parser's own
	calls included) up to :data:`HEADER_LIMIT` characters, and which, when it is a multipart or message
	part nested deeper than :data:`MAX_DEPTH` (set by :class:`_Parser`), reads as ``text/plain`` (so the
	parser keeps its content as one string). ``_headers`` keep the full values."""

	_atlas_too_deep = False

	def get(self, name, failobj=None):
		value = super().get(name, failobj)
		if isinstance(value, str) and len(value) > HEADER_LIMIT and name.lower() in _CAPPED_HEADERS:
			return value[:HEADER_LIMIT]
		return value

	def get_content_type(self):
		ctype = super().get_content_type()
		if self._atlas_too_deep and ctype.startswith(("multipart/", "message/")):
			return "text/plain"  # a container too deep to look into: its content is read as text
		return ctype


#: how ``email.feedparser`` writes a multipart's boundary check: ``boundaryre.match`` of this pattern
#: around ``re.escape("--" + boundary)``
_BOUNDARY_PATTERN = re.compile(re.escape("(?P<sep>") + "(.*)" + re.escape(
	r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"), re.DOTALL)


def _separator(pred) -> str | None:
	"""The separator (``--`` + boundary) a stdlib boundary check ``pred`` looks for, or None when ``pred``
	is another check (``message/delivery-status`` blocks end at an empty line) or not recognised."""
	pattern = getattr(getattr(pred, "__self__", None), "pattern", None)
	return _separator_of(pattern) if isinstance(pattern, str) else None


@lru_cache(maxsize=1024)  # asked at every push and pop: twice per part of a multipart
def _separator_of(pattern: str) -> str | None:
	m = _BOUNDARY_PATTERN.fullmatch(pattern)
	if not m:
		return None
	separator = re.sub(r"\\(.)", r"\1", m.group(1), flags=re.DOTALL)
	return separator if re.escape(separator) == m.group(1) and separator.startswith("--") else None


class _Input(email.feedparser.BufferedSubFile):
	"""The stdlib parser's line buffer, with the end-of-part checks skipped for a line that cannot end a
	part. The stdlib ``readline`` tests every line against the boundary of every enclosing multipart
	(work = lines x depth). A boundary line is ``--boundary`` + optional ``--`` + spaces/tabs + line end,
	so the separators that could match a line are known from the line itself: the stdlib checks run only
	for a line that names one of the enclosing separators. Other checks (an empty line ending a
	``message/delivery-status`` block) take the stdlib path for every line."""

	def __init__(self):
		super().__init__()
		self._other_checks = 0
		self._separators: dict[str, int] = {}  # separator -> how many enclosing parts use it
		self._by_stripped: dict[str, set[str]] = {}  # separator without trailing spaces/tabs -> separators

	def push_eof_matcher(self, pred):
		separator = _separator(pred)
		if separator is None:
			self._other_checks += 1
		else:
			self._separators[separator] = self._separators.get(separator, 0) + 1
			self._by_stripped.setdefault(separator.rstrip(" \t"), set()).add(separator)
		super().push_eof_matcher(pred)

	def pop_eof_matcher(self):
		pred = super().pop_eof_matcher()
		separator = _separator(pred)
		if separator is None:
			self._other_checks -= 1
		else:
			self._separators[separator] -= 1
			if not self._separators[separator]:
				del self._separators[separator]
				stripped = self._by_stripped[separator.rstrip(" \t")]
				stripped.discard(separator)
				if not stripped:
					del self._by_stripped[separator.rstrip(" \t")]
		return pred

	def _may_end_part(self, line: str) -> bool:
		r"""Some enclosing boundary check could hold for ``line`` (it is ``separator`` + ``(--)?`` +
		``[ \t]*`` + one line end)."""
		if not line.startswith("--"):
			return False
		core = line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith(("\r", "\n")) else line
		stripped = core.rstrip(" \t")
		if stripped.endswith("--") and stripped[:-2] in self._separators:
			return True
		return any(core.startswith(separator) for separator in self._by_stripped.get(stripped, ()))

	def readline(self):
		lines = self._lines
		if lines and not self._other_checks and not self._may_end_part(lines[0]):
			return lines.popleft()
		return super().readline()


class _Parser(email.feedparser.FeedParser):
	"""``email.message_from_bytes(raw, policy=compat32)`` with :class:`_Part` parts, :class:`_Input` and a
	depth bound: a multipart or message part nested deeper than :data:`MAX_DEPTH` is read as text
	(``too_deep`` counts the parts made that deep, of any type)."""

	def __init__(self):
		super().__init__(_factory=_Part, policy=email.policy.compat32)
		self._input = _Input()  # before the first feed: the parse generator reads self._input lazily
		self.too_deep = 0

	def _new_message(self):
		super()._new_message()
		if len(self._msgstack) > MAX_DEPTH:
			self._cur._atlas_too_deep = True
			self.too_deep += 1


def _parse_tree(raw: bytes, headers_only: bool = False) -> tuple[Message, int]:
	"""The compat32 tree of ``raw`` (as ``email.message_from_bytes`` decodes it: ASCII, surrogate escapes)
	and how many parts were too deep; ``headers_only`` leaves the body one string."""
	parser = _Parser()
	if headers_only:
		parser._set_headersonly()
	parser.feed(raw.decode("ascii", errors="surrogateescape"))
	return parser.close(), parser.too_deep


def _capped(value: str, limit: int, name: str, errors: list[str] | None) -> str:
	"""``value`` cut to ``limit`` characters, the cut noted in ``errors`` (when given)."""
	if len(value) <= limit:
		return value
	if errors is not None:
		errors.append(f"{name} header: {len(value)} characters, the first {limit} read")
	return value[:limit]


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
		"""All errors as one line each, at most :data:`PARSE_ERROR_LIMIT` characters (then how many more
		there were); empty when the message read cleanly."""
		text = "\n".join(self.errors)
		if len(text) <= PARSE_ERROR_LIMIT:
			return text
		kept = text[:PARSE_ERROR_LIMIT].rsplit("\n", 1)[0]
		more = len(self.errors) - kept.count("\n") - 1
		return f"{kept}\n… and {more} more errors"


_DEFAULT = email.policy.default
#: characters of :attr:`ParsedMessage.parse_error` (stored HTML-escaped in a 64 KB text column)
PARSE_ERROR_LIMIT = 8_000


def _raw_header(msg: Message, name: str) -> str | None:
	"""First raw value of header ``name`` as stored by the parser (unfolded lines kept), or None."""
	lname = name.lower()
	for k, v in msg._headers:  # (name, raw value) pairs of the compat32 parse
		if k.lower() == lname:
			return v
	return None


def _parsed_header(msg: Message, name: str, errors: list[str]):
	"""Header ``name`` exactly as ``email.policy.default`` returns it on access (a header object), its
	encoded words' charset labels read by the WHATWG table (:func:`charsets.relabel`).

	The compat32 parser keeps raw values the same way ``policy.default`` does (``header_source_parse``
	is identical), so running ``policy.default.header_fetch_parse`` on them gives the same object that
	``message_from_bytes(raw, policy=policy.default)[name]`` gives, at a fraction of the cost of
	parsing every header of every part.
	"""
	raw = _raw_header(msg, name)
	if raw is None:
		return None
	raw = charsets.relabel(_capped(raw, HEADER_LIMIT, name, errors)) if isinstance(raw, str) else raw
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
	windows-1252 (what legacy clients that sent raw 8-bit headers used; the WHATWG one, in which every
	byte is a character: :data:`charsets.WINDOWS_1252`)."""
	if not any("\udc80" <= ch <= "\udcff" for ch in text):
		return text
	raw = text.encode("utf-8", "surrogateescape")
	try:
		return raw.decode("utf-8")
	except UnicodeDecodeError:
		return raw.decode(charsets.WINDOWS_1252, "replace")


def _lenient_text(raw: str) -> str:
	"""RFC 2047 encoded words of ``raw`` decoded (``email.header``; charset labels read by the WHATWG
	table, :func:`charsets.relabel`), ``raw`` itself when that fails. ``decode_header`` is quadratic on
	some shapes (``=?a?q?x`` repeated, which relabelling leaves alone): callers pass at most
	:data:`HEADER_LIMIT` characters (:func:`_lenient_list` for address lists)."""
	try:
		return str(make_header(decode_header(charsets.relabel(raw))))
	except Exception:
		return raw


def _lenient_list(raw: str) -> str:
	""":func:`_lenient_text` of an address list: at once when it is short (the usual case); a longer one
	comma by comma (an encoded word holds no comma: RFC 2047 section 5), each piece of at most
	:data:`HEADER_LIMIT` characters decoded, longer ones kept as written."""
	if len(raw) <= HEADER_LIMIT:
		return _lenient_text(raw)
	return ",".join(_lenient_text(piece) if "=?" in piece and len(piece) <= HEADER_LIMIT else piece
					for piece in raw.split(","))


def _getaddresses(text: str, name: str, errors: list[str] | None) -> list[tuple[str, str]]:
	"""``email.utils.getaddresses`` of ``text``; it recurses into nested comments (``((((…``), so on a
	RecursionError (or any error) the list is read again with comments dropped (:func:`_strip_comments`,
	iterative), the error noted."""
	try:
		return getaddresses([text])
	except Exception as exc:
		if errors is not None:
			errors.append(f"{name} header: {type(exc).__name__}: read again without comments")
		try:
			return getaddresses([_strip_comments(text)])
		except Exception:
			return []


def _header_text(msg: Message, name: str, errors: list[str]) -> str:
	"""Decoded header value as ``email.policy.default`` gives it; lenient decoding on defects."""
	header = _parsed_header(msg, name, errors)
	if header is not None:
		return unsurrogate(str(header))
	raw = _raw_header(msg, name)
	return unsurrogate(_WS.sub(" ", _lenient_text(str(raw)[:HEADER_LIMIT])).strip()) if raw else ""


def _address_list(msg: Message, name: str, errors: list[str] | None = None) -> list[tuple[str, str]]:
	"""Recipients (To/Cc/Bcc/Reply-To) the cheap way: encoded words decoded, then ``getaddresses``; the
	first :data:`ADDRESS_HEADER_LIMIT` characters."""
	raw = _raw_header(msg, name)
	if not raw:
		return []
	raw = _capped(str(raw), ADDRESS_HEADER_LIMIT, name, errors)
	text = _lenient_list(raw) if "=?" in raw else raw
	return [(unsurrogate(n), unsurrogate(a)) for n, a in _getaddresses(_WS.sub(" ", text), name, errors) if a or n]


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
	raw = str(raw)[:HEADER_LIMIT]
	return [(unsurrogate(n), unsurrogate(a)) for n, a in _getaddresses(_lenient_text(raw), name, errors) if a or n]


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
#: a quoted string; ``(")?``: an unterminated one matches to the end instead of failing, so no start is
#: scanned to the end more than once (``"(?:[^"\\]|\\.)*"`` tried every later quote again: quadratic)
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*(")?', re.DOTALL)


def _unquoted(m: re.Match) -> str:
	return "q" if m.group(1) else m.group(0)


def _several_addresses(text: str) -> bool:
	r"""More than one space-separated word of ``text`` has an ``@`` (outside quotes): addresses run
	together without a comma (``a@x.org b@y.org``), which policy.default reads as the first of them.
	A complete quoted string counts as one word; from an unterminated quote on, the text is read as it is
	(what ``re.sub(r'"(?:[^"\\]|\\.)*"', "q", text)`` gives: once a quote finds no end, no later one can)."""
	words = _WS.split(_QUOTED.sub(_unquoted, text).strip())
	return sum("@" in w for w in words) > 1


def _sender(msg: Message, errors: list[str]) -> tuple[str, str]:
	"""The first From address as ``(display name, address)``.

	The address is ``email.policy.default``'s addr-spec: the header's address in canonical form, unusual
	ones kept as they are (``"john doe"@x.org`` keeps its quotes, ``john`` without a domain stays
	``john``, ``<>`` stays ``<>``). Where that reading loses part of what the header has (``a@b@c`` or
	``<<a@b>>`` read as ``<>``, ``user@ex ample.com`` cut to ``user@ex``, ``john;doe@x.org`` cut to
	``john``, a header policy.default cannot parse at all), the address text exactly as written in the
	header is given instead, and the difference is noted in ``errors``. Whether the address is valid is
	not decided here; an address longer than :data:`ADDRESS_LIMIT` characters is cut there (noted)."""
	name, addr = _sender_as_read(msg, errors)
	if len(addr) > ADDRESS_LIMIT:
		errors.append(f"From header: an address of {len(addr)} characters, the first {ADDRESS_LIMIT} kept")
		addr = addr[:ADDRESS_LIMIT]
	return name, addr


def _sender_as_read(msg: Message, errors: list[str]) -> tuple[str, str]:
	froms = _addresses(msg, "From", errors)
	name, addr = froms[0] if froms else ("", "")
	raw = _raw_header(msg, "From")
	if raw is None:
		return name, addr
	raw_name, raw_addr = _first_mailbox_text(unsurrogate(str(raw)[:ADDRESS_HEADER_LIMIT]))
	if _SQUASH.sub("", addr) == _SQUASH.sub("", raw_addr) or _several_addresses(raw_addr):
		return name, addr
	errors.append(f"From header: address kept as written ({raw_addr[:200]!r}; policy.default reads {addr[:200]!r})")
	if not name and raw_name:
		name = _WS.sub(" ", _lenient_text(raw_name[:HEADER_LIMIT])).strip().strip('"').strip()
	return name, raw_addr


def _date(msg: Message, errors: list[str]) -> datetime | None:
	raw = _raw_header(msg, "Date")
	if raw is None:
		return None
	header = _parsed_header(msg, "Date", errors)
	dt = getattr(header, "datetime", None)
	if dt is None:
		try:
			dt = parsedate_to_datetime(str(raw)[:HEADER_LIMIT])
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
	"""Decoded text of a text/* leaf: transfer encoding undone, then the WHATWG *decode* of its ``charset``
	label (:func:`charsets.decode`: a byte order mark wins, ``ks_c_5601-1987`` is windows-949, no label is
	us-ascii = windows-1252, U+FFFD for malformed bytes); an unknown label is read as UTF-8 when the bytes
	are UTF-8, else as windows-1252, and noted in ``errors``."""
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
	text, problem = charsets.decode(payload, charset)
	if problem:
		errors.append(f"{part.get_content_type()} part: {problem}")
	return text


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
#: a line that starts like a Content-* header (see :func:`_parts_in_epilogue`)
_CONTENT_LINE = re.compile(r"content-[a-z-]+[ \t]*:", re.I)


def _parts_in_epilogue(epilogue: str) -> bool:
	r"""The epilogue holds what looks like more MIME parts: a line ``--<non-space>…``, then (after only
	non-empty lines) a line starting with a ``Content-*:`` header. One pass over the lines: the regular
	expression ``^--\S[^\n]*\n(?:[^\n]+\n)*?content-[a-z-]+[ \t]*:`` (re.I | re.M) it replaces tried every
	``--`` line against every line after it (quadratic: 100 KB of ``--x`` lines took 8 s)."""
	lines = epilogue.split("\n")
	armed = False  # a "--" line was seen, with only non-empty lines since
	for i, line in enumerate(lines):
		if armed and _CONTENT_LINE.match(line):
			return True
		if not line:
			armed = False
		elif i < len(lines) - 1 and line.startswith("--") and len(line) > 2 and not line[2].isspace():
			armed = True
	return False


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
	A header policy.default cannot read is recorded in ``errors``, never raised.

	Charset labels (RFC 2231 ``filename*=gb2312''...``, RFC 2047 names) are read by the WHATWG table:
	every value is passed through :func:`charsets.relabel` before either parser sees it.

	Bounded: each value is read up to :data:`HEADER_LIMIT` characters and parsed once (the parsed header
	objects are kept: ``EmailMessage.get`` would parse again on every read); once :data:`HEADER_PARSE_BUDGET`
	characters were parsed for this message, later parts are read the compat32 way (``Message.get_param``
	/ ``get_filename``: the same for ordinary headers; RFC 2047 names are still decoded by :meth:`name`)."""

	def __init__(self, errors: list[str]):
		self.errors = errors
		self._views: dict[int, Message] = {}
		self._relabelled: dict[int, list[tuple[str, str]]] = {}  # id(part) -> its capped, relabelled headers
		self.budget = HEADER_PARSE_BUDGET
		self.body_visits = 0  # parts :func:`_find_body` looked at in its current walk

	def spend(self, characters: int) -> bool:
		"""Take ``characters`` from the message's ``policy.default`` budget; False (nothing taken, the
		exhaustion noted once) when not enough is left."""
		if characters <= self.budget:
			self.budget -= characters
			return True
		if self.budget >= 0:
			self.errors.append(f"MIME part headers beyond {HEADER_PARSE_BUDGET} characters read the compat32 way")
			self.budget = -1
		return False

	def _headers(self, part: Message) -> list[tuple[str, str]]:
		"""The part's Content-Type / Content-Disposition, each cut to :data:`HEADER_LIMIT` characters (the
		cut noted once) and relabelled (:func:`charsets.relabel`); read once per part."""
		headers = self._relabelled.get(id(part))
		if headers is None:
			headers = []
			for k, v in part._headers:
				if k.lower() in _MIME_HEADERS:
					if isinstance(v, str):
						if len(v) > HEADER_LIMIT:
							v = _capped(v, HEADER_LIMIT, f"{part.get_content_type()} part: {k}", self.errors)
						v = charsets.relabel(v)
					headers.append((k, v))
			self._relabelled[id(part)] = headers
		return headers

	def _view(self, part: Message) -> Message:
		view = self._views.get(id(part))
		if view is None:
			headers = self._headers(part)
			if self.spend(sum(len(str(v)) for _, v in headers)):
				view = EmailMessage(policy=_DEFAULT)
				for k, v in headers:
					try:
						view._headers.append((k, _DEFAULT.header_fetch_parse(k, v)))
					except Exception:  # read (and recorded) by _read, which parses it again
						view._headers.append((k, v))
			else:
				view = Message()
				view._headers = headers
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
		return self._read(part, "Content-Disposition", lambda v: v.get_content_disposition() == "attachment"
						  if not isinstance(v, EmailMessage) else v.is_attachment(), False)

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
			compat = Message()  # the compat32 reading of the same (capped, relabelled) values
			compat._headers = list(self._headers(part))
			raw = compat.get_filename()
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
		raw_subject = str(_raw_header(inner, "Subject") or "")[:HEADER_LIMIT]
		if mime.spend(len(raw_subject)):
			subject = _WS.sub(" ", _header_text(inner, "Subject", [])).strip()
		else:
			subject = unsurrogate(_WS.sub(" ", _lenient_text(raw_subject)).strip())
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


def _remainder(parts: list[Message], linesep: str, errors: list[str]) -> Attachment:
	"""The leaf parts after the first :data:`MAX_PARTS`, kept together as they came: one ``multipart/mixed``
	entity (a ``.eml`` a mail client opens) holding each part's headers and undecoded content. Linear in
	their size; nothing of them is decoded or named."""
	eol = linesep.encode()
	chunks = []
	for part in parts:
		payload = _payload_bytes(part)
		if payload is None:  # an enclosed message: written back whole, headers included
			try:
				chunks.append(_message_bytes(part, linesep))
			except Exception:
				chunks.append(b"")
			continue
		head = b"".join(f"{k}: {v}".encode("utf-8", "surrogateescape") + eol for k, v in part._headers)
		chunks.append(head + eol + payload)
	boundary = "atlas-parts-" + hashlib.sha256(b"".join(chunks)).hexdigest()[:32]
	sep = b"--" + boundary.encode()
	content = (b"MIME-Version: 1.0" + eol + b'Content-Type: multipart/mixed; boundary="' + boundary.encode() + b'"'
			   + eol + eol + b"".join(sep + eol + chunk + eol for chunk in chunks) + sep + b"--" + eol)
	error = (f"the message has {MAX_PARTS + len(parts)} parts: the first {MAX_PARTS} were read one by one, "
			 f"the other {len(parts)} are kept together in this file as they came")
	errors.append(error)
	return Attachment(filename=f"parts {MAX_PARTS + 1}-{MAX_PARTS + len(parts)}.eml", content_type="message/rfc822",
					  content=content, error=error)


def _subparts(part: Message) -> list[Message]:
	payload = part._payload
	return [p for p in payload if isinstance(p, Message)] if isinstance(payload, list) else []


def _find_body(root: Message, part: Message, subtype: str, mime: _Mime):
	"""``EmailMessage.get_body``'s walk (stdlib ``MIMEPart._find_body``) on the compat32 tree: the
	text/``subtype`` candidates in order; parts with ``Content-Disposition: attachment`` are never the body,
	a multipart/related is looked into only at its root part (``start`` parameter, else the first). At most
	2 x :data:`MAX_PARTS` parts are looked at (a body after them is in the kept remainder anyway)."""
	mime.body_visits += 1
	if mime.body_visits > 2 * MAX_PARTS or mime.is_attachment(part):
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
		mime.body_visits = 0
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
		if _parts_in_epilogue(epilogue):
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
			out[name] = _WS.sub(" ", str(value)[:2000]).strip()[:500]
	ctype = _raw_header(msg, "Content-Type") or msg.get_content_type()
	out["content-type"] = _WS.sub(" ", str(ctype)[:2000]).strip()[:500]
	return out


def _auto_generated(msg: Message) -> str:
	auto = str(_raw_header(msg, "Auto-Submitted") or "")[:200].strip().lower()
	if auto and not auto.startswith("no"):
		return f"Auto-Submitted: {auto.split(';')[0]}"
	precedence = str(_raw_header(msg, "Precedence") or "")[:200].strip().lower()
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
		(RFC 2047 encoded words, RFC 6532 UTF-8), except that every charset label (encoded words, body
		parts, RFC 2231 file names) is read by the WHATWG Encoding Standard's table
		(:mod:`atlas_integrations.inbox.charsets`: ``ks_c_5601-1987`` is windows-949, ``iso-8859-1``
		windows-1252...); on a defect the raw value is decoded leniently and the defect recorded in
		``errors``. Never raises.

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
	body_read = True
	try:
		msg, too_deep = _parse_tree(raw)
	except Exception as exc:  # not expected (the parser is lenient, the depth bounded): keep the headers
		out.errors.append(f"message: {type(exc).__name__}: {exc}")
		body_read = False
		try:
			msg, too_deep = _parse_tree(raw, headers_only=True)
		except Exception:
			out.text = raw.decode("utf-8", errors="replace")
			return out

	errors = out.errors
	out.subject = _WS.sub(" ", _header_text(msg, "Subject", errors)).strip()
	out.sender = _sender(msg, errors)
	out.to = _address_list(msg, "To", errors)
	out.cc = _address_list(msg, "Cc", errors)
	out.bcc = _address_list(msg, "Bcc", errors)
	out.reply_to = _address_list(msg, "Reply-To", errors)
	out.date = _date(msg, errors)
	out.message_id = _header_text(msg, "Message-ID", errors).strip().strip("<>").strip()
	irt = _MSGID.findall(str(_raw_header(msg, "In-Reply-To") or "")[:HEADER_LIMIT])
	out.in_reply_to = irt[0].strip("<>") if irt else ""
	out.references = [r.strip("<>") for r in _MSGID.findall(str(_raw_header(msg, "References") or "")[
		:ADDRESS_HEADER_LIMIT]) if len(r) <= HEADER_LIMIT]
	out.auto_generated = _auto_generated(msg)
	out.signal_headers = signal_headers(msg)
	if not body_read:
		out.text = raw[cut:].decode("utf-8", errors="replace").strip()
		return out

	linesep = "\r\n" if b"\r\n" in raw[: cut + 4] else "\n"
	mime = _Mime(errors)
	try:
		bodies = _chosen_bodies(msg, mime)
	except Exception as exc:  # e.g. RecursionError on absurdly deep nesting
		errors.append(f"body choice: {type(exc).__name__}: {exc}")
		bodies = set()
	text_parts, html_parts, rest, deep_containers = [], [], [], 0
	try:
		for n, part in enumerate(_leaves(msg, errors)):
			if too_deep and part._atlas_too_deep and Message.get_content_type(part).startswith(("multipart/", "message/")):
				deep_containers += 1
			if n >= MAX_PARTS:
				rest.append(part)
				continue
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
		if deep_containers:
			errors.append(f"MIME parts nested deeper than {MAX_DEPTH} levels: {deep_containers} read as text")
		if rest:
			out.attachments.append(_remainder(rest, linesep, errors))
		out.text = "\n\n".join(t for t in text_parts if t).strip()
		out.html = "\n".join(h for h in html_parts if h).strip()
	except Exception as exc:
		errors.append(f"body: {type(exc).__name__}: {exc}")
		out.text = raw[cut:].decode("utf-8", errors="replace").strip()
	return out


def snippet_of(text: str, length: int = 200) -> str:
	"""A Gmail-like snippet: whitespace collapsed, at most ``length`` characters."""
	return _WS.sub(" ", text or "").strip()[:length]


#: characters of a message key kept: Communication ``atlas_message_key`` is a Data field (varchar 140); a
#: longer key (a stranger's 1,000-character Message-ID) would make the writer's insert fail
MESSAGE_KEY_LENGTH = 140


def rfc_message_key(message_id: str | None) -> str:
	"""The comparable form of an RFC 5322 Message-ID: angle brackets and space removed, lower case, at most
	:data:`MESSAGE_KEY_LENGTH` characters."""
	return (message_id or "").strip().strip("<>").strip().lower()[:MESSAGE_KEY_LENGTH]


def format_address(pair: tuple[str, str]) -> str:
	"""``("Ann", "ann@x.org")`` -> ``"Ann <ann@x.org>"`` as display text (names are not RFC 2047-encoded;
	a name with specials is quoted); the bare address when there is no name."""
	name, addr = pair
	if name and addr:
		if any(c in name for c in ',;:"<>@()[]\\'):
			name = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
		return f"{name} <{addr}>"
	return addr or name
