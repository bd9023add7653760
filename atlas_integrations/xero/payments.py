"""Payments back from Xero: once an invoice is synced, Xero is the source of truth for what is paid.

A **pull** (a "Xero Pull" Sync Job, run by the Company's drain) reads what changed in the organisation:

* invoices: ``GET /Invoices?where=Type=="ACCREC"&order=UpdatedDateUTC ASC&page=n`` with
  ``If-Modified-Since`` = the connection's "Invoices Read Up To" (less :data:`OVERLAP` seconds: records of
  the same instant are read twice rather than missed; reading twice changes nothing). Each synced Sales
  Invoice gets Xero's status (AUTHORISED, PAID, VOIDED), amount paid, amount credited (credit notes,
  overpayments and prepayments applied: a paid-by-credit invoice shows as settled, not due), amount due
  and fully-paid date;
* payments: ``GET /Payments?order=UpdatedDateUTC ASC&page=n`` with ``If-Modified-Since`` likewise. Where
  the Xero Connection says "Create Payment Entries", each AUTHORISED payment on a synced invoice becomes a
  submitted ERPNext Payment Entry (Xero bank account code -> Mode of Payment and Account Paid To from the
  connection's Bank Account Mapping; Reference No / Date from the Xero payment, as ERPNext requires for
  bank accounts), keyed by the Xero PaymentID (a unique field); a DELETED payment cancels its entry;
* quotes (only while the Company has a Quotation in Xero): ``GET /Quotes?order=UpdatedDateUTC ASC`` with
  ``If-Modified-Since`` from "Quotes Read Up To": a quote sent, accepted or declined in Xero shows on its
  Quotation (:func:`atlas_integrations.xero.quotes.apply_quotes`; quotes have no webhook category);
* webhook events name documents: a pull of just those (``IDs=``), plus the payments read above.

Never twice: one pull per organisation at a time (a Redis lock; a second one waits for the next
minute), the Sales Invoice row is locked (``select ... for update``) while its entry is checked and posted,
and the PaymentID is unique, so a replayed webhook, a repeated or overlapping pull, or two workers at once
post nothing twice. A cursor moves only past a page whose records were all handled; a payment that
cannot be posted (a closed period, a missing account) becomes a failed "Xero Payment" job with its payload,
and Retry posts it.

Source: Xero developer docs, "Invoices" / "Payments" (If-Modified-Since, paging of 100, order).
"""

from __future__ import annotations

import datetime
import json

import frappe
from frappe.utils import add_to_date, get_datetime, now_datetime

from atlas_integrations import jobs
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.xero import ledger, mappers, oauth, quotes
from atlas_integrations.xero.errors import Temporary
from atlas_integrations.xero.jobs import XERO_PAYMENT, XERO_PULL

PAGE = 100  # Xero's page size for invoices and payments
OVERLAP = 1  # seconds read again at each cursor (same-instant records)
ID_CHUNK = 40  # invoice ids per ``IDs=`` read
FIRST_PULL_LOOKBACK = 60 * 60  # seconds before the connection's connected_at read by the first pull
LOCK_TIMEOUT = 15 * 60  # seconds a pull holds its organisation's lock at most
PAYMENT_ENTRY = "Payment Entry"
DEFAULT_INTERVAL = 5  # minutes between scheduled pulls


def before_insert(doc, method=None) -> None:
	"""Payment Entry ``before_insert``: a copy or an amendment is not the Xero payment's entry."""
	if doc.get("atlas_xero_payment_id") and not doc.flags.get("atlas_from_xero"):
		doc.atlas_xero_payment_id = None


# -- queueing ------------------------------------------------------------------------------------------------
def queue_pull(company: str, invoice_ids=(), credit_note_ids=(), contact_ids=(), trigger: str = "scheduler",
			   drain: bool = True) -> str:
	"""A pending "Xero Pull" Sync Job for ``company`` (one at a time: the ids of a pending one are merged).

	Args:
		invoice_ids, credit_note_ids, contact_ids: Xero ids named by webhook events (read by id besides the
			incremental read).
		trigger: ``scheduler``, ``webhook``, ``desk``.

	Returns:
		The Sync Job's name (not committed; the drain is enqueued after commit).
	"""
	existing = frappe.db.get_value("Sync Job", {"job_type": XERO_PULL, "reference_doctype": oauth.CONNECTION,
												"reference_name": company, "status": jobs.PENDING}, ["name", "payload"],
								   as_dict=True, for_update=True)
	payload = {"company": company, "action": "pull", "invoice_ids": [], "credit_note_ids": [], "contact_ids": []}
	if existing:
		payload.update(json.loads(existing.payload or "{}"))
	for key, ids in (("invoice_ids", invoice_ids), ("credit_note_ids", credit_note_ids), ("contact_ids", contact_ids)):
		payload[key] = sorted(set(payload.get(key) or []) | {str(i).lower() for i in ids if i})
	if existing:
		frappe.db.set_value("Sync Job", existing.name, {"payload": json.dumps(payload, sort_keys=True), "next_retry_at": None})
		name = existing.name
	else:
		name = jobs.create(XERO_PULL, oauth.CONNECTION, company, payload=payload, trigger=trigger).name
	if drain:
		ledger.enqueue_drain(company)
	return name


