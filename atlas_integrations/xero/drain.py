"""The Company's drain: runs its due pending Xero Sync Jobs in batches of :data:`BATCH`, one drain per
Company at a time (deduplicated rq job), as Administrator.

Each batch is split by (job type, action) and handed to the domain module that owns it, in the order of
:data:`HANDLERS` (contacts before the invoices that name them; pushes before voids and sends). Every call
goes through one :class:`atlas_integrations.xero.client.XeroSession` (the tenant's shared rate limiter,
Xero's budgets and 429s honoured), and the errors it raises (:mod:`atlas_integrations.xero.errors`) are
mapped to the ledger's actions here, once:

* ``Temporary``: the batch's unfinished jobs go back to pending with backoff (:func:`atlas_integrations.jobs.defer`);
* ``TokenRejected``: the grant's access token is expired so the next run refreshes it (under its lock),
  and the jobs are due again at once, using no attempt;
* ``Revoked`` (or no usable connection): the connection is marked revoked (admins told) and its jobs wait
  (pending, no attempt used) until it is connected again;
* ``Permanent``: the batch's unfinished jobs fail with Xero's words; their documents show the error and
  the job keeps its payload for Retry;
* anything else is a bug: logged (scrubbed), and the jobs are retried with backoff, never left processing.
"""

from __future__ import annotations

import json
from typing import Callable, NamedTuple

import frappe

from atlas_integrations import jobs
from atlas_integrations.xero import contacts, invoices, ledger, oauth, payments, push_existing, quotes, settings
from atlas_integrations.xero.client import XeroSession, accounting_api, tenant_limiter
from atlas_integrations.xero.errors import Permanent, Revoked, Temporary, TokenRejected, XeroAuthError
from atlas_integrations.xero.jobs import (
	XERO_CONTACT,
	XERO_INVOICE,
	XERO_JOB_TYPES,
	XERO_PAYMENT,
	XERO_PULL,
	XERO_QUOTE,
	XERO_QUOTE_SEND,
)

BATCH = 50
PAUSED_RETRY = 60 * 60  # seconds: a paused (revoked) connection's jobs look again after this (reconnect resumes them)


class Handler(NamedTuple):
	"""Who runs the jobs of one (job type, action).

	``run(session, company, rows)`` when ``batch`` (``rows``: job name → Sync Job row, one call for all),
	else ``run(session, company, job, row)`` once per job. Each finishes its jobs (:func:`jobs.finish` /
	:func:`jobs.defer`) or raises a Xero error for the ones still open."""
	job_type: str
	action: str
	run: Callable
	batch: bool = False


HANDLERS: tuple[Handler, ...] = (
	Handler(XERO_CONTACT, "contact", contacts.update_contacts, batch=True),
	Handler(XERO_INVOICE, "push", invoices.push, batch=True),
	Handler(XERO_QUOTE, "push", quotes.push, batch=True),
	Handler(XERO_INVOICE, "void", invoices.void),
	Handler(XERO_QUOTE, "cancel", quotes.cancel),
	Handler(XERO_QUOTE_SEND, "send", quotes.send),
	Handler(XERO_PULL, "pull", payments.run_pull),
	Handler(XERO_PAYMENT, "payment", payments.run_payment),
)

#: how a document shows that its job failed for good (reference doctype → ``mark(name, why)``)
FAILED_STATE: dict[str, Callable[[str, str], None]] = {
	invoices.DOCTYPE: invoices.mark_failed,
	quotes.DOCTYPE: quotes.mark_failed,
}

#: how a document shows that its failed job is queued again (reference doctype → ``mark(name)``)
RETRIED_STATE: dict[str, Callable[[str], None]] = {
	invoices.DOCTYPE: invoices.mark_retried,
	quotes.DOCTYPE: quotes.mark_retried,
}


def retry_failed(company: str) -> int:
	"""Queue every failed Xero job of ``company`` again, payload kept (:func:`atlas_integrations.jobs.retry`),
	and show each document's pending state again (:data:`RETRIED_STATE`). Returns how many were retried; does
	not commit."""
	failed = frappe.get_all("Sync Job", filters={"job_type": ("in", XERO_JOB_TYPES), "status": jobs.FAILED,
												 "company": company},
							fields=["name", "reference_doctype", "reference_name"], order_by="creation asc")
	for row in failed:
		jobs.retry(row.name)
		mark = RETRIED_STATE.get(row.reference_doctype)
		if mark and row.reference_name:
			mark(row.reference_name)
	return len(failed)


def drain_all() -> list[str]:
	"""Scheduler hook (every minute): enqueue a drain for each connected Company with due pending jobs.
	Returns those Companies."""
	due = []
	for company in ledger.connected_companies():
		if ledger.due(company, 1):
			ledger.enqueue_drain(company)
			due.append(company)
	frappe.db.commit()
	return due


