"""Whitelisted Inbox endpoints (``/api/method/atlas_integrations.api.inbox.<name>``)."""

from __future__ import annotations

import json

import frappe

from atlas_integrations import messages
from atlas_integrations.inbox import mailboxes
from atlas_integrations.settings import require_active_workspace


def _names(value) -> list[str]:
	if not value:
		return []
	if isinstance(value, str):
		value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
	return [str(v).strip() for v in value]


@frappe.whitelist(methods=["POST"])
def set_labels(thread: str, add: list[str] | str | None = None, remove: list[str] | str | None = None) -> dict:
	"""Add/remove tags (Gmail labels) on a thread; shown in the desk at once, written back to the provider by
	a queued job (the mailbox type's ``modify_tags`` entry point, :mod:`atlas_integrations.inbox.mailboxes`).

	Args:
		thread: Inbox Thread name.
		add, remove: tag names or ids (JSON list or comma-separated), e.g. ``["STARRED", "Customers"]``.

	Returns:
		``{"sync_job": str | None, "messages": int}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread.
		frappe.ValidationError: unknown label; "Workspace changes are temporarily unavailable"; the thread's
			mailbox type keeps no tags (:class:`atlas_integrations.inbox.mailboxes.NotSupported`).
	"""
	require_active_workspace()
	modify = _entry_of_thread(thread, "modify_tags")
	return modify(thread, add=_names(add), remove=_names(remove))


def _entry_of_thread(thread: str, entry: str):
	"""The entry point ``entry`` of the type of ``thread``'s mailbox, after a read check.

	Raises:
		frappe.PermissionError: the user cannot read the thread.
		frappe.DoesNotExistError: no such thread.
		atlas_integrations.inbox.mailboxes.NotSupported: no mailbox, or its type has no such entry point.
	"""
	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("read")
	return mailboxes.get(mailboxes.of_thread_doc(doc)[0]).entry(entry)


@frappe.whitelist(methods=["POST"])
def mark_read(thread: str, read: int | str = 1) -> dict:
	"""Mark a thread read (``read=1``) or unread (``read=0``) in the desk and at the provider (the mailbox
	type's ``mark_read`` entry point).

	Returns:
		``{"sync_job": str | None, "messages": int}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread.
		frappe.ValidationError: "Workspace changes are temporarily unavailable".
	"""
	require_active_workspace()
	return _entry_of_thread(thread, "mark_read")(thread, read=str(read) not in ("0", "false", "False"))


@frappe.whitelist(methods=["GET", "POST"])
def open_thread(thread: str, show_images: int | str = 0) -> dict:
	"""Open a thread in the desk: bodies not stored yet (storage mode ``snippet only``) are fetched from the
	provider first (the mailbox type's ``hydrate_thread`` entry point), then the messages are returned for
	the sandboxed reader.

	Args:
		thread: Inbox Thread name.
		show_images: 1 to enable the bodies' remote images (off by default: no tracking pixel fires).

	Returns:
		``{"thread": str, "doc": {Inbox Thread fields as REST gives them}, "source": str, "hydrated": int,
		"messages": [...]}``; ``source`` is the label of the thread's mailbox type as users read it (``"Gmail"``,
		``"Inbound route"``; untranslated, "" when the thread names no mailbox),
		each message as described in
		:func:`atlas_integrations.inbox.reader.thread_messages` (text values are the exact decoded text;
		``html`` is nh3-sanitized, for a sandboxed iframe).

	Raises:
		frappe.PermissionError: the user cannot read the thread.
		frappe.DoesNotExistError: no such thread (the name shown as text).
	"""
	from atlas_integrations.inbox import reader

	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("read")
	hydrated = 0
	mailbox = mailboxes.of_thread_row(doc)
	mailbox_type = mailboxes.get(mailbox[0]) if mailbox else None
	if mailbox_type and mailbox_type.hydrate_thread:
		try:
			hydrated = mailbox_type.entry("hydrate_thread")(thread)
			frappe.db.commit()
		except mailboxes.provider_errors() as exc:  # show what is stored; say why the rest is missing
			frappe.db.rollback()
			frappe.msgprint(messages.text("Could not fetch the full messages from {0} now ({1})", mailbox_type.label,
										  type(exc).__name__), alert=True)
	show = str(show_images) not in ("0", "", "false", "False", "None")
	doc.apply_fieldlevel_read_permissions()
	return {"thread": thread, "doc": doc.as_dict(no_private_properties=True), "hydrated": hydrated,
			"source": mailbox_type.label if mailbox_type else "",
			"messages": reader.thread_messages(thread, show_images=show)}


