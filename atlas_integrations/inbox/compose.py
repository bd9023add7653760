"""What every provider's send shares: the reply rules, the thread's latest message (what a reply answers),
the attachments a user may send, and the RFC 822 bytes of the message (``email`` stdlib).

The providers (``gmail/send.py``, ``outlook/send.py``) add their own: which mailbox type a thread must have,
whether it can send now, the From addresses it accepts, and the outbox's steps
(:mod:`atlas_integrations.inbox.outbox`).

Reply rules (operator guide, "Replies"), each enforced with a clear error: an Atlas role, an Active
workspace, a thread the user may read in a mailbox they may use, at least one To and a non-empty body; the
provider then checks the mailbox is healthy, and the caller takes the per-user send rate limit
(:mod:`atlas_integrations.inbox.send_limit`).
"""

from __future__ import annotations

import email.policy
import email.utils
import mimetypes
from collections.abc import Callable
from email.message import EmailMessage

import frappe
from frappe import _

from atlas_integrations import messages
from atlas_integrations.inbox.outbox import NOT_YOURS, Refused, SendError

NO_ROLE = "Only Atlas users can send mail from the Smart Inbox"
NO_RECIPIENT = "Add at least one To recipient"
EMPTY_BODY = "Write a message before sending"
UNHEALTHY = "The mailbox {0} is not healthy ({1}): reconnect it before sending"
BAD_FROM = "{0} is not a verified send-as address of this mailbox"
TOO_LARGE = "Attachments are larger than {0}'s {1} MB per message"
NOT_THIS_TYPE = "Replies go through a connected {0} mailbox: this thread has none"


def plain_text_of(body: str) -> str:
	"""The text of a message body the user wrote (HTML from the editor, or plain text)."""
	from frappe.core.utils import html2text

	return html2text(body or "") if "<" in (body or "") else (body or "")


def reply_subject(subject: str) -> str:
	"""``Re: <subject>`` unless it already starts with Re: (any case)."""
	subject = (subject or "").strip()
	return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()


def check_rules(thread_name: str, to: list[str], body: str, mailbox_type: str, label: str,
				usable: Callable[[str], frappe._dict]) -> tuple:
	"""Every reply rule but the rate limit, for a thread of a ``mailbox_type`` mailbox; returns ``(thread
	document, usable(mailbox))``.

	Args:
		thread_name: Inbox Thread name.
		to: the To addresses.
		body: the message the user wrote (HTML or plain text).
		mailbox_type: the doctype the thread's mailbox must be (e.g. ``"Gmail Account"``).
		label: the provider's name in messages (``"Gmail"``).
		usable: ``fn(mailbox name) -> mailbox row``, raising when the mailbox cannot send now.

	Raises:
		frappe.PermissionError: no Atlas role; the thread or its mailbox is not the user's to use.
		frappe.ValidationError: "Workspace changes are temporarily unavailable" (workspace not Active).
		SendError: no To, empty body, not a ``mailbox_type`` thread; what ``usable`` raises.
	"""
	from atlas_integrations.permissions import can_read_mailbox, has_atlas_role
	from atlas_integrations.settings import require_active_workspace

	if not has_atlas_role():
		frappe.throw(_(NO_ROLE), frappe.PermissionError)
	require_active_workspace()
	thread = messages.get_doc("Inbox Thread", thread_name)
	thread.check_permission("read")
	if thread.mailbox_type != mailbox_type or not thread.mailbox:
		messages.throw(NOT_THIS_TYPE, label, exc=SendError, title="Smart Inbox")
	if not can_read_mailbox((mailbox_type, thread.mailbox)):
		frappe.throw(_(NOT_YOURS), frappe.PermissionError)
	account = usable(thread.mailbox)
	if not [a for a in to if a.strip()]:
		frappe.throw(_(NO_RECIPIENT), SendError, title=_("Smart Inbox"))
	if not plain_text_of(body).strip():
		frappe.throw(_(EMPTY_BODY), SendError, title=_("Smart Inbox"))
	return thread, account


def check_usable(row: frappe._dict | None) -> frappe._dict:
	"""A mailbox row (``email_address, status, health, enabled, account_name``) when it can send: enabled,
	connected (SYNCING / ACTIVE) and not unhealthy.

	Raises:
		MailboxUnusable: :data:`UNHEALTHY`, naming the state.
	"""
	from atlas_integrations.inbox.outbox import MailboxUnusable

	if not row:
		frappe.throw(_("No such mailbox"), MailboxUnusable, title=_("Smart Inbox"))
	if not row.enabled or row.status not in ("SYNCING", "ACTIVE") or row.health in ("unhealthy", "disabled"):
		state = row.status.lower() if row.status not in ("SYNCING", "ACTIVE") else (row.health or "disabled")
		messages.throw(UNHEALTHY, row.email_address or row.account_name, _(state), exc=MailboxUnusable,
					   title="Smart Inbox")
	return row


