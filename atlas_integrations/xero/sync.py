"""Customers and Sales Invoices to Xero through the Sync Job ledger: after commit, in batches, never twice.

* A submitted Sales Invoice of a connected Company (posted on or after the connection's "Push Invoices
  From") becomes a pending "Xero Invoice" Sync Job (doc event ``on_submit``, ``enqueue_after_commit``; no
  Xero call inside the user's save); cancelling queues a void; a Customer whose name, email, address or
  tax id changed queues a "Xero Contact" job. A later change of the same document supersedes its pending
  job.
* One drain per Company runs the due pending jobs in batches of up to 50: contacts first (found again by
  ContactNumber, name or email before any is created, one look-up per 15 customers), then one
  ``POST /Invoices?summarizeErrors=false`` for the invoices and one ``PUT /CreditNotes`` for the returns
  (each allocated to its invoice), each write with an ``Idempotency-Key`` derived from the batch's jobs:
  a retry after a timeout never creates a second document and one bad document fails alone.
* Every call goes through :class:`atlas_integrations.xero.client.XeroSession` (the tenant's shared rate
  limiter, Xero's budgets and 429s honoured). A passing failure (timeout, 5xx, rate limit) defers the jobs
  with exponential backoff (:func:`atlas_integrations.jobs.defer`); a revoked connection pauses them
  (pending, no attempt used) until it is connected again; Xero's ValidationErrors fail the job alone,
  with a Retry action.
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
from atlas_integrations.xero import mappers, oauth, settings
from atlas_integrations.xero.jobs import (XERO_CONTACT, XERO_INVOICE, XERO_JOB_TYPES, XERO_PAYMENT, XERO_PULL,
										 XERO_QUOTE, XERO_QUOTE_SEND)

BATCH = 50
LOOKUP_CHUNK = 15  # customers per ``where`` look-up (Xero's URL stays short)
PENDING, SYNCED, ERROR = "Xero Pending", "Xero Synced", "Xero Error"
DEFAULT_TIMEOUT = 30  # seconds per Xero request (site config ``atlas_xero_timeout`` overrides)
PAUSED_RETRY = 60 * 60  # seconds: a paused (revoked) connection's jobs look again after this (reconnect resumes them)
WAITING_FOR_ORIGINAL = 60  # seconds: a return waits for its invoice to reach Xero
PAID_IN_XERO = ("Sales Invoice {0} cannot be cancelled: it has {1} {2} paid or credited in Xero, and Xero does "
				"not void an invoice with payments. Remove the payments in Xero first, then cancel.")
CONTACT_FIELDS = ("customer_name", "email_id", "tax_id", "customer_primary_address")


def request_timeout() -> tuple[float, float]:
	"""(connect, read) seconds for xero-python's ``_request_timeout`` (it ignores a plain float)."""
	from atlas_integrations.endpoints import conf_number

	read = conf_number("atlas_xero_timeout", DEFAULT_TIMEOUT)
	return (min(10.0, read), read)


def _connected(company: str) -> bool:
	return frappe.db.get_value(oauth.CONNECTION, company, "status") == oauth.CONNECTED


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
	if not invoice_id or doc.get("is_return") or not _connected(doc.company):
		return
	try:
		from atlas_integrations.xero.client import session_for

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
	if _connected(doc.company) and doc.get("atlas_xero_invoice_id"):
		queue(doc.name, doc.company, "void")


def on_customer_update(doc, method=None) -> None:
	"""Customer ``on_update``: a Customer already in Xero whose name, email, primary address or tax id
	changed queues a "Xero Contact" job for each connected Company."""
	if not doc.get("atlas_xero_contact_id"):
		return
	before = doc.get_doc_before_save()
	if before is not None and all(before.get(f) == doc.get(f) for f in CONTACT_FIELDS):
		return
	for company in frappe.get_all(oauth.CONNECTION, filters={"status": oauth.CONNECTED}, pluck="name"):
		queue(doc.name, company, "contact", job_type=XERO_CONTACT, reference_doctype="Customer")


