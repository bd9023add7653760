"""The sandboxed reader's view of a thread: its stored messages, bodies sanitized (nh3), inline images
embedded, remote images only on request. Provider-neutral: it reads Communications and their Files, whatever
mailbox type stored them."""

from __future__ import annotations

import base64

import frappe

from atlas_integrations.inbox.html import allow_remote_images, has_remote_images, resolve_cid_images
from atlas_integrations.inbox.text import plain


#: inline (``cid:``) images larger than this are not embedded in the reader (bytes)
MAX_INLINE_IMAGE_BYTES = 2 * 1024 * 1024


def _inline_images(communications: list[str]) -> dict[str, dict[str, str]]:
	"""Communication -> {Content-ID: ``data:`` URI} of its stored inline images (the sandboxed reader has
	an opaque origin and no cookies, so it cannot load ``/private/files`` itself)."""
	import mimetypes

	out: dict[str, dict[str, str]] = {}
	rows = frappe.get_all(
		"File",
		filters={"attached_to_doctype": "Communication", "attached_to_name": ["in", communications],
				 "atlas_content_id": ["is", "set"]},
		fields=["name", "attached_to_name", "atlas_content_id", "file_size", "file_name"],
	) if communications else []
	for row in rows:
		if (row.file_size or 0) > MAX_INLINE_IMAGE_BYTES:
			continue
		mime = mimetypes.guess_type(row.file_name or "")[0] or ""
		if not mime.startswith("image/") or mime == "image/svg+xml":
			continue
		try:
			content = frappe.get_doc("File", row.name).get_content()
		except Exception:  # a missing file on disk: the image stays unresolved
			continue
		if isinstance(content, str):
			content = content.encode()
		out.setdefault(row.attached_to_name, {})[plain(row.atlas_content_id)] = (
			f"data:{mime};base64,{base64.b64encode(content).decode()}")
	return out


def thread_messages(thread: str, show_images: bool = False) -> list[dict]:
	"""The thread's messages for the desk's sandboxed reader, oldest first.

	Args:
		thread: Inbox Thread name (the caller has checked read permission).
		show_images: True when the user asked to load remote images (they are off by default, so no
			tracking pixel fires when a thread opens).

	Returns:
		``[{"name", "sender", "sender_full_name", "sender_as_written", "recipients", "cc",
		"communication_date", "subject", "sent_or_received", "html", "remote_images", "attachments":
		[{"name", "file_name", "file_url", "file_size"}]}]``. ``sender`` is the address when it is a valid
		email address, else None and ``sender_as_written`` is the address as the From header writes it
		(``"nsb"``; "" otherwise). Text values are the exact decoded text (the caller escapes them when it
		shows them); ``html`` is the nh3-sanitized body with ``cid:`` images resolved from the stored
		attachments and remote images enabled only when ``show_images``; ``remote_images`` says whether
		the body has any.
	"""
	rows = frappe.get_all(
		"Communication",
		filters={"atlas_inbox_thread": thread, "atlas_deleted": 0},
		fields=["name", "sender", "sender_full_name", "atlas_sender_as_written as sender_as_written", "recipients",
				"cc", "communication_date", "subject", "sent_or_received", "content as html"],
		order_by="communication_date asc, creation asc",
	)
	names = [r.name for r in rows]
	files = frappe.get_all(
		"File",
		filters={"attached_to_doctype": "Communication", "attached_to_name": ["in", names]},
		fields=["name", "attached_to_name", "file_name", "file_url", "file_size", "atlas_original_name"],
		order_by="creation asc",
	) if names else []
	inline = _inline_images(names)
	for row in rows:
		for field in ("sender_full_name", "sender_as_written", "subject"):  # HTML text -> the exact text
			row[field] = plain(row[field])
		body = resolve_cid_images(row.html or "", inline.get(row.name, {}))
		row.remote_images = has_remote_images(body)
		row.html = allow_remote_images(body) if show_images else body
		row.attachments = [
			{"name": f.name, "file_name": plain(f.atlas_original_name) or f.file_name, "file_url": f.file_url,
			 "file_size": f.file_size}
			for f in files if f.attached_to_name == row.name
		]
	return rows
