"""Quotations to Xero Quotes, and "Send quote": the Xero Quote's PDF emailed through a shared mailbox, exactly once.

* A submitted Quotation of a connected Company becomes a pending "Xero Quote" Sync Job (``on_submit``,
  after commit); the Company's drain (:mod:`atlas_integrations.xero.drain`) pushes it as a DRAFT Xero Quote
  with the invoices' contact, account, tax and item mappings and the same total check. Cancelling
  deletes a DRAFT quote and declines a SENT one (Xero's rules: only a DRAFT quote can be deleted); a quote
  the customer already ACCEPTED (or that was INVOICED) in Xero refuses the cancel. An amendment is a new
  document, so a new Quote (Reference "Amends <original>").
* Xero's API has no quote email. "Send quote" (:func:`request_send`, whitelisted in
  ``api/xero.py``) checks its rules, then queues a "Xero Quote Send" job that fetches the quote PDF
  (``GET /Quotes/{QuoteID}`` with ``Accept: application/pdf``), emails it through the workspace's shared
  mailbox (any registered mailbox type that can send: its ``send_new`` entry point, e.g.
  :func:`atlas_integrations.gmail.send.send_new`) with the replies' exactly-once rule (the outbox, keyed by
  the job) and, once the provider accepted it, marks the Xero Quote SENT. Send failures are told apart by
  their type (:mod:`atlas_integrations.inbox.outbox`), never by their words.
* State on the Quotation (operator guide, "Xero status messages"): **Queued in Xero** (sync or delivery
  pending or processing), **Synced to Xero**, **Xero send failed** with the reason, which names the
  recipient, the integration or the Xero quote. Each delivery is on the Quotation's timeline (the sent
  Communication, and a comment).
"""

from __future__ import annotations

import hashlib
import json
import os

import frappe
from frappe import _
from frappe.utils import now_datetime

from atlas_integrations import jobs, messages
from atlas_integrations.inbox import mailboxes, outbox
from atlas_integrations.inbox.text import mail_text, plain
from atlas_integrations.xero import contacts, ledger, mappers, oauth, settings
from atlas_integrations.xero.client import request_timeout, session_for
from atlas_integrations.xero.errors import Permanent, Temporary, validation_messages
from atlas_integrations.xero.jobs import XERO_QUOTE, XERO_QUOTE_SEND

DOCTYPE = "Quotation"
QUEUED, SYNCED, SEND_FAILED = "Queued in Xero", "Synced to Xero", "Xero send failed"
WAITING_FOR_QUOTE = 30  # seconds: a send waits for its quote to reach Xero
#: "Xero Quote Send" jobs queued before mailbox types were registered (issue 18) all sent through Gmail
LEGACY_MAILBOX_TYPE = "Gmail Account"

NOT_CONNECTED = "Connect Xero for {0} before sending quotes"
NOT_SUBMITTED = "Submit the Quotation before sending it"
NO_MAILBOX = ("No connected shared workspace mailbox can send quotes for {0}: connect a shared workspace "
			  "mailbox of that Company, or choose one in the Xero Connection's \"Send Quotes From\"")
NO_RECIPIENT = "Add at least one To recipient"
BAD_RECIPIENT = "{0} is not a valid email address"
NOT_YOURS = "You cannot email this Quotation"
NOT_CUSTOMER = ("Xero quote: Xero needs a customer contact, and this Quotation is to a {0}. Convert the {0} to a "
				"Customer, then amend the Quotation")
ACCEPTED_IN_XERO = ("Quotation {0} cannot be cancelled: the customer's quote is {1} in Xero. Change it in Xero "
					"first, then cancel.")


def _state(name: str, state: str | None, error: str | None = None, **fields) -> None:
	values = {"atlas_xero_status": state, "atlas_xero_error": mail_text(error[:1000]) if error else None, **fields}
	frappe.db.set_value(DOCTYPE, name, values, update_modified=False)


# -- doc events ------------------------------------------------------------------------------------------------
def before_insert(doc, method=None) -> None:
	"""Quotation ``before_insert``: a new document (an amendment, a copy) has no Xero state of its own."""
	for field in ("atlas_xero_status", "atlas_xero_quote_id", "atlas_xero_quote_status", "atlas_xero_sent_at",
				  "atlas_xero_error"):
		doc.set(field, None)


