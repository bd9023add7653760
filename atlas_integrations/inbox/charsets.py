"""Charset labels as mail clients write them, read the way browsers read them: the one place that decides
which decoder a label names.

Mail names its charsets with labels (an encoded word's ``=?ks_c_5601-1987?B?...?=``, a part's
``charset=gb2312``, an RFC 2231 ``filename*=shift_jis''...``). Senders on Windows write the *label* of
an old standard and mean Microsoft's larger code page: ``ks_c_5601-1987`` / ``euc-kr`` for windows-949,
``gb2312`` for GBK, ``shift_jis`` for windows-31J, ``iso-8859-1`` / ``us-ascii`` for windows-1252.
Python's codecs take the label literally (``ks_c_5601-1987`` is ``euc_kr``, which has no "똠": a
Korean name from Outlook came out as mojibake or stayed an encoded word). The WHATWG Encoding Standard
(https://encoding.spec.whatwg.org/#names-and-labels) is the table every browser and Microsoft's own
mail clients agree with; this module is that table:

* :data:`WHATWG_LABELS` — the standard's label table (``encodings.json``, whatwg/encoding commit
  ``a985b62a``, 2026-05-21), encoding name -> its labels (lower case, as the standard lists them);
* :data:`PYTHON_CODECS` — each WHATWG encoding -> the Python codec that implements it. Where Python's
  codec differs from the standard's index, a codec built here from Python's own table plus the
  standard's differences is registered under ``whatwg-<name>`` (:data:`SINGLE_BYTE_FIXES`): the nine
  ``windows-*`` code pages map the bytes 0x80-0x9F Python leaves undefined to U+0080-U+009F as the
  standard's indexes do, windows-1255 0xCA is U+05BA, KOI8-U 0xAE/0xBE are U+045E/U+040E;
  ``x-user-defined`` is the standard's 0x80-0xFF -> U+F780-U+F7FF. Each single-byte codec equals the
  standard's index byte for byte (``tests/pure/data/whatwg_single_byte.json`` holds the indexes).
  The multi-byte ones are Python's nearest codecs, checked against the standard's indexes: EUC-KR
  (windows-949) = ``cp949`` and Shift_JIS = ``cp932``, identical on every pointer; GBK and gb18030 =
  ``gb18030`` (20 of 23,940 two-byte pointers differ: the 2022 edition's moves out of the private use
  area); Big5 = ``big5hkscs`` (73 of 14,686 differ: glyph-variant choices such as U+2027 / U+2022);
  EUC-JP = ``euc_jp`` and ISO-2022-JP = ``iso2022_jp`` (JIS X 0208 as standardised: the 457 NEC/IBM
  extension characters Windows adds, e.g. "①" or "髙", are not decoded).

One deliberate difference from the standard: it decodes ISO-2022-KR, HZ and ISO-2022-CN as a single
U+FFFD (the "replacement" encoding, which keeps a browser from being tricked into reading markup out of
shifted bytes). Mail is decoded to text and escaped or sanitised afterwards, so here ``iso-2022-kr`` and
``hz-gb-2312`` are read with Python's ``iso2022_kr`` and ``hz`` (:data:`MAIL_REPLACEMENT_CODECS`) and the
others are unknown labels.

A label the table does not list is read the way Python reads it, except that a label Python reads with
the codec of a WHATWG label takes that label's WHATWG codec (``ks_c_5601`` reads as ``euc_kr`` in Python:
it gets ``cp949``; ``cp936`` -> ``gb18030``; ``latin-1`` -> windows-1252). A label nobody knows is
*unknown*: :func:`lookup` answers None and the callers keep their fallback.

Everything here is linear in its input; the codecs are registered once, at import, under names no
other codec uses (``whatwg-...``), so nothing else in the process changes.
"""

from __future__ import annotations

import codecs
import email.charset
import importlib
import re
from functools import lru_cache

