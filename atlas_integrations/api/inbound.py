"""Guest endpoints of the managed inbound route (see :mod:`atlas_integrations.inbox.inbound`).

* ``POST /api/method/atlas_integrations.api.inbound.receive?route=<Inbound Route>`` — the raw RFC 822
  message as the body, signed with ``X-Atlas-Signature: t=<unix>,v1=<hex>``.
* ``POST /api/method/atlas_integrations.api.inbound.mailgun_mime?route=<Inbound Route>`` — Mailgun's
  ``forward()`` (form fields ``body-mime``, ``timestamp``, ``token``, ``signature``).

Answers: 200 ``{"status": "accepted" | "duplicate"}``; 401 bad, missing, stale or replayed signature
(nothing stored); 404 unknown route; 406 permanent refusal (disabled route, empty or oversized message:
Mailgun does not retry a 406). Verify, store, commit, enqueue the pipeline, answer.
"""

from __future__ import annotations

import frappe

from atlas_integrations.inbox import inbound


def _answer(status: int, body: dict) -> dict:
	frappe.local.response.http_status_code = status
	return body


def _refused(route: str | None, exc: inbound.Refused) -> dict:
	frappe.db.rollback()
	inbound.note_rejection(route, exc.reason)
	return _answer(exc.status, {"status": "refused", "reason": exc.reason})


@frappe.whitelist(allow_guest=True, methods=["POST"])
def receive(route: str | None = None) -> dict:
	"""Accept one signed raw message for ``route``.

	Args:
		route: the Inbound Route name (query string).

	Returns:
		``{"status": "accepted" | "duplicate", "communication": str}`` (HTTP 200), or ``{"status":
		"refused", "reason": str}`` with HTTP 401 / 404 / 406 (see the module docstring).
	"""
	try:
		r = inbound.route_for(route)
		length = frappe.request.content_length or 0
		if length > r.max_bytes:
			raise inbound.Refused(406, f"message of {length} bytes is over the route's limit of {r.max_bytes} bytes")
		body = frappe.request.get_data(cache=True)
		inbound.verify_signature(frappe.get_request_header(inbound.SIGNATURE_HEADER), body, r.signing_key)
		result = inbound.store(r, body)
	except inbound.Refused as exc:
		return _refused(route, exc)
	frappe.db.commit()
	return _answer(200, result)


@frappe.whitelist(allow_guest=True, methods=["POST"])
def mailgun_mime(route: str | None = None, **fields) -> dict:
	"""Accept one message from Mailgun's ``forward()`` route for ``route``.

	Args:
		route: the Inbound Route name (query string).
		fields: Mailgun's form fields; ``body-mime`` (the full message), ``timestamp``, ``token`` and
			``signature`` are used.

	Returns:
		As :func:`receive`.
	"""
	form = frappe.local.form_dict
	try:
		r = inbound.route_for(route)
		inbound.verify_mailgun(form.get("timestamp"), form.get("token"), form.get("signature"), r.mailgun_signing_key)
		mime = form.get("body-mime")
		if not mime:
			raise inbound.Refused(406, "no body-mime field (the Mailgun route must forward to a URL ending in mime)")
		result = inbound.store(r, mime.encode("utf-8", "surrogateescape") if isinstance(mime, str) else mime)
	except inbound.Refused as exc:
		return _refused(route, exc)
	frappe.db.commit()
	return _answer(200, result)