def on_submit(doc, method=None) -> None:
	"""Quotation ``on_submit``: queue it for Xero when its Company is connected."""
	if ledger.is_connected(doc.company):
		queue(doc.name, doc.company, "push")


def before_cancel(doc, method=None) -> None:
	"""Quotation ``before_cancel``: refuse when its Xero Quote is ACCEPTED or INVOICED (one GET, 5 s at
	most; when Xero cannot be asked the cancel goes on and the cancel job reports Xero's answer).

	Raises:
		frappe.ValidationError: :data:`ACCEPTED_IN_XERO`.
	"""
	if not doc.get("atlas_xero_quote_id") or not ledger.is_connected(doc.company):
		return
	try:
		current = session_for(doc.company, wait_budget=5.0).call(
			"get_quote", doc.atlas_xero_quote_id, _request_timeout=(5.0, 5.0)).quotes[0]
	except Exception as exc:
		frappe.logger("atlas_integrations").warning(f"Xero quote of {doc.name} not checked before cancel: {exc!r}"[:500])
		return
	state = _status(current)
	if state in ("ACCEPTED", "INVOICED"):
		messages.throw(ACCEPTED_IN_XERO, doc.name, state, title="Xero")


def on_cancel(doc, method=None) -> None:
	"""Quotation ``on_cancel``: queue the delete / decline of its Xero Quote (when it has one)."""
	if ledger.is_connected(doc.company) and doc.get("atlas_xero_quote_id"):
		queue(doc.name, doc.company, "cancel")


def queue(name: str, company: str, action: str, drain: bool = True) -> str:
	"""A pending "Xero Quote" Sync Job (``push`` or ``cancel``) for Quotation ``name``; a pending one of
	the same Quotation gets the new action. Returns the Sync Job's name."""
	job = ledger.queue(name, company, action, XERO_QUOTE, DOCTYPE, drain=drain)
	_state(name, QUEUED)
	return job


# -- "Send quote" ------------------------------------------------------------------------------------------------
def quote_mailbox(company: str) -> tuple[str, str] | None:
	"""The mailbox ``(mailbox doctype, name)`` that emails ``company``'s quotes: the Xero Connection's "Send
	Quotes From", else the oldest enabled shared workspace mailbox of that Company (or of no Company) of any
	mailbox type that can send (:mod:`atlas_integrations.inbox.mailboxes`)."""
	chosen = frappe.db.get_value(oauth.CONNECTION, company, ["quote_mailbox_type", "quote_mailbox"])
	if chosen and all(chosen):
		return (chosen[0], chosen[1])
	rows = []
	for t in mailboxes.sending_types():
		filters = {t.enabled_field: 1, **({t.kind_field: mailboxes.SHARED} if t.kind_field else {})}
		rows += [(r.creation, t.doctype, r.name, r.get(t.company_field))
				 for r in frappe.get_all(t.doctype, filters=filters, fields=["name", "creation", t.company_field])]
	rows.sort()
	for wanted in (company, None):
		for _created, doctype, name, of in rows:
			if (of or None) == wanted:
				return (doctype, name)
	return None


