"""Mail sent through a connected Outlook mailbox (replies from the Smart Inbox, quote emails), exactly once:
the Outlook side of the outbox (:mod:`atlas_integrations.inbox.outbox`, which holds the state machine).

Graph sends a *draft*: a reply is made with ``createReply`` on the message it answers (so ``In-Reply-To``,
``References`` and ``conversationId`` are Graph's own), a new message with ``POST /messages``; the draft carries
the Outgoing Mail's request key in a single-value extended property (:data:`REQUEST_KEY_PROPERTY`, a
named property of Atlas's own property set). The outbox's four steps:

* :func:`prepare` (``send_prepare``) — make the draft (or find an unsent one made earlier, by the property),
  add its attachments, then set the property last, so a draft found by it is complete; the outbox commits
  the draft's immutable id before anything is sent;
* :func:`submit` (``send_submit``) — ``POST /messages/{draft}/send``, tried once (a retry after a lost answer
  could send twice);
* :func:`find_sent` (``send_find``) — after a timeout or a crash: the draft by its id (no longer a draft:
  sent), else the mailbox searched by the property. A draft still in Drafts right after a send may only be
  late (Graph moves it to Sent Items afterwards): "not found yet" raises
  :class:`~atlas_integrations.inbox.outbox.NotConfirmed` — look again later, never resend — until
  :data:`SEND_SETTLE` seconds have passed since the draft was recorded, after which a draft still unsent was
  not sent, and the same draft is sent;
* :func:`store_sent` (``send_store``) — the Sent Items copy (``$value``) stored through the sync's writer
  under the same unique key the delta sync uses (account + immutable id: an immutable id stays when the
  draft moves to Sent Items, learn.microsoft.com/graph/outlook-immutable-id), so the copy the sync finds is
  the same Communication.

Reply rules: :mod:`atlas_integrations.inbox.compose` (role, workspace, thread, recipients, body, a healthy
mailbox), the per-user rate limit, and a From that is the mailbox's own address (send-as other addresses
needs Exchange permissions Atlas does not ask for).
"""

from __future__ import annotations

import base64

import frappe
from frappe import _
from frappe.utils import add_to_date, get_datetime, now_datetime

from atlas_integrations import messages
from atlas_integrations.inbox import compose, outbox, pipeline, send_limit, writer
from atlas_integrations.inbox.outbox import MailboxUnusable, NotAnswered, NotConfirmed, Refused, SendError
from atlas_integrations.inbox.text import mail_text, plain
from atlas_integrations.outlook import accounts, store
from atlas_integrations.outlook.errors import AuthRevoked, OutlookError, Permanent, Temporary

#: the Outgoing Mail's request key on the draft and on the sent message: a string named property in
#: Atlas's own property set (learn.microsoft.com/graph/api/resources/extended-properties-overview)
REQUEST_KEY_PROPERTY = "String {6b1f0c3e-4d2a-4e8b-9a57-0c8e2f1d7a31} Name AtlasRequestKey"
#: bytes of all attachments of one message (each goes in one request, whose limit is Graph's 3 MB for an
#: attachment; larger ones would need an upload session)
MAX_ATTACHMENT_BYTES = 3 * 1024 * 1024
#: seconds after the draft was recorded during which a draft still in Drafts may be on its way (Graph
#: moves a sent draft to Sent Items after answering 202): "not found yet" until then, never resent
SEND_SETTLE = 120
#: what is read of a draft / a sent message to decide
_STATE_FIELDS = "id,isDraft,internetMessageId,parentFolderId,conversationId"

NO_PARENT = "The message this reply answers is no longer in the Outlook mailbox"


# -- the rules ---------------------------------------------------------------------------------------------
def usable_mailbox(name: str) -> frappe._dict:
	"""The Outlook Account ``name`` (``name, email_address, status, health, enabled, account_name``) when it
	can send: enabled, connected (SYNCING / ACTIVE) and not unhealthy.

	Raises:
		MailboxUnusable: :data:`atlas_integrations.inbox.compose.UNHEALTHY`.
	"""
	return compose.check_usable(frappe.db.get_value(
		accounts.DOCTYPE, name, ["name", "email_address", "status", "health", "enabled", "account_name"], as_dict=True))


def send_as(mailbox: str) -> list[dict]:
	"""The From addresses of an Outlook mailbox: its own address only (``[{"address", "display_name",
	"default"}]``)."""
	address = frappe.db.get_value(accounts.DOCTYPE, mailbox, "email_address")
	return [{"address": address, "display_name": None, "default": True}] if address else []


