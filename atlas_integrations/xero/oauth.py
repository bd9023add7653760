"""Connect one Xero organisation per Company: OAuth 2.0 authorization code with PKCE, tokens per grant.

Follows Xero's "OAuth 2.0 auth flow" and "Standard authorization code flow with PKCE": the consent URL
asks for ``offline_access`` and the least accounting scopes Atlas needs; ``state`` is kept server-side
per flow (Redis, 10 minutes, single use) with the PKCE ``code_verifier`` and the user who started it; the
code is exchanged at the identity service; ``GET /connections?authEventId=`` lists the organisations of
*this* consent. One organisation is linked at once; several make the admin choose (never silently the
first); an organisation already linked to another Company is refused.

Tokens belong to the consent (a **Xero Grant**), not to one organisation: Xero issues one rotating refresh
token per consent, shared by every organisation it authorised. :func:`access_token` refreshes under a row
lock of the grant and commits the new refresh token before the new access token is used, so concurrent
workers never present a spent refresh token (``invalid_grant``). An ``invalid_grant`` marks the grant and
its connections ``revoked``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from datetime import timedelta
from urllib.parse import urlencode

import frappe
import requests
from frappe import _
from frappe.utils import get_url, now_datetime
from frappe.utils.password import get_decrypted_password, remove_encrypted_password, set_encrypted_password

from atlas_integrations import messages
from atlas_integrations.endpoints import get_endpoint
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.permissions import is_admin
from atlas_integrations.settings import require_active_workspace
from atlas_integrations.xero.errors import XeroAuthError

CONNECTION, GRANT = "Xero Connection", "Xero Grant"
CALLBACK_METHOD = "atlas_integrations.api.xero.oauth_callback"
#: offline access plus the least accounting scopes: invoices, quotes, payments, credit notes
#: (transactions), contacts, and reading accounts / tax rates / items (settings.read)
SCOPES = ("openid", "profile", "email", "offline_access", "accounting.transactions", "accounting.contacts",
		  "accounting.settings.read")
STATE_TTL = 600  # seconds a consent flow stays valid
REFRESH_MARGIN = 120  # seconds before expiry an access token is refreshed
HTTP_TIMEOUT = 30  # seconds
ONLY_ADMINS = "Only admins can connect Xero"
NOT_CONFIGURED = "Xero not configured"
CANCELLED = "Xero connection was cancelled"
NO_OFFLINE = "Xero did not grant offline access"
FLOW_EXPIRED = "Xero connection expired or was already used; start again"
NO_ORGANISATION = "Xero authorised no organisation"
ALREADY_LINKED = "The Xero organisation {0} is already connected to Company {1}"
NOT_OFFERED = "That organisation was not part of the last Xero consent"
CONNECTED, ERROR, REVOKED, NOT_CONNECTED = "connected", "error", "revoked", "not connected"




def redirect_uri() -> str:
	"""The callback URL to register on the Xero app (this site's oauth_callback method)."""
	return get_url(f"/api/method/{CALLBACK_METHOD}")


def _identity(path: str) -> str:
	return get_endpoint("atlas_xero_identity_url").rstrip("/") + path


def client_credentials() -> tuple[str, str]:
	"""``(client_id, client_secret)`` from Atlas Settings.

	Raises:
		frappe.ValidationError: "Xero not configured".
	"""
	client_id = frappe.db.get_single_value("Atlas Settings", "xero_client_id")
	secret = get_decrypted_password("Atlas Settings", "Atlas Settings", "xero_client_secret", raise_exception=False)
	if not client_id or not secret:
		frappe.throw(_(NOT_CONFIGURED), title=_("Xero"))
	return client_id, secret


def _check_admin() -> None:
	if not is_admin():
		frappe.throw(_(ONLY_ADMINS), frappe.PermissionError)
	require_active_workspace()


def _state_key(state: str) -> str:
	return f"atlas:xero:oauth:{hashlib.sha256(state.encode()).hexdigest()}"


def _ensure_connection(company: str) -> str:
	if not frappe.db.exists("Company", company):
		messages.throw("Unknown Company {0}", company)
	if not frappe.db.exists(CONNECTION, company):
		frappe.get_doc({"doctype": CONNECTION, "company": company, "status": NOT_CONNECTED}).insert(
			ignore_permissions=True)
	return company


def begin(company: str) -> dict:
	"""Start Xero consent for ``company`` (creates its Xero Connection when missing).

	Returns:
		``{"authorization_url": str, "state": str, "expires_in": seconds}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
		frappe.ValidationError: "Workspace changes are temporarily unavailable"; "Xero not configured".
	"""
	_check_admin()
	client_id, _secret = client_credentials()
	_ensure_connection(company)
	verifier = secrets.token_urlsafe(64)
	challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
	state = secrets.token_urlsafe(32)
	frappe.cache.set_value(_state_key(state), {"company": company, "user": frappe.session.user,
											   "verifier": verifier}, expires_in_sec=STATE_TTL)
	query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri(),
					   "scope": " ".join(SCOPES), "state": state, "code_challenge": challenge,
					   "code_challenge_method": "S256"})
	return {"authorization_url": f"{get_endpoint('atlas_xero_login_url')}?{query}", "state": state,
			"expires_in": STATE_TTL}