#: The WHATWG Encoding Standard's label table (https://encoding.spec.whatwg.org/#names-and-labels, from
#: its ``encodings.json``): encoding name -> the labels that name it. A label is matched after removing
#: leading and trailing ASCII white space and lower-casing it (the standard's "get an encoding").
WHATWG_LABELS: dict[str, tuple[str, ...]] = {
	# The Encoding
	"UTF-8": ("unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "utf-8", "utf8", "x-unicode20utf8"),
	# Legacy single-byte encodings
	"IBM866": ("866", "cp866", "csibm866", "ibm866"),
	"ISO-8859-2": ("csisolatin2", "iso-8859-2", "iso-ir-101", "iso8859-2", "iso88592", "iso_8859-2",
				   "iso_8859-2:1987", "l2", "latin2"),
	"ISO-8859-3": ("csisolatin3", "iso-8859-3", "iso-ir-109", "iso8859-3", "iso88593", "iso_8859-3",
				   "iso_8859-3:1988", "l3", "latin3"),
	"ISO-8859-4": ("csisolatin4", "iso-8859-4", "iso-ir-110", "iso8859-4", "iso88594", "iso_8859-4",
				   "iso_8859-4:1988", "l4", "latin4"),
	"ISO-8859-5": ("csisolatincyrillic", "cyrillic", "iso-8859-5", "iso-ir-144", "iso8859-5", "iso88595",
				   "iso_8859-5", "iso_8859-5:1988"),
	"ISO-8859-6": ("arabic", "asmo-708", "csiso88596e", "csiso88596i", "csisolatinarabic", "ecma-114",
				   "iso-8859-6", "iso-8859-6-e", "iso-8859-6-i", "iso-ir-127", "iso8859-6", "iso88596",
				   "iso_8859-6", "iso_8859-6:1987"),
	"ISO-8859-7": ("csisolatingreek", "ecma-118", "elot_928", "greek", "greek8", "iso-8859-7", "iso-ir-126",
				   "iso8859-7", "iso88597", "iso_8859-7", "iso_8859-7:1987", "sun_eu_greek"),
	"ISO-8859-8": ("csiso88598e", "csisolatinhebrew", "hebrew", "iso-8859-8", "iso-8859-8-e", "iso-ir-138",
				   "iso8859-8", "iso88598", "iso_8859-8", "iso_8859-8:1988", "visual"),
	"ISO-8859-8-I": ("csiso88598i", "iso-8859-8-i", "logical"),
	"ISO-8859-10": ("csisolatin6", "iso-8859-10", "iso-ir-157", "iso8859-10", "iso885910", "l6", "latin6"),
	"ISO-8859-13": ("iso-8859-13", "iso8859-13", "iso885913"),
	"ISO-8859-14": ("iso-8859-14", "iso8859-14", "iso885914"),
	"ISO-8859-15": ("csisolatin9", "iso-8859-15", "iso8859-15", "iso885915", "iso_8859-15", "l9"),
	"ISO-8859-16": ("iso-8859-16",),
	"KOI8-R": ("cskoi8r", "koi", "koi8", "koi8-r", "koi8_r"),
	"KOI8-U": ("koi8-ru", "koi8-u"),
	"macintosh": ("csmacintosh", "mac", "macintosh", "x-mac-roman"),
	"windows-874": ("dos-874", "iso-8859-11", "iso8859-11", "iso885911", "tis-620", "windows-874"),
	"windows-1250": ("cp1250", "windows-1250", "x-cp1250"),
	"windows-1251": ("cp1251", "windows-1251", "x-cp1251"),
	"windows-1252": ("ansi_x3.4-1968", "ascii", "cp1252", "cp819", "csisolatin1", "ibm819", "iso-8859-1",
					 "iso-ir-100", "iso8859-1", "iso88591", "iso_8859-1", "iso_8859-1:1987", "l1", "latin1",
					 "us-ascii", "windows-1252", "x-cp1252"),
	"windows-1253": ("cp1253", "windows-1253", "x-cp1253"),
	"windows-1254": ("cp1254", "csisolatin5", "iso-8859-9", "iso-ir-148", "iso8859-9", "iso88599", "iso_8859-9",
					 "iso_8859-9:1989", "l5", "latin5", "windows-1254", "x-cp1254"),
	"windows-1255": ("cp1255", "windows-1255", "x-cp1255"),
	"windows-1256": ("cp1256", "windows-1256", "x-cp1256"),
	"windows-1257": ("cp1257", "windows-1257", "x-cp1257"),
	"windows-1258": ("cp1258", "windows-1258", "x-cp1258"),
	"x-mac-cyrillic": ("x-mac-cyrillic", "x-mac-ukrainian"),
	# Legacy multi-byte Chinese (simplified) encodings
	"GBK": ("chinese", "csgb2312", "csiso58gb231280", "gb2312", "gb_2312", "gb_2312-80", "gbk", "iso-ir-58",
			"x-gbk"),
	"gb18030": ("gb18030",),
	# Legacy multi-byte Chinese (traditional) encodings
	"Big5": ("big5", "big5-hkscs", "cn-big5", "csbig5", "x-x-big5"),
	# Legacy multi-byte Japanese encodings
	"EUC-JP": ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
	"ISO-2022-JP": ("csiso2022jp", "iso-2022-jp"),
	"Shift_JIS": ("csshiftjis", "ms932", "ms_kanji", "shift-jis", "shift_jis", "sjis", "windows-31j", "x-sjis"),
	# Legacy multi-byte Korean encodings
	"EUC-KR": ("cseuckr", "csksc56011987", "euc-kr", "iso-ir-149", "korean", "ks_c_5601-1987", "ks_c_5601-1989",
			   "ksc5601", "ksc_5601", "windows-949"),
	# Legacy miscellaneous encodings
	"replacement": ("csiso2022kr", "hz-gb-2312", "iso-2022-cn", "iso-2022-cn-ext", "iso-2022-kr", "replacement"),
	"UTF-16BE": ("unicodefffe", "utf-16be"),
	"UTF-16LE": ("csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le"),
	"x-user-defined": ("x-user-defined",),
}

#: label (lower case) -> WHATWG encoding name
LABELS: dict[str, str] = {label: name for name, labels in WHATWG_LABELS.items() for label in labels}

#: WHATWG single-byte encodings whose Python codec differs from the standard's index, and how: the
#: Python codec module whose ``decoding_table`` is the base, whether the bytes 0x80-0x9F that table leaves
#: undefined map to U+0080-U+009F (the standard's indexes map them so), and single bytes that map elsewhere
#: (byte -> code point). Read off the standard's ``index-<name>.txt`` files (whatwg/encoding ``a985b62a``).
SINGLE_BYTE_FIXES: dict[str, tuple[str, bool, dict[int, int]]] = {
	"windows-874": ("cp874", True, {}),
	"windows-1250": ("cp1250", True, {}),
	"windows-1251": ("cp1251", True, {}),
	"windows-1252": ("cp1252", True, {}),
	"windows-1253": ("cp1253", True, {}),
	"windows-1254": ("cp1254", True, {}),
	"windows-1255": ("cp1255", True, {0xCA: 0x05BA}),
	"windows-1257": ("cp1257", True, {}),
	"windows-1258": ("cp1258", True, {}),
	"KOI8-U": ("koi8_u", False, {0xAE: 0x045E, 0xBE: 0x040E}),  # the standard's KOI8-U is KOI8-RU
}

#: prefix of the codecs registered here (``whatwg-windows-1252``; Python looks it up as ``whatwg_windows_1252``)
PREFIX = "whatwg-"

#: WHATWG encoding name -> Python codec name (None: no decoder, the label is treated as unknown)
PYTHON_CODECS: dict[str, str | None] = {
	"UTF-8": "utf-8",
	"IBM866": "cp866",
	**{f"ISO-8859-{n}": f"iso8859_{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)},
	"ISO-8859-8-I": "iso8859_8",  # logical order: the same bytes, the difference is in display
	"KOI8-R": "koi8_r",
	"macintosh": "mac_roman",
	"windows-1256": "cp1256",
	"x-mac-cyrillic": "mac_cyrillic",
	**{name: PREFIX + name.lower() for name in SINGLE_BYTE_FIXES},
	"GBK": "gb18030",  # the standard's GBK decoder is its gb18030 decoder
	"gb18030": "gb18030",
	"Big5": "big5hkscs",
	"EUC-JP": "euc_jp",
	"ISO-2022-JP": "iso2022_jp",
	"Shift_JIS": "cp932",
	"EUC-KR": "cp949",
	"replacement": None,  # see MAIL_REPLACEMENT_CODECS
	"UTF-16BE": "utf-16-be",
	"UTF-16LE": "utf-16-le",
	"x-user-defined": PREFIX + "x-user-defined",
}

#: labels of the standard's "replacement" encoding that mail reads with the codec they name (see the module
#: docstring); the other replacement labels (``iso-2022-cn``, ``iso-2022-cn-ext``, ``replacement``) are unknown
MAIL_REPLACEMENT_CODECS = {"csiso2022kr": "iso2022_kr", "iso-2022-kr": "iso2022_kr", "hz-gb-2312": "hz"}

#: the WHATWG byte order marks, longest first: bytes -> Python codec (the standard's "BOM sniff")
BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_BE, "utf-16-be"), (codecs.BOM_UTF16_LE, "utf-16-le"))

