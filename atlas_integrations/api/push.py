"""The Cloud Pub/Sub push endpoint for Gmail notifications:
``POST /api/method/atlas_integrations.api.push.gmail``.

Guest-callable (Pub/Sub is no Frappe user); the request itself is authenticated by
:func:`atlas_integrations.gmail.push.verify_push` (Google-signed OIDC token, or shared token), then the
mailbox's sync is queued and the answer goes back at once. Answers (JSON):

* 200 ``{"message": {"ok": true, "queued": n}}``: accepted (also for a mailbox Atlas does not sync:
  Pub/Sub would otherwise redeliver it for days).
* 400 bad envelope; 401 credentials missing/invalid; 403 credentials of someone else or push not
  configured; 503 verification or queueing could not run now (Pub/Sub retries). No answer carries a
  secret or the request's URL.

Frappe refuses every request that carries an ``Authorization`` header it cannot map to a Frappe user
(``frappe.auth.validate_auth``) before any endpoint runs, so Pub/Sub's ``Authorization: Bearer <JWT>``
would be answered 401 by Frappe itself. :func:`set_aside_push_authorization` (a ``before_request``
hook) moves that header aside for this endpoint's path only; the endpoint then checks it itself. The
request stays a Guest request.
"""

from __future__ import annotations

import traceback

import frappe
from frappe.utils.password import get_decrypted_password

from atlas_integrations.gmail import push
from atlas_integrations.redact import scrub

METHOD = "atlas_integrations.api.push.gmail"
#: the endpoint's request paths (Frappe serves methods under /api/method, /api/v1/method, /api/v2/method)
PATHS = frozenset(f"/api{version}/method/{METHOD}" for version in ("", "/v1", "/v2"))


def set_aside_push_authorization() -> None:
	"""``before_request`` hook: for the push endpoint only, take ``Authorization`` out of the WSGI
	environ (into ``frappe.local.atlas_push_authorization``) so Frappe's own authentication lets the
	Guest request through to :func:`gmail`, which verifies it. Every other path is left untouched."""
	request = getattr(frappe.local, "request", None)
	if request is None or request.path.rstrip("/") not in PATHS:
		return
	frappe.local.atlas_push_authorization = request.environ.pop("HTTP_AUTHORIZATION", None)


@frappe.whitelist(allow_guest=True, methods=["POST"])
def gmail(**kwargs) -> dict:
	"""Receive one Pub/Sub push of a Gmail notification (the envelope's fields arrive as ``kwargs`` and
	are ignored: the raw body is what is read).

	Returns:
		``{"ok": True, "queued": int}``: accounts whose sync is queued (or already was).

	Raises:
		frappe.AuthenticationError: 401; frappe.PermissionError: 403; push.InvalidPush: 400 (see module).
	"""
	outcome = None
	try:
		outcome = _verify_and_queue()
	except (frappe.AuthenticationError, frappe.PermissionError, push.InvalidPush):
		frappe.db.rollback()
		raise
	except push.PushUnavailable:
		frappe.db.rollback()
		frappe.logger("atlas_integrations").warning("Gmail push: Google certificates unreachable; answered 503")
	except Exception:
		frappe.db.rollback()
		frappe.log_error(title="Gmail push could not be processed",
						 message=scrub(traceback.format_exc(), _push_secrets()))
		frappe.db.commit()
	if outcome is None:
		# answered without raising: Frappe then writes no error snapshot (whose frame variables would
		# include the request URL, i.e. a shared token)
		frappe.local.response["http_status_code"] = 503
		return {"ok": False, "retry": True}
	return {"ok": True, "queued": len(outcome["accounts"])}


def _verify_and_queue() -> dict:
	authorization = getattr(frappe.local, "atlas_push_authorization", None)
	push.verify_push({"Authorization": authorization or frappe.request.headers.get("Authorization")},
					 frappe.request.args)
	outcome = push.handle_push(frappe.request.get_data())
	frappe.db.commit()
	return outcome


def _push_secrets() -> list[str]:
	token = get_decrypted_password("Atlas Settings", "Atlas Settings", "push_shared_token", raise_exception=False)
	return [token] if token else []
