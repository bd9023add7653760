"""Mail sent through a connected Gmail mailbox, exactly once (replies from the Smart Inbox, quote emails).

Every send is an **Outgoing Mail** record, written and committed *before* Gmail is called, keyed by the
user's client-supplied idempotency key and carrying a Message-ID the app generates:

* the same request again (a double submit, a retry after a timeout) returns the first result instead of
  sending a second time;
* before any (re)send the app looks for its Message-ID in the mailbox (``rfc822msgid:``): a message Gmail
  accepted whose answer never arrived, or whose recording died with its process, is reconciled, never
  sent again;
* Gmail's accepted message is stored as the thread's outbound Communication at once, through the same
  store the sync uses (its unique ``atlas_gmail_key``), so when it comes back through history it is the
  same record: one Communication, not two.

States: **Sending** (committed, Gmail called or about to be), **Sent** (recorded), **Accepted, not
recorded** (Gmail took it, recording did not finish: the Reconcile action finishes it), **Failed** (Gmail
refused it or did not take it; sending again checks the mailbox first).

Delivering, recording and reconciling hold the Outgoing Mail's **row lock** (``SELECT … FOR UPDATE``)
from the moment they read its state until that state is committed: two retries of one failed send (a
double click, two tabs, a retry racing the Reconcile action) run one after the other, and the second finds
the first's answer (Sent, or the message in the mailbox) instead of sending again.

Reply rules (operator guide, "Replies"), each enforced here with a clear error: an Atlas role, an Active
workspace, a thread of a Gmail mailbox the user may use, at least one To and a non-empty body, a healthy
mailbox, and the per-user send rate limit (:mod:`atlas_integrations.inbox.send_limit`: Atlas Settings
``reply_rate_limit`` emails a minute, default 10, shared with "Send quote"; checked and recorded atomically).
"""

from __future__ import annotations

import base64
import email.policy
import email.utils
from email.message import EmailMessage

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime

from atlas_integrations import messages
from atlas_integrations.inbox import outbox, send_limit
from atlas_integrations.inbox.outbox import MailboxUnusable, NotAnswered, Refused, SendError
from atlas_integrations.inbox.text import mail_text, plain

DOCTYPE = outbox.DOCTYPE
SENDING, SENT, UNRECORDED, FAILED = outbox.SENDING, outbox.SENT, outbox.UNRECORDED, outbox.FAILED
STALE_SENDING = 5 * 60  # seconds after which a Sending record's process is taken for dead
MAX_ATTACHMENT_BYTES = 25 * 1024 * 1024  # Gmail's limit for a message

NO_ROLE = "Only Atlas users can send mail from the Smart Inbox"
NOT_YOUR_MAILBOX = "You cannot use this mailbox"
NOT_GMAIL = "Replies go through a connected Gmail mailbox: this thread has none"
NO_RECIPIENT = "Add at least one To recipient"
EMPTY_BODY = "Write a message before sending"
UNHEALTHY = "The mailbox {0} is not healthy ({1}): reconnect it before sending"
BAD_FROM = "{0} is not a verified send-as address of this mailbox"
BUSY = "This message is being sent by another request: reload in a moment to see whether it went out"


# -- the rules ---------------------------------------------------------------------------------------------
def _usable_account(thread) -> frappe._dict:
	from atlas_integrations.permissions import can_read_mailbox

	if not thread.gmail_account:
		frappe.throw(_(NOT_GMAIL), SendError, title=_("Smart Inbox"))
	if not can_read_mailbox(("Gmail Account", thread.gmail_account)):
		frappe.throw(_(NOT_YOUR_MAILBOX), frappe.PermissionError)
	return usable_mailbox(thread.gmail_account)


def usable_mailbox(name: str) -> frappe._dict:
	"""The Gmail Account ``name`` (``name, email_address, status, health, enabled, account_name``) when it
	can send: enabled, connected (SYNCING / ACTIVE) and not unhealthy.

	Raises:
		MailboxUnusable: :data:`UNHEALTHY`.
	"""
	account = frappe.db.get_value("Gmail Account", name,
								  ["name", "email_address", "status", "health", "enabled", "account_name"], as_dict=True)
	if not account.enabled or account.status not in ("SYNCING", "ACTIVE") or account.health in ("unhealthy", "disabled"):
		state = account.status.lower() if account.status not in ("SYNCING", "ACTIVE") else (account.health or "disabled")
		messages.throw(UNHEALTHY, account.email_address or account.account_name, _(state), exc=MailboxUnusable,
					   title="Smart Inbox")
	return account