#: the Python codec of WHATWG windows-1252: what ``iso-8859-1`` and ``us-ascii`` name, and how raw 8-bit
#: header bytes that are not UTF-8 are read
WINDOWS_1252 = PREFIX + "windows-1252"

_ASCII_WS = " \t\n\f\r"


def _decoding_table(name: str) -> str:
	"""The 256-character decoding table (``"\\ufffe"`` = undefined) of a registered WHATWG single-byte codec."""
	if name == "x-user-defined":
		return "".join(map(chr, range(0x80))) + "".join(chr(0xF780 + b) for b in range(0x80))
	module, c1, fixes = SINGLE_BYTE_FIXES[name]
	table = list(importlib.import_module(f"encodings.{module}").decoding_table)
	for b in range(0x80, 0xA0):
		if c1 and table[b] == "\ufffe":
			table[b] = chr(b)
	for b, cp in fixes.items():
		table[b] = chr(cp)
	return "".join(table)


def _charmap_codec(codec_name: str, table: str) -> codecs.CodecInfo:
	"""A codec for a single-byte ``table`` (as Python's own ``encodings/cp1252.py`` is built)."""
	encoding_table = codecs.charmap_build(table)

	class IncrementalEncoder(codecs.IncrementalEncoder):
		def encode(self, input, final=False):
			return codecs.charmap_encode(input, self.errors, encoding_table)[0]

	class IncrementalDecoder(codecs.IncrementalDecoder):
		def decode(self, input, final=False):
			return codecs.charmap_decode(input, self.errors, table)[0]

	class StreamWriter(codecs.StreamWriter):
		def encode(self, input, errors="strict"):
			return codecs.charmap_encode(input, errors, encoding_table)

	class StreamReader(codecs.StreamReader):
		def decode(self, input, errors="strict"):
			return codecs.charmap_decode(input, errors, table)

	return codecs.CodecInfo(
		name=codec_name,
		encode=lambda input, errors="strict": codecs.charmap_encode(input, errors, encoding_table),
		decode=lambda input, errors="strict": codecs.charmap_decode(input, errors, table),
		incrementalencoder=IncrementalEncoder, incrementaldecoder=IncrementalDecoder,
		streamreader=StreamReader, streamwriter=StreamWriter,
	)