def request_send(quotation: str, client_key: str, to=None, cc=None, subject: str | None = None,
				 message: str | None = None) -> dict:
	"""Queue the email of ``quotation``'s Xero Quote PDF to the customer, exactly once per ``client_key``.

	Rules (each a clear error): an Atlas role and permission to email the Quotation; the workspace is
	Active; the Quotation is submitted and its Company connected to Xero; at least one valid To (default:
	the Quotation's contact email); a healthy shared workspace mailbox (:func:`quote_mailbox`); and
	the user's send rate limit, the budget Smart Inbox replies use too
	(:func:`atlas_integrations.inbox.send_limit.take`, checked and recorded atomically after every other
	rule; the same key again is not counted).

	Args:
		quotation: Quotation name.
		client_key: the client's idempotency key (the same key returns the first request's job).
		to, cc: addresses (lists or comma separated).
		subject: default ``Quotation <name> from <company>``.
		message: the email text (HTML or plain); a short default names the quote and its total.

	Returns:
		``{"sync_job": str, "status": "Queued in Xero" | "Synced to Xero" | "Xero send failed"}``.

	Raises:
		frappe.PermissionError: no Atlas role, or no email permission on the Quotation.
		frappe.ValidationError: workspace not Active, not submitted, not connected, no recipient, a bad
			address, no usable mailbox (:class:`atlas_integrations.inbox.outbox.SendError`; no usable mailbox:
			:class:`~atlas_integrations.inbox.outbox.MailboxUnusable`).
		atlas_integrations.inbox.send_limit.SendRateLimited: "You are sending too fast: at most N messages
			a minute" (HTTP 429; nothing queued).
	"""
	from atlas_integrations.inbox import send_limit
	from atlas_integrations.permissions import has_atlas_role
	from atlas_integrations.settings import require_active_workspace

	if not has_atlas_role():
		frappe.throw(_("Only Atlas users can send mail through Atlas"), frappe.PermissionError)
	doc = messages.get_doc(DOCTYPE, quotation)
	if not frappe.has_permission(DOCTYPE, "email", doc):
		frappe.throw(_(NOT_YOURS), frappe.PermissionError)
	require_active_workspace()
	if not client_key or len(str(client_key)) > 200:
		frappe.throw(_("A client idempotency key (at most 200 characters) is required"), title=_("Xero"))
	user = frappe.session.user
	request_key = outbox.reply_key(user, client_key)
	existing = frappe.db.get_value("Sync Job", {"job_type": XERO_QUOTE_SEND, "reference_doctype": DOCTYPE,
												"reference_name": quotation, "payload": ["like", f"%{request_key}%"]},
								   "name")
	if existing:
		return {"sync_job": existing, "status": frappe.db.get_value(DOCTYPE, quotation, "atlas_xero_status")}
	if doc.docstatus != 1:
		frappe.throw(_(NOT_SUBMITTED), title=_("Xero"))
	if not ledger.is_connected(doc.company):
		messages.throw(NOT_CONNECTED, doc.company, title="Xero")
	recipients = (outbox.split_addresses(to, strict=True) if to
				  else outbox.split_addresses(doc.get("contact_email")))
	copies = outbox.split_addresses(cc, strict=True)
	if not recipients:
		frappe.throw(_(NO_RECIPIENT), outbox.SendError, title=_("Xero"))
	for address in recipients + copies:
		if not frappe.utils.validate_email_address(address):
			messages.throw(BAD_RECIPIENT, address, exc=outbox.SendError, title="Xero")
	found = quote_mailbox(doc.company)
	if not found:
		messages.throw(NO_MAILBOX, doc.company, exc=outbox.MailboxUnusable, title="Xero")
	mailbox_type, mailbox = found
	mailboxes.get(mailbox_type).entry("usable")(mailbox)
	send_limit.take(user)  # the last rule: a refused request above uses none of the user's budget
	payload = {"company": doc.company, "action": "send", "request_key": request_key, "user": user,
			   "to": recipients, "cc": copies, "mailbox_type": mailbox_type, "mailbox": mailbox,
			   "subject": (subject or f"Quotation {doc.name} from {doc.company}")[:300], "message": message or ""}
	job = jobs.create(XERO_QUOTE_SEND, DOCTYPE, quotation, payload=payload, trigger="desk").name
	if not doc.get("atlas_xero_quote_id") and not _open_job(XERO_QUOTE, quotation):
		queue(quotation, doc.company, "push", drain=False)  # e.g. its push failed earlier: tried again first
	_state(quotation, QUEUED)
	ledger.enqueue_drain(doc.company)
	return {"sync_job": job, "status": QUEUED}


def _open_job(job_type: str, name: str) -> str | None:
	return frappe.db.get_value("Sync Job", {"job_type": job_type, "reference_doctype": DOCTYPE, "reference_name": name,
											"status": ["in", [jobs.PENDING, jobs.PROCESSING]]}, "name")


def _settle_state(name: str) -> None:
	"""After a job of the Quotation finished well: Queued while another is open, else Synced."""
	if _open_job(XERO_QUOTE, name) or _open_job(XERO_QUOTE_SEND, name):
		_state(name, QUEUED)
	else:
		_state(name, SYNCED)


def mark_failed(name: str, why: str) -> None:
	"""A job of Quotation ``name`` failed for good: it shows Xero send failed with ``why`` (as text)."""
	_state(name, SEND_FAILED, why)


def mark_retried(name: str) -> None:
	"""A failed job of Quotation ``name`` is queued again: it shows Queued in Xero, the error cleared."""
	_state(name, QUEUED)


def fail(job: str, name: str, reason: str) -> None:
	"""The job failed for good: the Quotation shows Xero send failed with ``reason``."""
	_state(name, SEND_FAILED, reason)
	jobs.finish(job, jobs.FAILED, error=reason)


