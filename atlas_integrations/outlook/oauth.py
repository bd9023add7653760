"""Connecting an Outlook mailbox.

Personal mailbox: OAuth 2.0 authorization code with PKCE through MSAL for Python
(learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow). MSAL builds the authorization URL
(``initiate_auth_code_flow``: state, nonce, PKCE verifier) and redeems the code
(``acquire_token_by_auth_code_flow``); the flow is kept server-side per ``state`` (Redis, 10 minutes,
single use) with the user who started it, and checked on the callback.

Shared workspace mailbox: client credentials (``acquire_token_for_client``) with the app registration's
application permissions, which a tenant administrator consented to; the connection is proven by reading the
mailbox's user and Inbox through ``/users/{address}``.
"""

from __future__ import annotations

import frappe
from frappe import _
from frappe.utils import get_url

from atlas_integrations import messages
from atlas_integrations.outlook import accounts
from atlas_integrations.outlook.client import SCOPES
from atlas_integrations.outlook.errors import OutlookError, classify, needs_admin_consent
from atlas_integrations.permissions import SHARED, is_admin
from atlas_integrations.settings import require_active_workspace

CALLBACK_METHOD = "atlas_integrations.api.outlook.oauth_callback"
STATE_TTL = 600  # seconds a consent flow stays valid
CANCELLED = "Outlook connection was cancelled"
FLOW_EXPIRED = "Outlook connection expired or was already used; start again"
ADMIN_CONSENT = ("Your Microsoft 365 organisation requires an administrator to approve Atlas first: ask a tenant "
				 "admin to grant consent to the app registration, then connect again")
NO_OFFLINE = "Microsoft did not grant offline access; connect again and accept every permission Atlas asks for"
SHARED_USES_APP = "A shared workspace mailbox connects with the app's application permissions, not a sign-in"
PERSONAL_SIGNS_IN = "A personal mailbox connects by signing in"
NO_ADDRESS = "Enter the shared mailbox's address first"


def redirect_uri() -> str:
	"""The Web redirect URI to register on the Entra app registration (this site's oauth_callback)."""
	return get_url(f"/api/method/{CALLBACK_METHOD}")


def _state_key(state: str) -> str:
	return f"atlas:outlook_oauth_state:{state}"


def check_can_connect(account: str, user: str | None = None):
	"""Who may connect or disconnect ``account``; returns the account document.

	Raises:
		frappe.PermissionError: "Only admins can connect Outlook" for a shared mailbox and a non-admin; the
			user cannot see or edit the account.
		frappe.ValidationError: "Workspace changes are temporarily unavailable" (workspace not Active).
	"""
	user = user or frappe.session.user
	doc = messages.get_doc(accounts.DOCTYPE, account)
	doc.check_permission("read")
	if doc.account_type == SHARED and not is_admin(user):
		frappe.throw(_(accounts.ONLY_ADMINS), frappe.PermissionError, title=_("Outlook"))
	doc.check_permission("write")
	require_active_workspace()
	return doc


def begin(account: str) -> dict:
	"""Start the sign-in of a personal mailbox as the session user.

	Returns:
		``{"authorization_url": str, "state": str, "expires_in": 600}`` (seconds): send the browser there;
		Microsoft redirects back to :func:`redirect_uri`.

	Raises:
		frappe.PermissionError, frappe.ValidationError: see :func:`check_can_connect`; "Outlook not
			configured"; a shared mailbox (it connects with :func:`connect_shared`).
	"""
	doc = check_can_connect(account)
	if doc.account_type == SHARED:
		frappe.throw(_(SHARED_USES_APP), title=_("Outlook"))
	import msal

	app = accounts.msal_app(msal.SerializableTokenCache())
	flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=redirect_uri(),
									   login_hint=(doc.email_address or None), prompt="select_account")
	frappe.cache.set_value(_state_key(flow["state"]), {"account": account, "user": frappe.session.user, "flow": flow},
						   expires_in_sec=STATE_TTL)
	return {"authorization_url": flow["auth_uri"], "state": flow["state"], "expires_in": STATE_TTL}


