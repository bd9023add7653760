"""HTML bodies of mail, sanitized with nh3 (Rust ammonia) before they are stored or shown."""

from __future__ import annotations

import html as _html

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


def sanitize(html: str) -> str:
	"""Sanitized HTML: scripts, styles, event handlers, forms and foreign URL schemes removed; links get
	``rel="noopener noreferrer"``. Safe to show in the desk (which also sandboxes mail HTML)."""
	return nh3.clean(
		html or "",
		tags=set(_TAGS),
		attributes=_ATTRIBUTES,
		url_schemes=set(URL_SCHEMES),
		link_rel="noopener noreferrer",
		strip_comments=True,
	)


def text_to_html(text: str) -> str:
	"""Plain text as HTML paragraphs (escaped, line breaks kept)."""
	return "<p>" + _html.escape(text or "").replace("\n", "<br>") + "</p>" if text else ""
