"""Progress of long work, for every provider: figures on the Sync Job row and a throttled realtime event.

A long run (a Gmail initial sync of 50,000 messages takes ~17 minutes at Gmail's quota; pushing existing
invoices to Xero, erasing a mailbox, rebuilding the matching index) reports, after each committed batch,
how much of the estimated total it has done. :class:`Progress` turns that into:

* the Sync Job's ``progress_done``, ``progress_total``, ``rate_per_minute``, ``eta_seconds`` and
  ``progress_stage``, written with one ``frappe.db.set_value`` (no document save) in the caller's
  transaction, so they are committed with the batch they describe (a reload of a form mid-run shows them);
  an unknown total, rate or time left is stored as 0 (:func:`current` reads them back as None);
* the realtime event :data:`EVENT`, sent when that transaction commits, at most once every
  :func:`interval` seconds per Sync Job (shared by every worker through Redis), always for the final
  figures. The message (every value is data, never markup)::

	{"sync_job": str, "job_type": str, "reference_doctype": str, "reference_name": str, "title": str,
	 "done": int, "total": int | None, "rate_per_minute": float | None, "eta_seconds": int | None,
	 "stage": str, "status": "processing" | "succeeded" | "failed"}

  ``title`` is the reference's title (e.g. the mailbox's name). ``total`` is None while nothing is known;
  ``rate_per_minute`` is ``done`` per minute since the job started (None before anything is done);
  ``eta_seconds`` is the time left at that rate (None without a total or a rate; 0 when done).

Who gets the event: a job type registers its audience (``progress_audience`` of
:class:`atlas_integrations.jobs.JobType`). ``readers``: the job works on a mailbox (a Gmail Account or an
Inbound Route) and every user who may read that mailbox gets it, through
:func:`atlas_integrations.notify.publish_to_readers`. ``admins`` (the default): Atlas Owners / Admins and
System Managers; when the job's reference is a mailbox, only those of them who may read it (the same
helper), since the event names the mailbox. Each user gets it in their own room (``user:<name>``), never
the whole site.

Provider-neutral: this module imports no provider package.
"""

from __future__ import annotations

from typing import Any

import frappe
from frappe.utils import cint, flt, now_datetime, time_diff_in_seconds

#: the realtime event name (``frappe.realtime.on("atlas_progress", ...)`` in the desk)
EVENT = "atlas_progress"
#: seconds between two events of one Sync Job (site config ``atlas_progress_interval`` overrides, > 0)
DEFAULT_INTERVAL = 1.5
#: who sees a job type's progress (``JobType.progress_audience``)
READERS, ADMINS = "readers", "admins"
#: Sync Job columns the figures are stored in
FIELDS = ("progress_done", "progress_total", "rate_per_minute", "eta_seconds", "progress_stage")


def interval() -> float:
	"""Seconds between two progress events of one Sync Job: site config ``atlas_progress_interval`` (a
	number > 0), else :data:`DEFAULT_INTERVAL`."""
	from atlas_integrations.endpoints import conf_number

	return conf_number("atlas_progress_interval", DEFAULT_INTERVAL)


