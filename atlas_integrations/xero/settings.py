"""What a Xero Connection says about the Company's books in Xero: the account / tax / item mapping and its
defaults read from the organisation (``GET /Accounts``, ``GET /TaxRates``), the start date for invoices
submitted before connecting, and the Sync Job counts shown on the form (the operator guide's integration
card).
"""

from __future__ import annotations

import json

import frappe
from frappe.utils import getdate, now_datetime

from atlas_integrations import jobs, messages
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.xero import oauth
from atlas_integrations.xero.jobs import XERO_JOB_TYPES

RECENT_JOBS = 10


def maps(company: str) -> dict:
	"""The mapping keywords of :func:`atlas_integrations.xero.mappers.line_items` for ``company``:
	``account_codes``, ``item_codes``, ``tax_types`` (dicts) and ``default_account``,
	``adjustment_account``, ``untaxed_type`` (Xero codes), from its Xero Connection."""
	conn = messages.get_doc(oauth.CONNECTION, company)
	out = {"account_codes": {r.erpnext_account: r.xero_account_code.strip() for r in conn.account_map},
		   "item_codes": {r.item_code: r.xero_item_code.strip() for r in conn.item_map},
		   "tax_types": {r.erpnext_account: r.xero_tax_type.strip() for r in conn.tax_map}}
	if conn.default_account_code:
		out["default_account"] = conn.default_account_code.strip()
	if conn.adjustment_account_code:
		out["adjustment_account"] = conn.adjustment_account_code.strip()
	if conn.untaxed_tax_type:
		out["untaxed_type"] = conn.untaxed_tax_type.strip()
	return out


def load_from_xero(company: str) -> dict:
	"""Read the organisation's active revenue Accounts and TaxRates (xero-python ``get_accounts`` /
	``get_tax_rates``), list them on the connection and fill the defaults that are empty: the first
	REVENUE account (Xero's default chart: 200 Sales), the first OTHERINCOME/REVENUE account after it for
	adjustments (260 Other Revenue), and a 0 % revenue TaxType for untaxed lines. Commits.

	Returns:
		``{"accounts": [{"code", "name", "type"}], "tax_rates": [{"tax_type", "name", "rate"}]}``.

	Raises:
		frappe.ValidationError: the Company has no connected organisation.
	"""
	from atlas_integrations.xero.client import session_for

	conn = messages.get_doc(oauth.CONNECTION, company)
	session = session_for(company)
	accounts = [{"code": a.code, "name": a.name, "type": str(getattr(a.type, "value", a.type))}
				for a in (session.call("get_accounts", where='Status=="ACTIVE"').accounts or [])
				if a.code and str(getattr(a.type, "value", a.type)) in ("REVENUE", "SALES", "OTHERINCOME")]
	rates = [{"tax_type": r.tax_type, "name": r.name, "rate": float(r.effective_rate or 0)}
			 for r in (session.call("get_tax_rates").tax_rates or [])
			 if r.tax_type and str(getattr(r.status, "value", r.status) or "ACTIVE") == "ACTIVE"
			 and r.can_apply_to_revenue is not False]
	values = {"xero_accounts": mail_text("\n".join(f"{a['code']} {a['name']} ({a['type']})" for a in accounts)[:2000]),
			  "xero_tax_rates": mail_text("\n".join(f"{r['tax_type']} {r['name']} ({r['rate']:g} %)" for r in rates)[:2000])}
	revenue = [a for a in accounts if a["type"] in ("REVENUE", "SALES")]
	codes = {a["code"] for a in accounts}
	if revenue and (not conn.default_account_code or conn.default_account_code not in codes):
		values["default_account_code"] = revenue[0]["code"]
	other = [a for a in accounts if a["code"] != (values.get("default_account_code") or conn.default_account_code)]
	if other and (not conn.adjustment_account_code or conn.adjustment_account_code not in codes):
		values["adjustment_account_code"] = next((a["code"] for a in other if a["type"] == "OTHERINCOME"), other[0]["code"])
	zero = [r for r in rates if r["rate"] == 0]
	if zero and conn.untaxed_tax_type not in {r["tax_type"] for r in rates}:
		values["untaxed_tax_type"] = next((r["tax_type"] for r in zero if r["tax_type"] == "NONE"), zero[0]["tax_type"])
	frappe.db.set_value(oauth.CONNECTION, company, values)
	frappe.db.commit()
	return {"accounts": accounts, "tax_rates": rates}


