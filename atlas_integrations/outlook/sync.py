"""The Outlook sync engine: one run per Sync Job, one run per mailbox at a time, a delta round per followed
folder (Microsoft Graph "Get incremental changes to messages in a folder",
learn.microsoft.com/graph/delta-query-messages).

A round follows ``@odata.nextLink`` pages to the ``@odata.deltaLink``. Each page is applied and committed
with the link that follows it, in one transaction: new messages' MIME (``$value``, 20 per ``$batch``) stored
through the one writer, stored messages brought to Graph's state (folder, read, flag, categories), removals
resolved. A worker killed mid-round resumes from the last committed link (no gap; a page applied twice
stores nothing twice: the writer's unique key). ``@removed`` also comes when a message merely leaves the
folder: it is resolved by its immutable id (found: the same record, in its new folder; 404: deleted). A
link Graph no longer knows (410 ``syncStateNotFound``) starts the folder over from a full listing, which is
reconciled with what is stored (no duplicates, what is gone flagged deleted). The backfill window is applied
here, on ``receivedDateTime``, not with ``$filter`` (a filtered delta returns at most 5,000 messages).
Messages that could not be fetched are kept on the account (``pending_message_ids``) in the same commit and
fetched first by the next run: the cursor never moves past work that was not done.
"""

from __future__ import annotations

import json
import time
import traceback
from datetime import datetime, timedelta, timezone

import frappe
from frappe.utils import cint, now_datetime

from atlas_integrations import jobs
from atlas_integrations.inbox import pipeline, writer
from atlas_integrations.outlook import accounts, store
from atlas_integrations.outlook.client import MAX_BATCH, GraphClient
from atlas_integrations.outlook.errors import AuthRevoked, CursorExpired, OutlookError, Permanent, Temporary
from atlas_integrations.progress import Progress
from atlas_integrations.settings import get_settings, max_attachment_bytes, sync_allowed

JOB_TYPE = "Outlook Sync"
LOCK_TTL = 30  # seconds the run lock lives without a heartbeat
LOCK_WAIT = 600  # seconds a run waits for another live run of the same mailbox
DEFAULT_BACKFILL_DAYS = 30
MAX_DRAIN = 5  # follow-up runs one rq job performs
POLL_CHUNK = 200  # mailboxes per poll sweep job
POLL_SLACK = timedelta(seconds=30)
#: the folders whose ids are looked up once per mailbox, so a message's folder is known by its id
KNOWN_FOLDERS = ("inbox", "sentitems", "archive", "deleteditems", "junkemail", "drafts")
#: the site config key of the delta page size (Prefer: odata.maxpagesize)
PAGE_SIZE_KEY = "atlas_outlook_delta_page_size"


def enqueue_sync(account: str, trigger: str = "manual") -> dict:
	"""Queue a sync run of ``account`` unless one is already pending (or processing, for a scheduler poll).

	Args:
		account: Outlook Account name.
		trigger: ``manual`` | ``scheduler`` | ``connect`` | ``notification``.

	Returns:
		``{"sync_job": name, "created": bool, "status": "pending"|"processing"}``.
	"""
	state = frappe.db.get_value(accounts.DOCTYPE, account, "folder_state")
	return jobs.enqueue_once(JOB_TYPE, accounts.DOCTYPE, account,
							 payload={"account": account, "mode": "incremental" if state else "initial"},
							 trigger=trigger, follow_up=trigger != "scheduler")


def due_accounts() -> list[str]:
	"""Connected, enabled, not throttled mailboxes whose poll interval (Atlas Settings, minutes) has passed
	since they were last processed; none while the workspace is Archived."""
	if not sync_allowed():
		return []
	interval = max(1, cint(get_settings().poll_interval_minutes) or 1)
	cutoff = now_datetime() - timedelta(minutes=interval) + POLL_SLACK
	now = now_datetime()
	rows = frappe.get_all(accounts.DOCTYPE, filters={"enabled": 1, "status": ["in", [accounts.SYNCING, accounts.ACTIVE]]},
						  fields=["name", "last_processed_at", "throttle_until"])
	return [r.name for r in rows if not (r.throttle_until and r.throttle_until > now)
			and not (r.last_processed_at and r.last_processed_at > cutoff)]