def figures(done: int, total: int | None, elapsed_seconds: float) -> dict[str, Any]:
	"""The rate and time left of ``done`` items out of ``total`` after ``elapsed_seconds`` (pure).

	Args:
		done: items done so far (>= 0).
		total: the estimated total, or None / 0 when unknown; a total below ``done`` is raised to ``done``.
		elapsed_seconds: seconds since the work started.

	Returns:
		``{"done": int, "total": int | None, "rate_per_minute": float | None, "eta_seconds": int | None}``:
		``rate_per_minute`` = ``done`` / minutes elapsed, rounded to 0.1 (None when nothing is done or no
		time passed); ``eta_seconds`` = (total - done) / rate, rounded up to whole seconds (None without a
		total or a rate; 0 when ``done`` reached ``total``).
	"""
	done = max(0, cint(done))
	total = max(cint(total), done) if total else None
	elapsed = max(0.0, flt(elapsed_seconds))
	rate = round(done * 60.0 / elapsed, 1) if done and elapsed > 0 else None
	if total is not None and done >= total:
		eta = 0
	elif total is not None and rate:
		eta = int(-(-(total - done) * 60.0 // rate))  # ceil
	else:
		eta = None
	return {"done": done, "total": total, "rate_per_minute": rate, "eta_seconds": eta}


def should_send(sync_job: str, every: float | None = None) -> bool:
	"""True at most once every ``every`` seconds (default :func:`interval`) per Sync Job, across every
	worker: a Redis key set only if absent, expiring after ``every`` seconds. A Redis failure says True
	(a progress event too many is better than none)."""
	every = interval() if every is None else every
	try:
		key = frappe.cache.make_key(f"atlas:progress:{sync_job}")
		return bool(frappe.cache.set(key, 1, nx=True, px=max(1, int(every * 1000))))
	except Exception:
		return True


class Progress:
	"""The progress reporter of one Sync Job run.

	Args:
		sync_job: the Sync Job (its ``started_at`` is when the rate is counted from; now when unset).

	Raises:
		frappe.DoesNotExistError: no such Sync Job.

	Use :meth:`update` after each committed batch (in the batch's transaction, before its commit) and
	:meth:`finish` when the run ends (in the transaction that closes the job, or followed by a commit).
	"""

	def __init__(self, sync_job: str):
		row = frappe.db.get_value("Sync Job", sync_job, ["job_type", "reference_doctype", "reference_name",
														  "started_at", "progress_stage"], as_dict=True)
		if not row:
			from atlas_integrations import messages

			messages.throw("{0} {1} not found", frappe._("Sync Job"), sync_job, exc=frappe.DoesNotExistError)
		self.sync_job = sync_job
		self.job_type = row.job_type
		self.reference_doctype = row.reference_doctype or ""
		self.reference_name = row.reference_name or ""
		self.started_at = row.started_at or now_datetime()
		self.stage = row.progress_stage or ""
		self.total: int | None = None
		self.done = 0
		self._title: str | None = None
		#: False: figures are recorded on the Sync Job but no event is sent (e.g. a small incremental sync,
		#: done in a moment: a bar would only flash); set True when the run turns out long
		self.announce = True

	# -- reporting ------------------------------------------------------------------------------------------
	def update(self, done: int, total: int | None = None, stage: str | None = None, force: bool = False,
			   status: str = "processing") -> dict[str, Any]:
		"""Record ``done`` of ``total`` on the Sync Job row (no commit: the caller's batch commits it) and
		send the event when that transaction commits, unless one went out less than :func:`interval`
		seconds ago (``force`` sends anyway).

		Args:
			done: items done so far in this run (messages handled, invoices finished, rows written ...).
			total: the estimated total; None keeps the last one given.
			stage: what the run is doing, in English (shown translated, e.g. "Importing messages"); None
				keeps the last one.
			force: send the event even within the interval (the final figures).
			status: the job's status for the event (``processing``, ``succeeded``, ``failed``).

		Returns:
			The event's message (whether it was sent, throttled, or not announced: :attr:`announce`).
		"""
		if total is not None:
			self.total = cint(total)
		if stage is not None:
			self.stage = stage
		self.done = max(0, cint(done))
		elapsed = time_diff_in_seconds(now_datetime(), self.started_at)
		numbers = figures(self.done, self.total, elapsed)
		frappe.db.set_value("Sync Job", self.sync_job, {
			"progress_done": numbers["done"], "progress_total": numbers["total"] or 0,
			"rate_per_minute": numbers["rate_per_minute"] or 0, "eta_seconds": numbers["eta_seconds"] or 0,
			"progress_stage": (self.stage or "")[:140]}, update_modified=True)
		message = {"sync_job": self.sync_job, "job_type": self.job_type,
				   "reference_doctype": self.reference_doctype, "reference_name": self.reference_name,
				   "title": self.title(), **numbers, "stage": self.stage, "status": status}
		# a forced event starts the interval too, so the next one waits its turn
		if self.announce and (should_send(self.sync_job) or force):
			publish(message, self.job_type, self.reference_doctype, self.reference_name, after_commit=True)
		return message

	def finish(self, status: str, done: int | None = None, total: int | None = None,
			   stage: str | None = None) -> dict[str, Any]:
		"""The final figures (always sent): ``done`` (default: the last), ``total`` (default: ``done`` for a
		succeeded run, the last estimate otherwise), ``status`` ``succeeded`` or ``failed``. Does not
		commit (the event goes out with the commit)."""
		done = self.done if done is None else done
		if total is None:
			total = done if status == "succeeded" else self.total
		return self.update(done, total, stage=stage, force=True, status=status)

	def title(self) -> str:
		"""The reference's title (its doctype's title field, else its name): what the desk shows."""
		if self._title is None:
			title = self.reference_name
			if self.reference_doctype and self.reference_name:
				try:
					field = frappe.get_meta(self.reference_doctype).get_title_field()
					if field and field != "name":
						title = frappe.db.get_value(self.reference_doctype, self.reference_name, field) or title
				except Exception:  # a reference doctype that is gone: its name will do
					pass
			self._title = str(title or "")
		return self._title


def run_tracked(sync_job: str, work) -> None:
	"""The rq body of an admin action that reports its progress (erase a mailbox, rebuild the matching
	index): as Administrator (a defined system user), claim ``sync_job`` (nothing happens when another
	worker has it), run ``work(progress, payload)`` with its :class:`Progress` and its JSON payload (a dict),
	and close the job with the final figures.

	Args:
		sync_job: the Sync Job.
		work: ``(Progress, dict) -> (counts, details)``: the Sync Job's counts (e.g. ``{"listed": 3}``) and
			its details text. It commits as it goes (each chunk with its progress).

	Raises:
		Whatever ``work`` raised, after the rollback, the failed figures and the failed job were recorded.
	"""
	import json

	from atlas_integrations import jobs

	if not frappe.db.exists("Sync Job", sync_job):
		return
	payload = json.loads(frappe.db.get_value("Sync Job", sync_job, "payload") or "{}")
	with jobs.run_as(None):
		if not jobs.claim(sync_job):
			return
		progress = Progress(sync_job)
		try:
			counts, details = work(progress, payload)
		except Exception as exc:
			frappe.db.rollback()
			progress.finish(jobs.FAILED)
			jobs.finish(sync_job, jobs.FAILED, error=f"{type(exc).__name__}: {exc}")
			raise
		progress.finish(jobs.SUCCEEDED, stage="Done")
		jobs.finish(sync_job, jobs.SUCCEEDED, counts=counts, details=details)


# -- who sees it ---------------------------------------------------------------------------------------------
def audience_of(job_type: str) -> str:
	"""The registered audience of a job type's progress (:data:`READERS` or :data:`ADMINS`); ADMINS for an
	unknown type."""
	from atlas_integrations import jobs

	try:
		return jobs.get_job_type(job_type).progress_audience
	except Exception:
		return ADMINS


def mailbox_of(reference_doctype: str, reference_name: str):
	"""The mailbox a reference is, ``(doctype, name)`` as :func:`atlas_integrations.permissions.mailbox_readers`
	takes it, when ``reference_doctype`` is a registered mailbox type; else None."""
	from atlas_integrations.inbox import mailboxes

	if reference_name and mailboxes.is_mailbox_doctype(reference_doctype):
		return (reference_doctype, reference_name)
	return None


def publish(message: dict, job_type: str, reference_doctype: str, reference_name: str,
			after_commit: bool = True) -> list[str]:
	"""Send the progress ``message`` to the job's audience (see the module docstring), one room per user.
	Returns the users it went to."""
	from atlas_integrations import notify

	mailbox = mailbox_of(reference_doctype, reference_name)
	admins_only = audience_of(job_type) != READERS
	if mailbox is not None:
		return notify.publish_to_readers(EVENT, message, mailbox, after_commit=after_commit, admins_only=admins_only)
	return notify.publish_to_admins(EVENT, message, after_commit=after_commit)


def may_see(row, user: str | None = None) -> bool:
	"""True when ``user`` (default: the session user) gets the progress of the Sync Job ``row`` (a dict
	with ``job_type``, ``reference_doctype``, ``reference_name``): the same rule as :func:`publish`."""
	from atlas_integrations.permissions import can_read_mailbox, is_admin

	user = user or frappe.session.user
	mailbox = mailbox_of(row.get("reference_doctype"), row.get("reference_name"))
	admin = is_admin(user)
	if mailbox is not None:
		return can_read_mailbox(mailbox, user) and (admin or audience_of(row.get("job_type")) == READERS)
	return admin


def current(reference_doctype: str, reference_name: str, user: str | None = None) -> list[dict]:
	"""The open (pending or processing) Sync Jobs of a reference with their last recorded figures, those
	``user`` may see (:func:`may_see`), oldest first: what a form shows on load before the next event.

	Returns:
		``[{"sync_job", "job_type", "reference_doctype", "reference_name", "status", "done", "total",
		"rate_per_minute", "eta_seconds", "stage", "as_of"}]`` (``as_of``: when the figures were written,
		system time zone); ``total`` None when no estimate was recorded yet.
	"""
	from atlas_integrations import jobs

	rows = frappe.get_all("Sync Job", filters={"reference_doctype": reference_doctype,
											   "reference_name": reference_name, "status": ["in", jobs.OPEN_STATES]},
						  fields=["name", "job_type", "reference_doctype", "reference_name", "status", *FIELDS,
								  "modified"], order_by="creation asc", limit=20)
	return [_row_message(r) for r in rows if may_see(r, user)]


def active(reference_doctypes: list[str] | tuple[str, ...], user: str | None = None, limit: int = 50) -> list[dict]:
	"""The processing Sync Jobs on references of ``reference_doctypes`` that ``user`` may see, with their
	last figures (same shape as :func:`current`), oldest first; at most ``limit``."""
	from atlas_integrations import jobs

	if not reference_doctypes:
		return []
	rows = frappe.get_all("Sync Job", filters={"reference_doctype": ["in", list(reference_doctypes)],
											   "status": jobs.PROCESSING},
						  fields=["name", "job_type", "reference_doctype", "reference_name", "status", *FIELDS,
								  "modified"], order_by="creation asc", limit=max(1, min(cint(limit), 200)))
	return [_row_message(r) for r in rows if may_see(r, user)]


def _row_message(r) -> dict:
	# stored as 0 when unknown: a total of 0 is no estimate; a time left needs a total and a rate
	done, total, rate = cint(r.progress_done), cint(r.progress_total) or None, flt(r.rate_per_minute) or None
	eta = 0 if total is not None and done >= total else (cint(r.eta_seconds) if total and rate else None)
	return {"sync_job": r.name, "job_type": r.job_type, "reference_doctype": r.reference_doctype,
			"reference_name": r.reference_name, "status": r.status, "done": done, "total": total,
			"rate_per_minute": rate, "eta_seconds": eta, "stage": r.progress_stage or "", "as_of": r.modified}


__all__ = ["EVENT", "Progress", "figures", "interval", "should_send", "publish", "may_see", "current", "active", "run_tracked"]