def latest_message(thread_name: str) -> frappe._dict | None:
	"""The latest stored message of a thread (what a reply answers): ``name, atlas_provider_message_id,
	message_id, subject, sender, recipients, cc, sent_or_received, atlas_reply_to``; None for an empty
	thread."""
	rows = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread_name, "atlas_deleted": 0},
						  fields=["name", "atlas_provider_message_id", "message_id", "subject", "sender", "recipients", "cc",
								  "sent_or_received", "atlas_reply_to"],
						  order_by="communication_date desc, creation desc", limit=1)
	return rows[0] if rows else None


def read_attachments(files: list[str] | None, max_bytes: int, label: str) -> list[tuple[str, str, bytes]]:
	"""``(file name, content type, bytes)`` of File documents the user may read, to attach to a message.

	Args:
		files: File names.
		max_bytes: the provider's limit for all attachments of one message (bytes).
		label: the provider's name in the error.

	Raises:
		frappe.PermissionError: a File the user may not read. Refused: :data:`TOO_LARGE`.
	"""
	out, total = [], 0
	for name in files or []:
		doc = messages.get_doc("File", name)
		doc.check_permission("read")
		data = doc.get_content()
		data = data.encode() if isinstance(data, str) else data
		total += len(data)
		if total > max_bytes:
			messages.throw(TOO_LARGE, label, max_bytes // (1024 * 1024), exc=Refused, title="Smart Inbox")
		ctype = mimetypes.guess_type(doc.file_name or "")[0] or "application/octet-stream"
		out.append((doc.file_name, ctype, data))
	return out


def new_message_id(sender: str) -> str:
	"""A Message-ID for a message from ``sender`` (``<…atlas@domain>``, RFC 5322 §3.6.4)."""
	domain = sender.rsplit("@", 1)[-1].strip(">").strip() or "atlas.invalid"
	return email.utils.make_msgid(idstring="atlas", domain=domain)


def build_mime(*, from_addr: str, to: list[str], cc: list[str], bcc: list[str], subject: str, body_html: str,
			   message_id: str, in_reply_to: str | None, references: str | None,
			   attachments: list[tuple[str, str, bytes]] = ()) -> bytes:
	"""The RFC 822 bytes of a message (``email`` stdlib, SMTP policy: CRLF, folded headers, encoded words):
	a text/plain part, a text/html alternative (sanitized) when the body is HTML, then the attachments.

	Args:
		attachments: ``(file name, content type, bytes)``.
	"""
	msg = EmailMessage(policy=email.policy.SMTP)
	msg["From"] = from_addr
	msg["To"] = ", ".join(to)
	if cc:
		msg["Cc"] = ", ".join(cc)
	if bcc:
		msg["Bcc"] = ", ".join(bcc)  # the provider delivers to Bcc and removes the header from what recipients get
	msg["Subject"] = subject
	msg["Date"] = email.utils.formatdate(localtime=False)
	msg["Message-ID"] = message_id
	if in_reply_to:
		msg["In-Reply-To"] = in_reply_to
	if references:
		msg["References"] = references
	text = plain_text_of(body_html)
	msg.set_content(text)
	if "<" in (body_html or ""):
		from atlas_integrations.inbox.html import sanitize

		msg.add_alternative(f"<html><body>{sanitize(body_html)}</body></html>", subtype="html")
	for name, ctype, data in attachments:
		maintype, _, subtype = (ctype or "application/octet-stream").partition("/")
		msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream", filename=name)
	return msg.as_bytes()


def parse_built(raw: bytes) -> dict:
	"""The parts of a message :func:`build_mime` made, for a provider that sends fields instead of bytes:
	``{"to", "cc", "bcc" (addresses), "subject", "html" (str | None), "text" (str), "attachments": [(file
	name, content type, bytes)]}``. Only for the app's own messages (not for received mail)."""
	msg = email.message_from_bytes(raw, policy=email.policy.default)

	def addresses(header: str) -> list[str]:
		return [a for _n, a in email.utils.getaddresses([str(v) for v in msg.get_all(header) or []]) if a]

	html = msg.get_body(preferencelist=("html",))
	text = msg.get_body(preferencelist=("plain",))
	return {"to": addresses("To"), "cc": addresses("Cc"), "bcc": addresses("Bcc"), "subject": str(msg["Subject"] or ""),
			"html": html.get_content() if html is not None else None,
			"text": text.get_content() if text is not None else "",
			"attachments": [(part.get_filename() or "attachment", part.get_content_type(), part.get_payload(decode=True) or b"")
							for part in msg.iter_attachments()]}


def check_from(wanted: str | None, address: str, aliases: list[dict] | None = None) -> str:
	"""The From of a message: the mailbox's ``address`` when ``wanted`` is empty or that address, else the
	matching entry of ``aliases`` (``{"address", "display_name"}``, verified send-as addresses).

	Raises:
		SendError: :data:`BAD_FROM`.
	"""
	if not wanted or wanted.strip().lower() == (address or "").lower():
		return address
	for alias in aliases or []:
		if alias["address"].lower() == wanted.strip().lower():
			name = alias.get("display_name")
			return email.utils.formataddr((name, alias["address"])) if name else alias["address"]
	messages.throw(BAD_FROM, wanted, exc=SendError, title="Smart Inbox")
