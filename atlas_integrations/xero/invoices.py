"""Sales Invoices to Xero through the Sync Job ledger: after commit, in batches, never twice.

* A submitted Sales Invoice of a connected Company (posted on or after the connection's "Push Invoices
  From") becomes a pending "Xero Invoice" Sync Job (doc event ``on_submit``; no Xero call inside the
  user's save); cancelling queues a void. A later change of the same document supersedes its pending job.
* The Company's drain (:mod:`atlas_integrations.xero.drain`) hands this module its batch: contacts first
  (:func:`atlas_integrations.xero.contacts.contact_ids`), then one ``POST /Invoices?summarizeErrors=false``
  for the invoices and one ``PUT /CreditNotes`` for the returns (each allocated to its invoice), each write
  with an ``Idempotency-Key`` derived from the batch's jobs: a retry after a timeout never creates a second
  document and one bad document fails alone. A retried job first looks for its document by number.
* After each write Xero's ``Total`` is compared with ERPNext's; a mismatch is a Xero Error.
* The Sales Invoice shows **Xero Pending**, **Xero Synced** (with the Xero id) or **Xero Error** (Xero's
  ValidationErrors in words).
"""

from __future__ import annotations

import hashlib
import json

import frappe

from atlas_integrations import jobs, messages
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.xero import contacts, ledger, mappers, oauth, settings
from atlas_integrations.xero.client import request_timeout, session_for
from atlas_integrations.xero.errors import Permanent, validation_messages
from atlas_integrations.xero.jobs import XERO_INVOICE

DOCTYPE = "Sales Invoice"
PENDING, SYNCED, ERROR = "Xero Pending", "Xero Synced", "Xero Error"
WAITING_FOR_ORIGINAL = 60  # seconds: a return waits for its invoice to reach Xero
PAID_IN_XERO = ("Sales Invoice {0} cannot be cancelled: it has {1} {2} paid or credited in Xero, and Xero does "
				"not void an invoice with payments. Remove the payments in Xero first, then cancel.")


# -- doc events ------------------------------------------------------------------------------------------------
def before_insert(doc, method=None) -> None:
	"""Sales Invoice ``before_insert``: a new document (an amendment, a copy, a REST insert) starts with no
	Xero state of its own, whatever was copied into it."""
	for field in ("atlas_xero_status", "atlas_xero_invoice_id", "atlas_xero_error"):
		doc.set(field, None)


def on_submit(doc, method=None) -> None:
	"""Sales Invoice ``on_submit``: queue it (invoice or return) for Xero when its Company is connected and
	it is posted on or after the connection's "Push Invoices From"."""
	if settings.in_scope(doc.company, doc.posting_date):
		queue(doc.name, doc.company, "push")


def before_cancel(doc, method=None) -> None:
	"""Sales Invoice ``before_cancel``: refuse when its Xero invoice already has payments or credits
	(Xero will not void it). Reads the invoice from Xero (one GET, 5 s at most); when Xero cannot be
	asked, the cancel goes on and the void job reports Xero's answer.

	Raises:
		frappe.ValidationError: :data:`PAID_IN_XERO`.
	"""
	invoice_id = doc.get("atlas_xero_invoice_id")
	if not invoice_id or doc.get("is_return") or not ledger.is_connected(doc.company):
		return
	try:
		session = session_for(doc.company, wait_budget=5.0)
		current = session.call("get_invoice", invoice_id, _request_timeout=(5.0, 5.0)).invoices[0]
	except Exception as exc:  # Xero could not be asked: the void job reports Xero's answer
		frappe.logger("atlas_integrations").warning(f"Xero payments of {doc.name} not checked before cancel: {exc!r}"[:500])
		frappe.local.atlas_xero_cancel_unchecked = f"{type(exc).__name__}: {exc}"[:500]
		return
	settled = mappers.money(current.amount_paid) + mappers.money(current.amount_credited)
	if settled > 0:
		currency = current.currency_code.value if hasattr(current.currency_code, "value") else doc.currency
		messages.throw(PAID_IN_XERO, doc.name, currency, settled, title="Xero")