def schedule_pulls() -> list[str]:
	"""Scheduler hook (every minute): queue a pull for each connected Company that reads payments and whose
	last pull is older than its "Read Every (minutes)". Returns those Companies. Commits."""
	due = []
	for conn in frappe.get_all(oauth.CONNECTION, filters={"status": oauth.CONNECTED, "pull_payments": 1},
							   fields=["name", "last_pull_at", "pull_interval_minutes"]):
		interval = max(int(conn.pull_interval_minutes or DEFAULT_INTERVAL), 1)
		if conn.last_pull_at and get_datetime(conn.last_pull_at) > add_to_date(now_datetime(), minutes=-interval):
			continue
		queue_pull(conn.name)
		due.append(conn.name)
	frappe.db.commit()
	return due


# -- one pull ------------------------------------------------------------------------------------------------
def _lock(company: str):
	return frappe.cache.lock(frappe.cache.make_key(f"atlas:xero-pull:{company}"), timeout=LOCK_TIMEOUT,
							 blocking_timeout=2)


def _value(x):
	return getattr(x, "value", x)


def _utc(value) -> datetime.datetime | None:
	"""A naive UTC datetime from what xero-python gives (aware datetime, naive, or None)."""
	if not value:
		return None
	if isinstance(value, str):
		value = get_datetime(value)
	if value.tzinfo is not None:
		value = value.astimezone(datetime.timezone.utc).replace(tzinfo=None)
	return value


def _since(company: str, field: str) -> datetime.datetime:
	conn = frappe.db.get_value(oauth.CONNECTION, company, [field, "connected_at"], as_dict=True)
	cursor = conn.get(field)
	if cursor:
		return get_datetime(cursor) - datetime.timedelta(seconds=OVERLAP)
	start = get_datetime(conn.connected_at) if conn.connected_at else now_datetime()
	# connected_at is in the site's time zone; Xero's UpdatedDateUTC is UTC: the look-back covers the offset
	return start - datetime.timedelta(seconds=FIRST_PULL_LOOKBACK + 14 * 3600)


def _move_cursor(company: str, field: str, newest: datetime.datetime | None) -> None:
	if newest is None:
		return
	current = frappe.db.get_value(oauth.CONNECTION, company, field)
	if not current or get_datetime(current) < newest:
		frappe.db.set_value(oauth.CONNECTION, company, field, newest, update_modified=False)
	frappe.db.commit()


def pull_figures(stats: dict) -> str:
	"""A pull's figures as the Sync Job's Details show them: ``calls 2, payments read 2, unmapped 1``
	(keys in order, underscores as spaces)."""
	return ", ".join(f"{key.replace('_', ' ')} {stats[key]}" for key in sorted(stats))


def run_pull(session, company: str, job: str, row) -> None:
	"""The drain's handler of one "Xero Pull" job: :func:`pull` under the organisation's lock, then the
	job's figures. Raises :class:`atlas_integrations.xero.errors.Temporary` when another pull holds the lock."""
	payload = json.loads(row.payload or "{}")
	lock = _lock(company)
	if not lock.acquire():
		raise Temporary("another pull of this organisation is running", retry_after=30, count_attempt=False)
	try:
		stats = pull(session, company, payload)
	finally:
		try:
			lock.release()
		except Exception:  # expired: nothing to give back
			pass
	jobs.finish(job, jobs.SUCCEEDED, details=pull_figures(stats))
	frappe.db.commit()