# -- sending -------------------------------------------------------------------------------------------------
def reply(thread: str, to, body: str, client_key: str, cc=None, bcc=None, subject: str | None = None,
		  attachments: list[str] | None = None, from_addr: str | None = None) -> dict:
	"""Reply in ``thread`` through its Outlook mailbox, exactly once per ``client_key``: a ``createReply``
	draft of the thread's latest message (Graph's ``In-Reply-To``, ``References`` and ``conversationId``),
	sent with ``/send``.

	Args:
		thread: Inbox Thread name.
		to, cc, bcc: addresses (lists, or comma separated).
		body: the message (HTML from the desk editor, or plain text).
		client_key: the client's idempotency key (at most 200 characters): the same key returns the first
			result.
		subject: default ``Re: <thread subject>``.
		attachments: File names the user may read (3 MB in all).
		from_addr: the mailbox's address (no other is accepted).

	Returns:
		:func:`atlas_integrations.inbox.outbox.result` of the Outgoing Mail.

	Raises:
		frappe.PermissionError, SendError, frappe.ValidationError: see
			:func:`atlas_integrations.inbox.compose.check_rules`; Outlook refused the message (the record stays
			Failed with Outlook's words); NotConfirmed: sent or not, Outlook has not shown it yet.
		atlas_integrations.inbox.send_limit.SendRateLimited: over the user's emails a minute (HTTP 429).
	"""
	user = frappe.session.user
	key, existing = outbox.reply_request(client_key)
	if existing:
		return outbox.resume(existing)
	to, cc, bcc = outbox.split_addresses(to), outbox.split_addresses(cc), outbox.split_addresses(bcc)
	thread_doc, account = compose.check_rules(thread, to, body, accounts.DOCTYPE, "Outlook", usable_mailbox)
	sender = compose.check_from(from_addr, account.email_address)
	files = compose.read_attachments(attachments, MAX_ATTACHMENT_BYTES, "Outlook")
	send_limit.take(user)
	parent = compose.latest_message(thread_doc.name)
	parent_message_id = plain(parent.message_id) if parent and parent.message_id else None
	subject = subject or compose.reply_subject(plain(thread_doc.subject))
	message_id = compose.new_message_id(sender)  # replaced by the draft's own when it is made
	raw = compose.build_mime(from_addr=sender, to=to, cc=cc, bcc=bcc, subject=subject, body_html=body,
							 message_id=message_id, in_reply_to=parent_message_id, references=None, attachments=files)
	return outbox.create({
		"user": user, "inbox_thread": thread_doc.name, "mailbox_type": accounts.DOCTYPE, "mailbox": account.name,
		"provider_thread_id": thread_doc.provider_thread_id, "message_id": message_id,
		"provider_parent_id": parent.atlas_provider_message_id if parent else None,
		"from_address": mail_text(sender), "to_addresses": mail_text(", ".join(to)),
		"cc_addresses": mail_text(", ".join(cc)) or None, "bcc_addresses": mail_text(", ".join(bcc)) or None,
		"subject": mail_text(subject), "in_reply_to": mail_text(parent_message_id), "attachment_count": len(files),
		"raw": base64.b64encode(raw).decode()}, key)


def send_new(account: str, user: str, request_key: str, to: list[str], subject: str, body: str, cc=None,
			 attachments: list[tuple[str, str, bytes]] = (), reference_doctype: str | None = None,
			 reference_name: str | None = None) -> dict:
	"""Send a new message (not a reply) through the Outlook Account ``account``, exactly once per
	``request_key`` (a record that exists for the key is finished, never sent again). Used by background
	jobs (e.g. "Send quote"), which check their own rules first.

	Args:
		account: Outlook Account name (must pass :func:`usable_mailbox`).
		user: the user the send is made for.
		request_key: the caller's idempotency key (e.g. ``xero-quote-send:<Sync Job>``).
		to, cc: addresses. subject, body: the message (body HTML or plain text).
		attachments: ``(file name, content type, bytes)``; 3 MB in all.
		reference_doctype, reference_name: the document the message is about (its timeline).

	Returns:
		:func:`atlas_integrations.inbox.outbox.result` of the Outgoing Mail.

	Raises:
		SendError: the mailbox cannot send, no recipient, Outlook refused the message; NotAnswered: Outlook
			did not answer (nothing sent); NotConfirmed: Outlook has not shown it yet (look again later).
	"""
	key = outbox.job_key(request_key)
	existing = outbox.existing(key)
	if existing:
		return outbox.deliver(existing)
	to, cc = outbox.split_addresses(to), outbox.split_addresses(cc)
	if not to:
		frappe.throw(_(compose.NO_RECIPIENT), SendError, title="Outlook")
	mailbox = usable_mailbox(account)
	if sum(len(a[2]) for a in attachments) > MAX_ATTACHMENT_BYTES:
		messages.throw(compose.TOO_LARGE, "Outlook", 3, exc=Refused, title="Outlook")
	sender = mailbox.email_address
	message_id = compose.new_message_id(sender)
	raw = compose.build_mime(from_addr=sender, to=to, cc=cc, bcc=[], subject=subject, body_html=body,
							 message_id=message_id, in_reply_to=None, references=None, attachments=list(attachments))
	return outbox.create({
		"user": user, "mailbox_type": accounts.DOCTYPE, "mailbox": account, "message_id": message_id,
		"from_address": mail_text(sender), "to_addresses": mail_text(", ".join(to)),
		"cc_addresses": mail_text(", ".join(cc)) or None, "subject": mail_text(subject),
		"attachment_count": len(attachments), "reference_doctype": reference_doctype,
		"reference_name": reference_name, "raw": base64.b64encode(raw).decode()}, key)