def check_rules(thread_name: str, to: list[str], body: str) -> tuple:
	"""Every reply rule but the rate limit; returns ``(thread, account)``.

	Raises:
		frappe.PermissionError: no Atlas role; the thread or its mailbox is not the user's to use.
		frappe.ValidationError: "Workspace changes are temporarily unavailable" (workspace not Active).
		SendError: no To, empty body, no Gmail mailbox, unhealthy mailbox.
	"""
	from atlas_integrations.permissions import has_atlas_role
	from atlas_integrations.settings import require_active_workspace

	if not has_atlas_role():
		frappe.throw(_(NO_ROLE), frappe.PermissionError)
	require_active_workspace()
	thread = messages.get_doc("Inbox Thread", thread_name)
	thread.check_permission("read")
	account = _usable_account(thread)
	if not [a for a in to if a.strip()]:
		frappe.throw(_(NO_RECIPIENT), SendError, title=_("Smart Inbox"))
	if not plain_text_of(body).strip():
		frappe.throw(_(EMPTY_BODY), SendError, title=_("Smart Inbox"))
	return thread, account


def plain_text_of(body: str) -> str:
	"""The text of a message body the user wrote (HTML from the editor, or plain text)."""
	from frappe.core.utils import html2text

	return html2text(body or "") if "<" in (body or "") else (body or "")


split_addresses = outbox.split_addresses


# -- building the message ------------------------------------------------------------------------------------
def _parent(thread) -> frappe._dict | None:
	"""The latest message of the thread (what a reply answers)."""
	rows = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread.name, "atlas_deleted": 0},
						  fields=["name", "atlas_gmail_message_id", "message_id", "subject", "sender", "recipients", "cc",
								  "sent_or_received", "atlas_reply_to"],
						  order_by="communication_date desc, creation desc", limit=1)
	return rows[0] if rows else None


def _parent_headers(client, gmail_id: str | None) -> dict:
	"""Message-ID, References and Subject of the parent exactly as sent (Gmail metadata)."""
	if not gmail_id:
		return {}
	msg = client.get_message(gmail_id, fmt="metadata", metadata_headers=["Message-ID", "References", "Subject"])
	return {h["name"].lower(): h["value"] for h in (msg.get("payload") or {}).get("headers") or []}


def reply_subject(subject: str) -> str:
	"""``Re: <subject>`` unless it already starts with Re: (any case)."""
	subject = (subject or "").strip()
	return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()


def build_mime(*, from_addr: str, to: list[str], cc: list[str], bcc: list[str], subject: str, body_html: str,
			   message_id: str, in_reply_to: str | None, references: str | None,
			   attachments: list[tuple[str, str, bytes]] = ()) -> bytes:
	"""The RFC 822 bytes of a reply (``email`` stdlib, SMTP policy: CRLF, folded headers, encoded words).

	Args:
		attachments: ``(file name, content type, bytes)``.
	"""
	msg = EmailMessage(policy=email.policy.SMTP)
	msg["From"] = from_addr
	msg["To"] = ", ".join(to)
	if cc:
		msg["Cc"] = ", ".join(cc)
	if bcc:
		msg["Bcc"] = ", ".join(bcc)  # Gmail delivers to Bcc and removes the header from what recipients get
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


def _attachments(files: list[str]) -> list[tuple[str, str, bytes]]:
	"""``(name, type, bytes)`` of File documents the user may read (attached to the reply)."""
	import mimetypes

	out, total = [], 0
	for name in files or []:
		doc = messages.get_doc("File", name)
		doc.check_permission("read")
		data = doc.get_content()
		data = data.encode() if isinstance(data, str) else data
		total += len(data)
		if total > MAX_ATTACHMENT_BYTES:
			frappe.throw(_("Attachments are larger than Gmail's 25 MB per message"), Refused, title=_("Smart Inbox"))
		ctype = mimetypes.guess_type(doc.file_name or "")[0] or "application/octet-stream"
		out.append((doc.file_name, ctype, data))
	return out


def _request_key(user: str, client_key: str) -> str:
	return outbox.reply_key(user, client_key)