def queue(name: str, company: str, action: str, job_type: str = XERO_INVOICE,
		  reference_doctype: str = "Sales Invoice", drain: bool = True, parent_job: str | None = None) -> str:
	"""A pending Sync Job for ``name`` (``push``, ``void`` or ``contact``); a pending job of the same
	document is superseded (it gets the new action) instead of a second one. The Company's drain is
	enqueued after commit (``drain=False``: the caller enqueues it once for many). ``parent_job``: the
	Sync Job it is a part of (e.g. "Xero Push Existing"), whose progress the drain reports. Returns the
	Sync Job's name."""
	existing = frappe.db.get_value("Sync Job", {"job_type": job_type, "reference_doctype": reference_doctype,
											   "reference_name": name, "status": jobs.PENDING}, "name")
	payload = {"company": company, "action": action}
	if existing:
		values = {"payload": json.dumps(payload, sort_keys=True), "next_retry_at": None}
		if parent_job:
			values["parent_job"] = parent_job
		frappe.db.set_value("Sync Job", existing, values)
		job = existing
	else:
		job = jobs.create(job_type, reference_doctype, name, payload=payload, trigger="desk", parent_job=parent_job).name
	if reference_doctype == "Sales Invoice":
		frappe.db.set_value("Sales Invoice", name, {"atlas_xero_status": PENDING, "atlas_xero_error": None},
							update_modified=False)
	if drain:
		_enqueue_drain(company)
	return job


def enqueue_drain(company: str) -> None:
	"""Enqueue the Company's drain (one at a time: deduplicated while queued) after commit."""
	_enqueue_drain(company)


def _enqueue_drain(company: str) -> None:
	frappe.enqueue("atlas_integrations.xero.sync.drain", queue="short", company=company,
				   job_id=f"atlas::xero-drain::{company}", deduplicate=True, enqueue_after_commit=True)


def resume(company: str) -> int:
	"""Make the Company's paused (deferred) Xero jobs due now and drain them (after a reconnect). Returns
	how many were waiting; does not commit."""
	waiting = frappe.db.sql_list(
		f"""select name from `tabSync Job` where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))})
		and status=%s and company=%s""", (*XERO_JOB_TYPES, jobs.PENDING, company))
	if waiting:
		frappe.db.sql(f"""update `tabSync Job` set next_retry_at=null where name in ({", ".join(["%s"] * len(waiting))})""",
					  tuple(waiting))
		_enqueue_drain(company)
	return len(waiting)


def drain_all() -> list[str]:
	"""Scheduler hook (every minute): enqueue a drain for each connected Company with due pending jobs.
	Returns those Companies."""
	cond, params = jobs.due_condition()
	due = []
	for company in frappe.get_all(oauth.CONNECTION, filters={"status": oauth.CONNECTED}, pluck="name"):
		if frappe.db.sql(f"""select name from `tabSync Job` where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))})
				and status=%s and company=%s and {cond} limit 1""",
						 (*XERO_JOB_TYPES, jobs.PENDING, company, *params)):
			_enqueue_drain(company)
			due.append(company)
	frappe.db.commit()
	return due


def run_sync_job(sync_job: str) -> None:
	"""rq entry point of the registered job types (dispatch, Retry, the scheduler): drains the job's Company."""
	payload = json.loads(frappe.db.get_value("Sync Job", sync_job, "payload") or "{}")
	if payload.get("company"):
		drain(payload["company"])


def drain(company: str) -> int:
	"""Run the Company's due pending Xero jobs, 50 at a time, as Administrator; then refresh the
	connection's job counts. Returns the jobs taken."""
	done = 0
	with jobs.run_as(None):
		while True:
			frappe.db.rollback()
			cond, params = jobs.due_condition()
			names = frappe.db.sql_list(
				f"""select name from `tabSync Job` where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))})
				and status=%s and company=%s and {cond} order by creation limit %s""",
				(*XERO_JOB_TYPES, jobs.PENDING, company, *params, BATCH))
			claimed = [n for n in names if jobs.claim(n)]
			if not claimed:
				break
			_run_batch(company, claimed)
			_report_parents(claimed)
			done += len(claimed)
		settings.refresh_counts(company)
		frappe.db.commit()
	return done


def _report_parents(claimed: list[str]) -> None:
	"""After a batch: the progress of the jobs its jobs are parts of ("Xero Push Existing"), finishing
	those with no open part left (:func:`settings.report_push`); commits."""
	parents = frappe.db.sql_list(
		f"""select distinct parent_job from `tabSync Job` where name in ({", ".join(["%s"] * len(claimed))})
		and ifnull(parent_job, '') != ''""", tuple(claimed))
	for parent in parents:
		settings.report_push(parent)
	if parents:
		frappe.db.commit()


# -- one batch -------------------------------------------------------------------------------------------------
def _fail(job: str, invoice: str | None, error: str) -> None:
	if invoice:
		frappe.db.set_value("Sales Invoice", invoice, {"atlas_xero_status": ERROR,
													   "atlas_xero_error": mail_text(error[:1000])},  # Xero's words, as text
							update_modified=False)
	jobs.finish(job, jobs.FAILED, error=error)


