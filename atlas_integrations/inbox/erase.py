"""A mailbox's synced data has a lifecycle: an admin can erase it (a user left, or asked for erasure).

Erasing a mailbox (of any registered mailbox type: a Gmail Account, an Inbound Route ...) deletes, as a queued "Mailbox Erase" Sync Job, its
Inbox Threads, their messages (Communications with their timeline links, comments and pipeline records)
and attachments (File rows; a file on disk is removed when no other File uses it), the assignments of
its threads, the mail sent through it (Outgoing Mail, with the raw MIME of any send not finished) and the
Notification Logs (desk bell) about the mailbox, its threads, messages and sends. Documents created from
the mail (ToDo, Task, Issue ...), Contacts, Customers and other parties stay; their timeline links to
the erased mail go with the mail. The mailbox record itself (and its connection) is left as it is:
disconnecting is a separate decision. Provider-neutral: rows are found by the columns the mailbox's type
registers (:mod:`atlas_integrations.inbox.mailboxes`).
"""

from __future__ import annotations

import os
from collections.abc import Callable

import frappe
from frappe import _

from atlas_integrations import jobs
from atlas_integrations.inbox import mailboxes
from atlas_integrations.inbox.jobs import MAILBOX_ERASE as JOB_TYPE
from atlas_integrations.progress import Progress, run_tracked

#: the mail sent through a mailbox (besides the sends of its threads, found by ``inbox_thread``)
OUTGOING_DOCTYPE = "Outgoing Mail"
CHUNK = 500
CONFIRM_MISMATCH = "Type the mailbox address exactly to confirm"
ERASES = ("Deletes this mailbox's threads, messages and attachments, the assignments of its threads, the mail "
		  "sent through it (Outgoing Mail, with its raw message) and the notifications about them.")
KEEPS = ("Stays: documents created from its mail (ToDo, Task, Issue and others), Contacts, Customers and other "
		 "parties (without their timeline links to the deleted mail), and this mailbox record with its connection.")


def summary() -> dict:
	"""What erasing a mailbox deletes and what stays, as translated sentences for the confirmation and
	the answer: ``{"erases": str, "keeps": str}``."""
	return {"erases": _(ERASES), "keeps": _(KEEPS)}


def mailbox_address(doctype: str, name: str) -> str:
	"""The address an admin types to confirm erasing ``doctype`` ``name``."""
	return mailboxes.address((doctype, name))


def request(doctype: str, name: str, confirm: str, chunk: int | None = None) -> str:
	"""Queue the erasure of a mailbox's synced data (see the module docstring). Returns the Sync Job name.

	``chunk``: rows deleted per commit (and progress report), default :data:`CHUNK`; kept in the payload.

	Raises:
		frappe.ValidationError: unknown mailbox type, or ``confirm`` is not the mailbox's address.
	"""
	if not mailboxes.is_mailbox_doctype(doctype) or not frappe.db.exists(doctype, name):
		frappe.throw(_("Unknown mailbox"))
	if (confirm or "").strip().lower() != mailbox_address(doctype, name).lower() or not confirm:
		frappe.throw(_(CONFIRM_MISMATCH))
	existing = jobs.open_job(JOB_TYPE, doctype, name)
	if existing:
		return existing
	payload = {"requested_by": frappe.session.user, **({"chunk": max(1, int(chunk))} if chunk else {})}
	job = jobs.create(JOB_TYPE, doctype, name, payload=payload, trigger="desk")
	jobs.dispatch(JOB_TYPE, job.name, name)
	return job.name


def _delete_files(comms: list[str], threads: list[str]) -> int:
	"""Delete the attachments of ``comms`` / ``threads`` (File rows), and each private file on disk that no
	other mail attachment (of another mailbox) still uses. A File row outside mail that points at one of
	these files is a claim on the mail's bytes (made before such rows were refused, see
	``permissions.claimed_private_file``; an upload of the same bytes gets a file of its own since mail
	files are hashed apart, ``inbox.attachments.MAIL_HASH_PREFIX``): it goes with the file. Returns the
	mail attachments deleted."""
	from atlas_integrations.permissions import mail_file_sql

	files = frappe.db.sql("""select name, file_url from `tabFile` where (attached_to_doctype='Communication'
		and attached_to_name in %(c)s) or (attached_to_doctype='Inbox Thread' and attached_to_name in %(t)s)""",
						  {"c": comms or [""], "t": threads or [""]}, as_dict=True)
	if not files:
		return 0
	frappe.db.delete("File", {"name": ["in", [f.name for f in files]]})
	urls = sorted({f.file_url for f in files if (f.file_url or "").startswith("/private/files/")})
	still_mail = set(frappe.db.sql_list(f"select distinct f.file_url from `tabFile` f where f.file_url in %(u)s "
										f"and {mail_file_sql('f')}", {"u": urls or [""]}))
	for url in urls:
		if url in still_mail:
			continue  # the same bytes in another mailbox's mail
		frappe.db.delete("File", {"file_url": url})  # claims outside mail
		path = frappe.get_site_path(url.lstrip("/"))
		if os.path.exists(path):
			os.remove(path)
	return len(files)


def _delete_notifications(doctype: str, names: list[str]) -> int:
	"""Delete the Notification Logs (desk bell: alerts, assignments, mentions, shares) about ``doctype``
	rows ``names``. Returns how many."""
	if not names:
		return 0
	filters = {"document_type": doctype, "document_name": ["in", names]}
	count = frappe.db.count("Notification Log", filters)
	if count:
		frappe.db.delete("Notification Log", filters)
	return count


