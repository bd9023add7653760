"""How every text value that comes from a message or a mail provider is kept: the one convention.

Mail is hostile input: a display name, subject, label or file name may carry ``<script>`` or
``<img onerror=…>``. Frappe's desk renders Data / Small Text / Text values *as HTML* (list view columns,
read-only form fields, the timeline's subject, page titles) and Code values *as text* (escaped by its Code
formatter). So the convention, decided here and only here, is:

* **HTML-rendered fields** (Data, Small Text, Text, Long Text — Frappe's and Atlas's): the value is stored
  as *HTML text*, ``html.escape(value, quote=True)``. Every Frappe renderer then shows exactly the decoded
  text (``Ann <ann@x.org>`` reads as that), and nothing in it can become markup. ``html.unescape`` of the
  stored value gives back the exact decoded text (:func:`plain`): that is what Atlas's own whitelisted
  methods return, and what Atlas's own JavaScript escapes once when it shows it.
* **Code fields** (Communication ``recipients``, ``cc``, ``bcc``, ``text_content``): the exact text,
  unescaped — Frappe escapes Code values wherever it shows them.
* **HTML bodies** (Communication ``content``): sanitized with nh3 (:mod:`atlas_integrations.inbox.html`),
  remote images disabled until the reader asks for them.
* **File names**: the stored ``file_name`` is made safe with werkzeug's ``secure_filename``; the readable
  original is kept as HTML text in File ``atlas_original_name``.

Values saved later through the ORM (a REST ``PUT``, a form save) follow the same rule: the ``validate``
hook :func:`escape_changed_fields` escapes a changed mail text value that contains ``<`` or ``>`` before
Frappe's XSS filter would rewrite it into an empty or partial tag.
"""

from __future__ import annotations

import html
import os
import re

from werkzeug.utils import secure_filename

#: fields of each doctype that hold mail- or provider-derived text, by how they are kept
HTML_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
	"Communication": ("subject", "sender_full_name", "atlas_sender_as_written", "message_id", "atlas_snippet",
					  "atlas_in_reply_to", "atlas_parse_error", "atlas_skipped_attachments", "atlas_tags"),
	"Inbox Thread": ("subject", "participants", "labels", "tags", "snippet"),
	"File": ("atlas_original_name",),
}
CODE_TEXT_FIELDS: dict[str, tuple[str, ...]] = {
	"Communication": ("recipients", "cc", "bcc", "text_content"),
}

_PARTIAL_ENTITY = re.compile(r"&[#A-Za-z0-9]{0,10}$")


def mail_text(value: str | None, length: int | None = None) -> str | None:
	"""A mail-derived text value as stored in an HTML-rendered field (Data, Small Text, Text).

	Args:
		value: the exact decoded text (e.g. a subject as ``email.policy.default`` decodes it).
		length: maximum stored length in characters (e.g. 140 for a Data field); the cut never splits an
			HTML entity.

	Returns:
		``html.escape(value, quote=True)`` cut to ``length``, or None for an empty value.
	"""
	if not value:
		return None
	escaped = html.escape(str(value), quote=True)
	if length and len(escaped) > length:
		escaped = _PARTIAL_ENTITY.sub("", escaped[:length])
	return escaped


def sender_values(sender: tuple[str, str], name_length: int = 140) -> dict[str, str | None]:
	"""The Communication columns of a message's sender (``ParsedMessage.sender``), as both writers store them.

	Args:
		sender: ``(display name, address)`` as the MIME reader gives them; the address may be one Frappe
			refuses (``nsb`` without a domain, ``a@b@c``, ``<>``).
		name_length: characters of ``sender_full_name`` (a Data field: 140).

	Returns:
		``{"sender", "sender_full_name", "atlas_sender_as_written"}``: ``sender`` is the address when
		Frappe's Email validation (``frappe.utils.validate_email_address``) accepts it, else None (the
		column is an Email field); then ``atlas_sender_as_written`` keeps the address exactly as written
		(HTML text, :func:`mail_text`; Small Text, so nothing is cut: the reader keeps at most 254
		characters). ``sender_full_name`` is the display name as HTML text, or, when there is none and
		the address was refused, that address (so the timeline names someone).
	"""
	from frappe.utils import validate_email_address

	name, addr = sender
	valid = addr if addr and validate_email_address(addr) else None
	return {
		"sender": valid,
		"sender_full_name": mail_text(name or (addr if not valid else None), name_length),
		"atlas_sender_as_written": mail_text(addr if addr and not valid else None),
	}


def plain(stored: str | None) -> str:
	"""The exact decoded text of a value stored by :func:`mail_text` ("" for None)."""
	return html.unescape(stored or "")


def safe_file_name(original: str | None, content_type: str | None = None) -> str:
	"""A file name safe to store and serve (werkzeug's ``secure_filename``: ASCII, no path, no markup).

	Args:
		original: the attachment's decoded file name (may be empty, non-ASCII or hostile).
		content_type: its MIME type, used for the extension when nothing usable is left.

	Returns:
		e.g. ``"Resume.pdf"`` for ``"Résumé.pdf"``, ``"attachment.pdf"`` for ``"履歴書.pdf"``,
		``"img_src_x_onerror_alert_1.png"`` for ``"<img src=x onerror=alert(1)>.png"``; at most 140
		characters, extension kept.
	"""
	import mimetypes

	original = (original or "").replace("\x00", "")
	stem, ext = os.path.splitext(original)
	ext = secure_filename("x" + ext)[1:] if ext else ""  # ".pdf", or "" when nothing usable is left
	if not ext and content_type:
		ext = mimetypes.guess_extension(content_type.split(";")[0].strip().lower()) or ""
	stem = secure_filename(stem) or "attachment"
	ext = ext[:20]
	return stem[: 140 - len(ext)] + ext


def is_mail_row(doc) -> bool:
	"""True when ``doc`` (Communication, Inbox Thread or File) holds mail of an Atlas mailbox."""
	doctype = doc.doctype
	if doctype == "Inbox Thread":
		return True
	if doctype == "Communication":
		from atlas_integrations.inbox import mailboxes

		return bool(mailboxes.of_communication_row(doc) is not None or doc.get("atlas_inbox_thread")
					or doc.get("reference_doctype") == "Inbox Thread")
	if doctype == "File":
		return bool(doc.get("atlas_original_name")) or doc.get("attached_to_doctype") == "Inbox Thread"
	return False


def escape_changed_fields(doc, method: str | None = None) -> None:
	"""``validate`` doc event for Communication, Inbox Thread and File: a mail text value saved through the
	ORM that contains ``<`` or ``>`` is stored as HTML text (:func:`mail_text`), as the sync stores it.

	Runs before Frappe's own XSS filter (which runs after ``validate``), so that filter finds nothing to
	rewrite. Only values that changed are touched, so a stored value is never escaped twice.
	"""
	fields = HTML_TEXT_FIELDS.get(doc.doctype)
	if not fields or not is_mail_row(doc):
		return
	before = None if doc.is_new() else doc.get_doc_before_save()
	for fieldname in fields:
		value = doc.get(fieldname)
		if not isinstance(value, str) or ("<" not in value and ">" not in value):
			continue
		if before is not None and before.get(fieldname) == value:
			continue
		doc.set(fieldname, mail_text(value))
