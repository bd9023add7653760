"""Whitelisted Inbox endpoints (``/api/method/atlas_integrations.api.inbox.<name>``)."""

from __future__ import annotations

import json

import frappe

from atlas_integrations.gmail import labels


def _names(value) -> list[str]:
	if not value:
		return []
	if isinstance(value, str):
		value = json.loads(value) if value.strip().startswith("[") else [v for v in value.split(",") if v.strip()]
	return [str(v).strip() for v in value]


@frappe.whitelist(methods=["POST"])
def set_labels(thread: str, add: list[str] | str | None = None, remove: list[str] | str | None = None) -> dict:
	"""Add/remove Gmail labels on a thread; shown in the desk at once, written to Gmail by a queued job.

	Args:
		thread: Inbox Thread name.
		add, remove: label names or ids (JSON list or comma-separated), e.g. ``["STARRED", "Customers"]``.

	Returns:
		``{"sync_job": str | None, "messages": int}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread. frappe.ValidationError: unknown label.
	"""
	return labels.modify_thread(thread, add=_names(add), remove=_names(remove))


@frappe.whitelist(methods=["POST"])
def mark_read(thread: str, read: int | str = 1) -> dict:
	"""Mark a thread read (``read=1``) or unread (``read=0``) in the desk and in Gmail.

	Returns:
		``{"sync_job": str | None, "messages": int}``.
	"""
	return labels.mark_read(thread, read=str(read) not in ("0", "false", "False"))