def run_sync_job(sync_job: str) -> None:
	"""rq entry point of the registered Xero job types (dispatch, Retry, the scheduler): drains the job's
	Company."""
	payload = json.loads(frappe.db.get_value("Sync Job", sync_job, "payload") or "{}")
	if payload.get("company"):
		drain(payload["company"])


def drain(company: str) -> int:
	"""Run the Company's due pending Xero jobs, :data:`BATCH` at a time, as Administrator; then refresh the
	connection's job counts. Returns the jobs taken. Commits."""
	done = 0
	with jobs.run_as(None):
		while True:
			frappe.db.rollback()
			claimed = [n for n in ledger.due(company, BATCH) if jobs.claim(n)]
			if not claimed:
				break
			run_batch(company, claimed)
			_report_parents(claimed)
			done += len(claimed)
		settings.refresh_counts(company)
		frappe.db.commit()
	return done


def _report_parents(claimed: list[str]) -> None:
	"""After a batch: the progress of the jobs its jobs are parts of ("Xero Push Existing"), finishing
	those with no open part left (:func:`push_existing.report`); commits."""
	parents = frappe.db.sql_list(
		f"""select distinct parent_job from `tabSync Job` where name in ({", ".join(["%s"] * len(claimed))})
		and ifnull(parent_job, '') != ''""", tuple(claimed))
	for parent in parents:
		push_existing.report(parent)
	if parents:
		frappe.db.commit()


def _still_open(claimed: list[str]) -> list[str]:
	frappe.db.rollback()
	return frappe.get_all("Sync Job", filters={"name": ["in", claimed], "status": jobs.PROCESSING}, pluck="name")


def _fail_state(row, why: str) -> None:
	mark = FAILED_STATE.get(row.reference_doctype)
	if mark:
		mark(row.reference_name, why)
		frappe.db.commit()


def _defer_open(claimed: list[str], rows: dict, why: str, retry_after: float | None, count_attempt: bool) -> None:
	"""The run stopped for a passing reason: its unfinished jobs go back to pending (or fail for good)."""
	for job in _still_open(claimed):
		if jobs.defer(job, why, retry_after=retry_after, count_attempt=count_attempt) == jobs.FAILED:
			_fail_state(rows[job], why)


def _fail_open(claimed: list[str], rows: dict, why: str) -> None:
	for job in _still_open(claimed):
		_fail_state(rows[job], why)
		jobs.finish(job, jobs.FAILED, error=why)


def run_batch(company: str, claimed: list[str]) -> None:
	"""Run the claimed jobs of ``company`` through :data:`HANDLERS` on one session and map a Xero error to
	the ledger's action (see the module's docstring). Commits."""
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
	work: dict[tuple, dict] = {}
	for job, row in rows.items():
		work.setdefault((row.job_type, json.loads(row.payload).get("action")), {})[job] = row
	try:
		for handler in HANDLERS:
			group = work.get((handler.job_type, handler.action))
			if not group:
				continue
			if handler.batch:
				handler.run(session, company, group)
			else:
				for job, row in group.items():
					handler.run(session, company, job, row)
	except TokenRejected as exc:  # refresh the access token (under the grant's lock) on the next run
		frappe.db.rollback()
		frappe.db.set_value(oauth.GRANT, conn.xero_grant, "access_token_expires_at", "2000-01-01 00:00:00",
							update_modified=False)
		frappe.db.commit()
		_defer_open(claimed, rows, str(exc), exc.retry_after, count_attempt=False)
	except Temporary as exc:
		_defer_open(claimed, rows, str(exc), exc.retry_after, exc.count_attempt)
	except Revoked as exc:  # the organisation disconnected the app, or the grant was refused
		frappe.db.rollback()
		if not isinstance(exc, XeroAuthError):  # a refused refresh marked the grant already
			oauth.mark_revoked(conn.xero_grant, str(exc))
		_defer_open(claimed, rows, f"Xero connection paused: {str(exc)[:300]}", PAUSED_RETRY, count_attempt=False)
	except Permanent as exc:
		_fail_open(claimed, rows, str(exc))
	except Exception as exc:  # a bug or an SDK error: the batch's unfinished jobs are retried, never left processing
		frappe.db.rollback()
		why = f"Unexpected error talking to Xero ({type(exc).__name__}): {str(exc)[:300]}"
		frappe.log_error(title=f"Xero drain of {company}", message=jobs.scrub(frappe.get_traceback()[-2000:]),
						 reference_doctype=oauth.CONNECTION, reference_name=company)
		_defer_open(claimed, rows, why, None, count_attempt=True)
	frappe.db.commit()