def _claims(jwt: str) -> dict:
	"""The payload of a JWT access token (read only for ``authentication_event_id``; Xero issued it
	to us over TLS in this exchange)."""
	try:
		payload = jwt.split(".")[1]
		return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
	except (IndexError, ValueError):
		return {}


def _token_request(data: dict) -> dict:
	client_id, secret = client_credentials()
	response = requests.post(_identity("/connect/token"), data=data, auth=(client_id, secret), timeout=HTTP_TIMEOUT)
	if response.status_code >= 400:
		try:
			error = response.json().get("error") or response.status_code
		except ValueError:
			error = response.status_code
		raise XeroAuthError(f"Xero token endpoint answered {response.status_code} ({error})")
	return response.json()


def complete(state: str | None, code: str | None = None, error: str | None = None) -> dict:
	"""Finish consent (the OAuth callback).

	Returns:
		``{"company": str, "status": "connected", "tenant": name}`` or, when the consent authorised several
		organisations, ``{"company": str, "status": "choose", "tenants": [{"tenant_id", "tenant_name"}]}``.
		On "connected" the caller runs :func:`atlas_integrations.xero.settings.after_connect` (this module is
		below the API client and imports none of the modules that use it).

	Raises:
		frappe.ValidationError: "Xero connection was cancelled", "Xero did not grant offline access",
			"Xero connection expired or was already used; start again", "Xero authorised no organisation",
			or the organisation is already connected to another Company.
		frappe.PermissionError: the callback reached another user than the one who started the flow.
	"""
	flow = frappe.cache.get_value(_state_key(state)) if state else None
	if state:
		frappe.cache.delete_value(_state_key(state))  # single use
	if not flow:
		frappe.throw(_(FLOW_EXPIRED), title=_("Xero"))
	if flow["user"] != frappe.session.user:
		frappe.throw(_(FLOW_EXPIRED), frappe.PermissionError, title=_("Xero"))
	company = flow["company"]
	if error or not code:
		frappe.db.set_value(CONNECTION, company, "last_error", CANCELLED)
		frappe.db.commit()
		frappe.throw(_(CANCELLED), title=_("Xero"))
	try:
		token = _token_request({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(),
								"code_verifier": flow["verifier"]})
	except XeroAuthError as exc:
		messages.throw("Xero refused the authorization: {0}", exc, title="Xero")
	scopes = (token.get("scope") or "").split()
	if not token.get("refresh_token") or "offline_access" not in scopes:
		frappe.throw(_(NO_OFFLINE), title=_("Xero"))
	grant = _store_grant(token, scopes)
	event = _claims(token["access_token"]).get("authentication_event_id")
	response = requests.get(get_endpoint("atlas_xero_api_url").rstrip("/") + "/connections",
							params={"authEventId": event} if event else None,
							headers={"Authorization": f"Bearer {token['access_token']}"}, timeout=HTTP_TIMEOUT)
	response.raise_for_status()
	tenants = [c for c in response.json() if c.get("tenantType") == "ORGANISATION"]
	if not tenants:
		frappe.throw(_(NO_ORGANISATION), title=_("Xero"))
	if len(tenants) == 1:
		return {"company": company, "status": CONNECTED, "tenant": _link(company, tenants[0], grant, scopes)}
	choices = [{"connection_id": t["id"], "tenant_id": t["tenantId"], "tenant_name": t.get("tenantName") or ""}
			   for t in tenants]
	frappe.db.set_value(CONNECTION, company, {"pending_tenants": json.dumps({"grant": grant, "scopes": scopes,
																			  "tenants": choices})})
	frappe.db.commit()
	return {"company": company, "status": "choose",
			"tenants": [{"tenant_id": c["tenant_id"], "tenant_name": c["tenant_name"]} for c in choices]}