# -- sending -------------------------------------------------------------------------------------------------
def reply(thread: str, to, body: str, client_key: str, cc=None, bcc=None, subject: str | None = None,
		  attachments: list[str] | None = None, from_addr: str | None = None) -> dict:
	"""Reply in ``thread`` through its Gmail mailbox, exactly once per ``client_key``.

	Sent with Gmail ``users.messages.send`` in the thread's ``threadId``, with ``In-Reply-To`` (the latest
	message's Message-ID) and the full ``References`` chain, ``Re:`` subject, From the mailbox's address or
	one of its verified send-as aliases (``users.settings.sendAs``).

	Args:
		thread: Inbox Thread name.
		to, cc, bcc: addresses (lists, or comma separated).
		body: the message (HTML from the desk editor, or plain text).
		client_key: the client's idempotency key (e.g. a UUID made when the composer opened): the same key
			returns the first result.
		subject: default ``Re: <thread subject>``.
		attachments: File names to attach (the user must be able to read them).
		from_addr: a verified send-as address of the mailbox (default: the mailbox's address).

	Returns:
		:func:`result` of the Outgoing Mail.

	Raises:
		frappe.PermissionError, SendError, frappe.ValidationError: see :func:`check_rules`; Gmail refused
			the message (the record stays Failed with Gmail's words).
		atlas_integrations.inbox.send_limit.SendRateLimited: over the user's emails a minute (HTTP 429;
			checked after the rules, before Gmail is called; a key already used is not counted again).
	"""
	user = frappe.session.user
	if not client_key or len(str(client_key)) > 200:
		frappe.throw(_("A client idempotency key (at most 200 characters) is required"), SendError)
	key = _request_key(user, str(client_key))
	existing = frappe.db.get_value(DOCTYPE, {"request_key": key}, "name")
	if existing:
		return _resume(existing)
	to, cc, bcc = split_addresses(to), split_addresses(cc), split_addresses(bcc)
	thread_doc, account = check_rules(thread, to, body)
	send_limit.take(user)
	from atlas_integrations.gmail import accounts

	client = accounts.client_for(account.name)
	sender = _from_address(client, account, from_addr)
	parent = _parent(thread_doc)
	headers = _parent_headers(client, parent.atlas_gmail_message_id if parent else None)
	parent_id = headers.get("message-id") or (plain(parent.message_id) if parent and parent.message_id else None)
	references = " ".join(x for x in [headers.get("references", "").strip(), parent_id or ""] if x) or None
	domain = sender.rsplit("@", 1)[-1].strip(">") or "atlas.invalid"
	message_id = email.utils.make_msgid(idstring="atlas", domain=domain)
	files = _attachments(attachments or [])
	raw = build_mime(from_addr=sender, to=to, cc=cc, bcc=bcc,
					 subject=subject or reply_subject(headers.get("subject") or plain(thread_doc.subject)),
					 body_html=body, message_id=message_id, in_reply_to=parent_id, references=references,
					 attachments=files)
	try:
		doc = frappe.get_doc({
			"doctype": DOCTYPE, "request_key": key, "status": SENDING, "user": user, "inbox_thread": thread_doc.name,
			"gmail_account": account.name, "gmail_thread_id": thread_doc.gmail_thread_id, "message_id": message_id,
			"from_address": mail_text(sender), "to_addresses": mail_text(", ".join(to)),
			"cc_addresses": mail_text(", ".join(cc)) or None, "bcc_addresses": mail_text(", ".join(bcc)) or None,
			"subject": mail_text(subject or reply_subject(plain(thread_doc.subject))),
			"in_reply_to": mail_text(parent_id), "attachment_count": len(files),
			"raw": base64.b64encode(raw).decode()}).insert(ignore_permissions=True)
		frappe.db.commit()  # the record exists before Gmail is called
	except (frappe.DuplicateEntryError, frappe.UniqueValidationError):  # the same key raced in: that one sends
		frappe.db.rollback()
		return _resume(frappe.db.get_value(DOCTYPE, {"request_key": key}, "name"))
	return deliver(doc.name, first=True)


