"""Whitelisted Xero endpoints (``/api/method/atlas_integrations.api.xero.<name>``)."""

from __future__ import annotations

import json
from urllib.parse import quote

import frappe

from atlas_integrations import messages
from atlas_integrations.xero import drain, ledger, oauth, payments, quotes, settings
from atlas_integrations.xero.push_existing import request as request_push_existing


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
	try:
		result = oauth.complete(state, code=code, error=error)
		if result["status"] == oauth.CONNECTED:
			settings.after_connect(result["company"])
	except (frappe.ValidationError, frappe.PermissionError) as exc:
		frappe.db.rollback()
		# the message names an organisation (provider text) escaped once where it was made (messages.py)
		message = str(exc) or frappe._(oauth.CANCELLED)
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
	result = oauth.choose(company, tenant_id)
	settings.after_connect(company)
	return result


@frappe.whitelist(methods=["GET"])
def pending_tenants(company: str) -> list[dict]:
	"""The organisations of the last consent to choose from: ``[{"tenant_id", "tenant_name"}]``."""
	import json

	messages.get_doc(oauth.CONNECTION, company).check_permission("read")
	pending = json.loads(frappe.db.get_value(oauth.CONNECTION, company, "pending_tenants") or "{}")
	return [{"tenant_id": t["tenant_id"], "tenant_name": t["tenant_name"]} for t in pending.get("tenants", [])]


@frappe.whitelist(methods=["POST"])
def disconnect(company: str) -> dict:
	"""Disconnect ``company``'s organisation (keeps history). Returns ``{"company", "revoked"}``."""
	return oauth.disconnect(company)


def _admin_on(company: str) -> None:
	oauth._check_admin()
	if not frappe.db.exists(oauth.CONNECTION, company):
		messages.throw("Company {0} has no Xero Connection", company, exc=frappe.DoesNotExistError)


@frappe.whitelist(methods=["GET"])
def summary(company: str) -> dict:
	"""The integration card of ``company``: status, organisation, job counts and recent jobs.

	Returns:
		``{"company", "status", "tenant_name" (HTML text), "last_error" (HTML text), "counts": {"pending",
		"succeeded", "failed"}, "recent_jobs": [{"name", "job_type", "reference_doctype", "reference_name",
		"status", "attempts", "next_retry_at", "modified", "last_error" (HTML text)}]}``; no token or secret.

	Raises:
		frappe.PermissionError: the user cannot read the Xero Connection (Atlas roles read it).
	"""
	doc = messages.get_doc(oauth.CONNECTION, company)
	doc.check_permission("read")
	counts = settings.refresh_counts(company)
	frappe.db.commit()
	return {"company": company, "status": doc.status, "tenant_name": doc.tenant_name, "last_error": doc.last_error,
			"counts": {"pending": counts["pending_jobs"], "succeeded": counts["succeeded_jobs"],
					   "failed": counts["failed_jobs"]},
			"recent_jobs": settings.recent_jobs(company)}


@frappe.whitelist(methods=["POST"])
def load_from_xero(company: str) -> dict:
	"""Read the organisation's revenue Accounts and TaxRates again and fill the mapping defaults that are
	empty (Atlas Owner/Admin). Returns ``{"accounts": [...], "tax_rates": [...]}``
	(:func:`atlas_integrations.xero.settings.load_from_xero`).

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
	"""
	_admin_on(company)
	return settings.load_from_xero(company)


@frappe.whitelist(methods=["POST"])
def push_existing(company: str) -> dict:
	"""Queue the submitted Sales Invoices posted on or after "Push Invoices From" that are not in Xero yet
	(Atlas Owner/Admin), as the parts of one "Xero Push Existing" Sync Job whose progress (invoices
	finished of those queued, rate, time left) the form shows live
	(:func:`atlas_integrations.xero.push_existing.request`).

	Returns:
		``{"queued": int, "sync_job": str | None}``: invoices queued now, and the job (None when there was
		nothing to push).

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
		frappe.ValidationError: no "Push Invoices From" date is set.
	"""
	_admin_on(company)
	return request_push_existing(company)


@frappe.whitelist(methods=["POST"])
def sync_now(company: str) -> dict:
	"""Make every pending Xero job of ``company`` due now (waiting ones included), queue a read of what
	changed in Xero (payments) and enqueue its drain (Atlas Owner/Admin). Returns ``{"pending": int,
	"pull": Sync Job name or None}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
	"""
	_admin_on(company)
	pending = ledger.resume(company)
	pull = None
	if frappe.db.get_value(oauth.CONNECTION, company, ["status", "pull_payments"]) == (oauth.CONNECTED, 1):
		pull = payments.queue_pull(company, trigger="desk")
	frappe.db.commit()
	return {"pending": pending, "pull": pull}


@frappe.whitelist(methods=["POST"])
def retry_failed(company: str) -> dict:
	"""Retry every failed Xero job of ``company`` (payloads kept; Atlas Owner/Admin). Returns
	``{"retried": int}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
	"""
	_admin_on(company)
	return {"retried": drain.retry_failed(company)}


@frappe.whitelist(methods=["POST"])
def send_quote(quotation: str, client_key: str, to=None, cc=None, subject: str | None = None,
			   message: str | None = None) -> dict:
	"""Email ``quotation``'s Xero Quote PDF to the customer through the workspace's shared Gmail mailbox,
	exactly once per ``client_key``, then mark the Xero Quote SENT (a "Xero Quote Send" Sync Job).

	Args:
		quotation: Quotation name (submitted, of a Company connected to Xero).
		client_key: the client's idempotency key (e.g. a UUID made when the dialog opened).
		to, cc: addresses (JSON list or comma separated); ``to`` defaults to the Quotation's contact email.
		subject, message: the email (defaults name the quote and its total).

	Returns:
		``{"sync_job": str, "status": "Queued in Xero"}`` (the same for the same key).

	Raises:
		frappe.PermissionError: no Atlas role or no email permission on the Quotation.
		frappe.ValidationError: see :func:`atlas_integrations.xero.quotes.request_send`.
		atlas_integrations.inbox.send_limit.SendRateLimited: HTTP 429, "You are sending too fast: at most N
			messages a minute" (the user's emails a minute, Atlas Settings ``reply_rate_limit``, one budget
			with Smart Inbox replies).
	"""
	return quotes.request_send(quotation, client_key, to=_addresses(to), cc=_addresses(cc), subject=subject,
							   message=message)


def _addresses(value):
	if isinstance(value, str) and value.strip().startswith("["):
		return json.loads(value)
	return value


@frappe.whitelist(methods=["POST"])
def pull_now(company: str) -> dict:
	"""Queue a read of ``company``'s invoices and payments changed in Xero (Atlas Owner/Admin). Returns
	``{"sync_job": str}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
	"""
	_admin_on(company)
	job = payments.queue_pull(company, trigger="desk")
	frappe.db.commit()
	return {"sync_job": job}
