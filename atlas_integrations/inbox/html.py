"""HTML bodies of mail, sanitized with nh3 (Rust ammonia) before they are stored or shown.

Remote content is disabled at store time: every ``<img src>`` that is not a ``cid:`` part of the same
message is moved to ``data-atlas-src``, so no tracking pixel fires wherever the stored body is shown
(Frappe's timeline included). The sandboxed reader puts them back only when the user asks
(:func:`allow_remote_images`) and resolves ``cid:`` images from the stored attachments.

Bounded time on any body: nh3 (html5ever) is linear but for deep nesting: its tree builder looks up
element scope by walking the stack of open elements, once per block start tag, so 100 KB of ``<dl><dd>``
took 1.3 s and 200 KB 5 s. Elements nested deeper than :data:`MAX_NESTING` are therefore dropped before
nh3 sees them (their content is kept), in one linear pass (:func:`_flatten_deep`). The image regular
expressions below read one tag at a time: ``[^<>]`` stops every scan at the next tag (nh3 writes ``<``
and ``>`` inside attribute values as ``&lt;``/``&gt;``), so each character is scanned a bounded number of
times whatever the input.
"""

from __future__ import annotations

import html as _html
import re

import nh3

#: allowed URL schemes in href/src: the web, mail, and cid: for inline parts of the same message
URL_SCHEMES = frozenset({"http", "https", "mailto", "tel", "cid"})
_TAGS = frozenset(nh3.ALLOWED_TAGS) | {"font", "center"}
_ATTRIBUTES = {
	**{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
	"*": {"align", "dir", "lang", "title", "width", "height", "bgcolor", "valign"},
	"font": {"color", "face", "size"},
	"table": {"border", "cellpadding", "cellspacing", "width", "align", "bgcolor"},
	"td": {"colspan", "rowspan", "width", "align", "valign", "bgcolor"},
	"th": {"colspan", "rowspan", "width", "align", "valign", "bgcolor"},
	"img": {"src", "alt", "width", "height"},
	"a": {"href", "title"},
}


#: an ``<img>`` whose src is anything but ``cid:`` (nh3's serializer always quotes with ``"`` and escapes
#: ``"``, ``<`` and ``>`` inside values, so this is exact on its output)
_REMOTE_IMG = re.compile(r'(<img\b[^<>]*?\s)src="(?!cid:)([^"]*)"', re.IGNORECASE)
_BLOCKED_IMG = re.compile(r'(<img\b[^<>]*?\s)data-atlas-src="([^"]*)"', re.IGNORECASE)
_CID_IMG = re.compile(r'(<img\b[^<>]*?\s)src="cid:([^"]*)"', re.IGNORECASE)
#: elements nested deeper than this are dropped before sanitizing (real mail: nested layout tables, some
#: 30 levels deep)
MAX_NESTING = 256
#: a start or end tag: ``[^<>]*`` ends at the next ``<`` or ``>``, so the scans of two tags never overlap
_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9]*)[^<>]*>?")
#: elements that never hold others (HTML "void" elements) or that close an open one of their kind or
#: family when they start (p, li, dd/dt, options, table rows and cells, headings): they add no depth
_FLAT = frozenset({
	"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta", "param", "source", "track",
	"wbr", "p", "li", "dd", "dt", "option", "optgroup", "tr", "td", "th", "thead", "tbody", "tfoot", "colgroup",
	"caption", "h1", "h2", "h3", "h4", "h5", "h6", "rb", "rt", "rtc", "rp",
})


def _flatten_deep(html: str) -> str:
	"""``html`` with the start and end tags of elements nested deeper than :data:`MAX_NESTING` removed
	(their text kept). Depth is counted over start/end tags of elements not in :data:`_FLAT`, which
	over-counts unclosed ones (harmless: only tags past the bound are dropped). One pass; nh3 sanitizes
	the result as any other input."""
	if html.count("<") <= MAX_NESTING:
		return html
	depth, drop = 0, []
	for m in _TAG.finditer(html):
		if m.group(2).lower() in _FLAT:
			continue
		if m.group(1):  # an end tag
			if depth > MAX_NESTING:
				drop.append(m.span())
			depth = max(depth - 1, 0)
		elif not m.group(0).endswith("/>"):
			depth += 1
			if depth > MAX_NESTING:
				drop.append(m.span())
	if not drop:
		return html
	out, last = [], 0
	for start, end in drop:
		out.append(html[last:start])
		last = end
	out.append(html[last:])
	return "".join(out)


def sanitize(html: str) -> str:
	"""Sanitized HTML: scripts, styles, event handlers, forms, relative URLs and foreign URL schemes
	removed (``javascript:`` included); links open in a new tab with ``rel="noopener noreferrer"``;
	remote images disabled (``src`` moved to ``data-atlas-src``); elements nested deeper than
	:data:`MAX_NESTING` flattened (:func:`_flatten_deep`). Safe to show anywhere in the desk, which also
	sandboxes mail HTML in its reader.

	Args:
		html: the message's HTML body as decoded text, any length (time is linear in it).

	Returns:
		The sanitized HTML (str).
	"""
	clean = nh3.clean(
		_flatten_deep(html or ""),
		tags=set(_TAGS),
		attributes=_ATTRIBUTES,
		url_schemes=set(URL_SCHEMES),
		link_rel="noopener noreferrer",
		set_tag_attribute_values={"a": {"target": "_blank"}},
		url_relative="deny",
		strip_comments=True,
	)
	return _REMOTE_IMG.sub(r'\1data-atlas-src="\2"', clean)


def has_remote_images(html: str) -> bool:
	"""True when the stored body has remote images waiting for the user's consent."""
	return bool(_BLOCKED_IMG.search(html or ""))


def allow_remote_images(html: str) -> str:
	"""The stored body with its remote images enabled again (the reader's "Show images")."""
	return _BLOCKED_IMG.sub(r'\1src="\2"', html or "")


def resolve_cid_images(html: str, urls: dict[str, str]) -> str:
	"""Point ``cid:`` images at the stored attachments: ``urls`` maps a Content-ID (no angle brackets) to
	the URL to show it from (e.g. a ``data:`` URI); unknown Content-IDs are left as they are."""
	def repl(m: re.Match) -> str:
		url = urls.get(_html.unescape(m.group(2)).strip("<>"))
		return f'{m.group(1)}src="{_html.escape(url, quote=True)}"' if url else m.group(0)
	return _CID_IMG.sub(repl, html or "")


def text_to_html(text: str) -> str:
	"""Plain text as HTML paragraphs (escaped, line breaks kept)."""
	return "<p>" + _html.escape(text or "").replace("\n", "<br>") + "</p>" if text else ""