def send_new(account: str, user: str, request_key: str, to: list[str], subject: str, body: str, cc=None,
			 attachments: list[tuple[str, str, bytes]] = (), reference_doctype: str | None = None,
			 reference_name: str | None = None) -> dict:
	"""Send a new message (not a reply: a new Gmail thread) through the Gmail Account ``account``, exactly
	once per ``request_key``: the Outgoing Mail is committed before Gmail is called, and a record that
	already exists for the key is finished (:func:`deliver`: the mailbox is searched for its Message-ID
	before any resend) instead of being sent again. Used by background jobs (e.g. "Send quote"), which
	check their own rules first.

	Args:
		account: Gmail Account name (must pass :func:`usable_mailbox`).
		user: the user the send is made for (the record's owner in the desk).
		request_key: the caller's idempotency key (e.g. ``xero-quote-send:<Sync Job>``).
		to, cc: addresses.
		subject, body: the message (body HTML or plain text).
		attachments: ``(file name, content type, bytes)``; at most 25 MB in all.
		reference_doctype, reference_name: the document the message is about: the Communication is linked
			to its timeline.

	Returns:
		:func:`result` of the Outgoing Mail.

	Raises:
		SendError: the mailbox cannot send (:data:`UNHEALTHY`), no recipient, Gmail refused the message
			(the record stays Failed with Gmail's words; the same key sends again after checking the mailbox).
	"""
	key = outbox.job_key(request_key)
	existing = frappe.db.get_value(DOCTYPE, {"request_key": key}, "name")
	if existing:
		return deliver(existing)
	to, cc = split_addresses(to), split_addresses(cc)
	if not to:
		frappe.throw(_(NO_RECIPIENT), SendError, title="Gmail")
	mailbox = usable_mailbox(account)
	if sum(len(a[2]) for a in attachments) > MAX_ATTACHMENT_BYTES:
		frappe.throw(_("Attachments are larger than Gmail's 25 MB per message"), Refused, title="Gmail")
	sender = mailbox.email_address
	domain = sender.rsplit("@", 1)[-1].strip(">") or "atlas.invalid"
	message_id = email.utils.make_msgid(idstring="atlas", domain=domain)
	raw = build_mime(from_addr=sender, to=to, cc=cc, bcc=[], subject=subject, body_html=body, message_id=message_id,
					 in_reply_to=None, references=None, attachments=list(attachments))
	try:
		doc = frappe.get_doc({
			"doctype": DOCTYPE, "request_key": key, "status": SENDING, "user": user, "gmail_account": account,
			"message_id": message_id, "from_address": mail_text(sender), "to_addresses": mail_text(", ".join(to)),
			"cc_addresses": mail_text(", ".join(cc)) or None, "subject": mail_text(subject),
			"attachment_count": len(attachments), "reference_doctype": reference_doctype,
			"reference_name": reference_name, "raw": base64.b64encode(raw).decode()}).insert(ignore_permissions=True)
		frappe.db.commit()  # the record exists before Gmail is called
	except (frappe.DuplicateEntryError, frappe.UniqueValidationError):
		frappe.db.rollback()
		return deliver(frappe.db.get_value(DOCTYPE, {"request_key": key}, "name"))
	return deliver(doc.name, first=True)


def _from_address(client, account, wanted: str | None) -> str:
	"""The mailbox's address, or ``wanted`` when it is one of its verified send-as aliases."""
	if not wanted or wanted.strip().lower() == (account.email_address or "").lower():
		return account.email_address
	aliases = client.list_send_as()
	for alias in aliases:
		if alias.get("sendAsEmail", "").lower() == wanted.strip().lower() and (
				alias.get("isPrimary") or alias.get("verificationStatus") == "accepted"):
			name = alias.get("displayName")
			return email.utils.formataddr((name, alias["sendAsEmail"])) if name else alias["sendAsEmail"]
	messages.throw(BAD_FROM, wanted, exc=SendError, title="Smart Inbox")


def _resume(name: str) -> dict:
	"""The same request again: the first result; an unfinished one is reconciled first."""
	doc = frappe.db.get_value(DOCTYPE, name, ["name", "status", "user", "modified"], as_dict=True)
	if doc.user != frappe.session.user:
		frappe.throw(_(NOT_YOUR_MAILBOX), frappe.PermissionError)
	if doc.status in (UNRECORDED, FAILED) or (doc.status == SENDING and _stale(doc.modified)):
		return deliver(name)
	if doc.status == SENDING:  # maybe mid-send elsewhere, maybe its process died: look, never send
		return reconcile(name, fail_if_absent=False)
	return result(name)


def _stale(modified) -> bool:
	return modified <= add_to_date(now_datetime(), seconds=-STALE_SENDING)