def enqueue_due_accounts() -> list[str]:
	"""Scheduler hook (every minute): queue a sync run of every due mailbox (polling is the fallback behind
	change notifications). Returns the mailboxes queued."""
	due = due_accounts()
	for account in due:
		try:
			enqueue_sync(account, trigger="scheduler")
		except Exception:
			frappe.db.rollback()
			frappe.log_error(title=f"Outlook poll failed for {account}")
			continue
		frappe.db.set_value(accounts.DOCTYPE, account, "last_processed_at", now_datetime(), update_modified=False)
		frappe.db.commit()
	return due


def run_sync_job(sync_job: str) -> None:
	"""rq entry point of the Outlook Sync job type: claim the Sync Job and run it, then the mailbox's pending
	follow-ups (at most :data:`MAX_DRAIN` runs), as the mailbox's owner user. A job that is not pending (or
	unknown) is left alone, so a replayed rq job is a no-op. Never raises for a failed run (the Sync Job
	records the error)."""
	account = frappe.db.get_value("Sync Job", sync_job, "reference_name")
	if not account:
		return
	with jobs.run_as(accounts.run_as_user(account)):
		for _ in range(MAX_DRAIN):
			if not jobs.claim(sync_job):
				return
			SyncRun(account, sync_job).execute()
			sync_job = jobs.next_pending(JOB_TYPE, accounts.DOCTYPE, account)
			if not sync_job:
				return


def lock_name(account: str) -> str:
	"""Redis key of the mailbox's run lock."""
	return f"{frappe.local.site}:atlas:outlook-sync:{account}"


def release_lock(account: str) -> bool:
	"""The ``release`` hook of the job type: free the run lock of a dead run (:func:`jobs.release_run_lock`)."""
	return jobs.release_run_lock(lock_name(account))


def give_up(sync_job: str) -> None:
	"""The ``on_give_up`` hook: the ledger failed ``sync_job`` for good; the mailbox's health records it."""
	row = frappe.db.get_value("Sync Job", sync_job, ["reference_name", "details"], as_dict=True)
	if row and row.reference_name and frappe.db.exists(accounts.DOCTYPE, row.reference_name):
		accounts.record_run(row.reference_name, False, error=row.details or "worker lost")


def page_size() -> int:
	"""Messages per delta page: site config ``atlas_outlook_delta_page_size`` (1..1000), default 200."""
	from atlas_integrations.endpoints import conf_number
	from atlas_integrations.outlook.client import DELTA_PAGE

	return max(1, min(1000, int(conf_number(PAGE_SIZE_KEY, DELTA_PAGE))))