# -- the outbox's steps (atlas_integrations/inbox/outbox.py) --------------------------------------------------
def _send_error(exc: OutlookError, action: str) -> SendError:
	"""The outbox's error for a Graph failure of ``action`` (no answer / mailbox unusable / refused)."""
	if isinstance(exc, Temporary):
		return NotAnswered(f"{action}: {type(exc).__name__}")
	if isinstance(exc, AuthRevoked):
		return MailboxUnusable(str(exc)[:900])
	return Refused(str(exc)[:900])


def _graph_message(parts: dict) -> dict:
	"""The Graph message properties of the record's message (:func:`atlas_integrations.inbox.compose.
	parse_built` of the bytes the app built): subject, body, recipients (the request key property is set
	last, by :func:`prepare`)."""

	def recipients(addresses: list[str]) -> list[dict]:
		return [{"emailAddress": {"address": a}} for a in addresses]

	html = parts["html"]
	message = {"subject": parts["subject"], "toRecipients": recipients(parts["to"]),
			   "body": {"contentType": "HTML" if html else "Text", "content": html if html else parts["text"]}}
	if parts["cc"]:
		message["ccRecipients"] = recipients(parts["cc"])
	if parts["bcc"]:
		message["bccRecipients"] = recipients(parts["bcc"])
	return message


def _recorded(draft: dict, doc) -> dict:
	"""What the outbox records of a draft: its immutable id, Message-ID and conversation."""
	return {"provider_draft_id": draft["id"],
			"message_id": str(draft.get("internetMessageId") or doc.message_id)[:140],
			"provider_thread_id": str(draft.get("conversationId") or doc.provider_thread_id or "")[:140] or None}


def prepare(mailbox: str, doc, raw: bytes) -> dict:
	"""The outbox's ``send_prepare``: the record's draft in Outlook Account ``mailbox``. The recorded draft
	when it is still one; else an unsent draft carrying the record's request key (made by an attempt that
	died before recording it); else a new one — ``createReply`` on ``provider_parent_id`` for a reply, ``POST
	/messages`` otherwise — with its attachments, the request key property set last. Returns
	``{"provider_draft_id", "message_id", "provider_thread_id"}`` for the outbox to commit.

	Raises:
		NotAnswered: Graph did not answer (the unfinished draft is deleted when it can be; nothing sent).
		MailboxUnusable: the authorization was refused. Refused: Graph refused the draft (its words).
	"""
	client = accounts.client_for(mailbox)
	try:
		if doc.provider_draft_id:
			draft = client.get_message(doc.provider_draft_id, _STATE_FIELDS)
			if draft and draft.get("isDraft"):
				return _recorded(draft, doc)
		for found in client.find_by_property(REQUEST_KEY_PROPERTY, doc.request_key):
			if found.get("isDraft"):
				return _recorded(found, doc)
	except OutlookError as exc:
		raise _send_error(exc, "looking for the draft") from None
	parts = compose.parse_built(raw)
	message = _graph_message(parts)
	draft = None
	try:
		if doc.provider_parent_id:
			try:
				draft = client.create_reply(doc.provider_parent_id, message)
			except Permanent as exc:
				if exc.status == 404:
					raise Refused(_(NO_PARENT)) from None
				raise
		else:
			draft = client.create_draft(message)
		for name, ctype, data in parts["attachments"]:
			client.add_attachment(draft["id"], name, ctype, data)
		client.update_message(draft["id"], {"singleValueExtendedProperties": [
			{"id": REQUEST_KEY_PROPERTY, "value": doc.request_key}]})
	except OutlookError as exc:
		_discard(client, draft)
		raise _send_error(exc, "making the draft") from None
	except SendError:
		_discard(client, draft)
		raise
	return _recorded(draft, doc)