# -- in the Company's drain --------------------------------------------------------------------------------------
def _status(quote) -> str:
	return str(getattr(quote.status, "value", quote.status) or "")


QUOTE_STATUSES = ("DRAFT", "SENT", "ACCEPTED", "DECLINED", "INVOICED", "DELETED")


def apply_quotes(company: str, quotes: list) -> int:
	"""Xero's status of the Company's synced Quotations among ``quotes`` (xero-python Quote models, e.g. one
	page of ``GET /Quotes`` with If-Modified-Since): a quote sent, accepted or declined in Xero (the route
	without Gmail: "Open in Xero", then Xero's own email) shows on its Quotation, with a timeline comment;
	the first move past DRAFT also stamps "Sent" when no Gmail send did. Returns how many Quotations changed.
	Commits."""
	by_id = {str(q.quote_id).lower(): q for q in quotes if q.quote_id}
	if not by_id:
		return 0
	rows = frappe.get_all(DOCTYPE, filters={"company": company, "atlas_xero_quote_id": ["in", list(by_id)]},
						  fields=["name", "atlas_xero_quote_id", "atlas_xero_quote_status", "atlas_xero_sent_at"])
	changed = 0
	for row in rows:
		status = _status(by_id[str(row.atlas_xero_quote_id).lower()])
		if status not in QUOTE_STATUSES or status == (row.atlas_xero_quote_status or ""):
			continue
		values = {"atlas_xero_quote_status": status}
		if status != "DRAFT" and not row.atlas_xero_sent_at:
			values["atlas_xero_sent_at"] = now_datetime()
		frappe.db.set_value(DOCTYPE, row.name, values, update_modified=False)
		frappe.get_doc({"doctype": "Comment", "comment_type": "Info", "reference_doctype": DOCTYPE,
						"reference_name": row.name,
						"content": mail_text(f"Xero quote is now {status} (was {row.atlas_xero_quote_status or 'unknown'})")}
					   ).insert(ignore_permissions=True)
		changed += 1
	frappe.db.commit()
	return changed


def _items_with_accounts(doc) -> list[dict]:
	"""The Quotation's item rows with the income account their Sales Invoice would get (Item Default for
	the Company, else the Company's default income account), so the account mapping applies."""
	default = frappe.get_cached_value("Company", doc.company, "default_income_account")
	rows = []
	for item in doc.items:
		row = item.as_dict()
		row["income_account"] = frappe.db.get_value("Item Default", {"parent": item.item_code, "company": doc.company},
													"income_account") or default
		rows.append(row)
	return rows


def push(session, company: str, rows: dict) -> None:
	"""Create the Xero Quotes of the batch's Quotations (one ``POST /Quotes?summarizeErrors=false`` with an
	Idempotency-Key of the jobs; a retried job first looks for its quote by QuoteNumber)."""
	from xero_python.accounting import Quotes

	docs = {}
	for job, row in rows.items():
		doc = frappe.get_doc(DOCTYPE, row.reference_name)
		if doc.docstatus != 1 or doc.get("atlas_xero_quote_id"):
			jobs.finish(job, jobs.SUCCEEDED, details="nothing to do (already in Xero or not submitted)")
			if doc.docstatus == 1:
				_settle_state(doc.name)
			continue
		if doc.quotation_to != "Customer":
			fail(job, doc.name, NOT_CUSTOMER.format(doc.quotation_to))
			continue
		docs[job] = doc
	if not docs:
		return
	for job, doc in list(docs.items()):  # a retry: the quote may be in Xero already
		if (frappe.db.get_value("Sync Job", job, "attempts") or 0) > 1:
			found = [q for q in (session.call("get_quotes", quote_number=doc.name).quotes or [])
					 if str(q.quote_number) == doc.name and _status(q) != "DELETED"]
			if found:
				_synced(job, doc, found[0], "found in Xero (not posted again)")
				docs.pop(job)
	if not docs:
		return
	contact_map = contacts.contact_ids(session, sorted({d.party_name for d in docs.values()}))
	maps = settings.maps(company)
	expiry = frappe.db.get_value(oauth.CONNECTION, company, "quote_expiry_days") or 30
	payloads, order = [], []
	for job, doc in docs.items():
		if doc.party_name not in contact_map:
			fail(job, doc.name, f"Xero quote: Xero did not accept the contact for Customer {doc.party_name}")
			continue
		try:
			data = mappers.quote(doc.as_dict(), _items_with_accounts(doc), [t.as_dict() for t in doc.taxes],
								 contact_map[doc.party_name], expiry_days=int(expiry), **maps)
		except mappers.MappingError as exc:
			fail(job, doc.name, f"Xero quote: not sent to Xero: {exc}")
			continue
		payloads.append(mappers.to_model("Quote", data))
		order.append(job)
	if not payloads:
		return
	digest = hashlib.sha256(",".join(order).encode()).hexdigest()[:40]
	result = session.call("update_or_create_quotes", Quotes(quotes=payloads), summarize_errors=False,
						  idempotency_key=f"quotes-{digest}", _request_timeout=request_timeout())
	for job, answer in zip(order, result.quotes or []):
		doc = docs[job]
		if getattr(answer, "validation_errors", None):
			fail(job, doc.name, f"Xero quote: Xero refused it: {validation_messages(answer) or 'validation error'}")
			continue
		if not mappers.total_matches(doc.as_dict(), answer.total):
			frappe.db.set_value(DOCTYPE, doc.name, "atlas_xero_quote_id", str(answer.quote_id), update_modified=False)
			fail(job, doc.name, f"Xero quote: Xero's total {answer.total} differs from ERPNext's "
								f"{mappers.billed_total(doc.as_dict())}")
			continue
		_synced(job, doc, answer, f"Xero QuoteID {answer.quote_id}, total {answer.total}")


