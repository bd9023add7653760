"""Whitelisted endpoints of long work's progress (:mod:`atlas_integrations.progress`): the last recorded
figures of a reference's open Sync Jobs (a form shows them on load, before the next realtime event), the
running jobs of the mailboxes a user may read (the Smart Inbox's bar), and the admin action that rebuilds
the matching index."""

from __future__ import annotations

import json

import frappe

from atlas_integrations import progress

#: reference doctypes :func:`active` answers for besides the registered mailbox types (Xero Connections, the
#: matching index)
OTHER_ACTIVE_DOCTYPES = ("Xero Connection", "DocType")


def _active_doctypes() -> list[str]:
	from atlas_integrations.inbox import mailboxes

	return [*mailboxes.doctypes(), *OTHER_ACTIVE_DOCTYPES]


@frappe.whitelist(methods=["GET", "POST"])
def current(doctype: str, name: str) -> list[dict]:
	"""The open (pending or processing) Sync Jobs of ``doctype`` ``name`` with their last figures, those
	the caller may see: the reference must be readable by them, and the job's progress audience must
	include them (:func:`atlas_integrations.progress.may_see`).

	Returns:
		``[{"sync_job", "job_type", "reference_doctype", "reference_name", "status", "done", "total",
		"rate_per_minute", "eta_seconds", "stage", "as_of"}]`` (see
		:func:`atlas_integrations.progress.current`); ``[]`` for a document that does not exist or that the
		caller may not read (the same answer: it says nothing about other users' records).
	"""
	if not isinstance(doctype, str) or not isinstance(name, str) or not doctype or not name:
		return []
	# an unknown doctype is answered before Frappe is asked about it: its "DocType … not found" would stay in
	# the response's messages, echoing the argument, even with the exception caught
	if not frappe.db.exists("DocType", doctype):
		return []
	shown = len(frappe.local.message_log)
	try:
		if not frappe.db.exists(doctype, name) or not frappe.has_permission(doctype, "read", doc=name):
			return []
	except Exception:  # a record its own rules refuse to load: nothing of what they said goes back
		del frappe.local.message_log[shown:]
		return []
	return progress.current(doctype, name)


@frappe.whitelist(methods=["GET", "POST"])
def active(reference_doctypes: str | list | None = None) -> list[dict]:
	"""The processing Sync Jobs (with their last figures) on references of ``reference_doctypes`` (JSON
	list or list; default: mailboxes) that the caller may see (:func:`atlas_integrations.progress.may_see`):
	a dispatcher gets the syncs of the mailboxes they may read, an admin every mailbox's and Xero's too.

	Returns:
		As :func:`current`, oldest first, at most 50.
	"""
	if isinstance(reference_doctypes, str):
		try:
			reference_doctypes = json.loads(reference_doctypes)
		except ValueError:
			reference_doctypes = [reference_doctypes]
	from atlas_integrations.inbox import mailboxes

	wanted = [d for d in (reference_doctypes or mailboxes.doctypes()) if d in _active_doctypes()]
	return progress.active(wanted)


@frappe.whitelist(methods=["POST"])
def rebuild_match_index() -> dict:
	"""Queue a rebuild of the Smart Inbox's matching index (Inbox Address) as a "Match Index Rebuild" Sync
	Job (Atlas Owner/Admin; one at a time: an open one is returned). Its progress goes to the admins.

	Returns:
		``{"sync_job": str}``.

	Raises:
		frappe.PermissionError: "Only admins can rebuild the matching index".
		frappe.ValidationError: "Workspace changes are temporarily unavailable".
	"""
	from atlas_integrations.inbox import match
	from atlas_integrations.permissions import is_admin
	from atlas_integrations.settings import require_active_workspace

	if not is_admin():
		frappe.throw(frappe._("Only admins can rebuild the matching index"), frappe.PermissionError)
	require_active_workspace()
	return {"sync_job": match.request_rebuild()}
