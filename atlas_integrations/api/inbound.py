"""Guest endpoints of the managed inbound route (see :mod:`atlas_integrations.inbox.inbound`).

* ``POST /api/method/atlas_integrations.api.inbound.receive?route=<Inbound Route>`` — the raw RFC 822
  message as the body, signed with ``X-Atlas-Signature: t=<unix>,v1=<hex>``.
* ``POST /api/method/atlas_integrations.api.inbound.mailgun_mime?route=<Inbound Route>`` — Mailgun's
  ``forward()`` (form fields ``body-mime``, ``timestamp``, ``token``, ``signature``).

Answers: 200 ``{"status": "accepted" | "duplicate"}``; 401 bad, missing, stale or replayed signature
(nothing stored); 404 unknown route; 406 permanent refusal (disabled route, empty message: Mailgun does
not retry a 406); 413 a message over the route's size limit, refused from ``Content-Length`` or the
body's length before any parsing or signature work. A request over the site's ``max_file_size`` never
reaches this code: Frappe answers 413 itself (README, "Inbound Route"). Check, verify, store, commit,
enqueue the pipeline, answer. A refused request writes nothing to the database: it is counted in Redis
(:func:`atlas_integrations.inbox.inbound.note_rejection`).
"""

from __future__ import annotations

import frappe

from atlas_integrations.inbox import inbound


def _answer(status: int, body: dict) -> dict:
	frappe.local.response.http_status_code = status
	return body


def _refused(route: frappe._dict | None, exc: inbound.Refused) -> dict:
	frappe.db.rollback()
	inbound.note_rejection(exc.route or (route.name if route else None), exc.reason)
	return _answer(exc.status, {"status": "refused", "reason": exc.reason})


@frappe.whitelist(allow_guest=True, methods=["POST"])
def receive(route: str | None = None) -> dict:
	"""Accept one signed raw message for ``route``.

	Args:
		route: the Inbound Route name (query string).

	Returns:
		``{"status": "accepted" | "duplicate", "communication": str}`` (HTTP 200), or ``{"status":
		"refused", "reason": str}`` with HTTP 401 / 404 / 406 / 413 / 503 (see the module docstring).
	"""
	r = None
	try:
		r = inbound.route_for(route)
		inbound.check_size(r, frappe.request.content_length)  # what the client announced ...
		body = frappe.request.get_data(cache=True)
		inbound.check_size(r, len(body))  # ... and what it sent (chunked bodies announce nothing)
		inbound.verify_signature(frappe.get_request_header(inbound.SIGNATURE_HEADER), body, inbound.signing_key(r))
		result = inbound.store(r, body)
	except inbound.Refused as exc:
		return _refused(r, exc)
	frappe.db.commit()
	return _answer(200, result)


@frappe.whitelist(allow_guest=True, methods=["POST"])
def mailgun_mime(route: str | None = None, **fields) -> dict:
	"""Accept one message from Mailgun's ``forward()`` route for ``route``.

	The request may be at most the route's limit plus
	:data:`~atlas_integrations.inbox.inbound.FORM_ALLOWANCE` bytes and ``body-mime`` at most the route's
	limit (413 otherwise), both checked before the signature. The token is claimed while the message is
	stored and recorded as used only after the commit; a failed store releases it, so Mailgun's retry of
	the delivery is stored (:func:`atlas_integrations.inbox.inbound.claim_token`).

	Args:
		route: the Inbound Route name (query string).
		fields: Mailgun's form fields; ``body-mime`` (the full message), ``timestamp``, ``token`` and
			``signature`` are used.

	Returns:
		As :func:`receive`.
	"""
	form = frappe.local.form_dict
	r = token = claim = None
	try:
		r = inbound.route_for(route)
		inbound.check_size(r, frappe.request.content_length, allowance=inbound.FORM_ALLOWANCE)
		mime = form.get("body-mime")
		raw = mime.encode("utf-8", "surrogateescape") if isinstance(mime, str) else mime
		inbound.check_size(r, len(raw) if raw else 0)
		token = form.get("token")
		inbound.verify_mailgun(form.get("timestamp"), token, form.get("signature"), inbound.signing_key(r, mailgun=True))
		if not raw:
			raise inbound.Refused(406, "no body-mime field (the Mailgun route must forward to a URL ending in mime)")
		claim = inbound.claim_token(token)
		result = inbound.store(r, raw)
		frappe.db.commit()
	except inbound.Refused as exc:
		inbound.release_token(token, claim)
		return _refused(r, exc)
	except BaseException:  # not stored: Mailgun retries (any answer but 200 / 406), and the retry must pass
		inbound.release_token(token, claim)
		raise
	inbound.token_used(token)
	return _answer(200, result)