def _synced(job: str, doc, answer, details: str) -> None:
	frappe.db.set_value(DOCTYPE, doc.name, {"atlas_xero_quote_id": str(answer.quote_id),
											"atlas_xero_quote_status": _status(answer)}, update_modified=False)
	jobs.finish(job, jobs.SUCCEEDED, details=details, result_ids=[str(answer.quote_id)])
	_settle_state(doc.name)
	frappe.db.commit()


def _set_status(session, quote, target: str, key: str) -> None:
	from xero_python.accounting import Contact, Quote, Quotes, QuoteStatusCodes

	update = Quote(quote_id=quote.quote_id, status=QuoteStatusCodes(target),
				   contact=Contact(contact_id=quote.contact.contact_id), date=quote.date)
	session.call("update_quote", str(quote.quote_id), Quotes(quotes=[update]), idempotency_key=key)


def cancel(session, company: str, job: str, row) -> None:
	"""The drain's handler of one "Xero Quote" ``cancel`` job: delete (DRAFT) or decline (SENT) the Xero
	Quote of the cancelled Quotation ``row.reference_name``."""
	name = row.reference_name
	quote_id = frappe.db.get_value(DOCTYPE, name, "atlas_xero_quote_id")
	if not quote_id:
		jobs.finish(job, jobs.SUCCEEDED, details="never reached Xero: nothing to cancel")
		_state(name, None)
		return
	current = session.call("get_quote", quote_id).quotes[0]
	state = _status(current)
	if state in ("DELETED", "DECLINED"):
		frappe.db.set_value(DOCTYPE, name, "atlas_xero_quote_status", state, update_modified=False)
		jobs.finish(job, jobs.SUCCEEDED, details=f"Xero quote {quote_id} already {state}", result_ids=[quote_id])
		_state(name, SYNCED)
		return
	target = {"DRAFT": "DELETED", "SENT": "DECLINED"}.get(state)
	if target is None:
		fail(job, name, f"Xero quote: it is {state} in Xero, which can be neither deleted nor declined; change it in Xero")
		return
	try:
		_set_status(session, current, target, f"quote-cancel-{job}")
	except Permanent as exc:
		fail(job, name, f"Xero quote: Xero did not {'delete' if target == 'DELETED' else 'decline'} it: {exc.reason}"[:500])
		return
	frappe.db.set_value(DOCTYPE, name, "atlas_xero_quote_status", target, update_modified=False)
	_state(name, SYNCED)
	jobs.finish(job, jobs.SUCCEEDED, details=f"Xero quote {quote_id} {target}", result_ids=[quote_id])


def _pdf(session, quote_id: str) -> bytes:
	"""The Xero Quote's PDF (xero-python saves it to a temporary file: read and removed)."""
	answer = session.call("get_quote_as_pdf", quote_id)
	if isinstance(answer, (bytes, bytearray)):
		return bytes(answer)
	path = str(answer)
	try:
		with open(path, "rb") as f:
			return f.read()
	finally:
		try:
			os.remove(path)
		except OSError:
			pass


