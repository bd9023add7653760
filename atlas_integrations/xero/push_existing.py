"""Invoices submitted before connecting, pushed as one "Xero Push Existing" Sync Job: the Company's
invoices are queued as its parts (Xero Invoice jobs with ``parent_job``); each drain reports the parent's
progress as they finish (:func:`report`) and finishes it with the last one.
"""

from __future__ import annotations

import json

import frappe

from atlas_integrations import jobs
from atlas_integrations.progress import Progress
from atlas_integrations.xero import invoices, ledger, oauth
from atlas_integrations.xero.jobs import XERO_INVOICE, XERO_PUSH_EXISTING


def queue_invoices(company: str, parent_job: str | None = None) -> int:
	"""Queue every submitted Sales Invoice of ``company`` posted on or after "Push Invoices From" that is not
	in Xero and has no open job (for invoices submitted before connecting). Returns how many were queued.

	Args:
		parent_job: the "Xero Push Existing" Sync Job the queued Xero Invoice jobs are parts of (its
			progress counts them: :func:`request`), or None.

	Raises:
		frappe.ValidationError: no "Push Invoices From" date is set (pushing all history is never implied).
	"""
	sync_from = frappe.db.get_value(oauth.CONNECTION, company, "sync_from")
	if not sync_from:
		frappe.throw(frappe._("Set 'Push Invoices From' first: invoices before that date are not sent to Xero"),
					 title=frappe._("Xero"))
	names = frappe.get_all("Sales Invoice", filters={"company": company, "docstatus": 1, "posting_date": [">=", sync_from],
													 "atlas_xero_invoice_id": ["is", "not set"]},
						   pluck="name", order_by="posting_date asc, name asc")
	queued = 0
	for name in names:
		if not jobs.open_job(XERO_INVOICE, "Sales Invoice", name):
			invoices.queue(name, company, "push", drain=False, parent_job=parent_job)
			queued += 1
	if queued:
		ledger.enqueue_drain(company)
	return queued


def request(company: str, trigger: str = "desk") -> dict:
	""""Push existing invoices" as one "Xero Push Existing" Sync Job on the Xero Connection: the invoices
	of :func:`queue_invoices` are queued now as its parts (Xero Invoice jobs with ``parent_job``), and each
	drain reports its progress (invoices finished of those queued, :func:`report`) to the admins
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
	if not frappe.db.get_value(oauth.CONNECTION, company, "sync_from"):
		queue_invoices(company)  # raises the "Push Invoices From" message
	parent = jobs.open_job(XERO_PUSH_EXISTING, oauth.CONNECTION, company)
	created = not parent
	if created:
		parent = jobs.create(XERO_PUSH_EXISTING, oauth.CONNECTION, company, payload={"company": company},
							 trigger=trigger).name
		jobs.claim(parent)  # processing from now on (commits): the drains count its parts as they finish
	queued = queue_invoices(company, parent_job=parent)
	if created and not queued:  # nothing to push: no job to follow
		frappe.db.delete("Sync Job", parent)
		frappe.db.commit()
		return {"sync_job": None, "queued": 0}
	report(parent)
	return {"sync_job": parent, "queued": queued}


def run(sync_job: str) -> None:
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
			queue_invoices(company, parent_job=sync_job)
		except Exception as exc:
			frappe.db.rollback()
			jobs.finish(sync_job, jobs.FAILED, error=f"{type(exc).__name__}: {exc}")
			return
		report(sync_job)
		frappe.db.commit()


def report(parent: str) -> dict | None:
	"""Report a processing "Xero Push Existing" job's progress from its parts (:func:`jobs.part_counts`):
	done = parts succeeded or failed, total = parts queued; when none is pending or processing it is
	finished (``succeeded``; counts ``listed`` = parts, ``created`` = succeeded, ``failed``). Does not
	commit (the caller's batch commits the figures and sends the event). Returns the event's message,
	None when the job is not processing (already finished: a part retried later changes nothing)."""
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
