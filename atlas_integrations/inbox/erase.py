"""A mailbox's synced data has a lifecycle: an admin can erase it (a user left, or asked for erasure).

Erasing a mailbox (a Gmail Account or an Inbound Route) deletes, as a queued "Mailbox Erase" Sync Job, its
Inbox Threads, their messages (Communications with their timeline links, comments and pipeline records)
and attachments (File rows; a file on disk is removed when no other File uses it), and the assignments of
its threads. Documents created from the mail (ToDo, Task, Issue ...) stay; their timeline links to the
erased mail go with the mail. The mailbox record itself (and its connection) is left as it is:
disconnecting is a separate decision. Provider-neutral: rows are found by their mailbox fields.
"""

from __future__ import annotations

import os

import frappe

from atlas_integrations import jobs
from atlas_integrations.inbox.jobs import MAILBOX_ERASE as JOB_TYPE

MAILBOX_DOCTYPES = {"Gmail Account": "atlas_gmail_account", "Inbound Route": "atlas_inbound_route"}
THREAD_FIELDS = {"Gmail Account": "gmail_account", "Inbound Route": "inbound_route"}
CHUNK = 500
CONFIRM_MISMATCH = "Type the mailbox address exactly to confirm"


def mailbox_address(doctype: str, name: str) -> str:
	"""The address an admin types to confirm erasing ``doctype`` ``name``."""
	field = "email_address" if doctype == "Gmail Account" else "inbound_address"
	return (frappe.db.get_value(doctype, name, field) or "").strip()


def request(doctype: str, name: str, confirm: str) -> str:
	"""Queue the erasure of a mailbox's synced data (see the module docstring). Returns the Sync Job name.

	Raises:
		frappe.ValidationError: unknown mailbox type, or ``confirm`` is not the mailbox's address.
	"""
	if doctype not in MAILBOX_DOCTYPES or not frappe.db.exists(doctype, name):
		frappe.throw("Unknown mailbox")
	if (confirm or "").strip().lower() != mailbox_address(doctype, name).lower() or not confirm:
		frappe.throw(CONFIRM_MISMATCH)
	existing = jobs.open_job(JOB_TYPE, doctype, name)
	if existing:
		return existing
	job = jobs.create(JOB_TYPE, doctype, name, payload={"requested_by": frappe.session.user}, trigger="desk")
	jobs.dispatch(JOB_TYPE, job.name, name)
	return job.name


def _delete_files(comms: list[str], threads: list[str]) -> int:
	files = frappe.db.sql("""select name, file_url from `tabFile` where (attached_to_doctype='Communication'
		and attached_to_name in %(c)s) or (attached_to_doctype='Inbox Thread' and attached_to_name in %(t)s)""",
						  {"c": comms or [""], "t": threads or [""]}, as_dict=True)
	if not files:
		return 0
	frappe.db.delete("File", {"name": ["in", [f.name for f in files]]})
	for url in {f.file_url for f in files if f.file_url}:
		if url.startswith("/private/files/") and not frappe.db.exists("File", {"file_url": url}):
			path = frappe.get_site_path(url.lstrip("/"))
			if os.path.exists(path):
				os.remove(path)
	return len(files)


def erase(doctype: str, name: str) -> dict[str, int]:
	"""Delete the mailbox's threads, messages, attachments and pipeline records now (commits per chunk).

	Returns:
		Counts: ``{"threads", "messages", "files", "assignments"}``.
	"""
	counts = {"threads": 0, "messages": 0, "files": 0, "assignments": 0}
	field, thread_field = MAILBOX_DOCTYPES[doctype], THREAD_FIELDS[doctype]
	threads = frappe.get_all("Inbox Thread", filters={thread_field: name}, pluck="name")
	while True:
		comms = frappe.get_all("Communication", filters={field: name}, pluck="name", limit=CHUNK)
		if not comms:
			break
		counts["files"] += _delete_files(comms, [])
		for child in ("Communication Link",):
			frappe.db.delete(child, {"parenttype": "Communication", "parent": ["in", comms]})
		frappe.db.delete("Comment", {"reference_doctype": "Communication", "reference_name": ["in", comms]})
		frappe.db.delete("Communication", {"name": ["in", comms]})
		counts["messages"] += len(comms)
		frappe.db.commit()
	for start in range(0, len(threads), CHUNK):
		chunk = threads[start:start + CHUNK]
		counts["files"] += _delete_files([], chunk)
		todos = frappe.get_all("ToDo", filters={"reference_type": "Inbox Thread", "reference_name": ["in", chunk]},
							   pluck="name")
		frappe.db.delete("ToDo", {"name": ["in", todos or [""]]})
		frappe.db.delete("DocShare", {"share_doctype": "Inbox Thread", "share_name": ["in", chunk]})
		frappe.db.delete("Comment", {"reference_doctype": "Inbox Thread", "reference_name": ["in", chunk]})
		frappe.db.delete("Inbox Thread", {"name": ["in", chunk]})
		counts["assignments"] += len(todos)
		counts["threads"] += len(chunk)
		frappe.db.commit()
	return counts


def run_erase_job(sync_job: str) -> None:
	"""rq entry point of the Mailbox Erase job type (runs as Administrator, a defined system user)."""
	job = frappe.db.get_value("Sync Job", sync_job, ["reference_doctype", "reference_name"], as_dict=True)
	if not job:
		return
	with jobs.run_as(None):
		if not jobs.claim(sync_job):
			return
		try:
			counts = erase(job.reference_doctype, job.reference_name)
		except Exception as exc:
			frappe.db.rollback()
			jobs.finish(sync_job, jobs.FAILED, error=f"{type(exc).__name__}: {exc}")
			raise
		jobs.finish(sync_job, jobs.SUCCEEDED, counts={"listed": counts["messages"]},
					details="erased: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