def _discard(client, draft: dict | None) -> None:
	"""Delete an unfinished draft (best effort: one left behind has no request key and is never sent)."""
	if draft:
		try:
			client.delete_message(draft["id"])
		except OutlookError:
			pass


def submit(mailbox: str, doc, raw: bytes) -> str:
	"""The outbox's ``send_submit``: ``POST /messages/{provider_draft_id}/send``, once. Returns the message's
	immutable id (the draft's: it stays when Graph moves the message to Sent Items).

	Raises:
		NotAnswered: Graph did not answer, or the draft is no longer one (the outbox then looks for it).
		MailboxUnusable: the authorization was refused. Refused: any other refusal, with Graph's words.
	"""
	if not doc.provider_draft_id:
		raise Refused(_("No draft was recorded"))
	try:
		accounts.client_for(mailbox).send_draft(doc.provider_draft_id)
	except Permanent as exc:
		if exc.status == 404 or exc.code in ("ErrorInvalidOperation", "ErrorItemNotFound"):
			raise NotAnswered(f"message.send: {exc.code or exc.status}") from None  # sent already? looked for
		raise _send_error(exc, "message.send") from None
	except OutlookError as exc:
		raise _send_error(exc, "message.send") from None
	return doc.provider_draft_id


def _settled(doc) -> bool:
	"""Whether a draft still unsent means "not sent": the record is not Sending (its last outcome was
	decided), or :data:`SEND_SETTLE` seconds have passed since it last changed (its draft recorded, or this
	attempt's send)."""
	if doc.status != outbox.SENDING:
		return True
	return bool(doc.modified) and get_datetime(doc.modified) <= add_to_date(now_datetime(), seconds=-SEND_SETTLE)


def find_sent(mailbox: str, doc) -> str | None:
	"""The outbox's ``send_find``: the immutable id of the record's sent message, None when Outlook does not
	hold it as sent. The recorded draft first (no longer a draft: sent); else the mailbox searched by the
	request key property. Never sends.

	Raises:
		NotConfirmed: the draft is still one, or is gone and nothing carries the key yet, within
			:data:`SEND_SETTLE` seconds of the record's last change (a send may be on its way).
		NotAnswered: Graph did not answer the lookup.
	"""
	client = accounts.client_for(mailbox)
	try:
		if doc.provider_draft_id:
			draft = client.get_message(doc.provider_draft_id, _STATE_FIELDS)
			if draft and not draft.get("isDraft"):
				return draft["id"]
			if draft and _settled(doc):
				return None  # still a draft, long after: it was not sent (the same draft is sent)
		found = [m for m in client.find_by_property(REQUEST_KEY_PROPERTY, doc.request_key or "") if not m.get("isDraft")]
	except OutlookError as exc:
		raise _send_error(exc, "looking for the sent message") from None
	if found:
		return found[0]["id"]
	if doc.provider_draft_id and not _settled(doc):
		raise NotConfirmed(messages.text(outbox.UNCONFIRMED, "Outlook"))
	return None


def store_sent(mailbox: str, doc) -> str | None:
	"""The outbox's ``send_store``: the sent message (its resource and ``$value``) stored through the
	writer under the sync's unique key (account + immutable id) as a message of Sent Items, then the
	pipeline on it. Returns the Communication name.

	Raises:
		NotConfirmed: Outlook does not show the sent message yet (the record stays Accepted, not recorded;
			Reconcile or the scheduler finishes it).
		SendError / OutlookError: Graph did not return it.
	"""
	message_id = doc.provider_message_id
	key = writer.message_key(mailbox, message_id)
	communication = frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "name")
	if communication:
		return communication
	client = accounts.client_for(mailbox)
	resources, failures = client.get_messages([message_id], select=_STATE_FIELDS + ",isRead,categories,flag,receivedDateTime,bodyPreview")
	resource = resources.get(message_id)
	if resource is None or resource.get("isDraft"):
		frappe.db.rollback()
		error = failures.get(message_id)
		if error is not None and not (isinstance(error, Permanent) and error.status == 404):
			raise error
		raise NotConfirmed(messages.text(outbox.UNCONFIRMED, "Outlook"))
	raws, failures = client.get_mime([message_id])
	if message_id not in raws:
		frappe.db.rollback()
		raise failures.get(message_id) or SendError(messages.text(outbox.NOT_RETURNED, "Outlook"))
	writer.write_batch(store.write_context(mailbox), [store.envelope(resource, raws[message_id], "sentitems")])
	communication = frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "name")
	if communication:
		pipeline.run([communication])
	return communication
