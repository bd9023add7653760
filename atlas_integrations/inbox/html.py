"""HTML bodies of mail, sanitized with nh3 (Rust ammonia) before they are stored or shown.

Remote content is disabled at store time: every ``<img src>`` that is not a ``cid:`` part of the same
message is moved to ``data-atlas-src``, so no tracking pixel fires wherever the stored body is shown
(Frappe's timeline included). The sandboxed reader puts them back only when the user asks
(:func:`allow_remote_images`) and resolves ``cid:`` images from the stored attachments.
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
#: ``"`` inside values, so this is exact on its output)
_REMOTE_IMG = re.compile(r'(<img\b[^>]*?\s)src="(?!cid:)([^"]*)"', re.IGNORECASE)
_BLOCKED_IMG = re.compile(r'(<img\b[^>]*?\s)data-atlas-src="([^"]*)"', re.IGNORECASE)
_CID_IMG = re.compile(r'(<img\b[^>]*?\s)src="cid:([^"]*)"', re.IGNORECASE)


def sanitize(html: str) -> str:
	"""Sanitized HTML: scripts, styles, event handlers, forms, relative URLs and foreign URL schemes
	removed (``javascript:`` included); links open in a new tab with ``rel="noopener noreferrer"``;
	remote images disabled (``src`` moved to ``data-atlas-src``). Safe to show anywhere in the desk,
	which also sandboxes mail HTML in its reader."""
	clean = nh3.clean(
		html or "",
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