def _normalised(name: str) -> str:
	"""A codec name as ``codecs.lookup`` hands it to a search function (lower case, ``-`` and space -> ``_``)."""
	return name.lower().replace("-", "_").replace(" ", "_")


#: normalised names of the codecs built here -> WHATWG name (``whatwg_windows_1252`` -> ``windows-1252``)
_BUILT = {_normalised(PREFIX + name): name for name in (*SINGLE_BYTE_FIXES, "x-user-defined")}
_CODECS: dict[str, codecs.CodecInfo] = {}


def _search(normalised: str) -> codecs.CodecInfo | None:
	"""The ``codecs`` search function. Answers only names that start with :data:`PREFIX`: the codecs built
	here, and ``whatwg-<Python codec>`` for each Python codec the table names (``whatwg-cp949`` is ``cp949``:
	the name :func:`relabel` writes, which ``email.charset``'s own aliases leave alone)."""
	if not normalised.startswith(_normalised(PREFIX)):
		return None
	name = _BUILT.get(normalised)
	if name is not None:
		info = _CODECS.get(name)
		if info is None:
			info = _CODECS[name] = _charmap_codec(PREFIX + name.lower(), _decoding_table(name))
		return info
	rest = normalised[len(PREFIX):]
	return codecs.lookup(rest) if rest in _TABLE_CODECS else None