def _synced(job: str, si, xero_id: str, details: str) -> None:
	frappe.db.set_value("Sales Invoice", si.name, {"atlas_xero_invoice_id": xero_id, "atlas_xero_status": SYNCED,
												   "atlas_xero_error": None}, update_modified=False)
	jobs.finish(job, jobs.SUCCEEDED, details=details, result_ids=[xero_id])


def _still_open(claimed: list[str]) -> list[str]:
	frappe.db.rollback()
	return frappe.get_all("Sync Job", filters={"name": ["in", claimed], "status": jobs.PROCESSING}, pluck="name")


def _defer_open(claimed: list[str], rows: dict, why: str, retry_after: float | None, count_attempt: bool) -> None:
	"""The run stopped for a passing reason: its unfinished jobs go back to pending (or fail for good)."""
	for job in _still_open(claimed):
		if jobs.defer(job, why, retry_after=retry_after, count_attempt=count_attempt) == jobs.FAILED:
			_fail_state(rows[job], why)


def _fail_state(row, why: str) -> None:
	"""A job failed for good: its document shows Xero Error (Sales Invoice) or Xero send failed (Quotation)."""
	if row.reference_doctype == "Sales Invoice":
		frappe.db.set_value("Sales Invoice", row.reference_name,
							{"atlas_xero_status": ERROR, "atlas_xero_error": mail_text(why[:1000])}, update_modified=False)
	elif row.reference_doctype == "Quotation":
		from atlas_integrations.xero import quotes

		frappe.db.set_value("Quotation", row.reference_name, {"atlas_xero_status": quotes.SEND_FAILED,
															  "atlas_xero_error": mail_text(why[:1000])}, update_modified=False)
	frappe.db.commit()


def _run_batch(company: str, claimed: list[str]) -> None:
	from xero_python.exceptions import HTTPStatusException

	from atlas_integrations.xero.client import Deferred, XeroSession, accounting_api, tenant_limiter

	rows = {j.name: j for j in frappe.get_all("Sync Job", filters={"name": ["in", claimed]},
											   fields=["name", "job_type", "reference_doctype", "reference_name", "payload"])}
	conn = frappe.db.get_value(oauth.CONNECTION, company, ["tenant_id", "xero_grant"], as_dict=True)
	try:
		api = accounting_api(company)
	except Exception as exc:  # not connected any more / revoked: the jobs wait (pending) for a reconnect
		frappe.db.rollback()
		_defer_open(claimed, rows, f"Xero connection paused: {str(exc)[:300]}", PAUSED_RETRY, count_attempt=False)
		return
	session = XeroSession(api, tenant_limiter(conn.tenant_id), conn.tenant_id)
	from atlas_integrations.xero import payments, quotes

	work: dict[tuple, dict] = {}
	for job, row in rows.items():
		work.setdefault((row.job_type, json.loads(row.payload).get("action")), {})[job] = row
	try:
		if work.get((XERO_CONTACT, "contact")):
			_update_contacts(session, work[(XERO_CONTACT, "contact")])
		if work.get((XERO_INVOICE, "push")):
			_push(session, company, work[(XERO_INVOICE, "push")])
		if work.get((XERO_QUOTE, "push")):
			quotes.push(session, company, work[(XERO_QUOTE, "push")])
		for job, row in (work.get((XERO_INVOICE, "void")) or {}).items():
			_void(session, job, row.reference_name)
		for job, row in (work.get((XERO_QUOTE, "cancel")) or {}).items():
			quotes.cancel(session, job, row.reference_name)
		for job, row in (work.get((XERO_QUOTE_SEND, "send")) or {}).items():
			quotes.send(session, job, row)
		for job, row in (work.get((XERO_PULL, "pull")) or {}).items():
			payments.run_pull(session, company, job, json.loads(row.payload))
		for job, row in (work.get((XERO_PAYMENT, "payment")) or {}).items():
			payments.run_payment(company, job, json.loads(row.payload))
	except Deferred as exc:
		_defer_open(claimed, rows, str(exc), exc.retry_after, exc.count_attempt)
	except HTTPStatusException as exc:
		if exc.status == 401:  # the access token is not accepted: refresh it (under the lock) on the next run
			frappe.db.set_value(oauth.GRANT, conn.xero_grant, "access_token_expires_at", "2000-01-01 00:00:00",
								update_modified=False)
			frappe.db.commit()
			_defer_open(claimed, rows, "Xero did not accept the access token: refreshing it", 5, count_attempt=False)
		elif exc.status == 403:  # the organisation disconnected the app
			oauth.mark_revoked(conn.xero_grant, "Xero refused the connection (403): reconnect Xero")
			_defer_open(claimed, rows, "Xero connection paused: Xero answered 403", PAUSED_RETRY, count_attempt=False)
		else:
			for job in _still_open(claimed):
				why = f"Xero answered {exc.status}: {reason(exc)}"[:500]
				_fail_state(rows[job], why)
				jobs.finish(job, jobs.FAILED, error=why)
	except Exception as exc:  # a bug or an SDK error: the batch's unfinished jobs are retried, never left processing
		frappe.db.rollback()
		why = f"Unexpected error talking to Xero ({type(exc).__name__}): {str(exc)[:300]}"
		frappe.log_error(title=f"Xero drain of {company}", message=jobs.scrub(frappe.get_traceback()[-2000:]),
						 reference_doctype=oauth.CONNECTION, reference_name=company)
		_defer_open(claimed, rows, why, None, count_attempt=True)
	frappe.db.commit()