def _default_message(doc) -> str:
	total = frappe.utils.fmt_money(doc.rounded_total or doc.grand_total, currency=doc.currency)
	valid = f" It is valid until {frappe.utils.formatdate(doc.valid_till)}." if doc.valid_till else ""
	return (f"Dear {doc.customer_name or doc.party_name},\n\nPlease find attached our quotation {doc.name} for "
			f"{total}.{valid}\n\nKind regards,\n{doc.company}")


def send(session, company: str, job: str, row) -> None:
	"""Email the quote PDF through the payload's mailbox (exactly once: the Outgoing Mail is keyed by this
	job) and mark the Xero Quote SENT once the provider accepted it. A provider that did not answer defers
	the job; an unusable mailbox fails it as "Integration: …", a refused message as "Recipient: …"."""
	payload = json.loads(row.payload)
	doc = frappe.get_doc(DOCTYPE, row.reference_name)
	if doc.docstatus != 1:
		fail(job, doc.name, "Xero quote: the Quotation was cancelled before it was sent")
		return
	if not doc.get("atlas_xero_quote_id"):
		if _open_job(XERO_QUOTE, doc.name):
			jobs.defer(job, "waiting for the quote to reach Xero", retry_after=WAITING_FOR_QUOTE, count_attempt=False)
			return
		fail(job, doc.name, f"Xero quote: the quote is not in Xero ({plain(doc.atlas_xero_error or '') or 'not synced'})")
		return
	request_key = f"xero-quote-send:{job}"
	sent = outbox.find(request_key)
	attachments = []
	if not sent or sent.status not in outbox.DELIVERED:
		try:
			pdf = _pdf(session, doc.atlas_xero_quote_id)
		except Permanent as exc:
			fail(job, doc.name, f"Xero quote: Xero did not give its PDF ({exc.status})")
			return
		attachments = [(f"{doc.name}.pdf", "application/pdf", pdf)]
	mailbox_type = mailboxes.get(payload.get("mailbox_type") or LEGACY_MAILBOX_TYPE)
	try:
		outcome = mailbox_type.entry("send_new")(
			payload["mailbox"], payload["user"], request_key, payload["to"], payload["subject"],
			payload.get("message") or _default_message(doc), cc=payload.get("cc"), attachments=attachments,
			reference_doctype=DOCTYPE, reference_name=doc.name)
	except outbox.NotConfirmed as exc:  # maybe sent, not shown yet: look again later (never resent meanwhile)
		frappe.db.rollback()
		raise Temporary(f"{mailbox_type.label}: {plain(str(exc))}"[:300]) from None
	except outbox.NotAnswered as exc:  # nothing was sent: try again later (the mailbox is searched first)
		frappe.db.rollback()
		raise Temporary(f"{mailbox_type.label} did not answer: {plain(str(exc))}"[:300]) from None
	except outbox.MailboxUnusable as exc:
		frappe.db.rollback()
		fail(job, doc.name, f"Integration: {plain(str(exc))}")
		return
	except outbox.SendError as exc:
		frappe.db.rollback()
		fail(job, doc.name, f"Recipient: {plain(str(exc))}")
		return
	if outcome.status not in outbox.DELIVERED:
		fail(job, doc.name, f"Integration: the email is {outcome.status}: {plain(outcome.error or '')}")
		return
	current = session.call("get_quote", doc.atlas_xero_quote_id).quotes[0]
	state = _status(current)
	if state == "DRAFT":
		try:
			_set_status(session, current, "SENT", f"quote-sent-{job}")
			state = "SENT"
		except Permanent as exc:
			fail(job, doc.name, f"Xero quote: emailed, but Xero did not mark it SENT: {exc.status}")
			return
	to = ", ".join(payload["to"])
	frappe.db.set_value(DOCTYPE, doc.name, {"atlas_xero_quote_status": state, "atlas_xero_sent_at": now_datetime()},
						update_modified=False)
	doc.add_comment("Info", mail_text(f"Quote emailed to {to} through {mailbox_type.label} ({payload['mailbox']}); "
									  f"Xero quote {state}"))
	jobs.finish(job, jobs.SUCCEEDED, details=f"emailed to {to} (Outgoing Mail {outcome.name}); Xero quote {state}",
				result_ids=[doc.atlas_xero_quote_id])
	_settle_state(doc.name)
	frappe.db.commit()
