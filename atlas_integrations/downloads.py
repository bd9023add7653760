"""Attachments are downloads, never pages.

Frappe serves ``/private/files/...`` inline and forces a download only for ``.svg``, ``.html``, ``.htm``
and ``.xml`` (frappe/utils/response.py ``send_private_file``). A file sent by a stranger as
``invoice.xhtml``, ``a.shtml`` or an HTML document named ``photo.jpg`` would then run script from the
site's origin. The ``after_request`` hook :func:`force_download` closes that: every mail attachment, and
every private file that a browser could render as a document (by extension, by the type served, or
sniffed from its first bytes), is served with ``Content-Disposition: attachment`` and
``X-Content-Type-Options: nosniff``.
"""

from __future__ import annotations

import os
from urllib.parse import quote, unquote

#: extensions a browser renders as a document that can run script
RENDERABLE_EXTENSIONS = frozenset({
	".html", ".htm", ".xhtml", ".xht", ".shtml", ".shtm", ".svg", ".svgz", ".xml", ".xsl", ".xslt",
	".mht", ".mhtml", ".rdf", ".xul", ".hta", ".js", ".mjs", ".swf", ".vtt",
})
#: served types that a browser renders as a document
RENDERABLE_TYPES = ("text/html", "application/xhtml", "image/svg", "text/xml", "application/xml",
					"text/xsl", "application/javascript", "text/javascript", "multipart/related",
					"message/rfc822", "application/x-shockwave-flash")
#: lower-cased prefixes that make a browser sniff a document (WHATWG MIME Sniffing, "scriptable" types)
SNIFFED_MARKUP = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<svg",
				  b"<?xml", b"<h1", b"<div", b"<font", b"<table", b"<a ", b"<a\t", b"<style", b"<title",
				  b"<b>", b"<br", b"<p>", b"<p ", b"<!--", b"<img", b"<object", b"<embed", b"<meta")


def is_renderable(file_name: str, content_type: str | None = None, head: bytes = b"") -> bool:
	"""True when a browser could render the file as a document (extension, served type, or sniffed bytes).

	Args:
		file_name: the served file name.
		content_type: the Content-Type it would be served with.
		head: its first bytes (up to 1,024 are looked at).
	"""
	if os.path.splitext(file_name or "")[1].lower() in RENDERABLE_EXTENSIONS:
		return True
	if content_type and content_type.lower().startswith(RENDERABLE_TYPES):
		return True
	start = head[:1024].lstrip(b"\xef\xbb\xbf\x00\t\n\r\x0c ").lower()
	return any(start.startswith(p) for p in SNIFFED_MARKUP) or b"<script" in head[:1024].lower()


def _private_file_path(path: str) -> str | None:
	import frappe

	if not path.startswith("/private/files/"):
		return None
	relative = unquote(path[len("/private/files/"):])
	if not relative or "/" in relative or relative.startswith("."):
		return None
	return frappe.utils.get_site_path("private", "files", relative)


def force_download(response=None, request=None) -> None:
	"""``after_request`` hook: private files get ``X-Content-Type-Options: nosniff``; mail attachments and
	renderable files also ``Content-Disposition: attachment`` (RFC 6266, with an RFC 5987 UTF-8 name)."""
	import frappe

	if response is None or request is None or response.status_code not in (200, 206, 304):
		return
	disk_path = _private_file_path(request.path or "")
	if disk_path is None:
		return
	response.headers["X-Content-Type-Options"] = "nosniff"
	file_name = os.path.basename(disk_path)
	is_mail = bool(frappe.db.get_value("File", {"file_url": request.path, "atlas_original_name": ["is", "set"]}))
	head = b""
	if not is_mail:
		try:
			with open(disk_path, "rb") as fh:
				head = fh.read(1024)
		except OSError:
			head = b""
	if is_mail or is_renderable(file_name, response.headers.get("Content-Type"), head):
		ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "")
		response.headers["Content-Disposition"] = (
			f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}")
		if is_renderable(file_name, response.headers.get("Content-Type"), head):
			response.headers["Content-Type"] = "application/octet-stream"
