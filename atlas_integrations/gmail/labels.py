"""Labels and read state, two-way: desk changes go to Gmail through a queued ``messages.batchModify``;
and the processing label Atlas puts on every message it has stored, applied in batches.

A desk change is applied to the stored messages at once (the desk shows it), flagged pending, and a
"Gmail Modify" Sync Job writes it to Gmail. While a message's change is pending, incremental sync does
not let older Gmail history overwrite it; once written, the history event Gmail records for our own
change carries the same labels, so applying it changes nothing.

An account's Gmail Modify jobs are written one at a time, in the order they were made: one rq job per
account (the job type is one-at-a-time per reference), which drains the account's pending Modify jobs
oldest first, each under the account's modify lock (:func:`modify_lock_name`, kept alive by a heartbeat).
A job that fails (or that the ledger gives up on) clears the pending flag of its messages, unless
another open Modify job of the account still covers them, so later Gmail history updates them again.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import frappe
from frappe.utils import now_datetime

from atlas_integrations import jobs, messages
from atlas_integrations.gmail import accounts, store
from atlas_integrations.gmail.client import GmailClient
from atlas_integrations.gmail.errors import AuthRevoked, GmailError, Permanent, Temporary
from atlas_integrations.inbox import writeback
from atlas_integrations.settings import processing_label_delay

JOB_TYPE = "Gmail Modify"
#: system labels a desk user may set or clear on a thread
SETTABLE_SYSTEM = frozenset({"UNREAD", "STARRED", "IMPORTANT", "INBOX", "SPAM", "TRASH"})
#: this many stored messages waiting for the processing label are labelled at once, whatever their age
PROCESSING_LABEL_BATCH = 200
#: below this many messages, one messages.modify each (5 quota units) is cheaper than a batchModify (50)
MODIFY_ONE_BY_ONE_BELOW = 10
#: seconds the account's modify lock lives without a heartbeat (a dead write-back frees it this soon)
MODIFY_LOCK_TTL = 30
#: seconds a write-back waits for another live one of the same account before leaving its job pending
MODIFY_LOCK_WAIT = 120
#: seconds one rq job keeps draining the account's pending Modify jobs (the job type's timeout is 300)
MODIFY_DRAIN_SECONDS = 120


def _label_ids(account_labels: dict[str, str], names: list[str]) -> list[str]:
	by_name = {v.lower(): k for k, v in account_labels.items()}
	ids = []
	for name in names or []:
		key = str(name).strip()
		if key.upper() in SETTABLE_SYSTEM:
			ids.append(key.upper())
		elif key in account_labels and key not in ("SENT", "DRAFT", "CHAT"):
			ids.append(key)
		elif key.lower() in by_name:
			ids.append(by_name[key.lower()])
		else:
			messages.throw("Unknown Gmail label {0}", key, title="Gmail")
	return ids


def modify_thread(thread: str, add: list[str] | None = None, remove: list[str] | None = None) -> dict:
	"""Add/remove Gmail labels on every message of an Inbox Thread, from the desk.

	Args:
		thread: Inbox Thread name.
		add, remove: label names (``"STARRED"``, ``"UNREAD"``, a user label's name) or ids.

	Returns:
		``{"sync_job": str, "messages": int}`` — the queued Gmail Modify job.

	Raises:
		frappe.PermissionError: the user cannot write the thread.
		frappe.ValidationError: an unknown label, or the account is not connected.
	"""
	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("write")
	account = frappe.get_doc(accounts.DOCTYPE, doc.mailbox)
	if account.status not in (accounts.ACTIVE, accounts.SYNCING) or not account.enabled:
		messages.throw("Gmail Account {0} is not connected ({1})", account.name, account.status, title="Gmail")
	label_names = json.loads(account.gmail_labels or "{}")
	add_ids, remove_ids = _label_ids(label_names, add), _label_ids(label_names, remove)
	rows = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread, "atlas_deleted": 0},
						  fields=["name", "atlas_provider_message_id", "atlas_tags"])
	if not rows or not (add_ids or remove_ids):
		return {"sync_job": None, "messages": 0}
	for row in rows:
		labels = [x for x in (row.atlas_tags or "").split(",") if x and x not in remove_ids]
		labels += [x for x in add_ids if x not in labels]
		frappe.db.set_value("Communication", row.name, {"atlas_tags": ",".join(labels),
														 "seen": 0 if "UNREAD" in labels else 1,
														 "atlas_labels_pending": 1})
	store.refresh_threads(account.name, {doc.provider_thread_id}, label_names)
	job = jobs.create(JOB_TYPE, accounts.DOCTYPE, account.name, trigger="desk", payload={
		"account": account.name, "thread": thread, "message_ids": [r.atlas_provider_message_id for r in rows],
		"addLabelIds": add_ids, "removeLabelIds": remove_ids})
	jobs.dispatch(JOB_TYPE, job.name, account.name)
	return {"sync_job": job.name, "messages": len(rows)}


def mark_read(thread: str, read: bool = True) -> dict:
	"""Mark an Inbox Thread read (remove UNREAD) or unread (add UNREAD) in the desk and in Gmail."""
	return modify_thread(thread, remove=["UNREAD"]) if read else modify_thread(thread, add=["UNREAD"])


def modify_lock_name(account: str) -> str:
	"""Redis key of the account's Gmail Modify lock (one write-back at a time)."""
	return f"{frappe.local.site}:atlas:gmail-modify:{account}"


def release_modify_lock(account: str) -> bool:
	"""Free the account's modify lock when the write-back holding it is dead (its Sync Job no longer
	processing); the ``release`` hook of the Gmail Modify job type.

	Args:
		account: Gmail Account name.

	Returns:
		True when a lock was freed.
	"""
	return jobs.release_run_lock(modify_lock_name(account))


def run_modify_job(sync_job: str) -> None:
	"""rq entry point of the Gmail Modify job type: write the account's pending desk changes to Gmail,
	oldest first, one at a time (one ``users.messages.batchModify`` per 1,000 ids each).

	``sync_job`` names the account; the run then drains that account's pending Modify jobs in creation
	order (``sync_job`` among them) for up to ``MODIFY_DRAIN_SECONDS`` seconds, each claimed only while
	holding the account's modify lock. When another live write-back of the account holds the lock for
	over ``MODIFY_LOCK_WAIT`` seconds, the jobs stay pending for it (or for the next poll sweep).

	Runs as the account's owner user (Gmail Account ``user``, else Administrator), recorded as each Sync
	Job's ``run_as``. On success the messages' pending flags are cleared; on failure the job keeps its
	payload and can be retried, and the flags are cleared too (see :func:`release_pending_labels`), so
	later Gmail history updates those messages again. Never raises for a failed write.

	Args:
		sync_job: Sync Job name.
	"""
	account = frappe.db.get_value("Sync Job", sync_job, "reference_name")
	if not account:
		return
	with jobs.run_as(accounts.run_as_user(account)):
		writeback.drain(JOB_TYPE, accounts.DOCTYPE, account, modify_lock_name(account), _write_back,
						lock_ttl=MODIFY_LOCK_TTL, lock_wait=MODIFY_LOCK_WAIT, seconds=MODIFY_DRAIN_SECONDS)


def _write_back(sync_job: str) -> None:
	"""Write one claimed Gmail Modify job to Gmail and close it (commits)."""
	job = frappe.get_doc("Sync Job", sync_job)
	payload = json.loads(job.payload or "{}")
	account = payload.get("account") or job.reference_name
	secrets = accounts.secrets_of(account)
	client = None
	try:
		client = accounts.client_for(account)
		ids = payload["message_ids"]
		for start in range(0, len(ids), 1000):
			client.execute(client.service.users().messages().batchModify(userId="me", body={
				"ids": ids[start : start + 1000], "addLabelIds": payload.get("addLabelIds") or [],
				"removeLabelIds": payload.get("removeLabelIds") or []}), "messages.batchModify")
		_clear_pending_flags(account, ids, sync_job)
		jobs.finish(sync_job, jobs.SUCCEEDED, {"listed": len(ids), "api_calls": client.api_calls}, secrets=secrets)
	except AuthRevoked as exc:
		frappe.db.rollback()
		accounts.mark_unauthorized(account, f"Gmail refused the stored authorization ({exc.reason or exc.status}); reconnect the account")
		release_pending_labels(sync_job)
		jobs.finish(sync_job, jobs.FAILED, {"api_calls": client.api_calls if client else 0}, error=str(exc), secrets=secrets)
	except (GmailError, frappe.ValidationError) as exc:
		frappe.db.rollback()
		release_pending_labels(sync_job)
		jobs.finish(sync_job, jobs.FAILED, {"api_calls": client.api_calls if client else 0},
					error=f"{type(exc).__name__}: {exc}", secrets=secrets)
	except Exception as exc:
		frappe.db.rollback()
		frappe.log_error(title=f"Gmail label write-back failed for {account}",
						 message=jobs.scrub(frappe.get_traceback(), secrets),
						 reference_doctype=accounts.DOCTYPE, reference_name=account)
		release_pending_labels(sync_job)
		jobs.finish(sync_job, jobs.FAILED, {"api_calls": client.api_calls if client else 0},
					error=f"{type(exc).__name__}: {jobs.scrub(str(exc), secrets)}", secrets=secrets)


def _clear_pending_flags(account: str, message_ids: list[str], sync_job: str) -> int:
	"""Clear ``atlas_labels_pending`` of the messages, except those another open (pending or processing)
	Gmail Modify job of the account still has to write (:func:`atlas_integrations.inbox.writeback.
	clear_pending_flags`). Returns how many messages were cleared."""
	return writeback.clear_pending_flags(JOB_TYPE, accounts.DOCTYPE, account, message_ids, sync_job)


def release_pending_labels(sync_job: str) -> int:
	"""A Gmail Modify job that will not be written (it failed, or the ledger gave up on it): clear the
	pending flag of its messages so later Gmail history can update them again; messages another open
	Modify job of the account covers stay pending. The ``on_give_up`` hook of the Gmail Modify job type.
	Does not commit.

	The desk keeps showing the change until Gmail history of those messages says otherwise; retrying the
	job (:func:`atlas_integrations.jobs.retry`) writes it again.

	Args:
		sync_job: Sync Job name.

	Returns:
		The number of messages whose flag was cleared.
	"""
	return writeback.release(JOB_TYPE, sync_job)


# -- the processing label ------------------------------------------------------------------------------
# Gmail quota (https://developers.google.com/gmail/api/reference/quota): messages.modify costs 5 units,
# messages.batchModify 50 units for up to 1,000 ids. Labelling each incremental run's one or two messages
# at once would cost as much as fetching them, and every label change makes Gmail push again; so stored
# messages are flagged ``atlas_processed_pending`` and labelled together (see processing_label_due).


def processing_label_debt(account_names: list[str]) -> dict[str, tuple[int, datetime]]:
	"""Stored, not deleted messages still waiting for the processing label, per account.

	Returns:
		``{account: (count, creation of the oldest waiting message, system time)}``; accounts with none
		are absent.
	"""
	if not account_names:
		return {}
	rows = frappe.db.sql(
		"""select atlas_mailbox, count(*), min(creation) from `tabCommunication`
		where atlas_processed_pending=1 and atlas_deleted=0 and atlas_mailbox_type = %s and atlas_mailbox in %s
		group by atlas_mailbox""",
		(accounts.DOCTYPE, tuple(account_names)),
	)
	return {account: (int(count), oldest) for account, count, oldest in rows}


def processing_label_due(debt: tuple[int, datetime] | None, now: datetime | None = None) -> bool:
	"""True when an account's waiting messages (see :func:`processing_label_debt`) should be labelled
	now: at least ``PROCESSING_LABEL_BATCH`` wait, or the oldest has waited ``processing_label_delay``
	seconds (Atlas Settings; 0 = always)."""
	if not debt or not debt[0]:
		return False
	count, oldest = debt
	delay = processing_label_delay()
	return (count >= PROCESSING_LABEL_BATCH or delay == 0
			or oldest <= (now or now_datetime()) - timedelta(seconds=delay))


def apply_processing_label(account: str, client: GmailClient, label_id: str | None) -> dict:
	"""Give every waiting message of ``account`` the processing label in Gmail, at the lower quota cost:
	``messages.modify`` each for fewer than 10, else ``messages.batchModify`` per 1,000 ids. Clears
	``atlas_processed_pending`` of the messages done (and of deleted ones); does not commit.

	A message Gmail refuses for good (e.g. deleted there meanwhile: 4xx) is not retried; a Temporary
	error stops here and leaves the rest waiting for the next time.

	Args:
		account: Gmail Account name.
		client: a :class:`GmailClient` of the account.
		label_id: the Gmail label id of the processing label; None (it could not be created) does nothing.

	Returns:
		``{"labelled": int, "errors": [str]}``.

	Raises:
		AuthRevoked: Gmail refused the account's authorization.
	"""
	outcome = {"labelled": 0, "errors": []}
	if not label_id:
		return outcome
	# read first, then update by primary key: a range UPDATE would lock index gaps that another mailbox's
	# concurrent inserts need (MariaDB deadlocks under parallel initial syncs)
	deleted = frappe.get_all("Communication", filters={"atlas_mailbox_type": accounts.DOCTYPE, "atlas_mailbox": account, "atlas_processed_pending": 1,
													   "atlas_deleted": 1}, pluck="name")
	if deleted:
		frappe.db.sql("""update `tabCommunication` set atlas_processed_pending=0 where name in %s""", (tuple(deleted),))
	ids = frappe.get_all("Communication", filters={"atlas_mailbox_type": accounts.DOCTYPE, "atlas_mailbox": account, "atlas_processed_pending": 1,
												   "atlas_deleted": 0}, pluck="atlas_provider_message_id")

	def done(message_ids: list[str]) -> None:
		keys = [store.message_key(account, m) for m in message_ids]
		frappe.db.set_value("Communication", {"atlas_mailbox_key": ["in", keys]}, "atlas_processed_pending", 0,
							update_modified=False)

	messages = client.service.users().messages()
	if len(ids) < MODIFY_ONE_BY_ONE_BELOW:
		for mid in ids:
			try:
				client.execute(messages.modify(userId="me", id=mid, body={"addLabelIds": [label_id]}),
							   "messages.modify")
				outcome["labelled"] += 1
			except Permanent as exc:
				outcome["errors"].append(f"messages.modify {mid}: {exc}")
			except Temporary as exc:
				outcome["errors"].append(f"messages.modify: {exc}")
				return outcome
			done([mid])
		return outcome
	for start in range(0, len(ids), 1000):
		chunk = ids[start : start + 1000]
		try:
			client.execute(messages.batchModify(userId="me", body={"ids": chunk, "addLabelIds": [label_id]}),
						   "messages.batchModify")
			outcome["labelled"] += len(chunk)
		except Permanent as exc:
			outcome["errors"].append(f"messages.batchModify: {exc}")
		except Temporary as exc:
			outcome["errors"].append(f"messages.batchModify: {exc}")
			return outcome
		done(chunk)
	return outcome