def reason(exc) -> str:
	"""Xero's words from an error answer: the ValidationErrors when there are some."""
	try:
		data = json.loads(exc.body or "{}")
	except Exception:
		return str(getattr(exc, "reason", "") or type(exc).__name__)[:300]
	messages = [e.get("Message") for el in data.get("Elements") or [] for e in el.get("ValidationErrors") or []]
	return "; ".join(m for m in messages if m) or str(data.get("Message") or getattr(exc, "reason", ""))[:300]


def validation_messages(answer) -> str:
	"""Xero's ValidationErrors of one element of a ``summarizeErrors=false`` answer (a xero-python model:
	Invoice, CreditNote, Quote, Contact), joined by "; " ("" when it has none)."""
	return "; ".join(e.message for e in (getattr(answer, "validation_errors", None) or []) if e.message)


# -- contacts --------------------------------------------------------------------------------------------------
def _customers(names: list[str]) -> dict:
	docs = {c.name: c for c in frappe.get_all("Customer", filters={"name": ["in", names]},
											  fields=["name", "customer_name", "tax_id", "email_id", "atlas_xero_contact_id",
													  "atlas_xero_tenant_id", "customer_primary_address"])}
	addresses = {a.name: a for a in frappe.get_all(
		"Address", filters={"name": ["in", [d.customer_primary_address for d in docs.values() if d.customer_primary_address]]},
		fields=["name", "address_line1", "address_line2", "city", "state", "pincode", "country"])} if docs else {}
	for doc in docs.values():
		doc.address = addresses.get(doc.customer_primary_address)
	return docs


def _quote(value: str) -> str:
	return str(value or "").replace('"', "").replace("\\", "")[:255]


def _find_contacts(session, docs: dict) -> dict[str, str]:
	"""Existing Xero Contacts of Customers without a stored id: by ContactNumber, then name, then email;
	one ``GET /Contacts?where=...`` per :data:`LOOKUP_CHUNK` customers."""
	found: dict[str, str] = {}
	names = list(docs)
	for start in range(0, len(names), LOOKUP_CHUNK):
		chunk = [docs[n] for n in names[start:start + LOOKUP_CHUNK]]
		terms = []
		for doc in chunk:
			terms.append(f'ContactNumber=="{_quote(doc.name[:50])}"')
			terms.append(f'Name=="{_quote(doc.customer_name or doc.name)}"')
			if doc.email_id:
				terms.append(f'EmailAddress=="{_quote(doc.email_id)}"')
		contacts = session.call("get_contacts", where=" OR ".join(terms), include_archived=False).contacts or []
		for key in ("number", "name", "email"):
			for doc in chunk:
				if doc.name in found:
					continue
				for c in contacts:
					value = {"number": (c.contact_number, doc.name[:50]), "name": (c.name, doc.customer_name or doc.name),
							 "email": (c.email_address, doc.email_id)}[key]
					if value[0] and value[1] and str(value[0]).strip().lower() == str(value[1]).strip().lower():
						found[doc.name] = str(c.contact_id)
						break
	return found


