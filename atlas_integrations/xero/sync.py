"""Sales Invoices to Xero through the Sync Job ledger: after commit, in batches, never twice.

* A submitted Sales Invoice of a Company with a connected Xero organisation becomes a pending "Xero
  Invoice" Sync Job (doc event ``on_submit``, ``enqueue_after_commit``; no Xero call inside the user's
  save); cancelling queues a void. A later change of the same document supersedes its pending job.
* One drain per Company runs the pending jobs in batches of up to 50: customers first (found again by
  ContactNumber before any is created, so a lost id never duplicates a contact), then one
  ``PUT /Invoices?summarizeErrors=false`` with an ``Idempotency-Key`` derived from the batch's jobs, so a
  retry after a timeout never creates a second invoice and one bad invoice fails alone. Every Xero call
  goes through the tenant's rate limiter (:mod:`.rate_limit`).
* After each write Xero's ``Total`` is compared with ERPNext's; a mismatch is a Xero Error.
* The Sales Invoice shows **Xero Pending**, **Xero Synced** (with the InvoiceID) or **Xero Error** (Xero's
  ValidationErrors in words).
"""

from __future__ import annotations

import hashlib
import json

import frappe

from atlas_integrations import jobs
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.xero import mappers, oauth
from atlas_integrations.xero.jobs import XERO_INVOICE
from atlas_integrations.xero.rate_limit import TenantLimiter

BATCH = 50
PENDING, SYNCED, ERROR = "Xero Pending", "Xero Synced", "Xero Error"
DEFAULT_TIMEOUT = 30  # seconds per Xero request (site config ``atlas_xero_timeout`` overrides)


def _timeout() -> tuple[float, float]:
	"""(connect, read) seconds for xero-python's ``_request_timeout`` (it ignores a plain float)."""
	read = float(frappe.conf.get("atlas_xero_timeout") or DEFAULT_TIMEOUT)
	return (min(10.0, read), read)


def _connected(company: str) -> bool:
	return frappe.db.get_value(oauth.CONNECTION, company, "status") == oauth.CONNECTED


def on_submit(doc, method=None) -> None:
	"""Sales Invoice ``on_submit``: queue it for Xero when its Company is connected."""
	if _connected(doc.company):
		queue(doc.name, doc.company, "push")


def on_cancel(doc, method=None) -> None:
	"""Sales Invoice ``on_cancel``: queue the void of its Xero invoice (when it has one)."""
	if _connected(doc.company) and doc.get("atlas_xero_invoice_id"):
		queue(doc.name, doc.company, "void")


def queue(invoice: str, company: str, action: str) -> str:
	"""A pending Sync Job for ``invoice`` (``push`` or ``void``); a pending job of the same document is
	superseded (it gets the new action) instead of a second one. Dispatched after commit. Returns its name."""
	existing = frappe.db.get_value("Sync Job", {"job_type": XERO_INVOICE, "reference_doctype": "Sales Invoice",
											   "reference_name": invoice, "status": jobs.PENDING}, "name")
	payload = json.dumps({"company": company, "action": action}, sort_keys=True)
	if existing:
		frappe.db.set_value("Sync Job", existing, "payload", payload)
		name = existing
	else:
		name = jobs.create(XERO_INVOICE, "Sales Invoice", invoice, payload={"company": company, "action": action},
						   trigger="desk").name
	frappe.db.set_value("Sales Invoice", invoice, {"atlas_xero_status": PENDING, "atlas_xero_error": None},
						update_modified=False)
	frappe.enqueue("atlas_integrations.xero.sync.drain", queue="short", company=company,
				   job_id=f"atlas::xero-drain::{company}", deduplicate=True, enqueue_after_commit=True)
	return name


def run_sync_job(sync_job: str) -> None:
	"""rq entry point of the registered job type (dispatch, Retry): drains the job's Company."""
	payload = json.loads(frappe.db.get_value("Sync Job", sync_job, "payload") or "{}")
	if payload.get("company"):
		drain(payload["company"])


def _limiter(tenant: str) -> TenantLimiter:
	return TenantLimiter(frappe.cache, tenant)