def in_scope(company: str, posting_date) -> bool:
	"""True when a Sales Invoice of ``company`` posted on ``posting_date`` goes to Xero: the Company has a
	Xero organisation (connected, or revoked / in error: its jobs wait for the reconnect) and the date is
	not before the connection's "Push Invoices From"."""
	conn = frappe.db.get_value(oauth.CONNECTION, company, ["status", "sync_from", "tenant_id"], as_dict=True)
	if not conn or not conn.tenant_id or conn.status not in (oauth.CONNECTED, oauth.REVOKED, "error"):
		return False
	return not conn.sync_from or getdate(posting_date) >= getdate(conn.sync_from)


def push_existing(company: str, parent_job: str | None = None) -> int:
	"""Queue every submitted Sales Invoice of ``company`` posted on or after "Push Invoices From" that is not
	in Xero and has no open job (for invoices submitted before connecting). Returns how many were queued.

	Args:
		parent_job: the "Xero Push Existing" Sync Job the queued Xero Invoice jobs are parts of (its
			progress counts them: :func:`request_push_existing`), or None.

	Raises:
		frappe.ValidationError: no "Push Invoices From" date is set (pushing all history is never implied).
	"""
	from atlas_integrations.xero import sync

	sync_from = frappe.db.get_value(oauth.CONNECTION, company, "sync_from")
	if not sync_from:
		frappe.throw(frappe._("Set 'Push Invoices From' first: invoices before that date are not sent to Xero"),
					 title=frappe._("Xero"))
	names = frappe.get_all("Sales Invoice", filters={"company": company, "docstatus": 1, "posting_date": [">=", sync_from],
													 "atlas_xero_invoice_id": ["is", "not set"]},
						   pluck="name", order_by="posting_date asc, name asc")
	queued = 0
	for name in names:
		if not jobs.open_job(sync.XERO_INVOICE, "Sales Invoice", name):
			sync.queue(name, company, "push", drain=False, parent_job=parent_job)
			queued += 1
	if queued:
		sync.enqueue_drain(company)
	return queued


def request_push_existing(company: str, trigger: str = "desk") -> dict:
	""""Push existing invoices" as one "Xero Push Existing" Sync Job on the Xero Connection: the invoices
	of :func:`push_existing` are queued now as its parts (Xero Invoice jobs with ``parent_job``), and each
	drain reports its progress (invoices finished of those queued, :func:`report_push`) to the admins
	until the last part finishes. An open one is reused: invoices not yet queued join it.

	Args:
		company: the Company of the Xero Connection.
		trigger: ``desk`` or ``connect``.

	Returns:
		``{"sync_job": str | None, "queued": int}``: the job (None when nothing was queued and none was
		open) and how many invoices this call queued.

	Raises:
		frappe.ValidationError: no "Push Invoices From" date is set.
	"""
	from atlas_integrations.xero.jobs import XERO_PUSH_EXISTING

	if not frappe.db.get_value(oauth.CONNECTION, company, "sync_from"):
		push_existing(company)  # raises the "Push Invoices From" message
	parent = jobs.open_job(XERO_PUSH_EXISTING, oauth.CONNECTION, company)
	created = not parent
	if created:
		parent = jobs.create(XERO_PUSH_EXISTING, oauth.CONNECTION, company, payload={"company": company},
							 trigger=trigger).name
		jobs.claim(parent)  # processing from now on (commits): the drains count its parts as they finish
	queued = push_existing(company, parent_job=parent)
	if created and not queued:  # nothing to push: no job to follow
		frappe.db.delete("Sync Job", parent)
		frappe.db.commit()
		return {"sync_job": None, "queued": 0}
	report_push(parent)
	return {"sync_job": parent, "queued": queued}


def run_push_existing(sync_job: str) -> None:
	"""rq entry point of the "Xero Push Existing" job type, run when the ledger dispatches it again (the
	reaper found it untouched for its stale time, or Retry): queues the Company's invoices still not in
	Xero as its parts, then reports (and finishes it when none is open). As Administrator; commits."""
	row = frappe.db.get_value("Sync Job", sync_job, ["reference_name", "payload"], as_dict=True)
	if not row:
		return
	company = json.loads(row.payload or "{}").get("company") or row.reference_name
	with jobs.run_as(None):
		if not jobs.claim(sync_job):
			return
		try:
			push_existing(company, parent_job=sync_job)
		except Exception as exc:
			frappe.db.rollback()
			jobs.finish(sync_job, jobs.FAILED, error=f"{type(exc).__name__}: {exc}")
			return
		report_push(sync_job)
		frappe.db.commit()