def complete(params: dict) -> str:
	"""Finish a sign-in (the redirect back from Microsoft): redeem the code with the stored flow (PKCE
	verifier, nonce), read the signed-in mailbox's address (``GET /me``), keep MSAL's token cache in the
	account's Password field and queue the initial sync.

	Args:
		params: the callback's query parameters (``state`` and ``code``, or ``error`` and
			``error_description``).

	Returns:
		The Outlook Account name.

	Raises:
		frappe.ValidationError: cancelled, a consent only a tenant admin can give (said in words), the flow
			expired or unknown, Microsoft refused the code, no refresh token.
		frappe.PermissionError: the callback arrives in another user's session.
	"""
	import msal

	state = str(params.get("state") or "")
	stored = frappe.cache.get_value(_state_key(state)) if state else None
	if state:
		frappe.cache.delete_value(_state_key(state))  # single use
	if not stored:
		frappe.throw(_(FLOW_EXPIRED), title=_("Outlook"))
	if stored["user"] != frappe.session.user:
		frappe.throw(_("This Outlook connection was started by another user"), frappe.PermissionError,
					 title=_("Outlook"))
	if params.get("error") or not params.get("code"):
		frappe.throw(_(ADMIN_CONSENT if needs_admin_consent(params) else CANCELLED), title=_("Outlook"))
	account = stored["account"]
	cache = msal.SerializableTokenCache()
	app = accounts.msal_app(cache)
	answer = {k: str(v) for k, v in params.items() if k in ("state", "code", "session_state", "client_info")}
	try:
		result = app.acquire_token_by_auth_code_flow(stored["flow"], answer)
	except ValueError:  # MSAL: the state does not match its flow
		frappe.throw(_(FLOW_EXPIRED), title=_("Outlook"))
	if "access_token" not in result:
		if needs_admin_consent(result):
			frappe.throw(_(ADMIN_CONSENT), title=_("Outlook"))
		messages.throw("Microsoft refused the authorization code ({0})", str(result.get("error") or "no token")[:80],
					   title="Outlook")
	if not result.get("refresh_token"):
		frappe.throw(_(NO_OFFLINE), title=_("Outlook"))
	claims = result.get("id_token_claims") or {}
	home = next((a.get("home_account_id") for a in app.get_accounts()
				 if a.get("local_account_id") == claims.get("oid")), None)
	token = result["access_token"]
	client = accounts.client_for(account, tokens=lambda force=False: token, kind=accounts.PERSONAL)
	try:
		me = client.me()
	except OutlookError as exc:
		messages.throw("Could not read the Outlook mailbox: {0}", str(exc)[:200], title="Outlook")
	address = (me.get("mail") or me.get("userPrincipalName") or claims.get("preferred_username") or "").strip()
	accounts.store_connection(account, address, cache.serialize(), home, (result.get("scope") or "").split())
	from atlas_integrations.outlook.sync import enqueue_sync

	enqueue_sync(account, trigger="connect")
	return account


def connect_shared(account: str) -> dict:
	"""Connect a shared workspace mailbox with the app's application permissions (client credentials):
	prove that the app can read the mailbox (``GET /users/{address}`` and its Inbox), mark it connected and
	queue its initial sync.

	Returns:
		``{"account": str, "email_address": str, "sync_job": str}``.

	Raises:
		frappe.PermissionError: not an admin. frappe.ValidationError: a personal mailbox; no address;
			Outlook not configured; the tenant has not consented (said in words) or the mailbox is out of
			the app's reach (Exchange application access policy, unknown address).
	"""
	doc = check_can_connect(account)
	if doc.account_type != SHARED:
		frappe.throw(_(PERSONAL_SIGNS_IN), title=_("Outlook"))
	address = (doc.email_address or "").strip().lower()
	if not address:
		frappe.throw(_(NO_ADDRESS), title=_("Outlook"))
	client = accounts.client_for(account, tokens=accounts.TokenSource(account, SHARED, None, address),
								 kind=SHARED, address=address)
	try:
		me = client.me()
		client.folder("inbox")
	except Exception as exc:
		err = classify(exc, "connect")
		if needs_admin_consent(err):
			frappe.throw(_(ADMIN_CONSENT), title=_("Outlook"))
		messages.throw("Atlas cannot read the mailbox {0} with its application permissions ({1}); check the admin "
					   "consent and the Exchange application access policy", address, str(err)[:200], title="Outlook")
	accounts.store_connection(account, (me.get("mail") or address).lower(), None, None, ["Mail.ReadWrite", "Mail.Send"])
	from atlas_integrations.outlook.sync import enqueue_sync

	queued = enqueue_sync(account, trigger="connect")
	return {"account": account, "email_address": address, "sync_job": queued["sync_job"]}


def disconnect(account: str) -> dict:
	"""Delete the stored authorization; synced mail is kept. Microsoft has no endpoint that revokes one
	refresh token: the user (My Apps) or a tenant admin (Enterprise applications) removes Atlas's consent.

	Returns:
		``{"account": str, "revoked": False}``.

	Raises:
		frappe.PermissionError, frappe.ValidationError: see :func:`check_can_connect`.
	"""
	check_can_connect(account)
	accounts.clear_credentials(account, "Disconnected: the stored authorization was deleted here; remove Atlas "
										"under My Apps (or Enterprise applications) to revoke its consent")
	return {"account": account, "revoked": False}
