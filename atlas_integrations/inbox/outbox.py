"""The outbox: every provider's send, exactly once (Outgoing Mail states, request keys, typed errors, and
the state machine that delivers, records and reconciles).

An Outgoing Mail is committed before the provider is called and keyed by a hash of its caller's request key
(a reply: the user and the composer's client key; a background job: its own key), under a unique index, so
one request key sends at most one message. It carries a Message-ID the app generates, by which the
provider's mailbox is searched before any resend.

A provider builds the message (its mailbox type's ``send_reply`` / ``send_new`` entry points,
:mod:`atlas_integrations.inbox.mailboxes`), hands it to :func:`create`, and supplies three steps the state
machine calls:

* ``send_submit(mailbox, doc, raw) -> provider message id``: hand the RFC 822 bytes to the provider;
  raises :class:`NotAnswered` (no answer: the outbox searches the mailbox, then fails it),
  :class:`MailboxUnusable` or :class:`Refused` (the record turns Failed with the provider's words);
* ``send_find(mailbox, doc) -> provider message id | None``: the sent message searched by its Message-ID
  (after a timeout, a crash, or before a resend); never sends;
* ``send_store(mailbox, doc) -> Communication name | None``: store the provider's copy of the accepted
  message as the thread's outbound Communication through the sync's own writer (its unique key, so the copy
  that comes back through the sync is the same record) and run the pipeline on it.

A provider that sends a draft it made first (Outlook: ``createReply``, then ``/send``) also supplies
``send_prepare(mailbox, doc, raw) -> {field: value}``: make (or find again) the provider's draft and return
what to record of it (``provider_draft_id``, the draft's ``message_id``); the outbox **commits** that before
``send_submit`` is called, so after a timeout or a crash the draft is looked up by its id rather than made and
sent again. Its ``send_find`` may raise :class:`NotConfirmed` (the provider may hold the message but has not
shown it yet: a sent copy can appear late): the record stays Sending, nothing is sent, and it is looked for
again (the same request key, Reconcile, or the scheduler).

States: **Sending** (committed, the provider called or about to be), **Sent** (recorded), **Accepted, not
recorded** (the provider took it, recording did not finish: Reconcile finishes it, never resends),
**Failed** (not sent; sending again searches the mailbox first).

Delivering, recording and reconciling hold the Outgoing Mail's **row lock** (``SELECT … FOR UPDATE``) from
reading its state until that state is committed: two retries of one failed send (a double click, two tabs, a
retry racing Reconcile) run one after the other, and the second finds the first's answer instead of sending
again. Callers (replies, "Send quote") decide on the kind of failure by type, never on its words.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime

from atlas_integrations import messages
from atlas_integrations.inbox import mailboxes

DOCTYPE = "Outgoing Mail"
#: an Outgoing Mail's states: being sent; sent and recorded; the provider took it, the record is unfinished
#: (Reconcile finishes it, never resends); not sent (the same request key may send again)
SENDING, SENT, UNRECORDED, FAILED = "Sending", "Sent", "Accepted, not recorded", "Failed"
#: states in which the provider holds the message
DELIVERED = (SENT, UNRECORDED)
STALE_SENDING = 5 * 60  # seconds after which a Sending record's process is taken for dead

NOT_YOURS = "You cannot use this mailbox"
BUSY = "This message is being sent by another request: reload in a moment to see whether it went out"
NOT_ANSWERED = "{0} did not answer ({1}) and does not hold the message: nothing was sent"
PROVIDER_REFUSED = "{0} refused the message: {1}"
NOT_HELD = "{0} does not hold the message: it was not sent"
NOT_RETURNED = "{0} did not return the sent message"
UNCONFIRMED = "{0} has not confirmed the message yet: it is looked for again in a few minutes and is not sent again meanwhile"


class SendError(frappe.ValidationError):
	"""A send refused by a rule (no recipient, empty body, a From that is not the mailbox's) or by the
	provider; the message says which in words."""


class NotAnswered(SendError):
	"""The provider did not answer and does not hold the message: nothing was sent; the same request key
	may try again later (the mailbox is searched for it first)."""


class MailboxUnusable(SendError):
	"""The mailbox cannot send now (disabled, disconnected, access revoked, unhealthy): reconnect it."""


class Refused(SendError):
	"""The provider refused the message itself (a recipient, its size, its content)."""


class NotConfirmed(SendError):
	"""The provider may hold the message but has not confirmed it yet (its sent copy can appear late): the
	record stays Sending and nothing is sent again until the provider's mailbox says which it is."""


def reply_key(user: str, client_key: str) -> str:
	"""The Outgoing Mail key of a reply: SHA-256 (hex) of the user and the composer's client key."""
	return hashlib.sha256(f"{user}\x00{client_key}".encode()).hexdigest()


def reply_request(client_key) -> tuple[str, str | None]:
	"""The session user's reply request of composer key ``client_key``: ``(request key, Outgoing Mail name
	or None)`` — an existing record is to be resumed (:func:`resume`), never sent again.

	Raises:
		SendError: no client key, or one over 200 characters.
	"""
	if not client_key or len(str(client_key)) > 200:
		frappe.throw(_("A client idempotency key (at most 200 characters) is required"), SendError)
	key = reply_key(frappe.session.user, str(client_key))
	return key, existing(key)


def job_key(request_key: str) -> str:
	"""The Outgoing Mail key of a background send (e.g. ``xero-quote-send:<Sync Job>``): SHA-256 (hex)."""
	return hashlib.sha256(f"job\x00{request_key}".encode()).hexdigest()


def find(request_key: str, job: bool = True) -> frappe._dict | None:
	"""The Outgoing Mail of a caller's request key (``job``: a background send's key, else a reply's
	:func:`reply_key` already made): ``{"name", "status", "error"}``, or None when there is none yet."""
	key = job_key(request_key) if job else request_key
	return frappe.db.get_value(DOCTYPE, {"request_key": key}, ["name", "status", "error"], as_dict=True)


def split_addresses(value, strict: bool = False) -> list[str]:
	"""Addresses from a list, or a comma/semicolon separated string; each ``Name <a@b>`` or ``a@b``.

	Entries without an ``@`` are dropped, or with ``strict`` kept as typed (so that the caller can name
	them in its "not a valid email address" error)."""
	if not value:
		return []
	if isinstance(value, str):
		value = value.replace(";", ",").split(",")
	out = []
	for piece in (str(v).strip() for v in value):
		if not piece:
			continue
		found = [(n, a) for n, a in email.utils.getaddresses([piece]) if a]
		if not found and strict:
			out.append(piece)
		for name, addr in found:
			if "@" in addr:
				out.append(email.utils.formataddr((name, addr)) if name else addr)
			elif strict:
				out.append(piece)
	return out


# -- the state machine ---------------------------------------------------------------------------------------
def create(values: dict, key: str) -> dict:
	"""Insert the Outgoing Mail of request key ``key`` (already hashed: :func:`reply_key` / :func:`job_key`)
	as Sending and commit it before any provider call, then deliver it (:func:`deliver` with ``first``).
	When the key raced in from another request, that record is resumed instead (the user's own, for replies).

	Args:
		values: the record's fields (mailbox link, ``message_id``, addresses, ``subject``, ``raw`` base64 …).
		key: the unique ``request_key``.

	Returns:
		:func:`result`.

	Raises:
		as :func:`deliver`.
	"""
	try:
		doc = frappe.get_doc({**values, "doctype": DOCTYPE, "request_key": key, "status": SENDING}).insert(
			ignore_permissions=True)
		frappe.db.commit()  # the record exists before the provider is called
	except (frappe.DuplicateEntryError, frappe.UniqueValidationError):  # the same key raced in: that one sends
		frappe.db.rollback()
		name = frappe.db.get_value(DOCTYPE, {"request_key": key}, "name")
		return resume(name) if values.get("inbox_thread") else deliver(name)
	return deliver(doc.name, first=True)


def existing(key: str) -> str | None:
	"""The Outgoing Mail name of an already hashed request key, or None."""
	return frappe.db.get_value(DOCTYPE, {"request_key": key}, "name")


def resume(name: str) -> dict:
	"""The same reply request again (the session user's own): the first result; an unfinished one is
	delivered (a failed or stale one) or looked for (one Sending elsewhere), never sent twice.

	Raises:
		frappe.PermissionError: the record is another user's.
	"""
	doc = frappe.db.get_value(DOCTYPE, name, ["name", "status", "user", "modified"], as_dict=True)
	if doc.user != frappe.session.user:
		frappe.throw(_(NOT_YOURS), frappe.PermissionError)
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


def _provider(doc) -> tuple[mailboxes.MailboxType, str]:
	"""The mailbox type and mailbox name an Outgoing Mail goes through.

	Raises:
		SendError: the record names no mailbox (or two)."""
	mailbox = mailboxes.of_outgoing_row(doc)
	if not mailbox or mailbox is True:
		frappe.throw(_(mailboxes.NO_MAILBOX), SendError, title=_("Smart Inbox"))
	return mailboxes.get(mailbox[0]), mailbox[1]


def deliver(name: str, first: bool = False) -> dict:
	"""Send an Outgoing Mail, or finish it, under its row lock (:func:`_lock`): unless this is the first
	delivery of a record its caller has just created, first look for its Message-ID in the mailbox (an
	earlier attempt may have reached the provider), then send only if it is not there, then record. The
	lock is held from reading the state through the provider call until the outcome (Accepted / Failed) is
	committed, so a second delivery of the same record waits and then finds that outcome instead of sending
	again. Commits.

	Args:
		name: Outgoing Mail name.
		first: the caller inserted the record in this request and nobody can have sent it yet (skips the
			mailbox search; any other caller searches).

	Returns:
		:func:`result`.

	Raises:
		Refused, MailboxUnusable, NotAnswered (the provider did not answer and does not hold it): the record
			is Failed and can be sent again with the same key; SendError: :data:`BUSY`; NotConfirmed
			(:data:`UNCONFIRMED`: the record stays Sending and is looked for again).
	"""
	doc = _lock(name)
	if doc.status == SENT:
		frappe.db.commit()
		return result(name)
	mailbox_type, mailbox = _provider(doc)
	try:
		provider_id = doc.provider_message_id
		if not provider_id and not first:
			provider_id = mailbox_type.entry("send_find")(mailbox, doc)
		if not provider_id and mailbox_type.send_prepare:
			doc = _prepare(doc, mailbox_type, mailbox)
			provider_id = doc.provider_message_id  # set when another delivery sent it meanwhile
		if not provider_id:
			provider_id = _submit(doc, mailbox_type, mailbox)
	except NotConfirmed:
		frappe.db.commit()  # the record stays Sending (with its draft): looked for again, never resent meanwhile
		messages.throw(UNCONFIRMED, mailbox_type.label, exc=NotConfirmed, title="Smart Inbox")
	if doc.status == SENT:  # another delivery sent and recorded it while the draft was being committed
		frappe.db.commit()
		return result(name)
	doc.db_set({"status": UNRECORDED, "provider_message_id": provider_id})  # accepted: recorded next
	frappe.db.commit()
	_record_if_shown(name)
	return result(name)


def _record_if_shown(name: str) -> None:
	""":func:`record`, except that a provider not showing its sent copy yet (:class:`NotConfirmed`) leaves
	the record Accepted, not recorded, for Reconcile or the scheduler to finish."""
	try:
		record(name)
	except NotConfirmed:
		frappe.db.rollback()


def _prepare(doc, mailbox_type: mailboxes.MailboxType, mailbox: str):
	"""The provider's draft of a locked record (its ``send_prepare``), committed before anything is sent;
	returns the record locked again (as the last commit left it: another delivery may have sent the draft
	while the lock was released, then its ``provider_message_id`` is set).

	Raises:
		Refused, MailboxUnusable, NotAnswered: the draft could not be made (the record is Failed).
	"""
	try:
		recorded = mailbox_type.entry("send_prepare")(mailbox, doc, base64.b64decode(doc.raw))
	except (NotAnswered, MailboxUnusable, Refused) as exc:
		_fail(doc, mailbox_type, exc)
	doc.db_set({**recorded, "status": SENDING, "error": None})
	return _lock(doc.name)  # commits the draft's id first


def _submit(doc, mailbox_type: mailboxes.MailboxType, mailbox: str) -> str:
	"""The provider's ``send_submit`` of a locked record; returns the provider's message id. When the
	provider did not answer, the mailbox is searched (it may have taken the message anyway).

	Raises:
		Refused, MailboxUnusable, NotAnswered: not sent (the record is Failed and committed).
		NotConfirmed: the provider's ``send_find`` cannot tell yet.
	"""
	# not committed: the lock stays held through the call. A process that dies here leaves the last
	# committed state (Sending or Failed), and every later delivery or reconcile searches the mailbox.
	doc.db_set({"attempts": (doc.attempts or 0) + 1, "status": SENDING, "error": None})
	try:
		return mailbox_type.entry("send_submit")(mailbox, doc, base64.b64decode(doc.raw))
	except NotAnswered as exc:  # no answer: did the provider take it anyway?
		provider_id = mailbox_type.entry("send_find")(mailbox, doc)
		if not provider_id:
			_fail(doc, mailbox_type, exc)
		return provider_id
	except (MailboxUnusable, Refused) as exc:
		_fail(doc, mailbox_type, exc)


def _fail(doc, mailbox_type: mailboxes.MailboxType, exc: SendError) -> None:
	"""Record a send that did not happen as Failed with the provider's words, commit, and raise ``exc``'s type.

	Raises:
		NotAnswered (:data:`NOT_ANSWERED`), or ``type(exc)`` (:data:`PROVIDER_REFUSED`).
	"""
	if isinstance(exc, NotAnswered):
		error, kind = messages.text(NOT_ANSWERED, mailbox_type.label, str(exc)[:200]), NotAnswered
	else:
		error, kind = messages.text(PROVIDER_REFUSED, mailbox_type.label, str(exc)[:900]), type(exc)
	doc.db_set({"status": FAILED, "error": error})
	frappe.db.commit()
	frappe.throw(doc.error, kind, title=_("Smart Inbox"))  # messages.text: translated, values escaped


def record(name: str) -> str | None:
	"""Store the accepted message as the thread's outbound Communication (the provider's ``send_store``:
	the sync's own writer, so the copy the sync finds later is the same record), link it to the document the
	send is about, and mark the record Sent, under the record's row lock (a concurrent delivery or reconcile
	of the same record waits, then finds it Sent). Commits. Returns the Communication name (None when the
	provider's copy was not stored).

	Raises:
		SendError: :data:`NOT_RETURNED` or the provider's error (the record stays Accepted, not recorded:
			Reconcile or the scheduler finishes it).
	"""
	doc = _lock(name)
	if doc.status == SENT:
		frappe.db.commit()
		return doc.communication
	mailbox_type, mailbox = _provider(doc)
	communication = mailbox_type.entry("send_store")(mailbox, doc)
	if communication and doc.reference_doctype and doc.reference_name:
		link_to(communication, doc.reference_doctype, doc.reference_name)
	thread = doc.inbox_thread or (frappe.db.get_value("Communication", communication, "atlas_inbox_thread")
								  if communication else None)
	doc.db_set({"status": SENT, "communication": communication, "sent_at": now_datetime(), "error": None,
				"inbox_thread": thread, "raw": None})  # the message lives at the provider and in the Communication
	frappe.db.commit()
	frappe.publish_realtime("atlas_inbox_thread", {"thread": doc.inbox_thread, "reason": "sent"},
							doctype="Inbox Thread", docname=doc.inbox_thread, after_commit=True)
	return communication


def link_to(communication: str, doctype: str, name: str) -> None:
	"""Put the Communication on ``doctype`` ``name``'s timeline (a Communication Link, once)."""
	if not frappe.db.exists("Communication Link", {"parent": communication, "link_doctype": doctype, "link_name": name}):
		comm = frappe.get_doc("Communication", communication)
		comm.add_link(doctype, name)
		comm.flags.ignore_permissions = True
		comm.save()


def result(name: str) -> dict:
	"""``{"name", "status", "message_id", "provider_message_id", "provider_thread_id", "communication",
	"error" (HTML text)}`` of an Outgoing Mail."""
	return frappe.db.get_value(DOCTYPE, name, ["name", "status", "message_id", "provider_message_id",
											   "provider_thread_id", "communication", "error"], as_dict=True)


def reconcile(name: str, fail_if_absent: bool = True) -> dict:
	"""The Reconcile action: finish an Outgoing Mail that is Accepted, not recorded, or Sending with a dead
	process, or find out that it never reached the provider (then Failed, unless ``fail_if_absent`` is
	False). Never sends; holds the record's row lock (a delivery in progress finishes first). Commits.
	Returns :func:`result`.

	Raises:
		SendError: :data:`BUSY` (a delivery held the lock longer than the lock wait).
	"""
	doc = _lock(name)  # a delivery in progress finishes first
	if doc.status == SENT:
		frappe.db.commit()
		return result(name)
	mailbox_type, mailbox = _provider(doc)
	try:
		provider_id = doc.provider_message_id or mailbox_type.entry("send_find")(mailbox, doc)
	except NotConfirmed:  # not shown yet: looked for again later, never failed (nor resent) meanwhile
		frappe.db.commit()
		return result(name)
	if provider_id:
		doc.db_set({"status": UNRECORDED, "provider_message_id": provider_id})
		frappe.db.commit()
		_record_if_shown(name)
	elif doc.status == SENDING and fail_if_absent:
		doc.db_set({"status": FAILED, "error": messages.text(NOT_HELD, mailbox_type.label)})
		frappe.db.commit()
	else:
		frappe.db.commit()  # nothing changed: release the lock
	return result(name)


def reconcile_stale() -> list[str]:
	"""Scheduler hook (every few minutes): reconcile Outgoing Mails left Sending (their process died) or
	Accepted, not recorded, for more than :data:`STALE_SENDING` seconds (at most 200 a run). Returns those
	reconciled; one that fails is logged and left for the next run."""
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