def _lock(name: str):
	"""Commit the current transaction, then take Outgoing Mail ``name``'s row lock (``SELECT … FOR
	UPDATE``, waiting up to MariaDB's ``innodb_lock_wait_timeout``, 50 s by default) and return the
	document as that locking read found it (what the previous holder committed). The lock is held until
	the next commit or rollback.

	Raises:
		frappe.DoesNotExistError: no such record.
		SendError: :data:`BUSY` (another request held the lock for longer than the wait).
	"""
	frappe.db.commit()  # what the caller wrote is kept; the lock is this transaction's only one
	try:
		return frappe.get_doc(DOCTYPE, name, for_update=True)  # a locking read: the latest committed row
	except frappe.QueryTimeoutError:
		frappe.db.rollback()
		frappe.throw(_(BUSY), SendError, title=_("Smart Inbox"))


def deliver(name: str, first: bool = False) -> dict:
	"""Send an Outgoing Mail, or finish it, under its row lock (:func:`_lock`): unless this is the first
	delivery of a record its caller has just created, first look for its Message-ID in the mailbox (an
	earlier attempt may have reached Gmail), then send only if it is not there, then record. The lock is
	held from reading the state through the Gmail call until the outcome (Accepted / Failed) is committed,
	so a second delivery of the same record waits and then finds that outcome instead of sending again.
	Commits.

	Args:
		name: Outgoing Mail name.
		first: the caller inserted the record in this request and nobody can have sent it yet (skips the
			mailbox search; any other caller searches).

	Returns:
		:func:`result`.

	Raises:
		Refused, MailboxUnusable (access revoked), NotAnswered (Gmail did not answer and does not hold it):
			the record is Failed and can be sent again with the same key; SendError: :data:`BUSY`.
	"""
	from atlas_integrations.gmail import accounts
	from atlas_integrations.gmail.errors import AuthRevoked, GmailError, Temporary

	doc = _lock(name)
	if doc.status == SENT:
		frappe.db.commit()
		return result(name)
	client = accounts.client_for(doc.gmail_account)
	gmail_id = doc.gmail_message_id
	if not gmail_id and not first:
		gmail_id = client.find_rfc822msgid(doc.message_id)
	if not gmail_id:
		# not committed: the lock stays held through the call. A process that dies here leaves the last
		# committed state (Sending or Failed), and every later delivery or reconcile searches the mailbox.
		doc.db_set({"attempts": (doc.attempts or 0) + 1, "status": SENDING, "error": None})
		raw = base64.b64decode(doc.raw)
		try:
			sent = client.send_message(raw, thread_id=doc.gmail_thread_id)
			gmail_id = sent["id"]
		except Temporary as exc:  # no answer: did Gmail take it anyway?
			gmail_id = client.find_rfc822msgid(doc.message_id)
			if not gmail_id:
				doc.db_set({"status": FAILED, "error": messages.text(
					"Gmail did not answer ({0}) and does not hold the message: nothing was sent", exc.__class__.__name__)})
				frappe.db.commit()
				frappe.throw(doc.error, NotAnswered, title=_("Smart Inbox"))  # messages.text: translated, values escaped
		except GmailError as exc:
			doc.db_set({"status": FAILED, "error": messages.text("Gmail refused the message: {0}", str(exc)[:900])})
			frappe.db.commit()
			kind = MailboxUnusable if isinstance(exc, AuthRevoked) else Refused
			frappe.throw(doc.error, kind, title=_("Smart Inbox"))  # messages.text: translated, Gmail's words escaped
	doc.db_set({"status": UNRECORDED, "gmail_message_id": gmail_id})  # accepted: recorded next
	frappe.db.commit()
	record(name)
	return result(name)