codecs.register(_search)


def _python_codec(label: str) -> str | None:
	"""Python's own codec for ``label`` (its canonical name), None when Python has none."""
	try:
		return codecs.lookup(label).name
	except (LookupError, ValueError, TypeError):  # ValueError: a NUL in the name
		return None


def _by_python_codec() -> dict[str, str]:
	"""Python codec name -> WHATWG codec, for every Python codec that reads a WHATWG label (``euc_kr`` ->
	``cp949``, ``latin_1`` -> windows-1252, ``gb2312`` -> ``gb18030``...). A Python codec that reads labels
	of two WHATWG encodings with different codecs is left out (none does in Python 3.11)."""
	seen: dict[str, set[str]] = {}
	for label, name in LABELS.items():
		target = MAIL_REPLACEMENT_CODECS.get(label) or PYTHON_CODECS[name]
		own = _python_codec(label)
		if own and target:
			seen.setdefault(own, set()).add(_python_codec(target) or target)
	return {own: targets.pop() for own, targets in seen.items() if len(targets) == 1}


_BY_PYTHON_CODEC = _by_python_codec()
#: normalised names of the Python codecs the table chooses (what ``whatwg-<codec>`` may name)
_TABLE_CODECS = frozenset(_normalised(c) for c in (*PYTHON_CODECS.values(), *MAIL_REPLACEMENT_CODECS.values(),
												   *_BY_PYTHON_CODEC.values()) if c and not c.startswith(PREFIX))


def encoding_name(label: str | None) -> str | None:
	"""The WHATWG encoding a label names (``"ks_c_5601-1987"`` -> ``"EUC-KR"``), None when the table has no
	such label. Leading/trailing ASCII white space is ignored and case does not matter."""
	if not isinstance(label, str):
		return None
	return LABELS.get(label.strip(_ASCII_WS).lower())


@lru_cache(maxsize=512)
def lookup(label: str | None) -> str | None:
	"""The Python codec to decode text labelled ``label`` with, e.g. ``"ks_c_5601-1987"`` -> ``"cp949"``,
	``"iso-8859-1"`` -> ``"whatwg-windows-1252"``, ``"gb2312"`` -> ``"gb18030"``, ``"utf-7"`` -> ``"utf-7"``.

	Args:
		label: a charset label as written in a message (any case, surrounding white space ignored).

	Returns:
		A name ``codecs.lookup`` (and so ``bytes.decode`` and the ``email`` package) accepts: the WHATWG
		table's codec (:data:`PYTHON_CODECS`, :data:`MAIL_REPLACEMENT_CODECS`) for a label it lists; else
		Python's own codec for the label, or the WHATWG codec that replaces it (see the module docstring);
		None when the label is unknown (also for ``iso-2022-cn``, ``replacement`` and labels over 64
		characters).
	"""
	if not isinstance(label, str) or not label or len(label) > 64:
		return None
	key = label.strip(_ASCII_WS).lower()
	name = LABELS.get(key)
	if name is not None:
		return MAIL_REPLACEMENT_CODECS.get(key) or PYTHON_CODECS[name]
	own = _python_codec(key)
	return None if own is None else _BY_PYTHON_CODEC.get(own, own)


def bom_codec(data: bytes) -> tuple[str, int] | None:
	"""The standard's BOM sniff: ``(Python codec, BOM length in bytes)`` when ``data`` starts with a UTF-8,
	UTF-16BE or UTF-16LE byte order mark, else None."""
	for bom, codec in BOMS:
		if data.startswith(bom):
			return codec, len(bom)
	return None


