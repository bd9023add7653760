"""Google OAuth 2.0 for web server applications, with offline access and PKCE.

Follows https://developers.google.com/identity/protocols/oauth2/web-server: the consent URL asks for
``access_type=offline`` and ``prompt=consent`` (so Google returns a refresh token), ``state`` is kept
server-side per flow (Redis, 10 minutes, single use) together with the PKCE ``code_verifier``, and checked
on the callback against the user who started the flow.
"""

from __future__ import annotations

import os

import frappe
import requests
from frappe import _
from frappe.utils import get_url
from google_auth_oauthlib.flow import Flow

from atlas_integrations import messages
from atlas_integrations.endpoints import get_endpoint, is_loopback
from atlas_integrations.gmail import accounts
from atlas_integrations.gmail.client import SCOPES, TokenState
from atlas_integrations.gmail.errors import classify
from atlas_integrations.permissions import SHARED, is_admin
from atlas_integrations.settings import require_active_workspace

CALLBACK_METHOD = "atlas_integrations.api.gmail.oauth_callback"
STATE_TTL = 600  # seconds a consent flow stays valid
CANCELLED = "Gmail connection was cancelled"
NO_OFFLINE = "Gmail did not grant offline access"
MISSING_SCOPE = ("Gmail did not grant access to read, label and send mail (gmail.modify); connect again and "
				 "allow every permission Atlas asks for")
FLOW_EXPIRED = "Gmail connection expired or was already used; start again"
HTTP_TIMEOUT = 30  # seconds


def redirect_uri() -> str:
	"""The callback URL to register on the Google OAuth client (this site's oauth_callback method)."""
	return get_url(f"/api/method/{CALLBACK_METHOD}")


#: the Google endpoints whose transport oauthlib's insecure switch would weaken
GOOGLE_ENDPOINT_KEYS = ("atlas_google_auth_url", "atlas_google_token_url", "atlas_google_revoke_url",
						"atlas_gmail_api_url")


def set_insecure_transport() -> bool:
	"""Turn oauthlib's insecure-transport switch (``OAUTHLIB_INSECURE_TRANSPORT``, an environment variable
	it reads on every call) on only while *every* configured Google endpoint is on loopback (a local
	Google-compatible server, decided with :func:`atlas_integrations.endpoints.is_loopback`), and off
	otherwise. Returns whether it is on."""
	local = all(is_loopback(get_endpoint(key)) for key in GOOGLE_ENDPOINT_KEYS)
	if local:
		os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
	else:
		os.environ.pop("OAUTHLIB_INSECURE_TRANSPORT", None)
	return local


def granted_scopes(token: dict, requested: list[str]) -> list[str]:
	"""The scopes Google granted, from the token response's ``scope`` (space-separated per RFC 6749 §5.1,
	or a list as oauthlib keeps it); the requested ones when the response does not say."""
	scope = token.get("scope") if token else None
	if scope is None:
		return list(requested)
	return scope.split() if isinstance(scope, str) else [str(x) for x in scope]


def _state_key(state: str) -> str:
	return f"atlas:gmail_oauth_state:{state}"


def _flow(state: str | None = None, code_verifier: str | None = None) -> Flow:
	client_id, secret = accounts.client_credentials()
	token_url = get_endpoint("atlas_google_token_url")
	set_insecure_transport()
	# Google may return the scopes in another order or with previously granted ones
	os.environ.setdefault("OAUTHLIB_RELAX_TOKEN_SCOPE", "1")
	config = {
		"web": {
			"client_id": client_id,
			"client_secret": secret,
			"auth_uri": get_endpoint("atlas_google_auth_url"),
			"token_uri": token_url,
			"redirect_uris": [redirect_uri()],
		}
	}
	return Flow.from_client_config(
		config,
		scopes=SCOPES,
		redirect_uri=redirect_uri(),
		state=state,
		code_verifier=code_verifier,
		autogenerate_code_verifier=code_verifier is None,
	)


def check_can_connect(account: str, user: str | None = None) -> "frappe.model.document.Document":
	"""Who may connect or disconnect ``account``; returns the account document.

	Raises:
		frappe.PermissionError: "Only admins can connect Gmail" for a shared mailbox and a non-admin; the
			user cannot see or edit the account.
		frappe.ValidationError: "Workspace changes are temporarily unavailable" when the workspace is not
			Active.
	"""
	user = user or frappe.session.user
	doc = messages.get_doc(accounts.DOCTYPE, account)
	doc.check_permission("read")
	if doc.account_type == SHARED and not is_admin(user):
		frappe.throw(_(accounts.ONLY_ADMINS), frappe.PermissionError, title=_("Gmail"))
	doc.check_permission("write")
	require_active_workspace()
	return doc


