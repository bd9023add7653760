"""Two-way state of Outlook mail: changes made in the desk (read / unread, STARRED, categories, archive,
trash) written back to Graph by the "Outlook Modify" job type, in order, one at a time per mailbox
(:mod:`atlas_integrations.inbox.writeback`).

The desk's tags map to Graph as the sync reads them (:func:`atlas_integrations.outlook.store.tags_of`):
UNREAD ↔ ``isRead``, STARRED ↔ ``flag.flagStatus`` (flagged / notFlagged), any other tag ↔ a category;
removing INBOX moves the message to Archive, adding TRASH to Deleted Items, adding INBOX back to the Inbox
(``POST /messages/{id}/move``; the immutable id stays). Each message's new state is one ``PATCH``
(isRead, flag, categories: Graph replaces the list) and at most one move, sent in ``$batch`` requests.
While a change is pending its messages carry ``atlas_labels_pending``: the sync keeps the desk's state.
"""

from __future__ import annotations

import json
import urllib.parse

import frappe

from atlas_integrations import jobs, messages
from atlas_integrations.inbox import writeback, writer
from atlas_integrations.outlook import accounts
from atlas_integrations.outlook.errors import AuthRevoked, OutlookError

JOB_TYPE = "Outlook Modify"
LOCK_TTL = 30
#: the tags that are not categories
SYSTEM_TAGS = frozenset({"INBOX", "SENT", "UNREAD", "STARRED", "TRASH", "SPAM", "DRAFT"})


def _names(values) -> list[str]:
	"""Tags named by the desk (a list, or a comma-separated string), as stored (no comma, at most 100)."""
	if isinstance(values, str):
		values = values.split(",")
	return [t for t in dict.fromkeys(" ".join(str(v).replace(",", " ").split())[:100] for v in values or []) if t]


def modify_thread(thread: str, add: list[str] | None = None, remove: list[str] | None = None) -> dict:
	"""Add / remove tags on every message of an Inbox Thread of an Outlook mailbox, from the desk: applied
	to the stored messages at once (pending) and written to Graph by a queued Outlook Modify job. The mailbox
	type's ``modify_tags`` entry point.

	Args:
		thread: Inbox Thread name.
		add, remove: tag names (``"UNREAD"``, ``"STARRED"``, ``"INBOX"``, ``"TRASH"``, a category).

	Returns:
		``{"sync_job": str | None, "messages": int}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread.
		frappe.ValidationError: the mailbox is not connected.
	"""
	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("write")
	account = frappe.get_doc(accounts.DOCTYPE, doc.mailbox)
	if account.status not in (accounts.ACTIVE, accounts.SYNCING) or not account.enabled:
		messages.throw(accounts.NOT_CONNECTED_MESSAGE + " ({1})", account.name, account.status, title="Outlook")
	add, remove = _names(add), _names(remove)
	rows = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread, "atlas_deleted": 0},
						  fields=["name", "atlas_provider_message_id", "atlas_tags"])
	if not rows or not (add or remove):
		return {"sync_job": None, "messages": 0}
	moves = {}
	for row in rows:
		before = [x for x in (row.atlas_tags or "").split(",") if x]
		tags = [x for x in before if x not in remove] + [x for x in add if x not in before]
		if "TRASH" in add:
			tags, moves[row.atlas_provider_message_id] = [t for t in tags if t not in ("INBOX", "SPAM")], "deleteditems"
		elif "INBOX" in add and "INBOX" not in before:
			tags, moves[row.atlas_provider_message_id] = [t for t in tags if t not in ("TRASH", "SPAM")], "inbox"
		elif "INBOX" in remove and "INBOX" in before:
			moves[row.atlas_provider_message_id] = "archive"
		frappe.db.set_value("Communication", row.name, {"atlas_tags": ",".join(tags), "seen": 0 if "UNREAD" in tags else 1,
														 "atlas_labels_pending": 1})
	writer.refresh_threads(writer.WriteContext(accounts.DOCTYPE, account.name, "Outlook"), {thread})
	job = jobs.create(JOB_TYPE, accounts.DOCTYPE, account.name, trigger="desk", payload={
		"account": account.name, "thread": thread, "message_ids": [r.atlas_provider_message_id for r in rows],
		"moves": moves})
	jobs.dispatch(JOB_TYPE, job.name, account.name)
	return {"sync_job": job.name, "messages": len(rows)}


def mark_read(thread: str, read: bool = True) -> dict:
	"""Mark an Inbox Thread of an Outlook mailbox read or unread, in the desk and at Graph (the mailbox type's
	``mark_read`` entry point)."""
	return modify_thread(thread, remove=["UNREAD"]) if read else modify_thread(thread, add=["UNREAD"])


