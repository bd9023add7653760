"""Whitelisted Gmail endpoints (``/api/method/atlas_integrations.api.gmail.<name>``).

Each checks permissions explicitly; none returns or logs a secret.
"""

from __future__ import annotations

import frappe

from atlas_integrations import messages
from atlas_integrations.gmail import oauth
from atlas_integrations.gmail.accounts import DOCTYPE


@frappe.whitelist(methods=["POST"])
def connect(account: str) -> dict:
	"""Start connecting a Gmail mailbox through Google OAuth 2.0 (offline access).

	Args:
		account: Gmail Account name.

	Returns:
		``{"authorization_url": str, "state": str, "expires_in": 600}`` (seconds); open the URL in the
		browser; Google redirects back to :func:`oauth_callback`.

	Raises:
		frappe.PermissionError: "Only admins can connect Gmail" (shared mailbox, non-admin), or the account
			is not yours.
		frappe.ValidationError: "Gmail not configured"; "Workspace changes are temporarily unavailable".
	"""
	return oauth.begin(account)


@frappe.whitelist(methods=["GET"])
def oauth_callback(state: str | None = None, code: str | None = None, error: str | None = None, **kwargs):
	"""Google's redirect target. On success redirects the browser to the Gmail Account form; otherwise
	shows the reason ("Gmail connection was cancelled", "Gmail did not grant offline access", ...) on an
	error page with HTTP 400/403."""
	try:
		account = oauth.complete(state, code=code, error=error)
	except (frappe.ValidationError, frappe.PermissionError) as exc:
		frappe.db.rollback()
		message = str(exc) or frappe._(oauth.CANCELLED)
		frappe.respond_as_web_page(
			"Gmail", message, http_status_code=403 if isinstance(exc, frappe.PermissionError) else 400,
			indicator_color="red",
		)
		return
	frappe.db.commit()
	frappe.local.response["type"] = "redirect"
	frappe.local.response["location"] = f"/app/gmail-account/{account}"


@frappe.whitelist(methods=["POST"])
def disconnect(account: str) -> dict:
	"""Revoke Atlas's access at Google and delete the stored tokens; synced mail is kept.

	Returns:
		``{"account": str, "revoked": bool}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Gmail" (shared mailbox, non-admin) or not yours.
		frappe.ValidationError: "Workspace changes are temporarily unavailable".
	"""
	return oauth.disconnect(account)


@frappe.whitelist(methods=["POST"])
def sync_now(account: str) -> dict:
	"""Queue a sync run of the account on the ``long`` rq queue (deduplicated: one open run per account).

	Returns:
		``{"sync_job": str, "created": bool, "status": "pending"|"processing"}``.

	Raises:
		frappe.PermissionError: the user cannot edit the account.
		frappe.ValidationError: the account is not connected; "Workspace changes are temporarily
			unavailable" (workspace Locked, Read-only or Archived).
	"""
	from atlas_integrations.gmail.sync import enqueue_sync
	from atlas_integrations.settings import require_active_workspace

	require_active_workspace()
	doc = messages.get_doc(DOCTYPE, account)
	doc.check_permission("write")
	if doc.status not in ("SYNCING", "ACTIVE") or not doc.enabled:
		messages.throw("Gmail Account {0} is not connected ({1})", account, doc.status, title="Gmail")
	return enqueue_sync(account, trigger="manual")