def on_cancel(doc, method=None) -> None:
	"""Sales Invoice ``on_cancel``: queue the void of its Xero document (when it has one; a push still
	pending finds the invoice cancelled and does nothing)."""
	if ledger.is_connected(doc.company) and doc.get("atlas_xero_invoice_id"):
		queue(doc.name, doc.company, "void")


def queue(name: str, company: str, action: str, drain: bool = True, parent_job: str | None = None) -> str:
	"""A pending "Xero Invoice" Sync Job (``push`` or ``void``) for Sales Invoice ``name``
	(:func:`atlas_integrations.xero.ledger.queue`); the invoice shows Xero Pending. Returns the job's name."""
	job = ledger.queue(name, company, action, XERO_INVOICE, DOCTYPE, drain=drain, parent_job=parent_job)
	frappe.db.set_value(DOCTYPE, name, {"atlas_xero_status": PENDING, "atlas_xero_error": None}, update_modified=False)
	return job


def mark_failed(name: str, why: str) -> None:
	"""A job of Sales Invoice ``name`` failed for good: it shows Xero Error with ``why`` (as text)."""
	frappe.db.set_value(DOCTYPE, name, {"atlas_xero_status": ERROR, "atlas_xero_error": mail_text(why[:1000])},
						update_modified=False)


def mark_retried(name: str) -> None:
	"""A failed job of Sales Invoice ``name`` is queued again: it shows Xero Pending, the error cleared."""
	frappe.db.set_value(DOCTYPE, name, {"atlas_xero_status": PENDING, "atlas_xero_error": None}, update_modified=False)


def _fail(job: str, invoice: str | None, error: str) -> None:
	if invoice:
		mark_failed(invoice, error)  # Xero's words, as text
	jobs.finish(job, jobs.FAILED, error=error)


def _synced(job: str, si, xero_id: str, details: str) -> None:
	frappe.db.set_value("Sales Invoice", si.name, {"atlas_xero_invoice_id": xero_id, "atlas_xero_status": SYNCED,
												   "atlas_xero_error": None}, update_modified=False)
	jobs.finish(job, jobs.SUCCEEDED, details=details, result_ids=[xero_id])


# -- invoices and returns --------------------------------------------------------------------------------------
def push(session, company: str, rows: dict) -> None:
	"""The drain's handler of "Xero Invoice" ``push`` jobs (``rows``: job name → Sync Job row): the batch's
	invoices and returns written to Xero (see the module's docstring)."""
	status = frappe.db.get_value(oauth.CONNECTION, company, "invoice_status") or "AUTHORISED"
	maps = settings.maps(company)
	sis = {}
	for job, row in rows.items():
		si = frappe.get_doc("Sales Invoice", row.reference_name)
		if si.docstatus != 1 or si.get("atlas_xero_invoice_id"):
			jobs.finish(job, jobs.SUCCEEDED, details="nothing to do (already in Xero or not submitted)")
			continue
		sis[job] = si
	if not sis:
		return
	_adopt_existing(session, sis)
	if not sis:
		return
	contact_map = contacts.contact_ids(session, sorted({si.customer for si in sis.values()}))
	invoices = {j: si for j, si in sis.items() if not si.is_return}
	returns = {j: si for j, si in sis.items() if si.is_return}
	if invoices:
		_write(session, "Invoice", invoices, contact_map, status, maps)
	for job, si in list(returns.items()):  # after the invoices: a return and its invoice may share a batch
		if not si.return_against:
			continue
		original = frappe.db.get_value("Sales Invoice", si.return_against, ["atlas_xero_invoice_id", "posting_date"],
									   as_dict=True)
		if not original.atlas_xero_invoice_id and settings.in_scope(company, original.posting_date):
			jobs.defer(job, f"waiting for {si.return_against} to reach Xero", retry_after=WAITING_FOR_ORIGINAL,
					   count_attempt=False)
			returns.pop(job)
	if returns:
		_write(session, "CreditNote", returns, contact_map, status, maps)