def choose(company: str, tenant_id: str) -> dict:
	"""Link the organisation the admin picked from the last consent of ``company``.

	Returns:
		``{"company", "status": "connected", "tenant"}``; the caller runs
		:func:`atlas_integrations.xero.settings.after_connect`.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
		frappe.ValidationError: the organisation was not offered, or is connected to another Company.
	"""
	_check_admin()
	pending = json.loads(frappe.db.get_value(CONNECTION, company, "pending_tenants") or "{}")
	picked = [t for t in pending.get("tenants", []) if t["tenant_id"] == tenant_id]
	if not picked:
		frappe.throw(_(NOT_OFFERED), title=_("Xero"))
	t = picked[0]
	tenant = _link(company, {"id": t["connection_id"], "tenantId": t["tenant_id"], "tenantName": t["tenant_name"]},
				   pending["grant"], pending.get("scopes") or [])
	return {"company": company, "status": CONNECTED, "tenant": tenant}


def _store_grant(token: dict, scopes: list[str]) -> str:
	event = _claims(token["access_token"]).get("authentication_event_id")
	doc = frappe.get_doc({"doctype": GRANT, "auth_event_id": event, "status": "active", "scopes": " ".join(scopes),
						  "authorised_by": frappe.session.user}).insert(ignore_permissions=True)
	_save_tokens(doc.name, token)
	return doc.name


def _save_tokens(grant: str, token: dict) -> None:
	"""Keep a token response on the grant (Password storage; the fields themselves hold a mask)."""
	set_encrypted_password(GRANT, grant, token["refresh_token"], "refresh_token")
	set_encrypted_password(GRANT, grant, token["access_token"], "access_token")
	expires = now_datetime() + timedelta(seconds=int(token.get("expires_in") or 1800))
	frappe.db.set_value(GRANT, grant, {"refresh_token": "*****", "access_token": "*****",
									   "access_token_expires_at": expires, "refreshed_at": now_datetime()},
						update_modified=False)


def _link(company: str, connection: dict, grant: str, scopes: list[str]) -> str:
	tenant_id = connection["tenantId"]
	other = frappe.db.get_value(CONNECTION, {"tenant_id": tenant_id, "name": ["!=", company]}, "name")
	if other:
		frappe.db.set_value(CONNECTION, company, {"pending_tenants": None, "last_error": mail_text(
			ALREADY_LINKED.format(connection.get("tenantName"), other))})
		frappe.db.commit()
		messages.throw(ALREADY_LINKED, connection.get("tenantName") or tenant_id, other, title="Xero")
	previous = frappe.db.get_value(CONNECTION, company, "xero_grant")
	frappe.db.set_value(CONNECTION, company, {
		"status": CONNECTED, "tenant_id": tenant_id, "connection_id": connection.get("id"),
		"tenant_name": mail_text(connection.get("tenantName")), "xero_grant": grant, "granted_scopes": " ".join(scopes),
		"connected_at": now_datetime(), "connected_by": frappe.session.user, "last_error": None,
		"pending_tenants": None})
	if previous and previous != grant and not frappe.db.exists(CONNECTION, {"xero_grant": previous}):
		_forget_grant(previous)  # reconnect replaced the credentials
	frappe.db.commit()
	return connection.get("tenantName") or tenant_id