def lock_name(account: str) -> str:
	"""Redis key of the mailbox's write-back lock."""
	return f"{frappe.local.site}:atlas:outlook-modify:{account}"


def release_lock(account: str) -> bool:
	"""The ``release`` hook: free the write-back lock of a dead run."""
	return jobs.release_run_lock(lock_name(account))


def release_pending(sync_job: str) -> int:
	"""The ``on_give_up`` hook: the job will not be written; its messages follow Graph again."""
	return writeback.release(JOB_TYPE, sync_job)


def run_modify_job(sync_job: str) -> None:
	"""rq entry point of the Outlook Modify job type: write the mailbox's pending desk changes to Graph,
	oldest first, one at a time, as the mailbox's owner user. Never raises for a failed write (the Sync Job
	keeps its payload; retrying it writes it again)."""
	account = frappe.db.get_value("Sync Job", sync_job, "reference_name")
	if not account:
		return
	with jobs.run_as(accounts.run_as_user(account)):
		writeback.drain(JOB_TYPE, accounts.DOCTYPE, account, lock_name(account), _write_back, lock_ttl=LOCK_TTL)


def _requests(account: str, payload: dict) -> dict[str, dict]:
	"""The Graph requests of one job: per message, a PATCH of its state (from its stored tags) and its move."""
	rows = frappe.get_all("Communication", filters={"atlas_mailbox_key": ["in", [
		writer.message_key(account, m) for m in payload.get("message_ids") or []]]},
		fields=["atlas_provider_message_id as id", "atlas_tags"])
	out = {}
	for n, row in enumerate(rows):
		tags = [x for x in (row.atlas_tags or "").split(",") if x]
		path = f"messages/{urllib.parse.quote(row.id, safe='')}"
		out[f"p{n}"] = {"method": "PATCH", "url": path, "headers": {"Content-Type": "application/json"}, "body": {
			"isRead": "UNREAD" not in tags, "flag": {"flagStatus": "flagged" if "STARRED" in tags else "notFlagged"},
			"categories": [t for t in tags if t not in SYSTEM_TAGS]}}
		destination = (payload.get("moves") or {}).get(row.id)
		if destination:
			out[f"m{n}"] = {"method": "POST", "url": f"{path}/move", "headers": {"Content-Type": "application/json"},
							"body": {"destinationId": destination}}
	return out


def _write_back(sync_job: str) -> None:
	"""Write one claimed Outlook Modify job to Graph and close it (commits)."""
	job = frappe.get_doc("Sync Job", sync_job)
	payload = json.loads(job.payload or "{}")
	account = payload.get("account") or job.reference_name
	secrets = accounts.secrets_of(account)
	client = None
	try:
		client = accounts.client_for(account)
		parts = _requests(account, payload)
		patches = {k: v for k, v in parts.items() if k.startswith("p")}
		moves = {k: v for k, v in parts.items() if k.startswith("m")}
		failed = {}
		for group in (patches, moves):  # a message's state first, then its move
			if group:
				_answers, errors = client.batch_each(group, "messages.update")
				failed.update(errors)
		if failed:
			raise next(iter(failed.values()))
		writeback.clear_pending_flags(JOB_TYPE, accounts.DOCTYPE, account, payload.get("message_ids") or [], sync_job)
		jobs.finish(sync_job, jobs.SUCCEEDED, {"listed": len(payload.get("message_ids") or []),
											   "api_calls": client.api_calls}, secrets=secrets)
	except AuthRevoked as exc:
		frappe.db.rollback()
		accounts.mark_unauthorized(account, f"Microsoft refused the stored authorization ({exc.code or exc.status}); "
											"reconnect the mailbox")
		release_pending(sync_job)
		jobs.finish(sync_job, jobs.FAILED, {"api_calls": client.api_calls if client else 0}, error=str(exc), secrets=secrets)
	except (OutlookError, frappe.ValidationError) as exc:
		frappe.db.rollback()
		release_pending(sync_job)
		jobs.finish(sync_job, jobs.FAILED, {"api_calls": client.api_calls if client else 0},
					error=f"{type(exc).__name__}: {exc}", secrets=secrets)
	except Exception as exc:
		frappe.db.rollback()
		frappe.log_error(title=f"Outlook write-back failed for {account}",
						 message=jobs.scrub(frappe.get_traceback(), secrets),
						 reference_doctype=accounts.DOCTYPE, reference_name=account)
		release_pending(sync_job)
		jobs.finish(sync_job, jobs.FAILED, {"api_calls": client.api_calls if client else 0},
					error=f"{type(exc).__name__}: {jobs.scrub(str(exc), secrets)}", secrets=secrets)