def pull(session, company: str, payload: dict | None = None) -> dict:
	"""Read what changed in ``company``'s organisation and apply it (see the module). Call under the
	organisation's lock (:func:`run_pull`). Commits as it goes.

	Returns:
		figures: ``{"invoices_read", "invoices_updated", "payments_read", "entries_posted",
		"entries_cancelled", "unmapped", "failed", "quotes_updated", "calls"}`` (quotes are read only while
		the Company has a Quotation in Xero).
	"""
	payload = payload or {}
	stats = dict.fromkeys(("invoices_read", "invoices_updated", "payments_read", "entries_posted", "entries_cancelled",
						   "unmapped", "failed", "quotes_updated"), 0)
	calls_before = session.calls
	conn = frappe.db.get_value(oauth.CONNECTION, company, ["pull_payments", "create_payment_entries"], as_dict=True)
	named = set(payload.get("invoice_ids") or [])
	for note_id in payload.get("credit_note_ids") or []:  # a credit note's allocations change its invoices
		for note in session.call("get_credit_note", note_id).credit_notes or []:
			named |= {str(a.invoice.invoice_id).lower() for a in (note.allocations or []) if a.invoice}
	ids = sorted(named)
	for start in range(0, len(ids), ID_CHUNK):
		answer = session.call("get_invoices", i_ds=ids[start:start + ID_CHUNK], page=1)
		_apply_invoices(answer.invoices or [], stats)
	if payload.get("contact_ids"):
		_refresh_contacts(session, company, payload["contact_ids"])
	# incremental reads: invoices, then payments, then quotes
	_read_changed(session, company, "invoices_pulled_until", "get_invoices", "invoices",
				  lambda found: _apply_invoices(found, stats), where='Type=="ACCREC"')
	maps = bank_map(company)

	def post(found: list) -> None:
		stats["payments_read"] += len(found)
		for payment in found:
			outcome = apply_payment(company, payment_payload(payment), maps, create=bool(conn.create_payment_entries))
			stats[outcome] = stats.get(outcome, 0) + 1

	_read_changed(session, company, "payments_pulled_until", "get_payments", "payments", post)
	if frappe.db.exists("Quotation", {"company": company, "atlas_xero_quote_id": ["is", "set"], "docstatus": ["<", 2]}):
		def read_quotes(found: list) -> None:  # sent / accepted / declined in Xero: quotes have no webhook
			stats["quotes_updated"] += quotes.apply_quotes(company, found)

		_read_changed(session, company, "quotes_pulled_until", "get_quotes", "quotes", read_quotes)
	frappe.db.set_value(oauth.CONNECTION, company, "last_pull_at", now_datetime(), update_modified=False)
	frappe.db.commit()
	stats["calls"] = session.calls - calls_before
	return stats


def _read_changed(session, company: str, cursor: str, method: str, collection: str, handle, **filters) -> None:
	"""Page through ``method`` (``get_invoices`` / ``get_payments`` / ``get_quotes``) with
	``If-Modified-Since`` = the connection's ``cursor`` field (:func:`_since`) and ``order=UpdatedDateUTC
	ASC``, giving each page's records to ``handle`` and moving the cursor to the newest UpdatedDateUTC of a
	page only after ``handle`` returned. Stops at a page shorter than :data:`PAGE` (Xero pages by 100)."""
	page, newest = 1, None
	since = _since(company, cursor)
	while True:
		answer = session.call(method, if_modified_since=since, order="UpdatedDateUTC ASC", page=page, **filters)
		found = getattr(answer, collection) or []
		handle(found)
		stamps = [_utc(r.updated_date_utc) for r in found if r.updated_date_utc]
		newest = max(stamps + ([newest] if newest else [])) if stamps else newest
		_move_cursor(company, cursor, newest)
		if len(found) < PAGE:
			break
		page += 1


def _apply_invoices(invoices: list, stats: dict) -> None:
	"""Xero's figures on the synced Sales Invoices among ``invoices`` (one query to find them)."""
	if not invoices:
		return
	stats["invoices_read"] += len(invoices)
	by_id = {str(i.invoice_id).lower(): i for i in invoices}
	rows = frappe.db.sql(
		f"""select name, atlas_xero_invoice_id, atlas_xero_invoice_status, atlas_xero_amount_paid,
		atlas_xero_amount_credited, atlas_xero_amount_due, atlas_xero_fully_paid_on from `tabSales Invoice`
		where atlas_xero_invoice_id in ({", ".join(["%s"] * len(by_id))})""", tuple(by_id), as_dict=True)
	now = now_datetime()
	for row in rows:
		inv = by_id.get(str(row.atlas_xero_invoice_id).lower())
		if inv is None:
			continue
		paid_on = inv.fully_paid_on_date
		values = {"atlas_xero_invoice_status": str(_value(inv.status) or ""),
				  "atlas_xero_amount_paid": float(mappers.money(inv.amount_paid)),
				  "atlas_xero_amount_credited": float(mappers.money(inv.amount_credited)),
				  "atlas_xero_amount_due": float(mappers.money(inv.amount_due)),
				  "atlas_xero_fully_paid_on": paid_on.date() if isinstance(paid_on, datetime.datetime) else paid_on}
		current = {k: row.get(k) for k in values}
		changed = any((float(current[k] or 0) != float(v or 0)) if "amount" in k else (str(current[k] or "") != str(v or ""))
					  for k, v in values.items())
		if changed:
			frappe.db.set_value("Sales Invoice", row.name, {**values, "atlas_xero_pulled_at": now}, update_modified=False)
			stats["invoices_updated"] += 1
	frappe.db.commit()


