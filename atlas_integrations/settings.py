"""Read Atlas Settings and enforce the workspace state."""

from __future__ import annotations

import frappe

WORKSPACE_UNAVAILABLE = "Workspace changes are temporarily unavailable"
DEFAULT_PROCESSING_LABEL_DELAY = 300  # seconds


def get_settings():
	"""The Atlas Settings single (cached document)."""
	return frappe.get_cached_doc("Atlas Settings")


def require_active_workspace() -> None:
	"""Raise unless the workspace state is Active.

	Raises:
		frappe.ValidationError: "Workspace changes are temporarily unavailable" (state Locked,
			Read-only or Archived).
	"""
	if (get_settings().workspace_state or "Active") != "Active":
		frappe.throw(frappe._(WORKSPACE_UNAVAILABLE), frappe.ValidationError, title=frappe._("Atlas"))


def max_attachment_bytes() -> int:
	"""Attachment size cap in bytes (Atlas Settings ``max_attachment_size_mb``; 0 stores none)."""
	mb = get_settings().max_attachment_size_mb
	return int(float(10 if mb is None else mb) * 1024 * 1024)


def sync_allowed() -> bool:
	"""False when the workspace is Archived: nothing syncs then."""
	return (get_settings().workspace_state or "Active") != "Archived"


def processing_label_delay() -> int:
	"""Seconds a stored message may wait for its Gmail processing label before a batch is applied
	(Atlas Settings ``processing_label_delay``; 0 = at the end of every run)."""
	value = get_settings().processing_label_delay
	return DEFAULT_PROCESSING_LABEL_DELAY if value is None or value == "" else max(0, int(value))