def record(name: str) -> str:
	"""Store the accepted message as the thread's outbound Communication (the sync's own store: the same
	unique ``atlas_gmail_key`` a later history run finds), link it to the thread's documents, and mark the
	record Sent, under the record's row lock (a concurrent delivery or reconcile of the same record waits,
	then finds it Sent). Commits. Returns the Communication name (None when Gmail's copy was not stored)."""
	from atlas_integrations.gmail import accounts, store
	from atlas_integrations.inbox import pipeline

	doc = _lock(name)
	if doc.status == SENT:
		frappe.db.commit()
		return doc.communication
	key = store.message_key(doc.gmail_account, doc.gmail_message_id)
	communication = frappe.db.get_value("Communication", {"atlas_gmail_key": key}, "name")
	if not communication:
		client = accounts.client_for(doc.gmail_account)
		messages, failures = client.get_messages([doc.gmail_message_id], fmt="raw")
		if doc.gmail_message_id not in messages:
			frappe.db.rollback()
			raise failures.get(doc.gmail_message_id) or SendError(_("Gmail did not return the sent message"))
		account = frappe.db.get_value("Gmail Account", doc.gmail_account, ["gmail_labels"], as_dict=True)
		import json

		ctx = store.StoreContext(account=doc.gmail_account,
								 label_names=json.loads(account.gmail_labels or "{}"))
		store.write_batch(ctx, [messages[doc.gmail_message_id]])
		communication = frappe.db.get_value("Communication", {"atlas_gmail_key": key}, "name")
		if communication:
			pipeline.run([communication])  # timelines of the thread's party
	if communication and doc.reference_doctype and doc.reference_name:
		_link(communication, doc.reference_doctype, doc.reference_name)
	thread = doc.inbox_thread or (frappe.db.get_value("Communication", communication, "atlas_inbox_thread")
								  if communication else None)
	doc.db_set({"status": SENT, "communication": communication, "sent_at": now_datetime(), "error": None,
				"inbox_thread": thread, "raw": None})  # the message lives in Gmail and the Communication now
	frappe.db.commit()
	frappe.publish_realtime("atlas_inbox_thread", {"thread": doc.inbox_thread, "reason": "sent"},
							doctype="Inbox Thread", docname=doc.inbox_thread, after_commit=True)
	return communication


def _link(communication: str, doctype: str, name: str) -> None:
	"""Put the Communication on ``doctype`` ``name``'s timeline (a Communication Link, once)."""
	if not frappe.db.exists("Communication Link", {"parent": communication, "link_doctype": doctype, "link_name": name}):
		comm = frappe.get_doc("Communication", communication)
		comm.add_link(doctype, name)
		comm.flags.ignore_permissions = True
		comm.save()


def result(name: str) -> dict:
	"""``{"name", "status", "message_id", "gmail_message_id", "gmail_thread_id", "communication", "error"
	(HTML text)}`` of an Outgoing Mail."""
	return frappe.db.get_value(DOCTYPE, name, ["name", "status", "message_id", "gmail_message_id", "gmail_thread_id",
											   "communication", "error"], as_dict=True)


def reconcile(name: str, fail_if_absent: bool = True) -> dict:
	"""The Reconcile action: finish an Outgoing Mail that is Accepted, not recorded, or Sending with a
	dead process, or find out that it never reached Gmail (then Failed, unless ``fail_if_absent`` is
	False). Never sends; holds the record's row lock (a delivery in progress finishes first). Commits.
	Returns :func:`result`.

	Raises:
		SendError: :data:`BUSY` (a delivery held the lock longer than the lock wait).
	"""
	from atlas_integrations.gmail import accounts

	doc = _lock(name)  # a delivery in progress finishes first
	if doc.status == SENT:
		frappe.db.commit()
		return result(name)
	gmail_id = doc.gmail_message_id or accounts.client_for(doc.gmail_account).find_rfc822msgid(doc.message_id)
	if gmail_id:
		doc.db_set({"status": UNRECORDED, "gmail_message_id": gmail_id})
		frappe.db.commit()
		record(name)
	elif doc.status == SENDING and fail_if_absent:
		doc.db_set({"status": FAILED, "error": mail_text("Gmail does not hold the message: it was not sent")})
		frappe.db.commit()
	else:
		frappe.db.commit()  # nothing changed: release the lock
	return result(name)


def reconcile_stale() -> list[str]:
	"""Scheduler hook (every few minutes): reconcile Outgoing Mails left Sending (their process died) or
	Accepted, not recorded, for more than :data:`STALE_SENDING` seconds. Returns those reconciled."""
	cutoff = add_to_date(now_datetime(), seconds=-STALE_SENDING)
	names = frappe.get_all(DOCTYPE, filters={"status": ["in", [SENDING, UNRECORDED]], "modified": ["<=", cutoff]},
						   pluck="name", limit=200)
	done = []
	for name in names:
		try:
			reconcile(name)
			done.append(name)
		except Exception:
			frappe.db.rollback()
			frappe.log_error(title=f"Outgoing Mail {name} not reconciled", reference_doctype=DOCTYPE, reference_name=name)
			frappe.db.commit()
	return done
