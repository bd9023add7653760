"""Xero work on the Sync Job ledger: a pending job per document (a later change supersedes it), and the
Company's drain enqueued after commit. Every domain module (contacts, invoices, quotes, payments) queues
through here; the drain that runs the jobs (:mod:`atlas_integrations.xero.drain`) is enqueued by its dotted
path, so nothing below it imports it.
"""

from __future__ import annotations

import json

import frappe

from atlas_integrations import jobs
from atlas_integrations.xero import oauth
from atlas_integrations.xero.jobs import XERO_JOB_TYPES

#: the rq method of a Company's drain
DRAIN_METHOD = "atlas_integrations.xero.drain.drain"


def queue(name: str, company: str, action: str, job_type: str, reference_doctype: str, drain: bool = True,
		  parent_job: str | None = None) -> str:
	"""A pending Sync Job of ``job_type`` for document ``name`` (``action``: ``push``, ``void``,
	``contact``, ``cancel``); a pending job of the same document is superseded (it gets the new action and
	is due now) instead of a second one.

	Args:
		drain: enqueue the Company's drain after commit (False: the caller enqueues it once for many).
		parent_job: the Sync Job it is a part of (e.g. "Xero Push Existing"), whose progress the drain reports.

	Returns:
		The Sync Job's name (not committed).
	"""
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
	if drain:
		enqueue_drain(company)
	return job


def enqueue_drain(company: str) -> None:
	"""Enqueue the Company's drain (one at a time: deduplicated while queued) after commit."""
	frappe.enqueue(DRAIN_METHOD, queue="short", company=company, job_id=f"atlas::xero-drain::{company}",
				   deduplicate=True, enqueue_after_commit=True)


def _in(values) -> str:
	return ", ".join(["%s"] * len(values))


def resume(company: str) -> int:
	"""Make the Company's paused (deferred) Xero jobs due now and drain them (after a reconnect, or "Sync
	now"). Returns how many were waiting; does not commit."""
	waiting = frappe.db.sql_list(
		f"""select name from `tabSync Job` where job_type in ({_in(XERO_JOB_TYPES)}) and status=%s and company=%s""",
		(*XERO_JOB_TYPES, jobs.PENDING, company))
	if waiting:
		frappe.db.sql(f"""update `tabSync Job` set next_retry_at=null where name in ({_in(waiting)})""", tuple(waiting))
		enqueue_drain(company)
	return len(waiting)


def due(company: str, limit: int) -> list[str]:
	"""Names of up to ``limit`` of the Company's pending Xero jobs that are due, oldest first."""
	cond, params = jobs.due_condition()
	return frappe.db.sql_list(
		f"""select name from `tabSync Job` where job_type in ({_in(XERO_JOB_TYPES)})
		and status=%s and company=%s and {cond} order by creation limit %s""",
		(*XERO_JOB_TYPES, jobs.PENDING, company, *params, int(limit)))


def connected_companies() -> list[str]:
	"""Companies whose Xero Connection is connected."""
	return frappe.get_all(oauth.CONNECTION, filters={"status": oauth.CONNECTED}, pluck="name")


def is_connected(company: str) -> bool:
	"""True when ``company``'s Xero Connection is connected."""
	return frappe.db.get_value(oauth.CONNECTION, company, "status") == oauth.CONNECTED
