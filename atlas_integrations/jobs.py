"""Sync Job: the durable ledger of sync work (pending -> processing -> succeeded | failed).

One row per unit of work with its payload (never secrets), attempts, counts and last error. A failed job
keeps its payload and can be retried; a processing job whose worker died is moved back to pending by
:func:`reap_stale_jobs`.
"""

from __future__ import annotations

import json
from typing import Any

import frappe
from frappe.utils import add_to_date, now_datetime, time_diff_in_seconds

from atlas_integrations.redact import scrub

PENDING, PROCESSING, SUCCEEDED, FAILED = "pending", "processing", "succeeded", "failed"
OPEN_STATES = (PENDING, PROCESSING)
#: a processing job older than this (seconds) has lost its worker
STALE_AFTER = 2 * 60 * 60
COUNT_FIELDS = ("listed", "created", "already_present", "failed", "skipped", "api_calls")

def create(job_type: str, reference_doctype: str, reference_name: str, payload: dict | None = None,
		   trigger: str = "manual") -> "frappe.model.document.Document":
	"""Insert a pending Sync Job.

	Args:
		job_type: ``Gmail Sync`` | ``Xero Push`` | ``Xero Pull``.
		reference_doctype, reference_name: what it works on (e.g. the Gmail Account).
		payload: JSON-serialisable description of the work; must not contain secrets.
		trigger: who started it (``manual``, ``scheduler``, ``connect``, ``retry``).

	Returns:
		The inserted Sync Job document (not committed).
	"""
	return frappe.get_doc(
		{
			"doctype": "Sync Job",
			"job_type": job_type,
			"reference_doctype": reference_doctype,
			"reference_name": reference_name,
			"status": PENDING,
			"trigger": trigger,
			"payload": json.dumps(payload or {}, sort_keys=True, default=str),
		}
	).insert(ignore_permissions=True)


def open_job(job_type: str, reference_doctype: str, reference_name: str) -> str | None:
	"""Name of a pending or processing Sync Job for the reference, or None."""
	return frappe.db.get_value(
		"Sync Job",
		{"job_type": job_type, "reference_doctype": reference_doctype, "reference_name": reference_name,
		 "status": ["in", OPEN_STATES]},
		"name",
		order_by="creation asc",
	)


def claim(name: str) -> bool:
	"""Atomically move a job from pending to processing (commits). Returns False if it was not pending.

	Two workers handed the same job cannot both claim it: the UPDATE's WHERE clause decides.
	"""
	now = now_datetime()
	frappe.db.sql(
		"""update `tabSync Job` set status=%s, started_at=%s, finished_at=null, attempts=attempts+1,
		modified=%s where name=%s and status=%s""",
		(PROCESSING, now, now, name, PENDING),
	)
	claimed = frappe.db._cursor.rowcount == 1
	frappe.db.commit()
	return claimed


def update_counts(name: str, counts: dict[str, int], details: str | None = None) -> None:
	"""Write progress counts (``listed``, ``created``, ``already_present``, ``failed``, ``api_calls``)."""
	values: dict[str, Any] = {k: int(v) for k, v in counts.items() if k in COUNT_FIELDS}
	if details is not None:
		values["details"] = details[:1000]
	if values:
		frappe.db.set_value("Sync Job", name, values, update_modified=True)


def finish(name: str, status: str, counts: dict[str, int] | None = None, error: str | None = None,
		   details: str | None = None, secrets: list | tuple = ()) -> None:
	"""Close a job as ``succeeded`` or ``failed`` (commits).

	Args:
		counts: final counts (see :func:`update_counts`).
		error: the last error; scrubbed of ``secrets`` and token-shaped text before it is stored.
	"""
	job = frappe.db.get_value("Sync Job", name, ["started_at"], as_dict=True) or {}
	now = now_datetime()
	values: dict[str, Any] = {"status": status, "finished_at": now}
	if job.get("started_at"):
		values["duration"] = max(0.0, time_diff_in_seconds(now, job["started_at"]))
	values["last_error"] = scrub(error, secrets) if error else None
	if details is not None:
		values["details"] = details[:1000]
	frappe.db.set_value("Sync Job", name, values, update_modified=True)
	if counts:
		update_counts(name, counts)
	frappe.db.commit()


def retry(name: str) -> str:
	"""Put a failed job back to pending and enqueue it again. Returns the job name.

	Raises:
		frappe.ValidationError: the job is not failed.
	"""
	doc = frappe.get_doc("Sync Job", name)
	if doc.status != FAILED:
		frappe.throw(f"Only failed jobs can be retried (this one is {doc.status})")
	frappe.db.set_value("Sync Job", name, {"status": PENDING, "trigger": "retry"})
	dispatch(doc.job_type, name, doc.reference_name)
	return name


#: job type -> (worker entry point, rq queue, timeout seconds, one rq job per reference?)
RUNNERS = {
	"Gmail Sync": ("atlas_integrations.gmail.sync.run_sync_job", "long", 6 * 60 * 60, True),
	"Gmail Modify": ("atlas_integrations.gmail.labels.run_modify_job", "short", 300, False),
}


def rq_job_id(job_type: str, reference_name: str) -> str:
	"""One rq job per account and kind: the dedupe key (``frappe.enqueue(job_id=..., deduplicate=True)``)."""
	return f"atlas::{job_type}::{reference_name}"


def dispatch(job_type: str, sync_job: str, reference_name: str) -> None:
	"""Enqueue the worker for ``sync_job`` after the current transaction commits.

	Deduplicated per reference: while an rq job for the same account is queued or started, no second one
	is queued (the pending Sync Job is then picked up by that run's successor: runs drain pending jobs).
	"""
	method, queue, timeout, per_reference = RUNNERS[job_type]
	job_id = rq_job_id(job_type, reference_name if per_reference else sync_job)
	frappe.db.set_value("Sync Job", sync_job, "rq_job_id", job_id, update_modified=False)
	frappe.enqueue(
		method,
		queue=queue,
		timeout=timeout,
		job_id=job_id,
		deduplicate=True,
		enqueue_after_commit=True,
		sync_job=sync_job,
	)


def reap_stale_jobs(stale_after: int = STALE_AFTER) -> list[str]:
	"""Move processing jobs whose worker is gone back to pending and enqueue them again.

	Hourly scheduler hook. A running job touches its Sync Job (counts) after every page of work, so a
	processing job not modified for ``stale_after`` seconds has lost its worker (SIGKILL, OOM, deploy).
	Its account lock is released and the work runs again; the writes are idempotent, so nothing is lost
	or duplicated.

	Returns:
		Names of the jobs reaped.
	"""
	cutoff = add_to_date(now_datetime(), seconds=-stale_after)
	stale = frappe.get_all(
		"Sync Job",
		filters={"status": PROCESSING, "modified": ["<=", cutoff]},
		fields=["name", "job_type", "reference_name"],
	)
	for row in stale:
		frappe.db.set_value("Sync Job", row.name, {"status": PENDING, "details": "worker lost; requeued"})
		if row.job_type == "Gmail Sync":
			from atlas_integrations.gmail.sync import release_lock

			release_lock(row.reference_name)
		if row.job_type in RUNNERS:
			from frappe.utils.background_jobs import get_job

			dead = get_job(rq_job_id(row.job_type, row.reference_name if RUNNERS[row.job_type][3] else row.name))
			if dead is not None:  # rq still calls it "started": its worker died without telling rq
				dead.delete()
			dispatch(row.job_type, row.name, row.reference_name)
	frappe.db.commit()
	return [r.name for r in stale]