def report_push(parent: str) -> dict | None:
	"""Report a processing "Xero Push Existing" job's progress from its parts (:func:`jobs.part_counts`):
	done = parts succeeded or failed, total = parts queued; when none is pending or processing it is
	finished (``succeeded``; counts ``listed`` = parts, ``created`` = succeeded, ``failed``). Does not
	commit (the caller's batch commits the figures and sends the event). Returns the event's message,
	None when the job is not processing (already finished: a part retried later changes nothing)."""
	from atlas_integrations.progress import Progress

	if frappe.db.get_value("Sync Job", parent, "status") != jobs.PROCESSING:
		return None
	counts = jobs.part_counts(parent)
	done = counts[jobs.SUCCEEDED] + counts[jobs.FAILED]
	progress = Progress(parent)
	if counts[jobs.PENDING] + counts[jobs.PROCESSING]:
		return progress.update(done, counts["total"], stage="Pushing invoices to Xero")
	message = progress.finish(jobs.SUCCEEDED, done=done, stage="Done")
	failed = f"; {counts[jobs.FAILED]} failed (each has its Sync Job with Retry)" if counts[jobs.FAILED] else ""
	jobs.finish(parent, jobs.SUCCEEDED, counts={"listed": counts["total"], "created": counts[jobs.SUCCEEDED],
												"failed": counts[jobs.FAILED]},
				details=f"invoices pushed {counts[jobs.SUCCEEDED]} of {counts['total']}{failed}")
	return message


def refresh_counts(company: str) -> dict:
	"""Count the Company's Xero Sync Jobs (pending and processing count as pending) into the connection's
	``pending_jobs`` / ``succeeded_jobs`` / ``failed_jobs``; does not commit. Returns the counts."""
	rows = frappe.db.sql(
		f"""select status, count(*) from `tabSync Job` where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))})
		and company=%s group by status""", (*XERO_JOB_TYPES, company))
	by = dict(rows)
	counts = {"pending_jobs": int(by.get(jobs.PENDING, 0)) + int(by.get(jobs.PROCESSING, 0)),
			  "succeeded_jobs": int(by.get(jobs.SUCCEEDED, 0)), "failed_jobs": int(by.get(jobs.FAILED, 0))}
	if frappe.db.exists(oauth.CONNECTION, company):
		frappe.db.set_value(oauth.CONNECTION, company, {**counts, "counts_updated_at": now_datetime()},
							update_modified=False)
	return counts


def recent_jobs(company: str, limit: int = RECENT_JOBS) -> list[dict]:
	"""The Company's latest Xero Sync Jobs, newest first: ``name``, ``job_type``, ``reference_doctype``,
	``reference_name``, ``status``, ``attempts``, ``next_retry_at``, ``modified``, ``last_error`` (HTML text)."""
	return frappe.db.sql(
		f"""select name, job_type, reference_doctype, reference_name, status, attempts, next_retry_at, modified,
		left(last_error, 300) as last_error from `tabSync Job`
		where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))}) and company=%s
		order by modified desc limit %s""", (*XERO_JOB_TYPES, company, int(limit)), as_dict=True)


def after_connect(company: str) -> None:
	"""The organisation is linked (connect or reconnect): read its defaults, have a worker queue the
	pre-connection invoices when the admin asked for them (:func:`push_existing`), and resume the jobs a
	revoked connection paused."""
	from atlas_integrations.xero import sync

	try:
		load_from_xero(company)
	except Exception as exc:  # the connection stands; the admin can "Load from Xero" later
		frappe.db.rollback()
		frappe.db.set_value(oauth.CONNECTION, company, "last_error",
							mail_text(f"Accounts and TaxRates not read: {type(exc).__name__}"))
		frappe.db.commit()
	conn = frappe.db.get_value(oauth.CONNECTION, company, ["push_existing", "sync_from"], as_dict=True)
	if conn.push_existing and conn.sync_from:  # possibly thousands: queued by a worker, not in the callback
		frappe.enqueue("atlas_integrations.xero.settings.request_push_existing", queue="long", company=company,
					   trigger="connect", job_id=f"atlas::xero-push-existing::{company}", deduplicate=True,
					   enqueue_after_commit=True)
	sync.resume(company)
	frappe.db.commit()