def drain(company: str) -> int:
	"""Run the Company's pending Xero jobs, 50 at a time, as Administrator. Returns jobs finished."""
	done = 0
	with jobs.run_as(None):
		while True:
			frappe.db.rollback()
			names = frappe.db.sql_list(
				"""select name from `tabSync Job` where job_type=%s and status=%s and payload like %s
				order by creation limit %s""", (XERO_INVOICE, jobs.PENDING, f'%"company": {json.dumps(company)}%', BATCH))
			claimed = [n for n in names if jobs.claim(n)]
			if not claimed:
				return done
			_run_batch(company, claimed)
			done += len(claimed)


def _fail(job: str, invoice: str, error: str) -> None:
	frappe.db.set_value("Sales Invoice", invoice, {"atlas_xero_status": ERROR,
												   "atlas_xero_error": mail_text(error[:1000])},  # Xero's words, as text
						update_modified=False)
	jobs.finish(job, jobs.FAILED, error=error)


def _run_batch(company: str, claimed: list[str]) -> None:
	rows = {j.name: j for j in frappe.get_all("Sync Job", filters={"name": ["in", claimed]},
											   fields=["name", "reference_name", "payload"])}
	tenant = frappe.db.get_value(oauth.CONNECTION, company, "tenant_id")
	from atlas_integrations.xero.client import accounting_api

	try:
		api = accounting_api(company)
	except Exception as exc:  # not connected any more / revoked: the jobs stay for a reconnect
		for job in claimed:
			frappe.db.set_value("Sync Job", job, {"status": jobs.PENDING, "last_error": mail_text(str(exc)[:500])})
		frappe.db.commit()
		return
	limiter = _limiter(tenant)
	pushes = {j: r for j, r in rows.items() if json.loads(r.payload).get("action") == "push"}
	voids = {j: r for j, r in rows.items() if j not in pushes}
	if pushes:
		_push(api, limiter, tenant, company, pushes)
	for job, row in voids.items():
		_void(api, limiter, tenant, job, row.reference_name)


def _contact_ids(api, limiter, tenant: str, customers: list[str]) -> dict[str, str]:
	"""Xero ContactIDs of ERPNext Customers: stored, else found by ContactNumber, else created (one batch)."""
	from xero_python.accounting import Contacts

	found = dict(frappe.get_all("Customer", filters={"name": ["in", customers]},
								fields=["name", "atlas_xero_contact_id"], as_list=True))
	found = {c: i for c, i in found.items() if i}
	for customer in [c for c in customers if c not in found]:
		where = f'ContactNumber=="{customer[:50].replace(chr(34), "")}"'
		existing = limiter.call(api.get_contacts, tenant, where=where).contacts or []
		if existing:
			found[customer] = str(existing[0].contact_id)
	missing = [c for c in customers if c not in found]
	if missing:
		docs = {c.name: c for c in frappe.get_all("Customer", filters={"name": ["in", missing]},
												  fields=["name", "customer_name", "tax_id", "email_id"])}
		payload = Contacts(contacts=[mappers.to_model("Contact", mappers.contact(docs[c], docs[c].email_id))
									 for c in missing])
		key = "contacts-" + hashlib.sha256(",".join(sorted(missing)).encode()).hexdigest()[:40]
		created = limiter.call(api.create_contacts, tenant, payload, summarize_errors=False, idempotency_key=key)
		for customer, contact in zip(missing, created.contacts or []):
			if contact.contact_id and not contact.has_validation_errors:
				found[customer] = str(contact.contact_id)
	for customer, contact_id in found.items():
		frappe.db.set_value("Customer", customer, "atlas_xero_contact_id", contact_id, update_modified=False)
	frappe.db.commit()
	return found