def _thread_for_work(thread: str):
	"""The Inbox Thread, after the checks every Smart Inbox action shares."""
	require_active_workspace()
	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("write")
	return doc


@frappe.whitelist(methods=["POST"])
def process_again(thread: str) -> dict:
	"""Run the Smart Inbox pipeline again on every message of a thread ("Match again" / "Retry"): the
	sender is matched against the current Contacts, Customers, Suppliers, Leads and Users, triage and
	Inbox Rules run again, and failed messages get a new outcome. Creates nothing the thread already has.

	Returns:
		``{"thread": str, "outcomes": {communication: outcome}, "created": [[doctype, name]]}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread.
		frappe.ValidationError: "Workspace changes are temporarily unavailable".
	"""
	from atlas_integrations.inbox import pipeline

	doc = _thread_for_work(thread)
	result = pipeline.run_threads([doc.name], force=True)
	return {"thread": doc.name, "outcomes": result.outcomes, "created": [list(x) for x in result.created]}


@frappe.whitelist(methods=["POST"])
def create_work(thread: str, doctype: str, assign_to: str | None = None) -> dict:
	"""Create a document (ToDo, Task, Issue or a doctype listed in Atlas Settings) from a thread,
	pre-filled from it (subject, cleaned text of its first inbound message, party, contact, priority,
	Company), linked both ways, and assigned with Frappe's ``assign_to`` when ``assign_to`` is given.
	The thread's latest inbound message records the outcome ``created``. A thread with a document
	already keeps it (returned with ``created: false``).

	Args:
		thread: Inbox Thread name.
		doctype: the document type.
		assign_to: a user to assign the document to.

	Returns:
		``{"doctype": str, "name": str, "created": bool}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread or create ``doctype``.
		frappe.ValidationError: the doctype is not allowed; "Workspace changes are temporarily unavailable".
	"""
	from atlas_integrations.inbox import pipeline

	doc = _thread_for_work(thread)
	if not frappe.has_permission(doctype, "create"):
		messages.throw("You cannot create {0}", doctype, exc=frappe.PermissionError)
	return pipeline.create_from_thread(doc, doctype, assign_to=assign_to or "")


@frappe.whitelist(methods=["POST"])
def erase_mailbox_data(doctype: str, name: str, confirm: str) -> dict:
	"""Queue the erasure of a mailbox's synced data: its threads, messages, attachments, assignments,
	sent mail (Outgoing Mail, raw MIME included), pipeline records and the notifications about them (see
	:mod:`atlas_integrations.inbox.erase`). Documents created from the mail, Contacts and Customers stay.

	Args:
		doctype: a registered mailbox doctype (:func:`atlas_integrations.inbox.mailboxes.doctypes`).
		name: the mailbox.
		confirm: the mailbox's address, typed by the admin as confirmation.

	Returns:
		``{"sync_job": str, "erases": str, "keeps": str}``: the "Mailbox Erase" Sync Job, and what it
		deletes and what stays (translated sentences, :func:`atlas_integrations.inbox.erase.summary`).

	Raises:
		frappe.PermissionError: the user is not an Atlas Owner/Admin.
		frappe.ValidationError: the confirmation does not match; "Workspace changes are temporarily
			unavailable".
	"""
	from atlas_integrations.inbox import erase
	from atlas_integrations.permissions import is_admin

	if not is_admin():
		frappe.throw(frappe._("Only admins can delete a mailbox's data"), frappe.PermissionError)
	require_active_workspace()
	return {"sync_job": erase.request(doctype, name, confirm), **erase.summary()}
