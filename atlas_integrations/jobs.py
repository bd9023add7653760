"""Sync Job: the durable ledger of sync work (pending -> processing -> succeeded | failed), for every provider.

One row per unit of work with its payload (never secrets), attempts, counts and last error. A failed job
keeps its payload and can be retried; a processing job whose worker died is moved back to pending by
:func:`reap_stale_jobs` (or failed, once it has died ``max_attempts`` times).

Job types are registered by their provider app, never named here: each app lists its registrations in
the ``atlas_job_types`` hook (``hooks.py``: ``atlas_job_types = ["<app>.<provider>.jobs.JOB_TYPES"]``),
read with ``frappe.get_hooks``; see :class:`JobType` for what a registration gives. This module imports
no provider package.

Also here, because every provider's runs need them: :func:`run_as` (a worker run executes as a defined
user) and :class:`RunLock` (a Redis lock kept alive by a heartbeat while its holder works).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import frappe
from frappe import _
from frappe.utils import add_to_date, now_datetime, time_diff_in_seconds

from atlas_integrations import messages
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.redact import scrub

PENDING, PROCESSING, SUCCEEDED, FAILED = "pending", "processing", "succeeded", "failed"
OPEN_STATES = (PENDING, PROCESSING)
#: a processing job older than this (seconds) has lost its worker
STALE_AFTER = 2 * 60 * 60
COUNT_FIELDS = ("listed", "created", "already_present", "failed", "skipped", "api_calls")
#: the hook every provider app registers its job types in
HOOK = "atlas_job_types"
#: one-at-a-time keys: one rq job per reference (e.g. per account) or one per Sync Job
PER_REFERENCE, PER_JOB = "reference", "job"
#: a job whose worker was lost this many times is failed instead of requeued (unless its type says otherwise)
DEFAULT_MAX_ATTEMPTS = 3
#: the user a worker run executes as when the work has no owner user of its own
FALLBACK_USER = "Administrator"
GAVE_UP = "worker lost {attempts} times; not retried automatically"
#: exponential backoff of a job that failed for a passing reason (see :func:`defer`): seconds
BACKOFF_BASE, BACKOFF_CAP = 30, 60 * 60
#: a pending job with no rq job this long after it was queued (or due) is dispatched again by the scheduler
UNDISPATCHED_AFTER = 2 * 60
REQUEUED = "worker lost; requeued"
#: who may get a job type's progress (see :class:`JobType` and :mod:`atlas_integrations.progress`)
PROGRESS_AUDIENCES = ("readers", "admins")


def key_problems(entry: dict, cls, required: set[str]) -> str:
	"""What is wrong with the keys of a hook registration ``entry`` (a dict) for the dataclass ``cls``:
	``"unknown keys [...]; missing keys [...]"`` (sorted), or "" when nothing is. Shared by the registries
	of job types and of mailbox types (:mod:`atlas_integrations.inbox.mailboxes`)."""
	unknown = sorted(set(entry) - {f.name for f in fields(cls)})
	missing = sorted(set(required) - set(entry))
	return "; ".join(([f"unknown keys {unknown}"] if unknown else []) + ([f"missing keys {missing}"] if missing else []))


class UnknownJobType(frappe.ValidationError):
	"""No installed app registers this job type (hook ``atlas_job_types``)."""


class InvalidJobType(frappe.ValidationError):
	"""A registration in the ``atlas_job_types`` hook is malformed or registers a name twice."""


# -- the registry ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobType:
	"""One registered Sync Job type.

	Attributes:
		name: the Sync Job ``job_type`` (e.g. ``"Gmail Sync"``); unique across apps.
		method: dotted path of the rq entry point, called as ``method(sync_job=<Sync Job name>)``.
		queue: rq queue (``"short"``, ``"default"``, ``"long"``).
		timeout: rq job timeout in seconds (> 0).
		one_at_a_time: ``"reference"`` (one rq job per referenced record: a second dispatch while one is
			queued or running is dropped, so the entry point must drain the reference's pending jobs) or
			``"job"`` (one rq job per Sync Job).
		release: dotted path called as ``release(<reference name>)`` after the reaper found a run dead,
			to free what it held (e.g. a lock); None when a run holds nothing.
		on_give_up: dotted path called as ``on_give_up(<Sync Job name>)`` after the reaper failed a job
			for good (its worker was lost ``max_attempts`` times), e.g. to undo "change pending" flags;
			None for nothing.
		max_attempts: worker losses after which the reaper fails the job instead of requeueing it (>= 1).
		progress_audience: who gets the job's progress (:mod:`atlas_integrations.progress`): ``"readers"``
			(the job works on a mailbox; every user who may read it) or ``"admins"`` (Atlas Owners/Admins
			and System Managers; of a mailbox, those who may read it).
	"""

	name: str
	method: str
	queue: str
	timeout: int
	one_at_a_time: str = PER_REFERENCE
	release: str | None = None
	on_give_up: str | None = None
	max_attempts: int = DEFAULT_MAX_ATTEMPTS
	progress_audience: str = "admins"

	@classmethod
	def from_registration(cls, entry: dict | JobType, source: str = "") -> JobType:
		"""A validated :class:`JobType` from one hook entry.

		Args:
			entry: a ``JobType``, or a dict with its attribute names as keys (``name``, ``method``,
				``queue``, ``timeout`` required).
			source: where the entry came from (the hook's dotted path), for error messages.

		Returns:
			The job type.

		Raises:
			InvalidJobType: unknown or missing keys, or a value of the wrong kind.
		"""
		where = f" (registered in {source})" if source else ""
		if isinstance(entry, cls):
			job_type = entry
		elif isinstance(entry, dict):
			problems = key_problems(entry, cls, {"name", "method", "queue", "timeout"})
			if problems:
				raise InvalidJobType(f"Job type registration {entry.get('name')!r}{where}: {problems}")
			job_type = cls(**entry)
		else:
			raise InvalidJobType(f"Job type registration{where} is not a dict: {entry!r}")
		problems = []
		if not isinstance(job_type.name, str) or not job_type.name.strip():
			problems.append("name must be a non-empty string")
		for attr in ("method", "release", "on_give_up"):
			value = getattr(job_type, attr)
			if value is None and attr != "method":
				continue
			if not isinstance(value, str) or "." not in value or not all(p.isidentifier() for p in value.split(".")):
				problems.append(f"{attr} must be a dotted path, got {value!r}")
		if not isinstance(job_type.queue, str) or not job_type.queue:
			problems.append("queue must be an rq queue name")
		if not isinstance(job_type.timeout, int) or isinstance(job_type.timeout, bool) or job_type.timeout <= 0:
			problems.append(f"timeout must be a positive number of seconds, got {job_type.timeout!r}")
		if job_type.one_at_a_time not in (PER_REFERENCE, PER_JOB):
			problems.append(f"one_at_a_time must be {PER_REFERENCE!r} or {PER_JOB!r}, got {job_type.one_at_a_time!r}")
		if (not isinstance(job_type.max_attempts, int) or isinstance(job_type.max_attempts, bool)
				or job_type.max_attempts < 1):
			problems.append(f"max_attempts must be an integer >= 1, got {job_type.max_attempts!r}")
		if job_type.progress_audience not in PROGRESS_AUDIENCES:
			problems.append(f"progress_audience must be one of {PROGRESS_AUDIENCES}, got {job_type.progress_audience!r}")
		if problems:
			raise InvalidJobType(f"Job type registration {job_type.name!r}{where}: " + "; ".join(problems))
		return job_type


def job_types() -> dict[str, JobType]:
	"""Every registered job type, by name, from the ``atlas_job_types`` hook of every installed app.

	Each hook value is the dotted path of a list of registrations (dicts or :class:`JobType`), or of a
	function returning one.

	Returns:
		``{job type name: JobType}``.

	Raises:
		InvalidJobType: a malformed registration, or a name registered twice.
	"""
	registry: dict[str, JobType] = {}
	for path in frappe.get_hooks(HOOK) or []:
		entries = frappe.get_attr(path)
		if callable(entries):
			entries = entries()
		for entry in entries or []:
			job_type = JobType.from_registration(entry, source=path)
			if job_type.name in registry:
				raise InvalidJobType(f"Job type {job_type.name!r} is registered twice (again in {path})")
			registry[job_type.name] = job_type
	return registry


def get_job_type(name: str) -> JobType:
	"""The registration of job type ``name``.

	Raises:
		UnknownJobType: no installed app registers it.
	"""
	registry = job_types()
	if name not in registry:
		known = ", ".join(sorted(registry)) or "none"
		messages.throw("Unknown Sync Job type '{0}': no installed app registers it in the '{1}' hook (registered: {2})",
					   name, HOOK, known, exc=UnknownJobType, title="Sync Job")
	return registry[name]


# -- the ledger --------------------------------------------------------------------------------------------
def create(job_type: str, reference_doctype: str, reference_name: str, payload: dict | None = None,
		   trigger: str = "manual", parent_job: str | None = None,
		   company: str | None = None) -> frappe.model.document.Document:
	"""Insert a pending Sync Job.

	Args:
		job_type: a registered job type (see :func:`job_types`), e.g. ``Gmail Sync``.
		reference_doctype, reference_name: what it works on (e.g. the Gmail Account).
		payload: JSON-serialisable description of the work; must not contain secrets. Provider-specific
			figures belong here (or in ``details``), not in new ledger fields.
		trigger: who started it (``manual``, ``scheduler``, ``connect``, ``retry``, ``desk``, ``push``).
		parent_job: the Sync Job this one is a part of (e.g. one invoice of "push existing invoices"),
			whose progress counts its parts (:func:`part_counts`).
		company: the Company the work is for (indexed: a provider's queue per Company reads by it);
			default ``payload["company"]`` when the payload names one.

	Returns:
		The inserted Sync Job document (not committed).

	Raises:
		UnknownJobType: ``job_type`` is not registered.
	"""
	registration = get_job_type(job_type)
	doc = frappe.get_doc(
		{
			"doctype": "Sync Job",
			"job_type": job_type,
			"reference_doctype": reference_doctype,
			"reference_name": reference_name,
			"reference_title": reference_title(reference_doctype, reference_name),
			"status": PENDING,
			"trigger": trigger,
			"max_attempts": registration.max_attempts,
			"payload": json.dumps(payload or {}, sort_keys=True, default=str),
			"parent_job": parent_job,
			"company": company or _payload_company(payload) or None,
		}
	)
	doc.dont_update_if_missing = ["company"]  # no user default Company: only work for a Company names one
	doc.flags.ignore_links = True  # the ledger records work as asked, also for a Company since deleted
	return doc.insert(ignore_permissions=True)


def _payload_company(payload: dict | None) -> str | None:
	"""``payload["company"]`` when it is a name (a string), else None."""
	value = (payload or {}).get("company")
	return value if isinstance(value, str) and value else None


def part_counts(parent_job: str) -> dict[str, int]:
	"""How many Sync Jobs are parts of ``parent_job`` (``parent_job`` set on them), by status: ``{"pending",
	"processing", "succeeded", "failed", "total"}`` (one indexed query)."""
	counts = dict.fromkeys((PENDING, PROCESSING, SUCCEEDED, FAILED), 0)
	for status, n in frappe.db.sql("select status, count(*) from `tabSync Job` where parent_job=%s group by status",
								   parent_job):
		counts[status] = counts.get(status, 0) + int(n)
	counts["total"] = sum(counts[s] for s in (PENDING, PROCESSING, SUCCEEDED, FAILED))
	return counts


#: the longest ``reference_title`` kept (the field's length)
TITLE_LENGTH = 140


def reference_title(reference_doctype: str | None, reference_name: str | None) -> str:
	"""What a person recognises a Sync Job's reference by: its document's title, read through the reference
	doctype's meta (``title_field``), never by naming a provider's doctype. A Gmail Account's title is its
	account name (the connected address unless someone named it), a Company's its name.

	Frappe shows a title instead of the name where the name says nothing (``autoname`` hash, e.g. a
	mailbox named ``qq58nri8jp``) or where the doctype asks for it (``show_title_field_in_link``); elsewhere
	a document is known by its name (a Sales Invoice ``ACC-SINV-2026-00001``), so the title follows it
	("ACC-SINV-2026-00001: Acme Ltd"). The stored title is copied as it is stored (Frappe's own text of
	that field), at most :data:`TITLE_LENGTH` characters.

	Returns:
		The title; the name when the document has no title (or no longer exists); ``""`` without a reference.
	"""
	if not reference_doctype or not reference_name:
		return ""
	name = str(reference_name)
	try:
		meta = frappe.get_meta(reference_doctype)
	except frappe.DoesNotExistError:
		return name[:TITLE_LENGTH]
	field = meta.get_title_field()
	title = ""
	if field and field != "name" and not meta.issingle:
		title = str(frappe.db.get_value(reference_doctype, name, field) or "").strip()
	if not title or title == name:
		text = name
	elif meta.autoname == "hash" or meta.show_title_field_in_link:
		text = title
	else:
		text = f"{name}: {title}"
	return text[:TITLE_LENGTH]


def open_job(job_type: str, reference_doctype: str, reference_name: str) -> str | None:
	"""Name of the oldest pending or processing Sync Job of that type for the reference, or None."""
	return frappe.db.get_value(
		"Sync Job",
		{"job_type": job_type, "reference_doctype": reference_doctype, "reference_name": reference_name,
		 "status": ["in", OPEN_STATES]},
		"name",
		order_by="creation asc",
	)


def next_pending(job_type: str, reference_doctype: str, reference_name: str) -> str | None:
	"""Name of the oldest pending Sync Job of that type for the reference (creation order), or None."""
	return frappe.db.get_value(
		"Sync Job",
		{"job_type": job_type, "reference_doctype": reference_doctype, "reference_name": reference_name,
		 "status": PENDING},
		"name",
		order_by="creation asc",
	)


def claim(name: str) -> bool:
	"""Atomically move a job from pending to processing (commits). Returns False if it was not pending.

	Two workers handed the same job cannot both claim it: the UPDATE's WHERE clause decides. Counts one
	more attempt and records the session user as ``run_as`` (call it inside :func:`run_as`); the progress
	figures of an earlier attempt are cleared (:mod:`atlas_integrations.progress`).
	"""
	now = now_datetime()
	frappe.db.sql(
		"""update `tabSync Job` set status=%s, started_at=%s, finished_at=null, attempts=attempts+1,
		run_as=%s, modified=%s, progress_done=0, progress_total=0, rate_per_minute=0, eta_seconds=0,
		progress_stage=null where name=%s and status=%s""",
		(PROCESSING, now, frappe.session.user, now, name, PENDING),
	)
	claimed = frappe.db._cursor.rowcount == 1
	frappe.db.commit()
	return claimed


def update_counts(name: str, counts: dict[str, int], details: str | None = None) -> None:
	"""Write progress counts (``listed``, ``created``, ``already_present``, ``failed``, ``skipped``,
	``api_calls``); other keys are ignored. ``details`` is cut to 1,000 characters. Does not commit."""
	values: dict[str, Any] = {k: int(v) for k, v in counts.items() if k in COUNT_FIELDS}
	if details is not None:
		values["details"] = mail_text(details[:1000])
	if values:
		frappe.db.set_value("Sync Job", name, values, update_modified=True)


def finish(name: str, status: str, counts: dict[str, int] | None = None, error: str | None = None,
		   details: str | None = None, secrets: list | tuple = (), result_ids: list[str] | None = None) -> None:
	"""Close a job as ``succeeded`` or ``failed`` (commits); ``duration`` is seconds since ``started_at``.

	Args:
		counts: final counts (see :func:`update_counts`).
		error: the last error; scrubbed of ``secrets`` and token-shaped text before it is stored.
		details: free text (at most 1,000 characters kept).
		result_ids: the provider ids the job produced (e.g. a Xero InvoiceID), kept in ``result_ids``.
	"""
	job = frappe.db.get_value("Sync Job", name, ["started_at"], as_dict=True) or {}
	now = now_datetime()
	values: dict[str, Any] = {"status": status, "finished_at": now, "next_retry_at": None}
	if result_ids:
		values["result_ids"] = mail_text(", ".join(str(i) for i in result_ids)[:1000])
	if job.get("started_at"):
		values["duration"] = max(0.0, time_diff_in_seconds(now, job["started_at"]))
	# provider text (Gmail's or Xero's messages) is kept as HTML text, the one convention of inbox/text.py
	values["last_error"] = mail_text(scrub(error, secrets)) if error else None
	if details is not None:
		values["details"] = mail_text(details[:1000])
	frappe.db.set_value("Sync Job", name, values, update_modified=True)
	if counts:
		update_counts(name, counts)
	frappe.db.commit()


def backoff_seconds(attempts: int, base: int = BACKOFF_BASE, cap: int = BACKOFF_CAP) -> int:
	"""Seconds to wait before attempt ``attempts + 1``: ``base * 2**(attempts - 1)``, at most ``cap``
	(30 s, 60 s, 120 s, ... one hour)."""
	return int(min(cap, base * 2 ** max(int(attempts or 1) - 1, 0)))


def defer(name: str, error: str, retry_after: float | None = None, count_attempt: bool = True,
		  secrets: list | tuple = ()) -> str:
	"""A claimed job failed for a passing reason (timeout, 5xx, rate limit, paused connection): back to
	pending until ``next_retry_at``, or failed for good once it used its ``max_attempts`` (commits).

	Args:
		name: the Sync Job (processing).
		error: why; scrubbed like :func:`finish`'s and kept in ``last_error``.
		retry_after: seconds to wait (e.g. Xero's ``Retry-After``); default :func:`backoff_seconds` of the
			attempts so far.
		count_attempt: False when the job never got to run (rate limited, connection paused): the attempt
			it was claimed with is given back, so waiting never fails a job.

	Returns:
		The job's new status (``pending`` or ``failed``).
	"""
	row = frappe.db.get_value("Sync Job", name, ["attempts", "max_attempts", "job_type"], as_dict=True)
	attempts = int(row.attempts or 0) - (0 if count_attempt else 1)
	cap = row.max_attempts or get_job_type(row.job_type).max_attempts
	if count_attempt and attempts >= cap:
		finish(name, FAILED, error=f"gave up after {attempts} attempts: {error}", secrets=secrets)
		return FAILED
	wait = backoff_seconds(attempts) if retry_after is None else max(float(retry_after), 1.0)
	frappe.db.set_value("Sync Job", name, {
		"status": PENDING, "attempts": max(attempts, 0), "finished_at": None,
		"next_retry_at": add_to_date(now_datetime(), seconds=wait),
		"last_error": mail_text(scrub(error, secrets))}, update_modified=True)
	frappe.db.commit()
	return PENDING


DEADLOCK_ATTEMPTS = 4


def retry_deadlock(fn, attempts: int = DEADLOCK_ATTEMPTS, sleep=time.sleep):
	"""``fn()``, run again after a rollback when MariaDB chose its transaction as a deadlock victim (error
	1213: "try restarting transaction"), at most ``attempts`` times in all, with a jittered pause of
	0.1–0.4 s × the attempt. ``fn`` must be safe to run again from the start of its transaction (the mail
	writers are: unique keys, INSERT IGNORE). Returns what ``fn`` returns.

	Raises:
		frappe.QueryDeadlockError: still a victim after ``attempts``; anything else ``fn`` raises, at once.
	"""
	import random

	for attempt in range(1, attempts + 1):
		try:
			return fn()
		except frappe.QueryDeadlockError:
			frappe.db.rollback()
			if attempt == attempts:
				raise
			sleep(random.uniform(0.1, 0.4) * attempt)


def due_condition() -> tuple[str, tuple]:
	"""SQL condition (and its parameters) selecting pending jobs whose ``next_retry_at`` has come."""
	return "(next_retry_at is null or next_retry_at <= %s)", (now_datetime(),)


def dispatch_due() -> list[str]:
	"""Scheduler hook (every minute): dispatch pending jobs that are due and have no rq job queued or
	running: deferred jobs whose ``next_retry_at`` passed, and jobs whose after-commit dispatch was lost
	(older than :data:`UNDISPATCHED_AFTER` seconds). Returns the Sync Jobs dispatched."""
	cutoff = add_to_date(now_datetime(), seconds=-UNDISPATCHED_AFTER)
	rows = frappe.db.sql(
		"""select name, job_type, reference_name from `tabSync Job` where status=%s
		and ((next_retry_at is not null and next_retry_at <= %s) or (next_retry_at is null and modified <= %s))
		order by creation limit 500""", (PENDING, now_datetime(), cutoff), as_dict=True)
	registry, sent, seen = job_types(), [], set()
	for row in rows:
		if row.job_type not in registry:
			continue
		job_id = rq_job_id_of(row.job_type, row.name, row.reference_name)
		if job_id in seen or rq_job_active(job_id):
			continue
		seen.add(job_id)
		dispatch(row.job_type, row.name, row.reference_name)
		sent.append(row.name)
	frappe.db.commit()
	return sent


def retry(name: str) -> str:
	"""Put a failed job back to pending and enqueue it again. Returns the job name.

	The job gets a fresh allowance of worker losses (``max_attempts`` raised to its attempts so far plus
	its type's ``max_attempts``).

	Raises:
		frappe.ValidationError: the job is not failed.
		UnknownJobType: its job type is no longer registered.
	"""
	doc = frappe.get_doc("Sync Job", name)
	if doc.status != FAILED:
		messages.throw("Only failed jobs can be retried (this one is {0})", _(doc.status))
	registration = get_job_type(doc.job_type)
	frappe.db.set_value("Sync Job", name, {"status": PENDING, "trigger": "retry", "next_retry_at": None,
										   "max_attempts": (doc.attempts or 0) + registration.max_attempts})
	dispatch(doc.job_type, name, doc.reference_name)
	return name


def rq_job_id(job_type: str, key: str) -> str:
	"""The rq job id, and dedupe key (``frappe.enqueue(job_id=..., deduplicate=True)``), of a job type's
	rq job for ``key``: the reference name, or the Sync Job name for ``one_at_a_time="job"`` types."""
	return f"atlas::{job_type}::{key}"


def rq_job_id_of(job_type: str, sync_job: str, reference_name: str) -> str:
	"""The rq job id :func:`dispatch` uses for ``sync_job`` (by the type's one-at-a-time key).

	Raises:
		UnknownJobType: ``job_type`` is not registered.
	"""
	registration = get_job_type(job_type)
	return rq_job_id(job_type, reference_name if registration.one_at_a_time == PER_REFERENCE else sync_job)


def dispatch(job_type: str, sync_job: str, reference_name: str) -> None:
	"""Enqueue the registered entry point for ``sync_job`` after the current transaction commits.

	For ``one_at_a_time="reference"`` types the rq job is deduplicated per reference: while an rq job of
	the same type and reference is queued or started, no second one is queued (the pending Sync Job is
	then picked up by that run: runs drain their reference's pending jobs).

	Raises:
		UnknownJobType: ``job_type`` is not registered.
	"""
	registration = get_job_type(job_type)
	job_id = rq_job_id_of(job_type, sync_job, reference_name)
	frappe.db.set_value("Sync Job", sync_job, "rq_job_id", job_id, update_modified=False)
	frappe.enqueue(
		registration.method,
		queue=registration.queue,
		timeout=registration.timeout,
		job_id=job_id,
		deduplicate=True,
		enqueue_after_commit=True,
		sync_job=sync_job,
	)


def rq_job_active(job_id: str) -> bool:
	"""True when the rq job ``job_id`` (as given to :func:`dispatch`) is queued or started."""
	from frappe.utils.background_jobs import get_job
	from rq.job import JobStatus

	job = get_job(job_id)
	return bool(job and job.get_status() in (JobStatus.QUEUED, JobStatus.STARTED))


def redispatch_pending(job_type: str, reference_doctype: str, reference_name: str) -> str | None:
	"""Hand the reference's oldest pending job of that type to a worker again when no rq job would pick
	it up (its dispatch was deduplicated away, or its rq job was lost). Safe to call often.

	Returns:
		The Sync Job dispatched, or None (nothing pending, or its rq job is queued or running).

	Raises:
		UnknownJobType: ``job_type`` is not registered.
	"""
	pending = next_pending(job_type, reference_doctype, reference_name)
	if not pending or rq_job_active(rq_job_id_of(job_type, pending, reference_name)):
		return None
	dispatch(job_type, pending, reference_name)
	return pending


def enqueue_once(job_type: str, reference_doctype: str, reference_name: str, payload: dict | None = None,
				 trigger: str = "manual", follow_up: bool = True) -> dict:
	"""Queue a run of ``job_type`` for the reference unless one is already pending (or processing and no
	``follow_up`` is wanted): two clicks make one job. Serialises concurrent callers on the reference's row
	(``select … for update``). A pending job whose rq job was lost is handed to a worker again.

	Args:
		payload, trigger: as :func:`create`.
		follow_up: while a run is processing, queue a pending follow-up (a change it may have passed
			already); False: the processing run is enough (a scheduler poll, which comes again).

	Returns:
		``{"sync_job": name, "created": bool, "status": "pending"|"processing"}``.

	Raises:
		UnknownJobType: ``job_type`` is not registered.
	"""
	frappe.db.get_value(reference_doctype, reference_name, "name", for_update=True)
	existing = open_job(job_type, reference_doctype, reference_name)
	pending = next_pending(job_type, reference_doctype, reference_name)
	if pending:
		if not rq_job_active(rq_job_id_of(job_type, pending, reference_name)):
			dispatch(job_type, pending, reference_name)
		return {"sync_job": pending, "created": False, "status": PENDING}
	if existing and not follow_up:
		return {"sync_job": existing, "created": False, "status": PROCESSING}
	job = create(job_type, reference_doctype, reference_name, payload=payload, trigger=trigger)
	dispatch(job_type, job.name, reference_name)
	return {"sync_job": job.name, "created": True, "status": PENDING}


# -- who a worker run is -----------------------------------------------------------------------------------
def resolve_run_as(user: str | None) -> str:
	"""The user a worker run executes as: ``user`` when it is an enabled User other than Guest, else
	``Administrator`` (never Guest, never whoever queued the run)."""
	if user and user != "Guest" and (
		user == FALLBACK_USER or frappe.db.get_value("User", {"name": user, "enabled": 1}, "name")
	):
		return user
	return FALLBACK_USER


@contextmanager
def run_as(user: str | None) -> Iterator[str]:
	"""Execute the block as ``user`` (resolved by :func:`resolve_run_as`) with ``frappe.set_user``; the
	previous session user (and ``form_dict``) are restored afterwards.

	Yields:
		The user the block runs as.
	"""
	resolved = resolve_run_as(user)
	session = getattr(frappe.local, "session", None)
	previous = session.get("user") if session else None
	saved = (session.get("sid"), session.get("data"), getattr(frappe.local, "form_dict", None)) if session else None
	if previous != resolved:
		frappe.set_user(resolved)
	try:
		yield resolved
	finally:
		if previous and frappe.session.user != previous:
			frappe.set_user(previous)
			frappe.local.session.sid, frappe.local.session.data, form_dict = saved
			if form_dict is not None:
				frappe.local.form_dict = form_dict


# -- one run at a time -------------------------------------------------------------------------------------
#: seconds a run lock lives without a heartbeat: a dead run's lock frees this soon
RUN_LOCK_TTL = 30
#: separates the holder's Sync Job name from the random part of a lock token
TOKEN_SEP = "|"


class RunLock:
	"""A Redis lock held by one run (one Sync Job) and kept alive by a heartbeat while that run lives.

	``acquire`` starts a daemon thread that extends the lock to ``ttl`` seconds every ``ttl / 3`` seconds;
	:meth:`extend` does the same at once (call it after every page of work as a second heartbeat). When
	the holder dies (SIGKILL, OOM) the heartbeat dies with it and the lock expires within ``ttl``
	seconds, so another run takes it only from a dead run. The token names the holding Sync Job, so
	:func:`release_run_lock` frees a lock only when its holder is no longer processing.

	Args:
		key: the Redis key (used as is, not site-prefixed: put the site in it).
		owner: the Sync Job name of the holder.
		ttl: seconds the lock lives without a heartbeat (>= 3).

	Attributes:
		lost: True once a heartbeat found the lock no longer ours (expired and taken, or force-released).
	"""

	def __init__(self, key: str, owner: str, ttl: int = RUN_LOCK_TTL):
		self.key = key
		self.owner = owner
		self.ttl = max(3, int(ttl))
		self.token = f"{owner}{TOKEN_SEP}{uuid.uuid4().hex}"
		self.lost = False
		self._lock = frappe.cache.lock(key, timeout=self.ttl, thread_local=False)
		self._stop = threading.Event()
		self._thread: threading.Thread | None = None

	def acquire(self, wait: float) -> bool:
		"""Wait up to ``wait`` seconds for the lock; on success start the heartbeat. Returns True when held."""
		if not self._lock.acquire(blocking=True, blocking_timeout=wait, token=self.token):
			return False
		self._stop.clear()
		self._thread = threading.Thread(target=self._beat, name=f"heartbeat {self.key}", daemon=True)
		self._thread.start()
		return True

	def _beat(self) -> None:
		interval = self.ttl / 3
		while not self._stop.wait(interval):
			if not self.extend():
				return

	def extend(self) -> bool:
		"""Extend the lock to ``ttl`` seconds from now. Returns False (and sets :attr:`lost`) when it is
		no longer ours; a Redis hiccup counts as still held (the next beat tries again)."""
		from redis.exceptions import LockError

		if self.lost or self._lock.local.token is None:
			return False
		try:
			self._lock.reacquire()
			return True
		except LockError:
			self.lost = True
			return False
		except Exception:
			return True

	def release(self) -> None:
		"""Stop the heartbeat and free the lock if it is still ours. Never raises."""
		self._stop.set()
		if self._thread is not None and self._thread is not threading.current_thread():
			self._thread.join(timeout=5)
		self._thread = None
		try:
			if self._lock.local.token is not None:
				self._lock.release()
		except Exception:  # expired or taken: nothing of ours to free
			pass

	def __enter__(self) -> RunLock:
		return self

	def __exit__(self, *exc) -> None:
		self.release()


def lock_holder(key: str) -> str | None:
	"""The Sync Job name recorded in the run lock ``key``, "" for a lock of unknown holder, None when the
	key is free."""
	raw = frappe.cache.get(key)
	if raw is None:
		return None
	token = raw.decode() if isinstance(raw, bytes) else str(raw)
	owner, sep, _holder_rest = token.partition(TOKEN_SEP)
	return owner if sep else ""


def release_run_lock(key: str) -> bool:
	"""Free the run lock ``key`` when its holder is dead: its Sync Job is no longer processing (the
	reaper has just requeued or failed it), or the lock names no holder. A lock of a processing job is
	left alone (a live run keeps it alive; a dead one's expires within :data:`RUN_LOCK_TTL` seconds).

	Returns:
		True when a lock was freed.
	"""
	raw = frappe.cache.get(key)
	if raw is None:
		return False
	holder = lock_holder(key)
	if holder and frappe.db.get_value("Sync Job", holder, "status") == PROCESSING:
		return False
	lock = frappe.cache.lock(key, thread_local=False)
	lock.local.token = raw  # compare-and-delete: only the token just read
	try:
		lock.release()
		return True
	except Exception:
		return False


# -- the reaper --------------------------------------------------------------------------------------------
def reap_stale_jobs(stale_after: int = STALE_AFTER) -> list[str]:
	"""Requeue processing jobs whose worker is gone, or fail them once it was lost too often.

	Hourly scheduler hook; runs as Administrator. A running job touches its Sync Job (counts) after every
	page of work, so a processing job not modified for ``stale_after`` seconds has lost its worker
	(SIGKILL, OOM, deploy). For each such job, by its registration (:class:`JobType`):

	* attempts below ``max_attempts``: back to pending (details "worker lost; requeued"), ``release``
	  called with the reference name, the dead rq job deleted, and the job dispatched again (the writes of
	  a run are idempotent, so nothing is lost or duplicated);
	* attempts at ``max_attempts`` or more: failed with "worker lost N times; not retried automatically",
	  ``release`` and ``on_give_up`` called; it can still be retried by hand (:func:`retry`);
	* an unregistered job type: failed with the reason (nothing could run it).

	Args:
		stale_after: seconds without a change after which a processing job counts as dead.

	Commits per job; a job whose provider hook raises is left as it was (the error goes to the Error Log)
	and the others are reaped.

	Returns:
		Names of the jobs reaped (requeued or failed), oldest first.
	"""
	with run_as(FALLBACK_USER):
		cutoff = add_to_date(now_datetime(), seconds=-stale_after)
		stale = frappe.get_all(
			"Sync Job",
			filters={"status": PROCESSING, "modified": ["<=", cutoff]},
			fields=["name", "job_type", "reference_name", "attempts", "max_attempts"],
			order_by="creation asc",
		)
		registry = job_types()
		reaped = []
		for row in stale:
			try:
				_reap(row, registry.get(row.job_type))
				frappe.db.commit()
				reaped.append(row.name)
			except Exception:  # one job's provider hook failing must not stop the reaper
				frappe.db.rollback()
				frappe.log_error(title=f"Sync Job reaper failed for {row.name}",
								 message=scrub(frappe.get_traceback()), reference_doctype="Sync Job",
								 reference_name=row.name)
				frappe.db.commit()
		return reaped


def _reap(row, registration: JobType | None) -> None:
	"""Requeue or fail one stale processing job (see :func:`reap_stale_jobs`); does not commit."""
	if registration is None:
		reason = f"job type {row.job_type!r} is not registered (hook {HOOK!r}); not retried automatically"
		finish(row.name, FAILED, error=reason, details=reason)
		return
	cap = row.max_attempts or registration.max_attempts
	if (row.attempts or 0) >= cap:
		reason = GAVE_UP.format(attempts=row.attempts)
		frappe.db.set_value("Sync Job", row.name, {"status": FAILED, "details": reason})
		_call(registration.release, row.reference_name)
		_call(registration.on_give_up, row.name)
		finish(row.name, FAILED, error=reason, details=reason)
		return
	frappe.db.set_value("Sync Job", row.name, {"status": PENDING, "details": REQUEUED})
	_call(registration.release, row.reference_name)
	from frappe.utils.background_jobs import get_job

	dead = get_job(rq_job_id_of(row.job_type, row.name, row.reference_name))
	if dead is not None:  # rq still calls it "started": its worker died without telling rq
		dead.delete()
	dispatch(row.job_type, row.name, row.reference_name)


def _call(path: str | None, *args) -> None:
	if path:
		frappe.get_attr(path)(*args)


__all__ = [
	"JobType", "UnknownJobType", "InvalidJobType", "RunLock", "job_types", "get_job_type", "create", "part_counts", "claim",
	"finish", "defer", "backoff_seconds", "dispatch_due", "retry", "dispatch", "redispatch_pending", "run_as", "reap_stale_jobs", "release_run_lock", "scrub",
]
