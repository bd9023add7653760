"""Whitelisted Xero endpoints (``/api/method/atlas_integrations.api.xero.<name>``)."""

from __future__ import annotations

from urllib.parse import quote

import frappe

from atlas_integrations.xero import oauth


@frappe.whitelist(methods=["POST"])
def connect(company: str) -> dict:
	"""Start connecting (or reconnecting) ``company``'s Xero organisation.

	Returns:
		``{"authorization_url": str, "state": str, "expires_in": seconds}``: send the admin's browser there.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
		frappe.ValidationError: "Workspace changes are temporarily unavailable"; "Xero not configured".
	"""
	return oauth.begin(company)


@frappe.whitelist(methods=["GET"])
def oauth_callback(state: str | None = None, code: str | None = None, error: str | None = None, **_kw) -> None:
	"""Xero's redirect target: finishes the consent and redirects to the Xero Connection form (with
	``?choose=1`` when the admin must pick one of several organisations). Errors are shown as Frappe's
	message page ("Xero connection was cancelled", ...)."""
	from frappe.utils import escape_html

	try:
		result = oauth.complete(state, code=code, error=error)
	except (frappe.ValidationError, frappe.PermissionError) as exc:
		frappe.db.rollback()
		message = escape_html(str(exc) or oauth.CANCELLED)  # may name an organisation: provider data is text
		frappe.respond_as_web_page("Xero", message, indicator_color="red",
								   http_status_code=403 if isinstance(exc, frappe.PermissionError) else 400)
		return
	frappe.db.commit()
	target = f"/app/xero-connection/{quote(result['company'])}" + ("?choose=1" if result["status"] == "choose" else "")
	frappe.local.response["type"] = "redirect"
	frappe.local.response["location"] = target


@frappe.whitelist(methods=["POST"])
def choose_tenant(company: str, tenant_id: str) -> dict:
	"""Link the organisation the admin picked when the consent authorised several.

	Returns:
		``{"company", "status": "connected", "tenant": name}``.
	"""
	return oauth.choose(company, tenant_id)


@frappe.whitelist(methods=["GET"])
def pending_tenants(company: str) -> list[dict]:
	"""The organisations of the last consent to choose from: ``[{"tenant_id", "tenant_name"}]``."""
	import json

	frappe.get_doc(oauth.CONNECTION, company).check_permission("read")
	pending = json.loads(frappe.db.get_value(oauth.CONNECTION, company, "pending_tenants") or "{}")
	return [{"tenant_id": t["tenant_id"], "tenant_name": t["tenant_name"]} for t in pending.get("tenants", [])]


@frappe.whitelist(methods=["POST"])
def disconnect(company: str) -> dict:
	"""Disconnect ``company``'s organisation (keeps history). Returns ``{"company", "revoked"}``."""
	return oauth.disconnect(company)