def _push(api, limiter, tenant: str, company: str, jobs_rows: dict) -> None:
	from xero_python.accounting import Invoices

	status = frappe.db.get_value(oauth.CONNECTION, company, "invoice_status") or "AUTHORISED"
	sis = {}
	for job, row in jobs_rows.items():
		si = frappe.get_doc("Sales Invoice", row.reference_name)
		if si.docstatus != 1 or si.get("atlas_xero_invoice_id"):
			jobs.finish(job, jobs.SUCCEEDED, details="nothing to do (already in Xero or not submitted)")
			continue
		sis[job] = si
	if not sis:
		return
	_adopt_existing(api, limiter, tenant, sis)
	if not sis:
		return
	contacts = _contact_ids(api, limiter, tenant, sorted({si.customer for si in sis.values()}))
	payloads, order = [], []
	for job, si in sis.items():
		if si.customer not in contacts:
			_fail(job, si.name, f"Xero did not accept the contact for Customer {si.customer}")
			continue
		data = mappers.invoice(si.as_dict(), [i.as_dict() for i in si.items], [t.as_dict() for t in si.taxes],
							   contacts[si.customer], status=status)
		payloads.append(mappers.to_model("Invoice", data))
		order.append(job)
	if not payloads:
		return
	key = "invoices-" + hashlib.sha256(",".join(order).encode()).hexdigest()[:40]  # the same jobs: the same key
	try:
		result = limiter.call(api.update_or_create_invoices, tenant, Invoices(invoices=payloads),
							  summarize_errors=False, idempotency_key=key, _request_timeout=_timeout())
	except Exception as exc:  # the whole request failed: the jobs keep their payload and can be retried
		for job in order:
			_fail(job, sis[job].name, f"{type(exc).__name__}: {getattr(exc, 'reason', '') or exc}"[:500])
		return
	for job, answer in zip(order, result.invoices or []):
		si = sis[job]
		if answer.has_errors or getattr(answer, "validation_errors", None):
			messages = "; ".join(e.message for e in (answer.validation_errors or []) if e.message)
			_fail(job, si.name, f"Xero refused the invoice: {messages or 'validation error'}")
			continue
		if not mappers.total_matches(si.as_dict(), answer.total):
			_fail(job, si.name, f"Xero's total {answer.total} differs from ERPNext's {mappers.billed_total(si.as_dict())}")
			frappe.db.set_value("Sales Invoice", si.name, "atlas_xero_invoice_id", str(answer.invoice_id),
								update_modified=False)
			continue
		frappe.db.set_value("Sales Invoice", si.name, {"atlas_xero_invoice_id": str(answer.invoice_id),
													   "atlas_xero_status": SYNCED, "atlas_xero_error": None},
							update_modified=False)
		jobs.finish(job, jobs.SUCCEEDED, details=f"Xero InvoiceID {answer.invoice_id}, total {answer.total}")


def _adopt_existing(api, limiter, tenant: str, sis: dict) -> None:
	"""A job run again (its earlier attempt may have reached Xero and then timed out, or died before
	recording) first looks for its invoice in Xero by InvoiceNumber (one call for the retried jobs of the
	batch) and links it instead of posting it a second time. First attempts skip the look-up."""
	retried = {j: si for j, si in sis.items() if (frappe.db.get_value("Sync Job", j, "attempts") or 0) > 1}
	if not retried:
		return
	numbers = [si.name for si in retried.values()]
	found = {str(inv.invoice_number): inv for inv in
			 (limiter.call(api.get_invoices, tenant, invoice_numbers=numbers).invoices or [])
			 if str(inv.status) not in ("DELETED", "VOIDED")}
	for job, si in retried.items():
		answer = found.get(si.name)
		if answer is None:
			continue
		frappe.db.set_value("Sales Invoice", si.name, {"atlas_xero_invoice_id": str(answer.invoice_id),
													   "atlas_xero_status": SYNCED, "atlas_xero_error": None},
							update_modified=False)
		jobs.finish(job, jobs.SUCCEEDED, details=f"found in Xero: InvoiceID {answer.invoice_id} (not posted again)")
		sis.pop(job)


def _void(api, limiter, tenant: str, job: str, invoice: str) -> None:
	from xero_python.accounting import Invoice, Invoices

	invoice_id = frappe.db.get_value("Sales Invoice", invoice, "atlas_xero_invoice_id")
	if not invoice_id:
		jobs.finish(job, jobs.SUCCEEDED, details="never reached Xero: nothing to void")
		return
	current = limiter.call(api.get_invoice, tenant, invoice_id).invoices[0]
	target = "DELETED" if str(current.status) in ("DRAFT", "SUBMITTED") else "VOIDED"
	try:
		limiter.call(api.update_invoice, tenant, invoice_id, Invoices(invoices=[Invoice(status=target)]),
					 idempotency_key=f"void-{job}")
	except Exception as exc:
		_fail(job, invoice, f"Xero did not {target.lower()[:-1]} the invoice: {getattr(exc, 'reason', '') or exc}"[:500])
		return
	frappe.db.set_value("Sales Invoice", invoice, {"atlas_xero_status": SYNCED, "atlas_xero_error": None},
						update_modified=False)
	jobs.finish(job, jobs.SUCCEEDED, details=f"Xero invoice {invoice_id} {target}")