def decode(data: bytes, label: str | None) -> tuple[str, str | None]:
	"""Text of ``data`` labelled ``label``, as the standard's *decode* reads it: a byte order mark wins over
	the label (and is dropped), then the label's codec (:func:`lookup`) with U+FFFD for malformed bytes.

	Args:
		data: the bytes (e.g. a body part with its transfer encoding undone).
		label: its charset label (``None`` or ``""``: us-ascii, which the standard reads as windows-1252).

	Returns:
		``(text, problem)``: ``problem`` is None, or when the label is unknown, why the text was read
		otherwise: as UTF-8 when the bytes are UTF-8, else as windows-1252 (every byte is a character
		there: nothing is lost or replaced).
	"""
	bom = bom_codec(data)
	if bom is not None:
		codec, skip = bom
		return data[skip:].decode(codec, "replace"), None
	codec = lookup(label or "us-ascii")
	if codec is not None:
		try:
			return data.decode(codec, "replace"), None
		except (LookupError, UnicodeError):  # not expected: every codec above exists and replaces
			pass
	shown = repr(str(label)[:64])
	try:
		return data.decode("utf-8"), f"unknown charset {shown}: read as UTF-8"
	except UnicodeDecodeError:
		return data.decode(WINDOWS_1252), f"unknown charset {shown}: read as windows-1252"


#: an RFC 2047 encoded word: ``=?charset[*lang]?B|Q?encoded-text?=``; no part holds ``?`` or white space
#: (RFC 2047 section 2), so every match starts at an ``=?`` and scans to the next ``?``: linear
_ENCODED_WORD = re.compile(r"=\?([^?*\s]{1,64})((?:\*[^?\s]*)?\?[bBqQ]\?[^?\s]*\?=)")
#: the charset of an RFC 2231 extended parameter value: ``; name*=charset'lang'...`` or ``; name*0*=...``
_EXTENDED_PARAM = re.compile(r"(;\s*[^\s;=*\"']{1,100}\*(?:0\*)?\s*=\s*\"?)([^\s;\"'=]{1,64})'")


def _email_codec(label: str) -> str | None:
	"""The codec ``email.header.make_header`` decodes ``label`` with (``email.charset`` has aliases of its
	own: ``cp949`` -> ``ks_c_5601-1987``, which is ``euc_kr``)."""
	try:
		codec = email.charset.Charset(label).input_codec
	except Exception:
		return None
	return _python_codec(codec) if codec else None


@lru_cache(maxsize=512)
def _relabelled(label: str) -> str | None:
	"""What to write instead of ``label`` so that both of the stdlib's header decoders (``policy.default``:
	``bytes.decode(label)``; ``email.header``: ``email.charset``'s aliases first) use :func:`lookup`'s
	codec: ``whatwg-<codec>``. None when both already read the label so, or the label is unknown."""
	codec = lookup(label)
	if codec is None:
		return None
	wanted = _python_codec(codec)
	if _python_codec(label) == wanted and _email_codec(label) == wanted:
		return None
	return codec if codec.startswith(PREFIX) else PREFIX + codec


def _swap(m: re.Match) -> str:
	new = _relabelled(m.group(2) if m.re is _EXTENDED_PARAM else m.group(1))
	if new is None:
		return m.group(0)
	return m.group(1) + new + "'" if m.re is _EXTENDED_PARAM else "=?" + new + m.group(2)


def relabel(value: str) -> str:
	"""A raw header value whose RFC 2047 encoded words and RFC 2231 parameter values name their charset by
	the codec :func:`lookup` chooses (``=?ks_c_5601-1987?B?...?=`` -> ``=?whatwg-cp949?B?...?=``), so the
	stdlib's header parsers (``email.policy.default``, ``email.header.decode_header``, compat32
	``get_filename``) decode with the WHATWG table. Labels the stdlib already reads the same way, and
	unknown ones, are left as written. Only complete encoded words are rewritten, and both parsers decode
	every one of those, so a rewritten name does not reach the decoded text. Linear in ``value``; a value
	grows by at most 3.2x (the shortest rewritten pieces: ``=?l1?q??=``, 9 characters, becomes 26;
	``; a*=l1'``, 8, becomes 25), which the parsers read in well under a second (``tests/pure/test_charsets.py``)."""
	if "'" in value:
		value = _EXTENDED_PARAM.sub(_swap, value)
	if "=?" in value:
		value = _ENCODED_WORD.sub(_swap, value)
	return value
