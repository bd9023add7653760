"""The Gmail sync engine: one run per Sync Job, one run per account at a time.

Initial sync (Gmail sync guide, "Full synchronization":
https://developers.google.com/gmail/api/guides/sync): record the mailbox's current historyId, list the
message ids of the backfill window (received and sent; SPAM/TRASH excluded), fetch the ones not yet
stored in batches (``format=raw``), store each as a Communication under its Inbox Thread, commit per
batch. The historyId taken *before* listing becomes the cursor for incremental sync, so nothing that
changes during the backfill is missed.
"""

from __future__ import annotations

import itertools
import json
import time
import traceback
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import frappe
from frappe.utils import cint, now_datetime

from atlas_integrations import jobs
from atlas_integrations.gmail import accounts, labels, store
from atlas_integrations.gmail import accounts as accounts_mod
from atlas_integrations.gmail.client import BATCH_SIZE, LIST_PAGE_SIZE, GmailClient
from atlas_integrations.gmail.errors import AuthRevoked, CursorExpired, GmailError, Permanent, Temporary
from atlas_integrations.gmail.filters import MailFilter
from atlas_integrations.inbox import pipeline
from atlas_integrations.progress import Progress
from atlas_integrations.quota import QuotaWait
from atlas_integrations.settings import get_settings, max_attachment_bytes, sync_allowed

JOB_TYPE = "Gmail Sync"
#: seconds the account's run lock lives without a heartbeat; a live run extends it every LOCK_TTL / 3 seconds
#: (heartbeat thread) and after every batch, so a killed worker frees the account within LOCK_TTL seconds
LOCK_TTL = 30
LOCK_WAIT = 600  # seconds a run waits for another (live) run of the same account to finish
DEFAULT_BACKFILL_DAYS = 30
#: seconds of waiting for the user's quota beyond which an initial sync gives its worker to another mailbox's
#: queued run and continues later (site config ``atlas_gmail_quota_hand_over_seconds``; 0: always wait)
HAND_OVER_AFTER = 2.0
PROCESSING_LABEL_FAILED = "Could not create the required processing label"
#: an incremental run with at least this many messages to fetch announces its progress (a smaller one is
#: done in seconds: its figures are only recorded on the Sync Job)
BIG_INCREMENTAL = 2 * BATCH_SIZE


def enqueue_sync(account: str, trigger: str = "manual") -> dict:
	"""Queue a sync run of ``account`` unless one is already pending or processing.

	Args:
		account: Gmail Account name.
		trigger: ``manual`` | ``scheduler`` | ``connect`` | ``push``.

	Returns:
		``{"sync_job": name, "created": bool, "status": "pending"|"processing"}``; ``created`` False
		when an open job already existed (deduplicated).
	"""
	history_id = frappe.db.get_value(accounts.DOCTYPE, account, "history_id")
	return jobs.enqueue_once(JOB_TYPE, accounts.DOCTYPE, account,
							 payload={"account": account, "mode": "initial" if not history_id else "incremental"},
							 trigger=trigger, follow_up=_follow_up_needed(trigger))


def _follow_up_needed(trigger: str) -> bool:
	"""A run is processing: a push or a desk/API request may announce changes that run has already
	passed (its history.list is done), so they get a pending follow-up, which the running job drains
	when it finishes. A scheduler poll needs none: it comes again next minute."""
	return trigger != "scheduler"


POLL_CHUNK = 200  # accounts per poll sweep job
MAX_DRAIN = 5  # follow-up runs one rq job performs before leaving the rest to the next trigger
#: an account polled this long before its interval ends is due again (the last poll finished a few
#: seconds after its minute tick, so without slack a 1-minute interval would mean every other minute)
POLL_SLACK = timedelta(seconds=30)


def due_accounts() -> list[str]:
	"""Connected, enabled, not throttled accounts whose poll interval (Atlas Settings, minutes) has passed
	since they were last processed. UNAUTHORIZED and NOT CONNECTED accounts are never due; nothing is
	due while the workspace is Archived."""
	if not sync_allowed():
		return []
	interval = max(1, cint(get_settings().poll_interval_minutes) or 1)
	cutoff = now_datetime() - timedelta(minutes=interval) + POLL_SLACK
	rows = frappe.get_all(
		accounts.DOCTYPE,
		filters={"enabled": 1, "status": ["in", [accounts.SYNCING, accounts.ACTIVE]]},
		fields=["name", "last_processed_at", "throttle_until"],
	)
	now = now_datetime()
	return [
		r.name
		for r in rows
		if not (r.throttle_until and r.throttle_until > now)
		and not (r.last_processed_at and r.last_processed_at > cutoff)
	]


def enqueue_due_accounts() -> list[str]:
	"""Scheduler hook (every minute): hand the due accounts to poll sweeps (:func:`poll_accounts`), 200
	accounts per rq job. Polling is the fallback behind push: a missed push costs at most one interval.

	Returns:
		The accounts handed to a sweep.
	"""
	due = due_accounts()
	for start in range(0, len(due), POLL_CHUNK):
		chunk = due[start : start + POLL_CHUNK]
		frappe.enqueue("atlas_integrations.gmail.sync.poll_accounts", queue="long", timeout=1800,
					   job_id=f"atlas::gmail-poll::{chunk[0]}", deduplicate=True, enqueue_after_commit=True,
					   accounts=chunk)
	frappe.db.commit()
	return due


def poll_accounts(accounts: list[str]) -> dict[str, str]:
	"""Poll sweep (rq job): for each account, one ``history.list`` from its cursor (Gmail sync guide,
	"Partial synchronization"). No change: only ``last_processed_at`` and the cursor (to the newer
	historyId Gmail answered, so a quiet mailbox's cursor never expires) move — no Sync Job, one API call
	(plus the processing label of waiting messages, when due: see :func:`labels.processing_label_due`).
	Changes, messages not yet fetched (``pending_messages``) or no cursor yet: a Sync Job is queued
	(deduplicated per account) to apply them. A pending Gmail Modify job no rq job would pick up is handed to a worker again.
	One account's failure never stops the sweep: AuthRevoked marks it UNAUTHORIZED, a Temporary error
	throttles it. Each account is polled as its owner user (:func:`accounts.run_as_user`), the rest of the
	sweep as Administrator; the caller's session user is restored afterwards.

	Args:
		accounts: Gmail Account names.

	Returns:
		Account -> outcome (``idle``, ``labelled``, ``queued``, ``busy``, ``unauthorized``, ``throttled``,
		``error``).
	"""
	outcome: dict[str, str] = {}
	with jobs.run_as(jobs.FALLBACK_USER):
		debt = labels.processing_label_debt(accounts)
		for account in accounts:
			with jobs.run_as(accounts_mod.run_as_user(account)):
				outcome[account] = _poll_guarded(account, debt.get(account))
	return outcome