class SyncRun:
	"""One run of one Outlook mailbox, recorded on one Sync Job.

	Attributes:
		counts: the Sync Job's counts (listed, created, already_present, failed, skipped, api_calls).
		state: the account's ``folder_state``: ``{"ids": {folder id: well-known name}, "<name>": {"id",
			"delta_link", "next_link"}}``.
		pending: Graph ids not stored yet -> their delta resource (kept on the account, retried first).
	"""

	def __init__(self, account: str, sync_job: str):
		self.account, self.sync_job = account, sync_job
		self.counts = {"listed": 0, "created": 0, "already_present": 0, "failed": 0, "skipped": 0, "api_calls": 0}
		self.client: GraphClient | None = None
		self.ctx: writer.WriteContext | None = None
		self.state: dict = {}
		self.pending: dict[str, dict] = {}
		self.errors: list[str] = []
		self.details: list[str] = []
		self.cutoff: datetime | None = None
		self.outcomes: dict[str, int] = {}
		self.pipeline_on = pipeline.enabled()
		self.seconds: dict[str, float] = {}
		self.gone = self.moved = self.deleted = self.updated = self.parse_errors = 0
		self.progress: Progress | None = None
		self.handled = 0
		self.lock = None
		#: (Communication names, inserted rows) stored in the open transaction, for the pipeline once committed
		self.committing: list[tuple[list[str], list[dict]]] = []

	# -- lifecycle ----------------------------------------------------------------------------------------
	def execute(self) -> None:
		"""Run and close the Sync Job as succeeded or failed. Never raises (the job records the error)."""
		secrets: list[str] = []
		try:
			secrets = accounts.secrets_of(self.account)
			self.lock = jobs.RunLock(lock_name(self.account), owner=self.sync_job, ttl=LOCK_TTL)
			if not self.lock.acquire(wait=LOCK_WAIT):
				self.lock = None
				raise OutlookError("another run of this mailbox held its lock for too long")
			frappe.db.rollback()  # a fresh snapshot: everything the previous holder committed
			self.progress = Progress(self.sync_job)
			details = self._run()
			if self.pending:
				first = "; ".join(f"{m[:24]}…" for m in list(self.pending)[:3])
				self._finish(jobs.FAILED, error=f"{len(self.pending)} Outlook message(s) could not be fetched and "
								  f"stay pending (retried first by the next run): {first}", details=details, secrets=secrets)
			else:
				self._finish(jobs.SUCCEEDED, details=details, secrets=secrets)
		except AuthRevoked as exc:
			frappe.db.rollback()
			message = f"Microsoft refused the stored authorization ({exc.code or exc.status}); reconnect the mailbox"
			accounts.mark_unauthorized(self.account, message)
			self._finish(jobs.FAILED, error=message, secrets=secrets)
		except Temporary as exc:
			frappe.db.rollback()
			failures = cint(frappe.db.get_value(accounts.DOCTYPE, self.account, "consecutive_failures"))
			seconds = exc.retry_after or min(3600, 60 * 2**failures)
			frappe.db.set_value(accounts.DOCTYPE, self.account, "throttle_until",
								now_datetime() + timedelta(seconds=seconds), update_modified=False)
			self._finish(jobs.FAILED, error=f"Temporary: {exc}", secrets=secrets)
		except OutlookError as exc:
			frappe.db.rollback()
			self._finish(jobs.FAILED, error=f"{type(exc).__name__}: {exc}", secrets=secrets)
		except Exception as exc:
			frappe.db.rollback()
			error = jobs.scrub(traceback.format_exc()[-1900:], secrets)
			frappe.log_error(title=f"Outlook sync failed for {self.account}", message=error,
							 reference_doctype=accounts.DOCTYPE, reference_name=self.account)
			self._finish(jobs.FAILED, error=f"{type(exc).__name__}: {jobs.scrub(str(exc), secrets)}", secrets=secrets)
		finally:
			if self.lock is not None:
				self.lock.release()
				self.lock = None

	def _counts(self) -> dict[str, int]:
		return {**self.counts, "api_calls": self.client.api_calls if self.client else 0}

	def _finish(self, status: str, error: str | None = None, details: str | None = None, secrets=()) -> None:
		if self.progress is not None:
			self.progress.finish(status, done=self.handled)
		jobs.finish(self.sync_job, status, self._counts(), error=error, details=details, secrets=secrets)
		accounts.record_run(self.account, status == jobs.SUCCEEDED, error=jobs.scrub(error, secrets) if error else None)
		frappe.db.commit()

	# -- the work -----------------------------------------------------------------------------------------
	def _run(self) -> str:
		account = frappe.get_doc(accounts.DOCTYPE, self.account)
		if not account.enabled or account.status in (accounts.NOT_CONNECTED, accounts.UNAUTHORIZED):
			raise OutlookError(f"mailbox is {account.status.lower()}{'' if account.enabled else ' and disabled'}")
		self.client = accounts.client_for(self.account)
		settings = get_settings()
		self.state = json.loads(account.folder_state or "{}")
		initial = not any(isinstance(v, dict) and v.get("delta_link") for k, v in self.state.items() if k != "ids")
		self.ctx = store.write_context(self.account, settings.body_storage_mode or writer.FULL, max_attachment_bytes(),
									   backfill=initial)
		days = cint(account.backfill_days) or cint(settings.default_backfill_days) or DEFAULT_BACKFILL_DAYS
		self.cutoff = datetime.now(timezone.utc) - timedelta(days=days)
		self.progress.announce = initial
		if initial:
			frappe.db.set_value(accounts.DOCTYPE, self.account, {"status": accounts.SYNCING, "sync_stage": "Initial sync"},
								update_modified=False)
		self.progress.update(0, None, stage="Starting", force=True)
		frappe.db.set_value("Sync Job", self.sync_job, "sync_mode", "initial" if initial else "incremental",
							update_modified=False)
		frappe.db.commit()
		self._resolve_folders()
		self.pending = json.loads(account.pending_message_ids or "{}") if account.pending_message_ids else {}
		if not isinstance(self.pending, dict):
			self.pending = {}
		retried = self._retry_pending()
		for name in accounts.folders_of(account.folders):
			self._sync_folder(name)
		self.ctx.backfill = False
		frappe.db.set_value(accounts.DOCTYPE, self.account,
							{"status": accounts.ACTIVE, "sync_stage": "Incremental", "throttle_until": None},
							update_modified=False)
		frappe.db.commit()
		self._ensure_subscriptions()
		return "; ".join(self.details + [
			f"retried pending {retried}", f"updated {self.updated}", f"moved {self.moved}", f"deleted {self.deleted}",
			f"gone (404) {self.gone}", f"parse errors {self.parse_errors}",
			"HTTP calls %d, Graph requests %d, 429 answers %d" % (self.client.http_calls, self.client.api_calls,
																	self.client.throttled)]
			+ (["outcomes " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))] if self.outcomes else [])
			+ (["seconds " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())] if self.seconds else [])
			+ ([f"first errors: {' | '.join(self.errors[:3])}"] if self.errors else []))

	def _ensure_subscriptions(self) -> None:
		"""Keep change notifications flowing (:func:`atlas_integrations.outlook.notify.ensure_subscriptions`).
		A failure does not fail the run: polling still covers the mailbox."""
		from atlas_integrations.outlook import notify

		try:
			done = notify.ensure_subscriptions(self.account, self.client)
			frappe.db.commit()
		except AuthRevoked:
			raise
		except OutlookError as exc:
			frappe.db.rollback()
			self.errors.append(f"subscriptions: {exc}")
			return
		if done:
			self.details.append("subscriptions " + ", ".join(f"{k} {v}" for k, v in sorted(done.items())))

	def _resolve_folders(self) -> None:
		"""Look up the well-known folders' ids once per mailbox (a message's ``parentFolderId`` names its
		folder by id); a folder the mailbox lacks (404) is left out."""
		ids = self.state.get("ids")
		if isinstance(ids, dict) and ids:
			return
		ids = {}
		for name in KNOWN_FOLDERS:
			try:
				ids[str(self.client.folder(name)["id"])] = name
			except Permanent as exc:
				if exc.status != 404:
					raise
		self.state["ids"] = ids
		self._save_state()
		frappe.db.commit()

	def _folder_id(self, name: str) -> str | None:
		return next((fid for fid, n in (self.state.get("ids") or {}).items() if n == name), None)

	def _save_state(self) -> None:
		"""Keep the folder state and the pending messages on the account (in the current transaction)."""
		frappe.db.set_value(accounts.DOCTYPE, self.account, {
			"folder_state": json.dumps(self.state, sort_keys=True),
			"pending_message_ids": json.dumps(self.pending) if self.pending else None,
			"pending_messages": len(self.pending)}, update_modified=False)

	def _sync_folder(self, name: str) -> None:
		"""One delta round of folder ``name``: from its kept link, else a full listing (reconciled with what
		is stored when it replaces a link Graph no longer knows)."""
		fid = self._folder_id(name)
		if not fid:
			self.details.append(f"{name}: the mailbox has no such folder")
			return
		entry = self.state.setdefault(name, {})
		entry["id"] = fid
		link = entry.get("next_link") or entry.get("delta_link")
		try:
			pages = self._round(name, fid, link, listed=None)
		except CursorExpired:
			frappe.db.rollback()
			self.committing = []
			entry.update(next_link=None, delta_link=None)
			self.progress.announce = True
			listed: set[str] = set()
			pages = self._round(name, fid, None, listed=listed)
			self._reconcile(name, listed)
			self.details.append(f"{name}: delta link expired (410): full resync of {len(listed)} messages")
		self.details.append(f"{name}: {pages} delta page(s)")

	def _round(self, name: str, fid: str, link: str | None, listed: set[str] | None) -> int:
		"""Follow one delta round; each page committed with the link after it. Returns the pages read."""
		entry = self.state[name]
		pages = 0
		for page in self.client.delta_pages(fid, link, page_size=page_size()):
			pages += 1
			items = [i for i in page.get("value") or [] if isinstance(i, dict) and isinstance(i.get("id"), str)]
			if listed is not None:
				listed.update(i["id"] for i in items if "@removed" not in i)
			self._apply_page(items)
			entry["next_link"] = page.get("@odata.nextLink")
			if page.get("@odata.deltaLink"):
				entry["delta_link"], entry["next_link"] = page["@odata.deltaLink"], None
			self._save_state()
			jobs.update_counts(self.sync_job, self._counts())
			self.progress.update(self.handled, None, stage=f"Importing {name}")
			self._commit()  # the page's messages and the link after them, together
			self.lock.extend()
		return pages

	def _apply_page(self, items: list[dict]) -> None:
		"""Apply one delta page in the current transaction: new messages stored, stored ones brought to
		Graph's state, removals resolved by immutable id."""
		removed = [i["id"] for i in items if "@removed" in i]
		present = {i["id"]: i for i in items if "@removed" not in i}
		self.counts["listed"] += len(present)
		stored = store.existing(self.account, list(present) + removed)
		touched = store.apply_state(stored, present, self.state.get("ids") or {})
		self.updated += len(touched)
		new = {}
		for mid, resource in present.items():
			if mid in stored:
				self.counts["already_present"] += 1
				self.handled += 1
			elif resource.get("isDraft"):
				self.counts["skipped"] += 1
				self.handled += 1
			elif store.received_at(resource) < self.cutoff:
				self.counts["skipped"] += 1  # outside the backfill window
				self.handled += 1
			else:
				new[mid] = resource
		touched |= self._resolve_removed(stored, [m for m in removed if m in stored and m not in present])
		store.refresh_threads(self.account, touched)
		if new:
			self._store(new)

	def _resolve_removed(self, stored: dict, ids: list[str]) -> set[str]:
		"""``@removed`` items of stored messages: looked up by immutable id (found: moved, the record follows
		it to its folder; 404: deleted, flagged). Returns the Inbox Threads touched."""
		if not ids:
			return set()
		found, failures = self.client.get_messages(ids)
		touched = store.apply_state(stored, found, self.state.get("ids") or {})
		self.moved += len(found)
		gone = [m for m, err in failures.items() if isinstance(err, Permanent) and err.status == 404]
		touched |= store.mark_deleted(stored, gone)
		self.deleted += len(gone)
		for mid, err in failures.items():
			if mid not in gone:
				raise err  # not resolved: the page (and its link) is not committed
		return touched

	def _store(self, resources: dict[str, dict]) -> None:
		"""Fetch the MIME of ``resources`` (``$batch`` of ``$value``) and store them through the writer; a
		message that cannot be fetched stays pending with its resource."""
		clock = time.perf_counter()
		raws, failures = self.client.get_mime(list(resources))
		self._add_time("fetch", time.perf_counter() - clock)
		for mid, err in failures.items():
			if isinstance(err, Permanent) and err.status == 404:  # deleted since it was listed
				self.gone += 1
				self.pending.pop(mid, None)
			else:
				self.counts["failed"] += 1
				self.errors.append(f"{mid[:24]}…: {err}")
				self.pending[mid] = _pending_resource(resources[mid])
			self.handled += 1
		folders = self.state.get("ids") or {}
		envelopes = [store.envelope(resources[mid], raws[mid], folders.get(str(resources[mid].get("parentFolderId") or "")))
					 for mid in resources if mid in raws]
		if not envelopes:
			return
		result = jobs.retry_deadlock(lambda: writer.write_batch(self.ctx, envelopes))
		for mid in (*result.created, *result.already_present, *result.skipped):
			self.pending.pop(mid, None)
		for mid, err in result.failed.items():
			self.counts["failed"] += 1
			self.errors.append(f"{mid[:24]}…: {err}")
			self.pending[mid] = _pending_resource(resources[mid])
		self.counts["created"] += len(result.created)
		self.counts["already_present"] += len(result.already_present)
		self.counts["skipped"] += len(result.skipped)
		self.parse_errors += result.parse_errors
		self.handled += len(envelopes)
		for stage, seconds in result.seconds.items():
			self._add_time(stage, seconds)
		if result.created_names:
			self.committing.append((list(result.created_names), list(result.created_rows)))

	def _commit(self) -> None:
		"""Commit the current transaction; then the Smart Inbox pipeline on the messages it stored (in this
		worker, handed the rows the writer inserted) and the mailbox's readers' lists refreshed."""
		frappe.db.commit()
		done, self.committing = self.committing, []
		for names, rows in done:
			self._pipeline(names, rows)

	def _pipeline(self, names: list[str], rows: list[dict]) -> None:
		"""The pipeline on committed messages ``names``; its failure never fails the sync (the messages are
		marked ``failed``; "Process again" runs them anew)."""
		from atlas_integrations.notify import publish_to_readers

		if self.pipeline_on:
			clock = time.perf_counter()
			try:
				outcome = jobs.retry_deadlock(lambda: pipeline.run(names, rows=rows))
				for value in outcome.outcomes.values():
					self.outcomes[value] = self.outcomes.get(value, 0) + 1
				frappe.db.commit()
			except Exception as exc:
				frappe.db.rollback()
				pipeline.mark_failed(names, exc)
				frappe.db.commit()
				self.errors.append(f"pipeline: {type(exc).__name__}")
			finally:
				self._add_time("pipeline", time.perf_counter() - clock)
		mailbox = (accounts.DOCTYPE, self.account)
		publish_to_readers("atlas_inbox_update", {"mailbox_type": mailbox[0], "mailbox": mailbox[1],
												  "created": len(names)}, mailbox)

	def _retry_pending(self) -> int:
		"""Fetch and store first the messages earlier runs could not fetch; those gone (404) leave the list."""
		if not self.pending:
			return 0
		ids = list(self.pending)
		for start in range(0, len(ids), MAX_BATCH * 5):
			chunk = {m: self.pending[m] for m in ids[start:start + MAX_BATCH * 5]}
			stored = store.existing(self.account, list(chunk))
			for mid in stored:
				self.pending.pop(mid, None)
			todo = {m: r for m, r in chunk.items() if m not in stored}
			if todo:
				self._store(todo)
			self._save_state()
			self._commit()
		return len(ids)

	def _reconcile(self, name: str, listed: set[str]) -> None:
		"""After a full listing of folder ``name``: stored messages tagged with its folder that the listing
		did not hold are looked up by id (moved elsewhere, or deleted)."""
		tag = accounts.FOLDER_TAGS.get(name)
		if not tag:
			return
		rows = frappe.get_all("Communication", filters={"atlas_mailbox_type": accounts.DOCTYPE,
														"atlas_mailbox": self.account, "atlas_deleted": 0},
							  fields=["atlas_provider_message_id as id", "atlas_tags"])
		missing = [r.id for r in rows if tag in (r.atlas_tags or "").split(",") and r.id not in listed
				   and r.id not in self.pending]
		for start in range(0, len(missing), 100):
			chunk = missing[start:start + 100]
			stored = store.existing(self.account, chunk)
			store.refresh_threads(self.account, self._resolve_removed(stored, chunk))
			self._commit()

	def _add_time(self, stage: str, seconds: float) -> None:
		self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds


def _pending_resource(resource: dict) -> dict:
	"""The part of a delta resource kept for a pending message (what its envelope needs)."""
	keep = ("id", "isDraft", "isRead", "categories", "flag", "parentFolderId", "conversationId", "receivedDateTime")
	return {k: resource[k] for k in keep if k in resource}


__all__ = ["enqueue_sync", "enqueue_due_accounts", "run_sync_job", "release_lock", "give_up", "SyncRun"]