def _write(session, kind: str, sis: dict, contacts: dict, status: str, maps: dict) -> None:
	"""One batch write of Invoices or Credit Notes (``summarizeErrors=false``, an Idempotency-Key of the
	batch's jobs); then the total check and, for credit notes, the allocation to their invoice."""
	from xero_python.accounting import CreditNotes, Invoices

	payloads, order, bodies = [], [], []
	for job, si in sis.items():
		if si.customer not in contacts:
			_fail(job, si.name, f"Xero did not accept the contact for Customer {si.customer}")
			continue
		doc, items, taxes = si.as_dict(), [i.as_dict() for i in si.items], [t.as_dict() for t in si.taxes]
		try:
			if kind == "Invoice":
				data = mappers.invoice(doc, items, taxes, contacts[si.customer], status=status, **maps)
			else:
				data = mappers.credit_note(doc, items, taxes, contacts[si.customer], status=status, **maps)
		except mappers.MappingError as exc:
			_fail(job, si.name, f"Not sent to Xero: {exc}")
			continue
		payloads.append(mappers.to_model(kind, data))
		bodies.append(data)
		order.append(job)
	if not payloads:
		return
	# the same jobs with the same bodies: the same key (a retry after a timeout finds its invoices); a body
	# changed since (the Customer fixed, then Retry) is a new request, or Xero would replay its first answer
	digest = hashlib.sha256((",".join(order) + json.dumps(bodies, sort_keys=True, default=str)).encode()).hexdigest()[:40]
	if kind == "Invoice":
		result = session.call("update_or_create_invoices", Invoices(invoices=payloads), summarize_errors=False,
							  unitdp=4, idempotency_key=f"invoices-{digest}", _request_timeout=request_timeout())
		answers = result.invoices or []
	else:
		result = session.call("update_or_create_credit_notes", CreditNotes(credit_notes=payloads), summarize_errors=False,
							  unitdp=4, idempotency_key=f"credit-notes-{digest}", _request_timeout=request_timeout())
		answers = result.credit_notes or []
	for job, answer in zip(order, answers):
		si = sis[job]
		if getattr(answer, "has_errors", False) or getattr(answer, "validation_errors", None):
			_fail(job, si.name, f"Xero refused the {'invoice' if kind == 'Invoice' else 'credit note'}: "
								f"{validation_messages(answer) or 'validation error'}")
			continue
		xero_id = str(answer.invoice_id if kind == "Invoice" else answer.credit_note_id)
		if not mappers.total_matches(si.as_dict(), answer.total):
			frappe.db.set_value("Sales Invoice", si.name, "atlas_xero_invoice_id", xero_id, update_modified=False)
			_fail(job, si.name, f"Xero's total {answer.total} differs from ERPNext's {abs(mappers.billed_total(si.as_dict()))}")
			continue
		frappe.db.set_value("Sales Invoice", si.name, "atlas_xero_invoice_id", xero_id, update_modified=False)
		frappe.db.commit()  # the id is recorded before anything else can fail
		details = f"Xero {'InvoiceID' if kind == 'Invoice' else 'CreditNoteID'} {xero_id}, total {answer.total}"
		if kind == "CreditNote":
			details += _allocate(session, job, si, xero_id)
		_synced(job, si, xero_id, details)


def _allocate(session, job: str, si, credit_note_id: str) -> str:
	"""Allocate a return's credit note to the invoice it was made against (``PUT /CreditNotes/{id}/
	Allocations``) for at most that invoice's amount due; skipped when already allocated. Returns the
	words for the job's details."""
	from xero_python.accounting import Allocation, Allocations, Invoice

	original = frappe.db.get_value("Sales Invoice", si.return_against, "atlas_xero_invoice_id") if si.return_against else None
	if not original:
		return "; not allocated (no invoice in Xero to allocate to)"
	note = session.call("get_credit_note", credit_note_id).credit_notes[0]
	if any(str(getattr(a.invoice, "invoice_id", "")) == original for a in (note.allocations or [])):
		return f"; allocated to Xero invoice {original}"
	invoice = session.call("get_invoice", original).invoices[0]
	amount = min(mappers.money(note.remaining_credit if note.remaining_credit is not None else note.total),
				 mappers.money(invoice.amount_due))
	if amount <= 0:
		return f"; not allocated (Xero invoice {original} has nothing due)"
	session.call("create_credit_note_allocation", credit_note_id,
				 Allocations(allocations=[Allocation(invoice=Invoice(invoice_id=original), amount=float(amount),
													  date=si.posting_date)]),
				 idempotency_key=f"allocate-{job}")
	return f"; {amount} allocated to Xero invoice {original}"