def begin(account: str) -> dict:
	"""Start a consent flow for ``account`` as the session user.

	Returns:
		``{"authorization_url": str, "state": str, "expires_in": 600}`` — send the browser to the URL.

	Raises:
		frappe.PermissionError, frappe.ValidationError: see :func:`check_can_connect`; "Gmail not
			configured" when Atlas Settings lacks the Google client id or secret.
	"""
	doc = check_can_connect(account)
	flow = _flow()
	url, state = flow.authorization_url(
		access_type="offline",
		prompt="consent",
		include_granted_scopes="true",
		**({"login_hint": doc.email_address} if doc.email_address else {}),
	)
	frappe.cache.set_value(
		_state_key(state),
		{"account": account, "user": frappe.session.user, "code_verifier": flow.code_verifier},
		expires_in_sec=STATE_TTL,
	)
	return {"authorization_url": url, "state": state, "expires_in": STATE_TTL}


def complete(state: str | None, code: str | None = None, error: str | None = None) -> str:
	"""Finish a consent flow (the redirect back from Google).

	Exchanges ``code`` for tokens (with the stored PKCE verifier), reads the connected address with
	users.getProfile, stores the tokens in Password fields and enqueues the initial sync.

	Args:
		state: the ``state`` Google echoed back.
		code: the authorization code (absent when consent was denied).
		error: Google's error (``access_denied`` when the user cancelled).

	Returns:
		The Gmail Account name.

	Raises:
		frappe.ValidationError: "Gmail connection was cancelled", "Gmail did not grant offline access",
			the flow expired or is unknown, or Google refused the code.
		frappe.PermissionError: the callback arrives in another user's session.
	"""
	stored = frappe.cache.get_value(_state_key(state)) if state else None
	if state:
		frappe.cache.delete_value(_state_key(state))  # single use
	if not stored:
		frappe.throw(_(FLOW_EXPIRED), title=_("Gmail"))
	if stored["user"] != frappe.session.user:
		frappe.throw(_("This Gmail connection was started by another user"), frappe.PermissionError, title=_("Gmail"))
	if error or not code:
		frappe.throw(_(CANCELLED), title=_("Gmail"))
	account = stored["account"]
	flow = _flow(state=state, code_verifier=stored["code_verifier"])
	try:
		flow.fetch_token(code=code, timeout=HTTP_TIMEOUT)
	except Exception as exc:
		messages.throw("Google refused the authorization code ({0})", type(exc).__name__, title="Gmail")
	creds = flow.credentials
	if not creds.refresh_token:
		frappe.throw(_(NO_OFFLINE), title=_("Gmail"))
	scopes = granted_scopes(flow.oauth2session.token, SCOPES)
	missing = [x for x in SCOPES if x not in scopes]
	if missing:
		frappe.throw(_(MISSING_SCOPE), title=_("Gmail"))
	client_id, secret = accounts.client_credentials()
	tokens = TokenState(
		client_id=client_id,
		client_secret=secret,
		token_uri=get_endpoint("atlas_google_token_url"),
		refresh_token=creds.refresh_token,
		access_token=creds.token,
		expiry=creds.expiry,
	)
	try:
		profile = accounts.client_for(account, tokens=tokens).get_profile()
	except Exception as exc:
		messages.throw("Could not read the Gmail profile: {0}", classify(exc, "users.getProfile"), title="Gmail")
	accounts.store_connection(
		account,
		email_address=profile["emailAddress"],
		refresh_token=creds.refresh_token,
		access_token=creds.token,
		expiry=creds.expiry.replace(tzinfo=None) if creds.expiry and creds.expiry.tzinfo else creds.expiry,
		scopes=scopes,
	)
	from atlas_integrations.gmail.sync import enqueue_sync

	enqueue_sync(account, trigger="connect")
	return account


def disconnect(account: str) -> dict:
	"""Revoke Atlas's access at Google and delete the stored credentials. Synced mail is kept.

	Returns:
		``{"account": str, "revoked": bool}`` — ``revoked`` False when Google could not be reached or
		already considered the token invalid (credentials are deleted locally either way).

	Raises:
		frappe.PermissionError, frappe.ValidationError: see :func:`check_can_connect`.
	"""
	check_can_connect(account)
	from frappe.utils.password import get_decrypted_password

	token = get_decrypted_password(accounts.DOCTYPE, account, "refresh_token", raise_exception=False)
	revoked, note = False, None
	if token:
		try:
			response = requests.post(
				get_endpoint("atlas_google_revoke_url"),
				data={"token": token},
				headers={"Content-Type": "application/x-www-form-urlencoded"},
				timeout=HTTP_TIMEOUT,
			)
			revoked = response.status_code == 200
			if not revoked:
				note = f"Google answered HTTP {response.status_code} to the revoke; credentials deleted here"
		except requests.RequestException as exc:
			note = f"Could not reach Google to revoke ({type(exc).__name__}); credentials deleted here"
	accounts.clear_credentials(account, note)
	return {"account": account, "revoked": revoked}
