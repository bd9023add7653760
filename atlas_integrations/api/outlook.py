"""Whitelisted Outlook endpoints (``/api/method/atlas_integrations.api.outlook.<name>``).

Each checks permissions explicitly; none returns or logs a secret.
"""

from __future__ import annotations

import frappe

from atlas_integrations import messages
from atlas_integrations.outlook import oauth
from atlas_integrations.outlook.accounts import DOCTYPE
from atlas_integrations.permissions import SHARED


@frappe.whitelist(methods=["POST"])
def connect(account: str) -> dict:
	"""Connect an Outlook mailbox. A personal mailbox signs in at Microsoft (authorization code with PKCE,
	through MSAL): open the returned URL; Microsoft redirects back to :func:`oauth_callback`. A shared
	workspace mailbox connects at once with the app's application permissions.

	Args:
		account: Outlook Account name.

	Returns:
		Personal: ``{"authorization_url": str, "state": str, "expires_in": 600}`` (seconds). Shared:
		``{"account": str, "email_address": str, "sync_job": str}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Outlook" (shared mailbox, non-admin), or not yours.
		frappe.ValidationError: "Outlook not configured"; "Workspace changes are temporarily unavailable";
			a shared mailbox the app cannot read (consent, application access policy), in words.
	"""
	kind = frappe.db.get_value(DOCTYPE, account, "account_type")
	return oauth.connect_shared(account) if kind == SHARED else oauth.begin(account)


@frappe.whitelist(methods=["GET"])
def oauth_callback(**kwargs):
	"""Microsoft's redirect target. On success redirects the browser to the Outlook Account form; otherwise
	shows the reason ("Outlook connection was cancelled", a consent only a tenant admin can give, ...) on an
	error page with HTTP 400/403. Nothing from the query is echoed back."""
	params = {k: v for k, v in frappe.form_dict.items() if k in ("state", "code", "error", "error_description",
																"session_state", "client_info") and isinstance(v, str)}
	try:
		account = oauth.complete(params)
	except (frappe.ValidationError, frappe.PermissionError) as exc:
		frappe.db.rollback()
		frappe.respond_as_web_page(
			"Outlook", str(exc) or frappe._(oauth.CANCELLED),
			http_status_code=403 if isinstance(exc, frappe.PermissionError) else 400, indicator_color="red")
		return
	frappe.db.commit()
	frappe.local.response["type"] = "redirect"
	frappe.local.response["location"] = f"/app/outlook-account/{account}"


@frappe.whitelist(methods=["POST"])
def disconnect(account: str) -> dict:
	"""Delete the stored authorization; synced mail is kept.

	Returns:
		``{"account": str, "revoked": False}`` (Microsoft has no per-token revoke: remove Atlas's consent
		under My Apps / Enterprise applications).

	Raises:
		frappe.PermissionError: "Only admins can connect Outlook" (shared mailbox, non-admin) or not yours.
		frappe.ValidationError: "Workspace changes are temporarily unavailable".
	"""
	return oauth.disconnect(account)


@frappe.whitelist(methods=["POST"])
def sync_now(account: str) -> dict:
	"""Queue a sync run of the mailbox on the ``long`` rq queue (one open run per mailbox).

	Returns:
		``{"sync_job": str, "created": bool, "status": "pending"|"processing"}``.

	Raises:
		frappe.PermissionError: the user cannot edit the account.
		frappe.ValidationError: not connected; "Workspace changes are temporarily unavailable".
	"""
	from atlas_integrations.outlook.sync import enqueue_sync
	from atlas_integrations.settings import require_active_workspace

	require_active_workspace()
	doc = messages.get_doc(DOCTYPE, account)
	doc.check_permission("write")
	if doc.status not in ("SYNCING", "ACTIVE") or not doc.enabled:
		messages.throw("Outlook Account {0} is not connected ({1})", account, doc.status, title="Outlook")
	return enqueue_sync(account, trigger="manual")


def _answer(status: int, text: str = ""):
	from werkzeug.wrappers import Response

	return Response(text, status=status, mimetype="text/plain", headers={"X-Content-Type-Options": "nosniff"})


@frappe.whitelist(allow_guest=True, methods=["POST"])
def notifications(**kwargs):
	"""Graph's change-notification endpoint (the subscriptions' ``notificationUrl``). Guest-callable (Graph
	is no Frappe user): the ``validationToken`` handshake is answered at once as ``text/plain``; a delivery is
	authenticated per item by its ``clientState`` (:mod:`atlas_integrations.outlook.notify`). Answers
	``text/plain``: 200 with the token (handshake), 202 (accepted; items that do not verify are dropped),
	400 / 413 (refused). No answer echoes anything else from the request."""
	from atlas_integrations.outlook import notify

	token = frappe.request.args.get("validationToken")
	if token is not None:
		return _answer(200, token[:1024]) if token and len(token) <= 1024 else _answer(400)
	status, _queued = notify.receive(frappe.request.get_data(cache=True)[:notify.MAX_BODY + 1],
									 frappe.request.content_length)
	return _answer(status)


@frappe.whitelist(allow_guest=True, methods=["POST"])
def lifecycle(**kwargs):
	"""Graph's lifecycle-notification endpoint (``lifecycleNotificationUrl``): the handshake as for
	:func:`notifications`; ``reauthorizationRequired``, ``subscriptionRemoved`` and ``missed`` acted on after
	the same checks. Answers ``text/plain`` 200 / 202 / 400 / 413."""
	from atlas_integrations.outlook import notify

	token = frappe.request.args.get("validationToken")
	if token is not None:
		return _answer(200, token[:1024]) if token and len(token) <= 1024 else _answer(400)
	status, _acted = notify.receive_lifecycle(frappe.request.get_data(cache=True)[:notify.MAX_BODY + 1],
											  frappe.request.content_length)
	return _answer(status)