def _poll_guarded(account: str, label_debt: tuple | None) -> str:
	"""One account of a poll sweep, its failures turned into an outcome; commits."""
	try:
		outcome = _poll_one(account, label_debt)
	except AuthRevoked as exc:
		frappe.db.rollback()
		accounts_mod.mark_unauthorized(account, f"Gmail refused the stored authorization ({exc.reason or exc.status}); reconnect the account")
		outcome = "unauthorized"
	except Temporary as exc:
		frappe.db.rollback()
		seconds = exc.retry_after or 60
		frappe.db.set_value(accounts_mod.DOCTYPE, account, "throttle_until",
							now_datetime() + timedelta(seconds=seconds), update_modified=False)
		outcome = "throttled"
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title=f"Gmail poll failed for {account}",
						 message=jobs.scrub(traceback.format_exc(), accounts_mod.secrets_of(account)))
		outcome = "error"
	frappe.db.commit()
	return outcome


def _poll_one(account: str, label_debt: tuple | None = None) -> str:
	jobs.redispatch_pending(labels.JOB_TYPE, accounts_mod.DOCTYPE, account)  # a desk change nobody would write
	if jobs.open_job(JOB_TYPE, accounts_mod.DOCTYPE, account):
		enqueue_sync(account, trigger="scheduler")  # re-dispatches a pending job whose rq job was lost
		return "busy"
	history_id, label_id, pending = frappe.db.get_value(
		accounts_mod.DOCTYPE, account, ["history_id", "processing_label_id", "pending_messages"])
	if history_id and not cint(pending):  # messages not yet fetched: a run retries them
		client = accounts_mod.client_for(account)
		try:
			page = client.execute(client.service.users().history().list(
				userId="me", startHistoryId=history_id, maxResults=1,
				historyTypes=["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]), "history.list") or {}
		except Permanent as exc:
			if exc.status != 404:
				raise
			page = {"history": ["expired"]}  # the run will do the full resync
		outcome = "queued" if page.get("history") else "idle"
		newer = str(page.get("historyId") or "")
		if outcome == "idle" and newer.isdigit() and history_id.isdigit() and int(newer) > int(history_id):
			# no change since the cursor, but a newer historyId: keep the quiet mailbox's cursor fresh so it
			# does not drift into expiry (only if no run moved it meanwhile)
			frappe.db.sql(f"update `tab{accounts_mod.DOCTYPE}` set history_id=%s where name=%s and history_id=%s",
						  (newer, account, history_id))
		if outcome == "idle" and label_id and labels.processing_label_due(label_debt):
			labels.apply_processing_label(account, client, label_id)
			outcome = "labelled"
		if client.credentials.token:
			accounts_mod.save_access_token(account, client.credentials.token, client.credentials.expiry)
		if outcome != "queued":
			frappe.db.set_value(accounts_mod.DOCTYPE, account, "last_processed_at", now_datetime(),
								update_modified=False)
			return outcome
	enqueue_sync(account, trigger="scheduler")
	return "queued"


def run_sync_job(sync_job: str) -> None:
	"""rq entry point of the Gmail Sync job type: claim the Sync Job and run it, then run the account's
	pending follow-ups (queued while this one was processing; their rq job could not be queued while this
	one held the id), at most ``MAX_DRAIN`` runs.

	Runs as the account's owner user (:func:`accounts.run_as_user`: Gmail Account ``user``, else
	Administrator), recorded as the Sync Job's ``run_as``; the caller's session user is restored after.
	A job that is not pending (already claimed, or finished) or unknown is left alone, so a replayed rq
	job is a no-op. Never raises for a failed run (the Sync Job records the error).

	Args:
		sync_job: Sync Job name.
	"""
	account = frappe.db.get_value("Sync Job", sync_job, "reference_name")
	if not account:
		return
	if not _due_after_hand_over(account, sync_job):
		return
	with jobs.run_as(accounts.run_as_user(account)):
		for _ in range(MAX_DRAIN):
			if not jobs.claim(sync_job):
				return
			run = SyncRun(account, sync_job)
			run.execute()
			if run.handed_over:  # the worker goes to another mailbox; this job comes back (resume_later)
				return
			sync_job = jobs.next_pending(JOB_TYPE, accounts.DOCTYPE, account)
			if not sync_job:
				return


def resume_later(account: str, sync_job: str) -> None:
	"""Queue a run of ``sync_job`` (pending again after a hand-over) behind the rq jobs already waiting on
	its queue. The current run keeps its own rq job id until it returns, so each resume has an id of its own;
	a second resume of one job finds it claimed and does nothing (:func:`jobs.claim`)."""
	import uuid

	registration = jobs.get_job_type(JOB_TYPE)
	frappe.enqueue(registration.method, queue=registration.queue, timeout=registration.timeout,
				   job_id=jobs.rq_job_id(JOB_TYPE, f"{account}::resume::{uuid.uuid4().hex[:12]}"), sync_job=sync_job)


def _due_after_hand_over(account: str, sync_job: str) -> bool:
	"""Before a run of a job that handed its worker over: True when it should run now.

	While its quota is still spent (``next_retry_at`` ahead), it goes to the back of the queue again (False
	is returned) only when some other run can use the worker now: rq jobs wait on its queue and one of
	them is not itself a handed-over sync waiting for its quota (:func:`_other_syncs_due_in`). While every
	waiting run is such a sync, the worker sleeps until the first of them (or this one) is due, instead of
	passing the worker round between runs that cannot use it. With nobody waiting it sleeps until due (at
	most :data:`LOCK_WAIT` seconds in all) and runs.
	"""
	row = frappe.db.get_value("Sync Job", sync_job, ["status", "next_retry_at"], as_dict=True)
	if not row or row.status != jobs.PENDING or not row.next_retry_at:
		return True
	queue = jobs.get_job_type(JOB_TYPE).queue
	due_in = (row.next_retry_at - now_datetime()).total_seconds()
	slept = 0.0
	while due_in > 0 and slept < LOCK_WAIT:
		if not _others_waiting(queue):
			nap = min(due_in, LOCK_WAIT - slept)
		else:
			others_due_in = _other_syncs_due_in(sync_job)
			if others_due_in is None:  # other work waits: it gets the worker after a short pause (no spinning)
				time.sleep(min(due_in, 0.5))
				resume_later(account, sync_job)
				return False
			if others_due_in <= 0:  # another mailbox's sync can fetch now
				resume_later(account, sync_job)
				return False
			nap = min(due_in, others_due_in, LOCK_WAIT - slept)
		time.sleep(nap)
		slept += nap
		due_in -= nap
	return True


def _other_syncs_due_in(sync_job: str) -> float | None:
	"""Seconds until another pending Gmail Sync job can run: 0 when one is due now (a new run, or a
	handed-over one whose quota has room again), None when there is no other pending Gmail Sync job (the
	waiting rq jobs are other work, which can run now). Reads a fresh snapshot (rolls back)."""
	frappe.db.rollback()
	row = frappe.db.sql(
		"""select count(*), sum(next_retry_at is null or next_retry_at <= %(now)s), min(next_retry_at)
		from `tabSync Job` where job_type=%(type)s and status=%(pending)s and name != %(me)s""",
		{"now": now_datetime(), "type": JOB_TYPE, "pending": jobs.PENDING, "me": sync_job})[0]
	if not row[0]:
		return None
	if cint(row[1]):
		return 0.0
	return max(0.0, (row[2] - now_datetime()).total_seconds())


def _others_waiting(queue: str) -> bool:
	"""True when rq jobs wait for a worker on ``queue`` (a run that would only wait for its quota can give
	its worker to them)."""
	from frappe.utils.background_jobs import get_queue

	try:
		return get_queue(queue).count > 0
	except Exception:  # Redis unreachable: keep the worker and wait
		return False


def list_page_size() -> int:
	"""Messages per ``users.messages.list`` page: site config ``atlas_gmail_list_page_size``, within Gmail's
	1..500 (``maxResults``; the default is the maximum, 500)."""
	from atlas_integrations.endpoints import conf_number

	return max(1, min(LIST_PAGE_SIZE, int(conf_number("atlas_gmail_list_page_size", LIST_PAGE_SIZE))))


def lock_name(account: str) -> str:
	"""Redis key of the per-account run lock."""
	return f"{frappe.local.site}:atlas:gmail-sync:{account}"


def release_lock(account: str) -> bool:
	"""Free the account's run lock when the run holding it is dead (its Sync Job no longer processing:
	the reaper has just requeued or failed it); a live run's lock is left alone. The ``release`` hook of
	the Gmail Sync job type (see :func:`atlas_integrations.jobs.release_run_lock`).

	Args:
		account: Gmail Account name.

	Returns:
		True when a lock was freed.
	"""
	return jobs.release_run_lock(lock_name(account))


def give_up(sync_job: str) -> None:
	"""The ``on_give_up`` hook of the Gmail Sync job type: the ledger failed ``sync_job`` for good (its
	worker was lost too often); the account's health and last error record the failure. Does not commit.

	Args:
		sync_job: Sync Job name.
	"""
	row = frappe.db.get_value("Sync Job", sync_job, ["reference_name", "details"], as_dict=True)
	if row and row.reference_name and frappe.db.exists(accounts.DOCTYPE, row.reference_name):
		accounts.record_run(row.reference_name, False, error=row.details or "worker lost")


def _system_to_utc(value) -> datetime:
	"""A naive Frappe Datetime (system time zone) as aware UTC."""
	from zoneinfo import ZoneInfo

	from frappe.utils import get_datetime, get_system_timezone

	return get_datetime(value).replace(tzinfo=ZoneInfo(get_system_timezone())).astimezone(timezone.utc)


def _utc_to_system(value: datetime) -> datetime:
	"""Aware UTC as a naive datetime in the system time zone (how Frappe stores Datetime)."""
	from frappe.utils import convert_utc_to_system_timezone

	return convert_utc_to_system_timezone(value.replace(tzinfo=None)).replace(tzinfo=None)


def _first_error(errors: dict[str, str]) -> str:
	mid, text = next(iter(errors.items()))
	return f"{mid}: {text}"[:200]


def _pending_ids(value: str | None) -> list[str]:
	"""The Gmail message ids stored in a Gmail Account's ``pending_message_ids`` (JSON list; tolerant of
	an empty or unreadable value, which means none)."""
	try:
		ids = json.loads(value or "[]")
	except ValueError:
		return []
	return [str(x) for x in ids if isinstance(x, str) and x] if isinstance(ids, list) else []


class SyncRun:
	"""One run of one account, recorded on one Sync Job."""

	def __init__(self, account: str, sync_job: str):
		self.account = account
		self.sync_job = sync_job
		self.counts = {"listed": 0, "created": 0, "already_present": 0, "failed": 0, "skipped": 0, "api_calls": 0}
		self.parse_errors = 0
		self.attachments = 0
		self.errors: list[str] = []
		self.seconds: dict[str, float] = {}  # wall time per stage: fetch, parse, insert, attachments, threads
		self.client: GmailClient | None = None
		self.ctx: store.StoreContext | None = None
		self.mode = ""
		self.skipped: dict[str, str] = {}  # Gmail message id -> why the account's filters skipped it
		self.lock = None
		self.processing_label_id: str | None = None
		self.warning: str | None = None  # shown on the account after a run that otherwise succeeded
		#: Gmail message ids listed (or added in history) but not fetched and stored yet, in order; kept on
		#: the account (``pending_message_ids``) with every batch commit and retried first by the next run
		self.pending: dict[str, str] = {}  # id -> last error
		self.outcomes: dict[str, int] = {}  # Smart Inbox outcome -> messages
		self.pipeline_on = pipeline.enabled()
		self.gone: set[str] = set()  # ids Gmail answered 404 for (deleted meanwhile): not a failure
		#: progress (atlas_integrations.progress): messages handled of the estimated total. ``handled``
		#: counts every listed (or history-added, or retried) message the run is done with: stored, already
		#: present, skipped by the filters, failed or gone; ``base`` is the retried pending ids, which come
		#: on top of the listing's estimate; ``estimate`` the last total reported (None: not known yet)
		self.progress: Progress | None = None
		self.handled = 0
		self.base = 0
		self.estimate: int | None = None
		#: the run gave its worker up while the user's quota was spent (:meth:`_hand_over`)
		self.handed_over = False
		#: the counts of the job's earlier runs that handed their worker over (:meth:`_carry_over`): the Sync
		#: Job shows what the whole job did, not only this run
		self.carried: dict[str, int] = {}

	# -- lifecycle ------------------------------------------------------------------------------
	def execute(self) -> None:
		"""Run and close the Sync Job as succeeded or failed. Never raises (the job records the error)."""
		secrets: list[str] = []
		try:
			secrets = accounts.secrets_of(self.account)
			self._acquire_lock()
			frappe.db.rollback()  # a fresh snapshot: see everything the previous holder of the lock committed
			self.progress = Progress(self.sync_job)
			details = self._run()
			if self.pending:  # nothing is passed over silently: the run is not a success while any is missing
				self._finish(jobs.FAILED, error=self._pending_error(), details=details, secrets=secrets)
			else:
				self._finish(jobs.SUCCEEDED, details=details, secrets=secrets)
		except QuotaWait as exc:  # only an initial sync raises it, when another mailbox waits for a worker
			frappe.db.rollback()
			self._hand_over(exc.retry_after)
		except AuthRevoked as exc:
			frappe.db.rollback()
			message = f"Gmail refused the stored authorization ({exc.reason or exc.status}); reconnect the account"
			accounts.mark_unauthorized(self.account, message)
			self._finish(jobs.FAILED, error=message, secrets=secrets)
		except Temporary as exc:
			frappe.db.rollback()
			self._throttle(exc)
			self._finish(jobs.FAILED, error=f"{type(exc).__name__}: {exc}", secrets=secrets)
		except GmailError as exc:
			frappe.db.rollback()
			self._finish(jobs.FAILED, error=f"{type(exc).__name__}: {exc}", secrets=secrets)
		except Exception as exc:
			frappe.db.rollback()
			error = jobs.scrub(traceback.format_exc()[-1900:], secrets)  # the tail names where it failed
			frappe.log_error(title=f"Gmail sync failed for {self.account}", message=error,
							 reference_doctype=accounts.DOCTYPE, reference_name=self.account)
			self._finish(jobs.FAILED, error=f"{type(exc).__name__}: {jobs.scrub(str(exc), secrets)}", secrets=secrets)
		finally:
			self._release_lock()

	def _hand_over(self, wait: float) -> None:
		"""Give the worker up: the user's quota is spent for ``wait`` seconds and another mailbox's run waits
		for a worker. The job goes back to pending (no attempt used; everything stored so far is committed,
		and the first historyId and window are kept in its payload) and a resume is queued behind the runs
		already waiting, so the workers fetch for the mailboxes whose quota has room. Commits."""
		self.handed_over = True
		payload = self._payload()
		payload["hand_overs"] = int(payload.get("hand_overs") or 0) + 1
		payload["handled"] = self.handled
		frappe.db.set_value("Sync Job", self.sync_job, "payload", json.dumps(payload, sort_keys=True),
							update_modified=False)
		jobs.update_counts(self.sync_job, self._counts())
		jobs.defer(self.sync_job, f"gave its worker to another mailbox: Gmail's per-user quota is spent for "
								  f"{wait:.1f} s", retry_after=wait, count_attempt=False)
		resume_later(self.account, self.sync_job)

	def _allow_hand_over(self) -> None:
		"""Let the client give the worker up when the quota would make it wait (see :func:`_others_waiting`)."""
		from atlas_integrations.endpoints import conf_number

		seconds = conf_number("atlas_gmail_quota_hand_over_seconds", HAND_OVER_AFTER)
		if seconds > 0 and self.client is not None and self.client.quota is not None:
			queue = jobs.get_job_type(JOB_TYPE).queue
			self.client.hand_over_after = seconds
			self.client.hand_over = lambda _wait: _others_waiting(queue)

	def _payload(self) -> dict:
		return json.loads(frappe.db.get_value("Sync Job", self.sync_job, "payload") or "{}")

	def _carry_over(self, payload: dict) -> None:
		"""A run resuming after a hand-over goes on from the counts and progress its earlier runs recorded on
		the Sync Job (written by :meth:`_hand_over`)."""
		if not payload.get("hand_overs"):
			return
		row = frappe.db.get_value("Sync Job", self.sync_job, list(jobs.COUNT_FIELDS), as_dict=True) or {}
		self.carried = {k: cint(row.get(k)) for k in jobs.COUNT_FIELDS}
		self.handled = cint(payload.get("handled"))

	def _counts(self) -> dict[str, int]:
		"""The job's counts: this run's (API calls from its client) on top of :attr:`carried`."""
		mine = {**self.counts, "api_calls": self.client.api_calls if self.client else 0}
		return {k: self.carried.get(k, 0) + mine.get(k, 0) for k in jobs.COUNT_FIELDS}

	def _throttle(self, exc: Temporary) -> None:
		"""Google kept refusing (rate limit / 5xx) after every retry: stop polling this account until
		``throttle_until`` (Retry-After when given, else 1, 2, 4 … minutes by consecutive failures, at most
		1 hour). Other accounts are not affected."""
		failures = cint(frappe.db.get_value(accounts.DOCTYPE, self.account, "consecutive_failures"))
		seconds = exc.retry_after or min(3600, 60 * 2**failures)
		frappe.db.set_value(accounts.DOCTYPE, self.account, "throttle_until",
							now_datetime() + timedelta(seconds=seconds), update_modified=False)

	def _finish(self, status: str, error: str | None = None, details: str | None = None, secrets=()) -> None:
		if self.progress is not None:  # the final figures, committed (and announced) with the job's end
			self.progress.finish(status, done=self.handled)
		jobs.finish(self.sync_job, status, self._counts(), error=error, details=details, secrets=secrets)
		accounts.record_run(self.account, status == jobs.SUCCEEDED, error=jobs.scrub(error, secrets) if error else None)
		if self.warning and status == jobs.SUCCEEDED:
			frappe.db.set_value(accounts.DOCTYPE, self.account, "last_error", self.warning, update_modified=False)
		frappe.db.commit()

	def _acquire_lock(self) -> None:
		"""Take the account's run lock (waiting up to LOCK_WAIT seconds for a live holder); a heartbeat
		keeps it while this run lives."""
		self.lock = jobs.RunLock(lock_name(self.account), owner=self.sync_job, ttl=LOCK_TTL)
		if not self.lock.acquire(wait=LOCK_WAIT):
			self.lock = None
			raise GmailError("another run of this account held its lock for too long")

	def _extend_lock(self) -> None:
		# the second heartbeat, after every batch; a lost lock (taken after expiry) does not stop the run:
		# the unique key still prevents duplicates
		if self.lock is not None:
			self.lock.extend()

	def _release_lock(self) -> None:
		if self.lock is not None:
			self.lock.release()
			self.lock = None

	# -- the work -------------------------------------------------------------------------------
	def _run(self) -> str:
		account = frappe.get_doc(accounts.DOCTYPE, self.account)
		if not account.enabled or account.status in (accounts.NOT_CONNECTED, accounts.UNAUTHORIZED):
			raise GmailError(f"account is {account.status.lower()}{'' if account.enabled else ' and disabled'}")
		self.client = accounts.client_for(self.account)
		settings = get_settings()
		self.ctx = ctx = store.StoreContext(
			account=self.account,
			storage_mode=settings.body_storage_mode or store.FULL,
			max_attachment_bytes=max_attachment_bytes(),
			mail_filter=MailFilter.for_account(account),
		)
		ctx.label_names = json.loads(account.gmail_labels or "{}")
		self.processing_label_id = account.processing_label_id or None
		# an initial sync is long: its bar shows from the start; an incremental one only once it is big
		self.progress.announce = not account.history_id
		self._report(None, stage="Starting", force=True)
		frappe.db.commit()
		self.pending = dict.fromkeys(_pending_ids(account.pending_message_ids), "not fetched by an earlier run")
		retried = self._retry_pending()
		days = cint(account.backfill_days) or cint(settings.default_backfill_days) or DEFAULT_BACKFILL_DAYS
		if account.history_id:
			try:
				self._set_mode("incremental")
				details = self.incremental(account.history_id)
			except CursorExpired:
				frappe.db.rollback()
				self._set_mode("full resync")
				self.progress.announce = True  # the whole backfill window again: long
				details = ("historyId expired (Gmail answered 404): full resync of the backfill window; "
						   + self.full_sync(days, since=account.last_success_at, reconcile=True))
		else:
			self._set_mode("initial")
			frappe.db.set_value(accounts.DOCTYPE, self.account,
								{"status": accounts.SYNCING, "sync_stage": "Initial sync"}, update_modified=False)
			frappe.db.commit()
			ctx.backfill = True  # history: matched and triaged, no work created unless a rule says so
			details = self.full_sync(days)
			ctx.backfill = False
		frappe.db.set_value(accounts.DOCTYPE, self.account,
							{"status": accounts.ACTIVE, "sync_stage": "Incremental", "throttle_until": None},
							update_modified=False)
		self._ensure_watch()
		self._keep_access_token()
		frappe.db.commit()
		return (
			f"{details}; retried pending {retried}; gone (404) {len(self.gone)}"
			+ (f"; NOT FETCHED {len(self.pending)}: {', '.join(list(self.pending)[:20])}" if self.pending else "")
			+ (f"; outcomes " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) if self.outcomes else "")
			+ f"; skipped {len(self.skipped)}; parse errors {self.parse_errors}; attachments stored "
			f"{self.attachments}; seconds " + ", ".join(f"{k} {v:.1f}" for k, v in self.seconds.items())
			+ (f"; first errors: {' | '.join(self.errors[:3])}" if self.errors else "")
		)

	def _ensure_watch(self) -> None:
		"""Keep Gmail push notifications flowing (users.watch) when a Pub/Sub topic is configured. A failed
		watch does not fail the run: polling still covers the account."""
		from atlas_integrations.gmail import push

		try:
			push.ensure_watch(self.account, self.client)
		except AuthRevoked:
			raise
		except GmailError as exc:
			self.errors.append(f"users.watch: {exc}")

	def _set_mode(self, mode: str) -> None:
		self.mode = mode
		frappe.db.set_value("Sync Job", self.sync_job, "sync_mode", mode, update_modified=False)

	def _refresh_labels(self) -> None:
		"""Every Gmail label of the mailbox (system and user), kept on the account (id -> name)."""
		self.ctx.label_names = {label["id"]: label["name"] for label in self.client.list_labels()}
		frappe.db.set_value(accounts.DOCTYPE, self.account, "gmail_labels",
							json.dumps(self.ctx.label_names, sort_keys=True), update_modified=False)

	def _ensure_processing_label(self) -> None:
		"""Find or create the processing label (Atlas Settings, default "Atlas/Processed").

		On failure the run goes on without labelling and the account shows "Could not create the required
		processing label".
		"""
		name = (get_settings().processing_label or "").strip()
		if not name:
			return
		by_name = {v: k for k, v in self.ctx.label_names.items()}
		label_id = by_name.get(name)
		if not label_id:
			try:
				created = self.client.execute(
					self.client.service.users().labels().create(
						userId="me", body={"name": name, "labelListVisibility": "labelShow",
										   "messageListVisibility": "show"}),
					"labels.create",
				)
				label_id = created["id"]
				self.ctx.label_names[label_id] = name
				frappe.db.set_value(accounts.DOCTYPE, self.account, "gmail_labels",
									json.dumps(self.ctx.label_names, sort_keys=True), update_modified=False)
			except (Permanent, Temporary) as exc:
				self.warning = PROCESSING_LABEL_FAILED
				self.errors.append(f"labels.create: {exc}")
				label_id = None
		self.processing_label_id = label_id
		frappe.db.set_value(accounts.DOCTYPE, self.account, "processing_label_id", label_id, update_modified=False)

	def _label_processed(self, due_only: bool) -> None:
		"""Apply the processing label to the account's stored messages that wait for it (see
		:func:`labels.apply_processing_label`): all of them (backfill pages), or only when they are due
		(incremental runs: :func:`labels.processing_label_due`). Best effort: errors are noted on the job."""
		if not self.processing_label_id:
			return
		if due_only and not labels.processing_label_due(labels.processing_label_debt([self.account]).get(self.account)):
			return
		try:
			outcome = jobs.retry_deadlock(
				lambda: labels.apply_processing_label(self.account, self.client, self.processing_label_id))
		except frappe.QueryDeadlockError:  # still waiting: the next page (or run) labels them
			self.errors.append("processing label: the database was busy; labelled on the next page")
			return
		self.errors.extend(outcome["errors"])

	def full_sync(self, days: int, since: datetime | None = None, reconcile: bool = False) -> str:
		"""Gmail sync guide "Full synchronization": note the current historyId, then store the backfill
		window (``after:`` N days, received and sent, drafts excluded). The noted historyId becomes the
		cursor.

		Args:
			days: the backfill window in days.
			since: the account's last successful sync (naive, system time zone), or None. When it is
				older than the window, the window starts there instead (less a day of margin), so a
				mailbox unreachable for longer than its window leaves no hole.
			reconcile: a resync of an account that already has messages: stored messages of the window
				are brought up to date (unread state from Gmail; those Gmail no longer lists are flagged
				``atlas_deleted``).

		Returns:
			A summary for the Sync Job's details.
		"""
		resumed = {} if reconcile else self._payload()
		if not reconcile:  # an initial sync may give its worker up and come back: it keeps its first cursor
			self._allow_hand_over()
			self._carry_over(resumed)
		profile = self.client.get_profile()
		start_history_id = str(resumed.get("start_history_id") or profile.get("historyId") or "")
		# the first estimate: every message of the mailbox (users.getProfile messagesTotal); the listing
		# refines it page by page (see backfill)
		self._report(cint(profile.get("messagesTotal")), stage="Listing messages")
		self._refresh_labels()
		self._ensure_processing_label()
		start = datetime.now(timezone.utc) - timedelta(days=days)
		if since:
			last = _system_to_utc(since) - timedelta(days=1)
			if last < start:
				start = last
		after = int(resumed.get("after") or start.timestamp())
		if not reconcile and not resumed.get("start_history_id"):
			frappe.db.set_value("Sync Job", self.sync_job, "payload", json.dumps(
				{**resumed, "start_history_id": start_history_id, "after": after}, sort_keys=True), update_modified=False)
			frappe.db.commit()
		listed: set[str] = set()
		self.backfill(self.ctx, f"after:{after} -in:drafts", listed=listed, keep_place=not reconcile)
		reconciled = self._reconcile(after, listed) if reconcile else ""
		linked = store.link_replies(self.account)
		frappe.db.set_value(accounts.DOCTYPE, self.account, "history_id", start_history_id, update_modified=False)
		window_days = max(days, round((datetime.now(timezone.utc) - start).total_seconds() / 86400))
		return f"window {window_days} days; historyId {start_history_id}; replies linked {linked}{reconciled}"

	def _reconcile(self, after: int, listed: set[str]) -> str:
		"""After a resync listing: stored messages of the window (by message time, with two days of
		margin for Date headers ahead of Gmail's internalDate) that Gmail no longer lists are flagged
		deleted; the rest take Gmail's full labelIds (user labels, INBOX, STARRED, UNREAD ...), read with
		``users.messages.get`` ``format=minimal`` in batches. Messages with a desk change not yet written
		to Gmail are left alone (see store.update_labels); one whose labels cannot be read now keeps its
		stored labels and is counted in the summary (a later resync or history catches it up)."""
		cutoff = _utc_to_system(datetime.fromtimestamp(after, tz=timezone.utc) + timedelta(days=2))
		rows = frappe.get_all(
			"Communication",
			filters={"atlas_mailbox_type": store.MAILBOX_TYPE, "atlas_mailbox": self.account, "atlas_deleted": 0, "communication_date": [">=", cutoff]},
			fields=["atlas_provider_message_id as id", "atlas_tags"],
		)
		gone = sorted(r.id for r in rows if r.id not in listed and r.id not in self.pending)
		stored = {r.id: [x for x in (r.atlas_tags or "").split(",") if x] for r in rows if r.id in listed}
		current, failures = self._fetch_labels(list(stored))
		changes = {}
		for mid, have in stored.items():
			if mid in current and set(current[mid]) != set(have):
				changes[mid] = current[mid]
		touched = store.mark_deleted(self.account, gone)
		touched |= store.update_labels(self.account, changes)
		store.refresh_threads(self.account, touched, self.ctx.label_names)  # labels were listed at the start
		frappe.db.commit()
		unread = sum(1 for mid, want in changes.items() if ("UNREAD" in want) != ("UNREAD" in stored[mid]))
		unchecked = f", {len(failures)} not checked ({_first_error(failures)})" if failures else ""
		return (f"; reconciled: {len(gone)} flagged deleted, {len(changes)} label sets updated "
				f"({unread} read states){unchecked}")

	def _fetch_labels(self, ids: list[str]) -> tuple[dict[str, list[str]], dict[str, str]]:
		"""Current labelIds of stored messages (``format=minimal``, batched). Returns ``(labels by id,
		error text by id)``; a 404 means deleted since it was listed and is left to history."""
		if not ids:
			return {}, {}
		clock = time.perf_counter()
		try:
			messages, failures = self.client.get_messages(ids, fmt="minimal")
		finally:
			self._add_time("reconcile", time.perf_counter() - clock)
		current = {mid: list(m.get("labelIds") or []) for mid, m in messages.items()}
		errors = {mid: str(err) for mid, err in failures.items()
				  if not (isinstance(err, Permanent) and err.status == 404)}
		return current, errors

	def incremental(self, start_history_id: str) -> str:
		"""Gmail sync guide "Partial synchronization": replay history.list from the stored historyId.

		messageAdded -> fetched and stored (in batches); messageDeleted -> kept, flagged deleted (hidden);
		labelAdded/labelRemoved -> the message's labelIds and read state, and its thread's labels and
		unread flag. The cursor moves to the historyId Gmail returned only after all of it is committed.

		Raises:
			CursorExpired: Gmail no longer has history from ``start_history_id``.
		"""
		added: dict[str, dict] = {}
		deleted: set[str] = set()
		labels: dict[str, list[str]] = {}
		new_history_id = start_history_id
		for page in self.client.iter_history(
			start_history_id, ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"]
		):
			new_history_id = str(page.get("historyId") or new_history_id)
			for record in page.get("history", []):
				for item in record.get("messagesAdded", []):
					msg = item["message"]
					added[msg["id"]] = msg
					deleted.discard(msg["id"])
				for item in record.get("messagesDeleted", []):
					deleted.add(item["message"]["id"])
					added.pop(item["message"]["id"], None)
					labels.pop(item["message"]["id"], None)
				for kind in ("labelsAdded", "labelsRemoved"):
					for item in record.get(kind, []):
						msg = item["message"]
						if "labelIds" in msg:  # the message's labels after this change
							labels[msg["id"]] = msg["labelIds"]
						if (kind == "labelsRemoved" and "DRAFT" in (item.get("labelIds") or [])
								and "DRAFT" not in (msg.get("labelIds") or ["DRAFT"]) and msg["id"] not in deleted):
							added[msg["id"]] = msg  # a draft sent under its own id: it arrives now, as sent mail
		drafts = [mid for mid, msg in added.items() if "DRAFT" in (labels.get(mid) or msg.get("labelIds") or [])]
		for mid in drafts:  # drafts are not imported; a sent draft arrives as its own SENT message
			added.pop(mid)
			self.skipped[mid] = "draft"
		self.counts["skipped"] = len(self.skipped)
		unknown = {x for ids in labels.values() for x in ids} | {x for m in added.values() for x in m.get("labelIds", [])}
		if unknown - set(self.ctx.label_names):
			self._refresh_labels()
		self.counts["listed"] += len(added)
		present = store.existing_message_ids(self.account, list(added))
		self.counts["already_present"] += len(present)
		self.handled += len(present)
		todo = [mid for mid in added if mid not in present]
		big = len(todo) >= BIG_INCREMENTAL and not self.progress.announce if self.progress else False
		if big:  # minutes of fetching ahead (e.g. after an outage): the readers see a bar from now on
			self.progress.announce = True
		self._report(len(added), stage="Importing new messages", force=big)
		if todo and not self.processing_label_id:
			self._ensure_processing_label()
		for start in range(0, len(todo), BATCH_SIZE):
			self.store_batch(self.ctx, todo[start : start + BATCH_SIZE])
		touched = store.mark_deleted(self.account, sorted(deleted))
		touched |= store.update_labels(self.account, {m: l for m, l in labels.items() if m not in deleted})
		store.refresh_threads(self.account, touched, self.ctx.label_names)
		linked = store.link_replies(self.account) if todo else 0
		self._label_processed(due_only=True)
		frappe.db.commit()  # everything the new cursor covers is stored ...
		frappe.db.set_value(accounts.DOCTYPE, self.account, "history_id", new_history_id, update_modified=False)
		frappe.db.commit()  # ... before the cursor moves
		return (f"historyId {start_history_id} -> {new_history_id}; added {len(todo)}, deleted {len(deleted)}, "
				f"label changes {len(labels)}; replies linked {linked}")

	def backfill(self, ctx: store.StoreContext, query: str, listed: set[str] | None = None,
				 keep_place: bool = False) -> None:
		"""List ``query`` and store every message not yet stored; commits after each batch.

		Args:
			ctx: the run's store context.
			query: Gmail search query.
			listed: when given, every listed Gmail message id is added to it (a resumed listing adds only
				the pages it lists itself).
			keep_place: keep the listing's place in the Sync Job's payload (``list_query``, ``page_token``:
				the ``nextPageToken`` after the last page whose messages are all committed, ``listed_so_far``),
				committed with that page; a run of the same job and query (after a hand-over, or a worker
				lost) lists on from there instead of from the first page. A page token Gmail refuses (400)
				starts the listing over.
		"""
		seen, token = 0, None
		if keep_place:
			place = self._payload()
			if place.get("list_query") == query and place.get("page_token"):
				token, seen = str(place["page_token"]), cint(place.get("listed_so_far"))
		pages, from_start = self._pages_from(query, token)
		if from_start:
			seen = 0  # Gmail refused the kept token: everything is listed (and counted) again
		for page in pages:
			ids = [m["id"] for m in page.get("messages", [])]
			self.counts["listed"] += len(ids)
			seen += len(ids)
			if listed is not None:
				listed.update(ids)
			present = store.existing_message_ids(self.account, ids)
			self.counts["already_present"] += len(present)
			self.handled += len(present)
			# Gmail's resultSizeEstimate covers every page of the listing; after the last page the count is exact
			more = bool(page.get("nextPageToken"))
			self._report(max(cint(page.get("resultSizeEstimate")), seen) if more else seen,
						 stage="Importing messages")
			todo = [i for i in ids if i not in present]
			for start in range(0, len(todo), BATCH_SIZE):
				self.store_batch(ctx, todo[start : start + BATCH_SIZE])
			self._label_processed(due_only=False)
			jobs.update_counts(self.sync_job, self._counts())
			if keep_place:
				place = self._payload()
				place.update(list_query=query, page_token=page.get("nextPageToken"), listed_so_far=seen)
				frappe.db.set_value("Sync Job", self.sync_job, "payload", json.dumps(place, sort_keys=True),
									update_modified=False)
			frappe.db.commit()

	def _pages_from(self, query: str, token: str | None) -> tuple[Iterator[dict], bool]:
		"""The listing's pages from ``token`` (None: the first page), and whether they start at the first
		page. When Gmail refuses a kept token (400 "Invalid pageToken" on its first request), the listing
		starts over from the first page. The first page is requested now, the rest as they are iterated.

		Raises:
			Permanent: any other refusal of the first request (or a 400 without a kept token).
		"""
		size = list_page_size()
		pages = self.client.iter_message_pages(q=query, page_token=token, page_size=size)
		try:
			first = next(pages, None)
		except Permanent as exc:
			if not token or exc.status != 400:
				raise
			token = None
			pages = self.client.iter_message_pages(q=query, page_size=size)
			first = next(pages, None)
		return (itertools.chain([first], pages) if first is not None else iter(())), token is None

	def _fetch(self, ids: list[str]):
		clock = time.perf_counter()
		try:
			return self.client.get_messages(ids, fmt="raw")
		finally:
			self._add_time("fetch", time.perf_counter() - clock)

	def store_batch(self, ctx: store.StoreContext, ids: list[str], fetched=None) -> None:
		"""Store one batch (fetching it now unless ``fetched`` = ``(messages, failures)`` is given); one
		commit for the batch."""
		messages, failures = fetched if fetched is not None else self._fetch(ids)
		for mid, err in failures.items():
			if isinstance(err, Permanent) and err.status == 404:  # deleted since it was listed: not a failure
				self.gone.add(mid)
				self.pending.pop(mid, None)
				continue
			self.counts["failed"] += 1
			self.errors.append(f"{mid}: {err}")
			self.pending[mid] = str(err)
		batch = [messages[mid] for mid in ids if mid in messages]
		result = jobs.retry_deadlock(lambda: store.write_batch(ctx, batch))
		for mid in (*result.created, *result.already_present, *result.skipped):
			self.pending.pop(mid, None)
		for mid, err in result.failed.items():  # fetched but not stored (e.g. a row the database refused)
			self.counts["failed"] += 1
			self.errors.append(f"{mid}: {err}")
			self.pending[mid] = err
		self._save_pending()
		self.counts["created"] += len(result.created)
		self.counts["already_present"] += len(result.already_present)
		self.skipped.update(result.skipped)
		self.counts["skipped"] = len(self.skipped)
		self.parse_errors += result.parse_errors
		self.attachments += result.attachments_stored
		for stage, seconds in result.seconds.items():
			self._add_time(stage, seconds)
		self.handled += len(ids)  # each id is now stored, already present, skipped, failed or gone
		self._report()  # committed with the batch, announced when it commits
		clock = time.perf_counter()
		frappe.db.commit()
		self._add_time("commit", time.perf_counter() - clock)
		self._run_pipeline(result.created_names, result.created_rows)
		if result.created_names:
			# the Smart Inbox page refreshes its list (it reads the rows through the permission rules); the
			# event names the mailbox, so it goes to the mailbox's readers only
			from atlas_integrations.notify import publish_to_readers

			mailbox = (accounts.DOCTYPE, self.account)
			publish_to_readers("atlas_inbox_update", {"mailbox_type": mailbox[0], "mailbox": mailbox[1],
													  "created": len(result.created_names)}, mailbox)
		self._extend_lock()

	def _run_pipeline(self, names: list[str], rows: list[dict] | None = None) -> None:
		"""The Smart Inbox pipeline on the messages this batch committed (after the commit, in this
		worker), handed the rows the writer inserted (``rows``) so that it does not read them back. Its
		failure never fails the sync: the messages are marked ``failed`` with the error and "Process again"
		runs them anew."""
		if not names or not self.pipeline_on:
			return
		clock = time.perf_counter()
		try:
			result = jobs.retry_deadlock(lambda: pipeline.run(names, rows=rows))
			for outcome in result.outcomes.values():
				self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
		except Exception as exc:
			frappe.db.rollback()
			pipeline.mark_failed(names, exc)
			self.errors.append(f"pipeline: {type(exc).__name__}")
		finally:
			self._add_time("pipeline", time.perf_counter() - clock)

	def _retry_pending(self) -> int:
		"""Fetch and store, before anything else, the messages earlier runs could not fetch (the account's
		``pending_message_ids``). Those stored meanwhile leave the list; those that fail again stay.

		Returns:
			How many pending ids were tried.
		"""
		ids = list(self.pending)
		if not ids:
			return 0
		self.base = len(ids)  # on top of the listing's estimate
		present = store.existing_message_ids(self.account, ids)
		self.handled += len(present)
		self._report(0, stage="Retrying messages not fetched before")
		for mid in present:
			self.pending.pop(mid, None)
		todo = [mid for mid in ids if mid not in present]
		if todo and not self.processing_label_id:
			self._refresh_labels()
			self._ensure_processing_label()
		for start in range(0, len(todo), BATCH_SIZE):
			self.store_batch(self.ctx, todo[start : start + BATCH_SIZE])
		self._save_pending()
		frappe.db.commit()
		return len(ids)

	def _save_pending(self) -> None:
		"""Keep the not-yet-fetched ids on the account (in the current transaction: committed with the
		batch that produced them)."""
		frappe.db.set_value(accounts.DOCTYPE, self.account,
							{"pending_message_ids": json.dumps(list(self.pending)) if self.pending else None,
							 "pending_messages": len(self.pending)}, update_modified=False)

	def _pending_error(self) -> str:
		first = "; ".join(f"{mid}: {err}" for mid, err in list(self.pending.items())[:5])
		return (f"{len(self.pending)} Gmail message(s) could not be fetched and stay pending (retried first by "
				f"the next run): {first}")

	def _add_time(self, stage: str, seconds: float) -> None:
		self.seconds[stage] = self.seconds.get(stage, 0.0) + seconds

	def _report(self, estimate: int | None = None, stage: str | None = None, force: bool = False) -> None:
		"""Record the run's progress (:attr:`handled` of :attr:`base` + ``estimate`` messages) on the Sync
		Job, in the current transaction, and announce it to the mailbox's readers when it commits
		(throttled, ``force`` to send anyway; an incremental run only once it is big, see
		:data:`BIG_INCREMENTAL`; :mod:`atlas_integrations.progress`). ``estimate``: the listing's (or
		history's) count, None to keep the last total."""
		if self.progress is None:
			return
		if estimate is not None:
			self.estimate = self.base + max(0, int(estimate))
		self.progress.update(self.handled, self.estimate, stage=stage, force=force)

	def _keep_access_token(self) -> None:
		creds = self.client.credentials if self.client else None
		if creds and creds.token:
			accounts.save_access_token(self.account, creds.token, creds.expiry)


__all__ = ["enqueue_sync", "enqueue_due_accounts", "poll_accounts", "run_sync_job", "release_lock", "give_up",
		   "SyncRun"]