def contact_ids(session, customers: list[str]) -> dict[str, str]:
	"""Xero ContactIDs of ERPNext Customers: stored, else found in Xero, else created (one batch)."""
	from xero_python.accounting import Contacts

	docs = _customers(customers)
	# a stored id counts only for the organisation it came from (a Customer may be invoiced by Companies
	# connected to different organisations, or the Company reconnected to another one)
	found = {c: d.atlas_xero_contact_id for c, d in docs.items()
			 if d.atlas_xero_contact_id and (d.atlas_xero_tenant_id or session.tenant_id) == session.tenant_id}
	unknown = {c: d for c, d in docs.items() if c not in found}
	if unknown:
		found.update(_find_contacts(session, unknown))
	missing = [c for c in customers if c not in found and c in docs]
	if missing:
		payload = Contacts(contacts=[mappers.to_model("Contact", mappers.contact(docs[c], docs[c].email_id,
																				 address=docs[c].address))
									 for c in missing])
		key = "contacts-" + hashlib.sha256(",".join(sorted(missing)).encode()).hexdigest()[:40]
		created = session.call("create_contacts", payload, summarize_errors=False, idempotency_key=key)
		for customer, contact in zip(missing, created.contacts or []):
			if contact.contact_id and not contact.has_validation_errors:
				found[customer] = str(contact.contact_id)
	for customer, contact_id in found.items():
		if (docs[customer].atlas_xero_contact_id, docs[customer].atlas_xero_tenant_id) != (contact_id, session.tenant_id):
			frappe.db.set_value("Customer", customer, {"atlas_xero_contact_id": contact_id,
													   "atlas_xero_tenant_id": session.tenant_id}, update_modified=False)
	frappe.db.commit()
	return found


def _update_contacts(session, rows: dict) -> None:
	"""Changed Customers: their Xero Contacts updated in one ``POST /Contacts`` (by ContactID)."""
	from xero_python.accounting import Contacts

	docs = _customers([r.reference_name for r in rows.values()])
	order, payload = [], []
	for job, row in rows.items():
		doc = docs.get(row.reference_name)
		if not doc or not doc.atlas_xero_contact_id or (doc.atlas_xero_tenant_id or session.tenant_id) != session.tenant_id:
			jobs.finish(job, jobs.SUCCEEDED, details="not in Xero yet: the contact is created with its first invoice")
			continue
		order.append(job)
		payload.append(mappers.to_model("Contact", mappers.contact(doc, doc.email_id, contact_id=doc.atlas_xero_contact_id,
																   address=doc.address)))
	if not payload:
		return
	key = "contact-updates-" + hashlib.sha256(",".join(order).encode()).hexdigest()[:40]
	result = session.call("update_or_create_contacts", Contacts(contacts=payload), summarize_errors=False,
						  idempotency_key=key)
	for job, answer in zip(order, result.contacts or []):
		if answer.has_validation_errors or getattr(answer, "validation_errors", None):
			_fail(job, None, f"Xero refused the contact: {validation_messages(answer) or 'validation error'}")
		else:
			jobs.finish(job, jobs.SUCCEEDED, details=f"Xero Contact {answer.contact_id} updated",
						result_ids=[str(answer.contact_id)])


# -- invoices and returns --------------------------------------------------------------------------------------
def _push(session, company: str, rows: dict) -> None:
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
	contacts = contact_ids(session, sorted({si.customer for si in sis.values()}))
	invoices = {j: si for j, si in sis.items() if not si.is_return}
	returns = {j: si for j, si in sis.items() if si.is_return}
	if invoices:
		_write(session, "Invoice", invoices, contacts, status, maps)
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
		_write(session, "CreditNote", returns, contacts, status, maps)


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
		where = " OR ".join(f'CreditNoteNumber=="{_quote(n)}"' for n in returns)
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


def _void(session, job: str, invoice: str) -> None:
	"""Void (or, for a draft, delete) the Xero invoice or credit note of a cancelled Sales Invoice."""
	from xero_python.accounting import CreditNote, CreditNotes, Invoice, Invoices
	from xero_python.exceptions import HTTPStatusException

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
	except HTTPStatusException as exc:
		if exc.status in (401, 403) or exc.status >= 500:
			raise
		_fail(job, invoice, f"Xero did not {'delete' if target == 'DELETED' else 'void'} it: {reason(exc)}"[:500])
		return
	_state(invoice, SYNCED)
	jobs.finish(job, jobs.SUCCEEDED, details=f"Xero {'credit note' if is_return else 'invoice'} {xero_id} {target}",
				result_ids=[xero_id])


def _state(invoice: str, state: str) -> None:
	frappe.db.set_value("Sales Invoice", invoice, {"atlas_xero_status": state, "atlas_xero_error": None},
						update_modified=False)
