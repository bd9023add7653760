"""Whitelisted Sync Job endpoints."""

from __future__ import annotations

import frappe

from atlas_integrations import jobs, messages


@frappe.whitelist(methods=["POST"])
def retry(sync_job: str) -> dict:
	"""Put a failed Sync Job back to pending and queue it again (its payload is kept).

	Returns:
		``{"sync_job": str, "status": "pending"}``.

	Raises:
		frappe.PermissionError: the user cannot write Sync Jobs (Atlas Owner/Admin only).
		frappe.ValidationError: the job is not failed; "Workspace changes are temporarily unavailable"
			(workspace Locked, Read-only or Archived).
	"""
	from atlas_integrations.settings import require_active_workspace

	require_active_workspace()
	messages.get_doc("Sync Job", sync_job).check_permission("write")
	jobs.retry(sync_job)
	return {"sync_job": sync_job, "status": jobs.PENDING}
