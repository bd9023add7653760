"""Xero's webhook endpoint: ``POST /api/method/atlas_integrations.api.xero_webhook.receive``.

Guest-callable (Xero is no Frappe user); the raw body's ``x-xero-signature`` is what authenticates it
(:mod:`atlas_integrations.xero.webhooks`). Answers with an **empty body**, as Xero requires: 200 for a
correctly signed delivery (events recorded once and their work queued), 401 for a bad or missing
signature. Nothing in an answer says why.
"""

from __future__ import annotations

import traceback

import frappe
from werkzeug.wrappers import Response

from atlas_integrations.redact import scrub
from atlas_integrations.xero import webhooks


@frappe.whitelist(allow_guest=True, methods=["POST"])
def receive(**kwargs) -> Response:
	"""Receive one Xero webhook delivery (the JSON fields arriving as ``kwargs`` are ignored: the raw body
	is what is verified and read).

	Returns:
		an empty response: 200 (accepted, also for unknown tenants and intent-to-receive), 401 (signature),
		503 (could not be recorded now: Xero retries).
	"""
	try:
		status = webhooks.receive(frappe.request.get_data(cache=True), frappe.request.headers.get("x-xero-signature"))
	except Exception:
		frappe.db.rollback()
		key = webhooks.webhook_key()
		frappe.log_error(title="Xero webhook could not be recorded",
						 message=scrub(traceback.format_exc(), [key] if key else []))
		frappe.db.commit()
		status = 503
	return Response(b"", status=status)