def _outgoing_names(doctype: str, name: str, threads: list[str]) -> list[str]:
	"""The Outgoing Mail sent through the mailbox (by its mailbox field) or in its threads, sorted."""
	names = set(frappe.get_all(OUTGOING_DOCTYPE, filters=mailboxes.filters_for((doctype, name), "outgoing"),
							   pluck="name"))
	for start in range(0, len(threads), CHUNK):
		names.update(frappe.get_all(OUTGOING_DOCTYPE, filters={"inbox_thread": ["in", threads[start:start + CHUNK]]},
									pluck="name"))
	return sorted(names)


def _delete_outgoing(names: list[str], report: Callable[[int, str], None], size: int = CHUNK) -> tuple[int, int]:
	"""Delete the Outgoing Mail ``names`` (:func:`_outgoing_names`), raw MIME included, with the
	Notification Logs about it, ``size`` at a time; ``report(rows, stage)`` before each chunk's commit.
	Returns ``(sends, notifications)``."""
	notifications = 0
	for start in range(0, len(names), size):
		chunk = names[start:start + size]
		notifications += _delete_notifications(OUTGOING_DOCTYPE, chunk)
		frappe.db.delete("Comment", {"reference_doctype": OUTGOING_DOCTYPE, "reference_name": ["in", chunk]})
		frappe.db.delete(OUTGOING_DOCTYPE, {"name": ["in", chunk]})
		report(len(chunk), "Deleting sent mail")
		frappe.db.commit()
	return len(names), notifications


def erase(doctype: str, name: str, progress=None, size: int = CHUNK) -> dict[str, int]:
	"""Delete the mailbox's threads, messages, attachments, assignments, sent mail (Outgoing Mail) and
	the Notification Logs about them and about the mailbox now (commits per chunk of ``size`` rows).
	Documents created from the mail, Contacts and parties stay (see the module docstring).

	Args:
		doctype: a registered mailbox doctype (:func:`atlas_integrations.inbox.mailboxes.doctypes`).
		name: the mailbox.
		size: rows per chunk (and commit), >= 1; default :data:`CHUNK`.
		progress: an :class:`atlas_integrations.progress.Progress` of the erase's Sync Job, or None. Its
			total is the rows to delete (sent mail + messages + threads, counted first); after each chunk
			the rows deleted so far are reported in that chunk's transaction.

	Returns:
		Counts: ``{"threads", "messages", "files", "assignments", "sent", "notifications"}``.
	"""
	counts = {"threads": 0, "messages": 0, "files": 0, "assignments": 0, "sent": 0, "notifications": 0}
	mailboxes.get(doctype)  # a registered type, else UnknownMailboxType
	mine = mailboxes.filters_for((doctype, name), "communication")
	size = max(1, int(size or CHUNK))
	threads = frappe.get_all("Inbox Thread", filters=mailboxes.filters_for((doctype, name), "thread"), pluck="name")
	outgoing = _outgoing_names(doctype, name, threads)
	total = len(outgoing) + frappe.db.count("Communication", mine) + len(threads)
	done = 0

	def report(rows: int, stage: str) -> None:
		nonlocal done
		done += rows
		if progress is not None:
			progress.update(done, total, stage=stage)

	report(0, "Counting")
	counts["sent"], counts["notifications"] = _delete_outgoing(outgoing, report, size)
	while True:
		comms = frappe.get_all("Communication", filters=mine, pluck="name", limit=size)
		if not comms:
			break
		counts["files"] += _delete_files(comms, [])
		for child in ("Communication Link",):
			frappe.db.delete(child, {"parenttype": "Communication", "parent": ["in", comms]})
		frappe.db.delete("Comment", {"reference_doctype": "Communication", "reference_name": ["in", comms]})
		counts["notifications"] += _delete_notifications("Communication", comms)
		frappe.db.delete("Communication", {"name": ["in", comms]})
		counts["messages"] += len(comms)
		report(len(comms), "Deleting messages")
		frappe.db.commit()
	for start in range(0, len(threads), size):
		chunk = threads[start:start + size]
		counts["files"] += _delete_files([], chunk)
		todos = frappe.get_all("ToDo", filters={"reference_type": "Inbox Thread", "reference_name": ["in", chunk]},
							   pluck="name")
		frappe.db.delete("ToDo", {"name": ["in", todos or [""]]})
		frappe.db.delete("DocShare", {"share_doctype": "Inbox Thread", "share_name": ["in", chunk]})
		frappe.db.delete("Comment", {"reference_doctype": "Inbox Thread", "reference_name": ["in", chunk]})
		counts["notifications"] += _delete_notifications("Inbox Thread", chunk)
		counts["notifications"] += _delete_notifications("ToDo", todos)
		frappe.db.delete("Inbox Thread", {"name": ["in", chunk]})
		counts["assignments"] += len(todos)
		counts["threads"] += len(chunk)
		report(len(chunk), "Deleting threads")
		frappe.db.commit()
	counts["notifications"] += _delete_notifications(doctype, [name])  # e.g. "access revoked"
	frappe.db.commit()
	return counts


def run_erase_job(sync_job: str) -> None:
	"""rq entry point of the Mailbox Erase job type (runs as Administrator, a defined system user); its
	progress (rows deleted of the rows counted first) goes to the admins who may read the mailbox."""

	def work(progress: Progress, payload: dict) -> tuple[dict, str]:
		counts = erase(progress.reference_doctype, progress.reference_name, progress=progress,
					   size=int(payload.get("chunk") or CHUNK))
		return {"listed": counts["messages"]}, "erased: " + ", ".join(f"{k} {v}" for k, v in counts.items())

	run_tracked(sync_job, work)