def _refresh_contacts(session, company: str, contact_ids: list[str]) -> None:
	"""CONTACT events: a Xero Contact merged into another moves its Customers to the surviving ContactID;
	an archived one is forgotten (the next invoice looks the customer up again)."""
	tenant = frappe.db.get_value(oauth.CONNECTION, company, "tenant_id")
	for start in range(0, len(contact_ids), ID_CHUNK):
		answer = session.call("get_contacts", i_ds=contact_ids[start:start + ID_CHUNK], include_archived=True)
		for contact in answer.contacts or []:
			cid = str(contact.contact_id)
			customers = frappe.get_all("Customer", filters={"atlas_xero_contact_id": cid, "atlas_xero_tenant_id": tenant},
									   pluck="name")
			merged = getattr(contact, "merged_to_contact_id", None)
			status = str(_value(contact.contact_status) or "")
			for customer in customers:
				if merged:
					frappe.db.set_value("Customer", customer, "atlas_xero_contact_id", str(merged), update_modified=False)
				elif status == "ARCHIVED":
					frappe.db.set_value("Customer", customer, {"atlas_xero_contact_id": None, "atlas_xero_tenant_id": None},
										update_modified=False)
	frappe.db.commit()


# -- payments ------------------------------------------------------------------------------------------------
def bank_map(company: str) -> dict[str, dict]:
	"""Xero bank account code -> ``{"mode_of_payment", "account"}`` from the Xero Connection."""
	rows = frappe.get_all("Xero Bank Account Map", filters={"parent": company, "parenttype": oauth.CONNECTION},
						  fields=["xero_account_code", "mode_of_payment", "erpnext_account"])
	return {r.xero_account_code.strip(): {"mode_of_payment": r.mode_of_payment, "account": r.erpnext_account}
			for r in rows if r.xero_account_code}


def payment_payload(payment) -> dict:
	"""What a Xero Payment (xero-python model) says, as JSON-able data (a failed job keeps it)."""
	day = payment.date
	return {"payment_id": str(payment.payment_id).lower(), "status": str(_value(payment.status) or ""),
			"payment_type": str(_value(payment.payment_type) or ""),
			"invoice_id": str(payment.invoice.invoice_id).lower() if payment.invoice and payment.invoice.invoice_id else None,
			"amount": float(mappers.money(payment.amount)), "date": str(day.date() if isinstance(day, datetime.datetime) else day),
			"reference": payment.reference or "", "account_code": (payment.account.code if payment.account else None) or ""}


def apply_payment(company: str, p: dict, maps: dict, create: bool = True) -> str:
	"""Post (or, for a DELETED payment, cancel) the Payment Entry of one Xero payment, never twice.

	Args:
		p: :func:`payment_payload`.
		maps: :func:`bank_map`.
		create: the connection's "Create Payment Entries" (False: nothing is posted or cancelled).

	Returns:
		the outcome's figure: ``entries_posted``, ``entries_cancelled``, ``unmapped``, ``failed`` or
		``skipped`` (not an invoice payment of a synced Sales Invoice, or already done).
	"""
	if not create or p.get("payment_type") not in ("ACCRECPAYMENT", "") or not p.get("invoice_id"):
		return "skipped"
	invoice = frappe.db.get_value("Sales Invoice", {"atlas_xero_invoice_id": p["invoice_id"], "docstatus": 1}, "name")
	if not invoice:
		return "skipped"
	try:
		if p["status"] == "DELETED":
			return "entries_cancelled" if _cancel_entry(p) else "skipped"
		target = maps.get((p.get("account_code") or "").strip())
		if not target:
			return "unmapped"
		return "entries_posted" if _post_entry(invoice, p, target) else "skipped"
	except Exception as exc:
		frappe.db.rollback()
		_failed_payment(company, invoice, p, exc)
		return "failed"