def _adopt_existing(session, sis: dict) -> None:
	"""A job run again (its earlier attempt may have reached Xero and then timed out, or died before
	recording) first looks for its document in Xero by number (one call per kind for the retried jobs of
	the batch) and links it instead of posting it a second time. First attempts skip the look-up."""
	retried = {j: si for j, si in sis.items() if (frappe.db.get_value("Sync Job", j, "attempts") or 0) > 1}
	if not retried:
		return
	invoices = [si.name for si in retried.values() if not si.is_return]
	returns = [si.name for si in retried.values() if si.is_return]
	found = {}
	if invoices:
		found.update({str(inv.invoice_number): ("Invoice", str(inv.invoice_id), inv.total)
					  for inv in (session.call("get_invoices", invoice_numbers=invoices).invoices or [])
					  if str(getattr(inv.status, "value", inv.status)) not in ("DELETED", "VOIDED")})
	if returns:
		where = " OR ".join(f'CreditNoteNumber=="{contacts.quote(n)}"' for n in returns)
		found.update({str(cn.credit_note_number): ("CreditNote", str(cn.credit_note_id), cn.total)
					  for cn in (session.call("get_credit_notes", where=where).credit_notes or [])
					  if str(getattr(cn.status, "value", cn.status)) not in ("DELETED", "VOIDED")})
	for job, si in retried.items():
		hit = found.get(si.name)
		if hit is None:
			continue
		kind, xero_id, total = hit
		frappe.db.set_value("Sales Invoice", si.name, "atlas_xero_invoice_id", xero_id, update_modified=False)
		frappe.db.commit()
		details = f"found in Xero: {kind}ID {xero_id} (not posted again)"
		if kind == "CreditNote":
			details += _allocate(session, job, si, xero_id)
		_synced(job, si, xero_id, details)
		sis.pop(job)


def void(session, company: str, job: str, row) -> None:
	"""The drain's handler of one "Xero Invoice" ``void`` job: void (or, for a draft, delete) the Xero
	invoice or credit note of the cancelled Sales Invoice ``row.reference_name``."""
	from xero_python.accounting import CreditNote, CreditNotes, Invoice, Invoices

	invoice = row.reference_name

	xero_id, is_return = frappe.db.get_value("Sales Invoice", invoice, ["atlas_xero_invoice_id", "is_return"])
	if not xero_id:
		jobs.finish(job, jobs.SUCCEEDED, details="never reached Xero: nothing to void")
		return
	if is_return:
		current = session.call("get_credit_note", xero_id).credit_notes[0]
	else:
		current = session.call("get_invoice", xero_id).invoices[0]
	state = str(getattr(current.status, "value", current.status))
	if state in ("VOIDED", "DELETED"):
		jobs.finish(job, jobs.SUCCEEDED, details=f"Xero document {xero_id} already {state}", result_ids=[xero_id])
		_state(invoice, SYNCED)
		return
	target = "DELETED" if state in ("DRAFT", "SUBMITTED") else "VOIDED"
	try:
		if is_return:
			session.call("update_credit_note", xero_id, CreditNotes(credit_notes=[CreditNote(status=target)]),
						 idempotency_key=f"void-{job}")
		else:
			session.call("update_invoice", xero_id, Invoices(invoices=[Invoice(status=target)]),
						 idempotency_key=f"void-{job}")
	except Permanent as exc:
		_fail(job, invoice, f"Xero did not {'delete' if target == 'DELETED' else 'void'} it: {exc.reason}"[:500])
		return
	_state(invoice, SYNCED)
	jobs.finish(job, jobs.SUCCEEDED, details=f"Xero {'credit note' if is_return else 'invoice'} {xero_id} {target}",
				result_ids=[xero_id])


def _state(invoice: str, state: str) -> None:
	frappe.db.set_value("Sales Invoice", invoice, {"atlas_xero_status": state, "atlas_xero_error": None},
						update_modified=False)