def access_token(grant: str) -> str:
	"""A valid access token of ``grant``, refreshed first when it expires within
	:data:`REFRESH_MARGIN` seconds. The refresh runs under a row lock of the grant (every worker and web
	process) and commits the rotated refresh token before the new access token is returned.

	Raises:
		XeroAuthError: Xero refused the refresh (``invalid_grant``): the grant and its connections are
			marked ``revoked``.
	"""
	row = frappe.db.get_value(GRANT, grant, ["status", "access_token_expires_at"], as_dict=True)
	if not row or row.status != "active":
		raise XeroAuthError(f"Xero Grant {grant} is not active")
	if row.access_token_expires_at and row.access_token_expires_at > now_datetime() + timedelta(seconds=REFRESH_MARGIN):
		token = get_decrypted_password(GRANT, grant, "access_token", raise_exception=False)
		if token:
			return token
	frappe.db.commit()  # the lock below must see what other processes committed
	frappe.db.sql(f"select name from `tab{GRANT}` where name=%s for update", grant)
	row = frappe.db.get_value(GRANT, grant, ["status", "access_token_expires_at"], as_dict=True)
	if row.access_token_expires_at and row.access_token_expires_at > now_datetime() + timedelta(seconds=REFRESH_MARGIN):
		frappe.db.commit()  # another process refreshed while we waited for the lock
		return get_decrypted_password(GRANT, grant, "access_token")
	refresh = get_decrypted_password(GRANT, grant, "refresh_token")
	try:
		token = _token_request({"grant_type": "refresh_token", "refresh_token": refresh})
	except XeroAuthError:
		frappe.db.rollback()
		mark_revoked(grant, "Xero refused the refresh token (invalid_grant): reconnect Xero")
		raise
	_save_tokens(grant, token)
	frappe.db.commit()  # the rotated refresh token is stored before its access token is used
	return token["access_token"]


def mark_revoked(grant: str, reason: str) -> None:
	"""The grant no longer works: it and its connections turn ``revoked``, their jobs pause (they stay
	pending until a reconnect resumes them) and admins get a desk notification per Company; commits."""
	from atlas_integrations.notify import notify_admins

	frappe.db.set_value(GRANT, grant, "status", "revoked")
	for name, status in frappe.get_all(CONNECTION, filters={"xero_grant": grant}, fields=["name", "status"], as_list=True):
		frappe.db.set_value(CONNECTION, name, {"status": REVOKED, "last_error": mail_text(reason)})
		if status != REVOKED:
			notify_admins(f"Xero for {name} needs to be reconnected: its jobs are paused", CONNECTION, name, reason)
	frappe.db.commit()


def _forget_grant(grant: str) -> None:
	for field in ("refresh_token", "access_token"):
		remove_encrypted_password(GRANT, grant, field)
	frappe.db.set_value(GRANT, grant, {"status": "revoked", "refresh_token": None, "access_token": None})


def disconnect(company: str) -> dict:
	"""Disconnect ``company``'s organisation: ``DELETE /connections/{id}``; the refresh token is revoked
	only when no other Company's connection uses the same grant (revoking removes every connection of
	that grant). History (Sync Jobs, synced ids) is kept.

	Returns:
		``{"company", "revoked": bool}``.

	Raises:
		frappe.PermissionError: "Only admins can connect Xero".
	"""
	_check_admin()
	conn = messages.get_doc(CONNECTION, company)
	grant, revoked = conn.xero_grant, False
	if grant and conn.connection_id and conn.status == CONNECTED:
		try:
			token = access_token(grant)
			requests.delete(get_endpoint("atlas_xero_api_url").rstrip("/") + f"/connections/{conn.connection_id}",
							headers={"Authorization": f"Bearer {token}"}, timeout=HTTP_TIMEOUT)
		except (XeroAuthError, requests.RequestException):
			pass  # already gone at Xero: disconnect locally all the same
	others = frappe.db.exists(CONNECTION, {"xero_grant": grant, "name": ["!=", company], "status": CONNECTED}) \
		if grant else None
	if grant and not others:
		refresh = get_decrypted_password(GRANT, grant, "refresh_token", raise_exception=False)
		if refresh:
			client_id, secret = client_credentials()
			try:
				requests.post(_identity("/connect/revocation"), data={"token": refresh}, auth=(client_id, secret),
							  timeout=HTTP_TIMEOUT)
				revoked = True
			except requests.RequestException:
				pass
		_forget_grant(grant)
	frappe.db.set_value(CONNECTION, company, {"status": NOT_CONNECTED, "connection_id": None, "xero_grant": None,
											  "tenant_id": None, "last_error": None})
	frappe.db.commit()
	return {"company": company, "revoked": revoked}