def _cancel_entry(p: dict) -> bool:
	name = frappe.db.get_value(PAYMENT_ENTRY, {"atlas_xero_payment_id": p["payment_id"], "docstatus": 1}, "name")
	if not name:
		return False
	frappe.db.sql("select name from `tabPayment Entry` where name=%s for update", name)
	doc = frappe.get_doc(PAYMENT_ENTRY, name)
	if doc.docstatus != 1:
		frappe.db.rollback()
		return False
	doc.flags.ignore_permissions = True
	doc.add_comment("Info", mail_text(f"Cancelled: the payment {p['payment_id']} was deleted in Xero"))
	doc.cancel()
	frappe.db.commit()
	return True


def _post_entry(invoice: str, p: dict, target: dict) -> bool:
	"""One submitted Payment Entry for the payment, under the invoice's row lock; False when it exists."""
	from erpnext.accounts.doctype.payment_entry.payment_entry import get_payment_entry

	frappe.db.sql("select name from `tabSales Invoice` where name=%s for update", invoice)
	if frappe.db.exists(PAYMENT_ENTRY, {"atlas_xero_payment_id": p["payment_id"]}):
		frappe.db.rollback()
		return False
	outstanding = frappe.db.get_value("Sales Invoice", invoice, "outstanding_amount")
	amount = min(mappers.money(p["amount"]), mappers.money(outstanding))
	if amount <= 0:  # ERPNext has nothing outstanding (e.g. paid there already): nothing to post
		frappe.db.rollback()
		return False
	pe = get_payment_entry("Sales Invoice", invoice, party_amount=float(amount), bank_account=target["account"])
	pe.posting_date = p["date"]
	pe.reference_no = (p.get("reference") or p["payment_id"])[:140]
	pe.reference_date = p["date"]
	if target.get("mode_of_payment"):
		pe.mode_of_payment = target["mode_of_payment"]
	pe.atlas_xero_payment_id = p["payment_id"]
	pe.remarks = f"Xero payment {p['payment_id']}" + (f" ({p['reference']})" if p.get("reference") else "")
	pe.flags.ignore_permissions = True
	pe.flags.atlas_from_xero = True
	try:
		pe.insert()
		pe.submit()
	except (frappe.DuplicateEntryError, frappe.UniqueValidationError):  # another worker posted it
		frappe.db.rollback()
		return False
	frappe.db.commit()
	return True


def _failed_payment(company: str, invoice: str, p: dict, exc: Exception) -> None:
	"""A payment that could not be posted: a failed "Xero Payment" job keeps it (Retry posts it)."""
	existing = frappe.db.get_value("Sync Job", {"job_type": XERO_PAYMENT, "reference_name": invoice,
												"payload": ["like", f"%{p['payment_id']}%"],
												"status": ["in", [jobs.FAILED, jobs.PENDING]]}, "name")
	why = f"Xero payment {p['payment_id']} not posted: {frappe.utils.strip_html(str(exc))}"[:500]
	if existing:
		frappe.db.set_value("Sync Job", existing, "last_error", mail_text(why))
	else:
		job = jobs.create(XERO_PAYMENT, "Sales Invoice", invoice,
						  payload={"company": company, "action": "payment", "payment": p}, trigger="scheduler")
		jobs.finish(job.name, jobs.FAILED, error=why)
	frappe.db.commit()


def run_payment(session, company: str, job: str, row) -> None:
	"""The drain's handler of one retried "Xero Payment" job: post its payment again (never twice; no Xero
	call: the payment is in the job's payload)."""
	payload = json.loads(row.payload or "{}")
	conn = frappe.db.get_value(oauth.CONNECTION, company, "create_payment_entries")
	p = payload.get("payment") or {}
	invoice = frappe.db.get_value("Sales Invoice", {"atlas_xero_invoice_id": p.get("invoice_id"), "docstatus": 1}, "name")
	if not invoice or not conn:
		jobs.finish(job, jobs.SUCCEEDED, details="nothing to post (no synced invoice, or Create Payment Entries is off)")
		return
	target = bank_map(company).get((p.get("account_code") or "").strip())
	if not target:
		jobs.finish(job, jobs.FAILED, error=f"Xero bank account {p.get('account_code')} is not mapped on the Xero Connection")
		return
	try:
		posted = _cancel_entry(p) if p.get("status") == "DELETED" else _post_entry(invoice, p, target)
	except Exception as exc:
		frappe.db.rollback()
		jobs.finish(job, jobs.FAILED, error=f"not posted: {frappe.utils.strip_html(str(exc))}"[:500])
		return
	jobs.finish(job, jobs.SUCCEEDED, details="posted" if posted else "already posted")
