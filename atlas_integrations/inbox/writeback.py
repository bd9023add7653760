"""The write-back of desk changes (read state, tags, archive) to a mailbox's provider, the same for every
provider: changes are written in order, one at a time per mailbox, by a provider's job type (Gmail Modify,
Outlook Modify), and the messages a change covers carry ``atlas_labels_pending`` until it is written, so a
sync never undoes a desk change with older provider data. Imports no provider package.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import frappe

from atlas_integrations import jobs
from atlas_integrations.inbox import writer


def drain(job_type: str, doctype: str, mailbox: str, lock_key: str, write_back: Callable[[str], None],
		  lock_ttl: int = 30, lock_wait: float = 120, seconds: float = 120) -> None:
	"""Write mailbox ``mailbox``'s pending ``job_type`` jobs oldest first, one at a time (each claimed only
	while holding the mailbox's lock ``lock_key``), for up to ``seconds``. When another live write-back of
	the mailbox holds the lock for over ``lock_wait`` seconds, the jobs stay pending for it.

	Args:
		write_back: ``fn(sync_job)`` writes one claimed job and closes it (commits).
	"""
	deadline = time.monotonic() + seconds
	while time.monotonic() < deadline:
		frappe.db.rollback()  # a fresh snapshot: the jobs (and writes) committed meanwhile
		candidate = jobs.next_pending(job_type, doctype, mailbox)
		if not candidate:
			return
		lock = jobs.RunLock(lock_key, owner=candidate, ttl=lock_ttl)
		if not lock.acquire(wait=lock_wait):
			return  # a live write-back of this mailbox drains it
		try:
			frappe.db.rollback()  # see everything the previous holder committed
			if jobs.next_pending(job_type, doctype, mailbox) != candidate or not jobs.claim(candidate):
				continue  # another run took it meanwhile: pick the oldest again
			write_back(candidate)
		finally:
			lock.release()


def clear_pending_flags(job_type: str, doctype: str, mailbox: str, message_ids: list[str], sync_job: str) -> int:
	"""Clear ``atlas_labels_pending`` of the mailbox's messages ``message_ids`` (provider ids), except those
	another open job of ``job_type`` of the mailbox still has to write. Does not commit. Returns how many."""
	ids = set(message_ids or [])
	others = frappe.get_all("Sync Job", filters={"job_type": job_type, "reference_doctype": doctype,
												 "reference_name": mailbox, "status": ["in", jobs.OPEN_STATES],
												 "name": ["!=", sync_job]}, pluck="payload")
	for other in others:
		try:
			ids -= set(json.loads(other or "{}").get("message_ids") or [])
		except ValueError:
			continue
	if ids:
		keys = [writer.message_key(mailbox, m) for m in sorted(ids)]
		frappe.db.set_value("Communication", {"atlas_mailbox_key": ["in", keys]}, "atlas_labels_pending", 0,
							update_modified=False)
	return len(ids)


def release(job_type: str, sync_job: str) -> int:
	"""A write-back job that will not be written (it failed, or the ledger gave up on it): clear the pending
	flag of its messages so later provider data can update them again (messages another open job covers stay
	pending). Does not commit. Returns how many messages were cleared."""
	row = frappe.db.get_value("Sync Job", sync_job, ["reference_doctype", "reference_name", "payload"], as_dict=True)
	if not row:
		return 0
	try:
		payload = json.loads(row.payload or "{}")
	except ValueError:
		return 0
	mailbox = payload.get("account") or row.reference_name
	return clear_pending_flags(job_type, row.reference_doctype, mailbox, payload.get("message_ids") or [], sync_job)
