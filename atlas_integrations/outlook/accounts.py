"""Outlook Account state: validation, the app registration, MSAL and its token cache per mailbox, the one
way to get a Graph client, status / health transitions.

A **personal** mailbox connects with delegated permissions: its user signs in (authorization code with PKCE
through MSAL, :mod:`atlas_integrations.outlook.oauth`) and MSAL's token cache, refresh token included, is
kept in the account's Password field ``token_cache`` (written back only when MSAL changed it; refresh tokens
rotate on every use). A **shared workspace mailbox** cannot sign in: it connects with the app registration's
application permissions (client credentials, admin consent, scoped to the mailbox by the tenant's Exchange
application access policy) and calls ``/users/{address}/…``.
"""

from __future__ import annotations

import json
import threading
import time

import frappe
from frappe.utils import now_datetime
from frappe.utils.password import get_decrypted_password, remove_encrypted_password, set_encrypted_password

from atlas_integrations import jobs, messages
from atlas_integrations.endpoints import conf_number, get_endpoint, is_loopback
from atlas_integrations.inbox import health
from atlas_integrations.inbox.health import (ACTIVE, DISABLED, HEALTHY, NOT_CONNECTED, SYNCING,  # noqa: F401
											 UNAUTHORIZED, UNHEALTHY)
from atlas_integrations.outlook.client import APP_SCOPES, CONCURRENCY, HTTP_TIMEOUT, SCOPES, WINDOW_REQUESTS, \
	WINDOW_SECONDS, GraphClient
from atlas_integrations.outlook.errors import AuthRevoked, from_token_result
from atlas_integrations.permissions import PERSONAL, SHARED, is_admin

DOCTYPE = "Outlook Account"
#: how a mailbox connects (the form's "Connection" field, set from its type)
DELEGATED = "Delegated: the mailbox's user signs in"
APPLICATION = "Application permissions: client credentials with admin consent"
OUTLOOK_NOT_CONFIGURED = "Outlook not configured"
ONLY_ADMINS = "Only admins can connect Outlook"
NOT_CONNECTED_MESSAGE = "Outlook Account {0} is not connected"
#: the folders synced when the account names none (Graph well-known folder names)
DEFAULT_FOLDERS = ("inbox", "sentitems")
#: the well-known folders a mailbox may sync, and the tag a message in each carries (the desk's words:
#: INBOX, SENT, TRASH, SPAM, DRAFT; a message in Archive carries none of them: it is archived)
FOLDER_TAGS = {"inbox": "INBOX", "sentitems": "SENT", "archive": "", "deleteditems": "TRASH", "junkemail": "SPAM",
			   "drafts": "DRAFT"}
#: the share of Graph's 10,000 requests per 10 minutes a mailbox's clients pace themselves at (below 1:
#: Graph's window and ours are not aligned)
QUOTA_SHARE = 0.98
#: the site config key naming a PEM file the Microsoft endpoints are verified with, honoured only while
#: every Microsoft endpoint is on loopback (a local Graph-compatible server with its own certificate)
CA_BUNDLE_KEY = "atlas_microsoft_ca_bundle"
ENDPOINT_KEYS = ("atlas_microsoft_login_url", "atlas_graph_api_url")


def validate_account(doc) -> None:
	"""Controller ``validate``: defaults (owner, name, folders, how it connects) and who may own which kind.

	Raises:
		frappe.PermissionError: a non-admin creates or edits a shared mailbox, or an account of someone else.
		frappe.ValidationError: a folder that is not one of Graph's well-known mail folders.
	"""
	user = frappe.session.user
	if not doc.user:
		doc.user = user
	if not doc.account_name:
		doc.account_name = doc.email_address or doc.user
	doc.connection = APPLICATION if doc.account_type == SHARED else DELEGATED
	doc.folders = ", ".join(folders_of(doc.folders, strict=True))
	if doc.flags.ignore_permissions or is_admin(user):
		return
	if doc.account_type == SHARED:
		frappe.throw(frappe._(ONLY_ADMINS), frappe.PermissionError)
	if doc.user != user:
		frappe.throw(frappe._("You can only add your own Outlook account"), frappe.PermissionError)


def folders_of(value: str | None, strict: bool = False) -> list[str]:
	"""The well-known folder names of an account's ``folders`` (comma or newline separated, lower case;
	:data:`DEFAULT_FOLDERS` when empty).

	Raises:
		frappe.ValidationError: ``strict`` and a name that is not a folder the sync can follow.
	"""
	names = [n.strip().lower() for n in (value or "").replace("\n", ",").split(",") if n.strip()]
	unknown = [n for n in names if n not in FOLDER_TAGS or n == "drafts"]
	if unknown and strict:
		messages.throw("Outlook folders to sync are Graph's well-known names ({0}); not: {1}",
					   ", ".join(n for n in FOLDER_TAGS if n != "drafts"), ", ".join(unknown[:5]), title="Outlook")
	return list(dict.fromkeys(n for n in names if n not in unknown)) or list(DEFAULT_FOLDERS)


# -- the app registration ---------------------------------------------------------------------------------
def client_config() -> tuple[str, str, str]:
	"""``(client id, client secret, tenant)`` of the Entra app registration from Atlas Settings (tenant
	``common`` when empty).

	Raises:
		frappe.ValidationError: "Outlook not configured" when the client id or secret is missing.
	"""
	settings = frappe.get_cached_doc("Atlas Settings")
	client_id = (settings.get("microsoft_client_id") or "").strip()
	secret = get_decrypted_password("Atlas Settings", "Atlas Settings", "microsoft_client_secret", raise_exception=False)
	if not client_id or not secret:
		frappe.throw(frappe._(OUTLOOK_NOT_CONFIGURED), title=frappe._("Outlook"))
	return client_id, secret, (settings.get("microsoft_tenant") or "common").strip() or "common"


def authority(tenant: str) -> str:
	"""The MSAL authority URL: the login host (site config ``atlas_microsoft_login_url``) and ``tenant``."""
	return f"{get_endpoint('atlas_microsoft_login_url').rstrip('/')}/{tenant.strip('/')}"


def local_endpoints() -> bool:
	"""True when every Microsoft endpoint is on loopback (a local Graph-compatible server)."""
	return all(is_loopback(get_endpoint(key)) for key in ENDPOINT_KEYS)


def http_session():
	"""The ``requests.Session`` every Microsoft call goes through (MSAL's and Graph's). While every
	Microsoft endpoint is on loopback and site config names a PEM file (:data:`CA_BUNDLE_KEY`), the session
	verifies TLS with that file (passed per request: ``REQUESTS_CA_BUNDLE`` would win over
	``session.verify``); otherwise with the system's trust store, as always."""
	import functools

	import requests

	session = requests.Session()
	bundle = (frappe.conf.get(CA_BUNDLE_KEY) or "").strip()
	if bundle and local_endpoints():
		session.request = functools.partial(session.request, verify=bundle)
	return session


_APPS: dict[tuple, object] = {}
_APPS_LOCK = threading.Lock()


def msal_app(cache=None):
	"""An ``msal.ConfidentialClientApplication`` of the app registration on the configured authority
	(``instance_discovery`` off for a loopback authority, which Microsoft's discovery does not know).

	Args:
		cache: an ``msal.SerializableTokenCache`` (a mailbox's), or None for the application's own
			(client credentials: one app per process and configuration, so its token is reused).
	"""
	import msal

	client_id, secret, tenant = client_config()
	url = authority(tenant)
	kwargs = {"client_credential": secret, "authority": url, "http_client": http_session(), "timeout": HTTP_TIMEOUT}
	if is_loopback(url):
		kwargs["instance_discovery"] = False
	if cache is not None:
		return msal.ConfidentialClientApplication(client_id, token_cache=cache, **kwargs)
	key = (client_id, secret, url, frappe.conf.get(CA_BUNDLE_KEY))
	with _APPS_LOCK:
		if key not in _APPS:
			_APPS[key] = msal.ConfidentialClientApplication(client_id, **kwargs)
		return _APPS[key]


# -- tokens -----------------------------------------------------------------------------------------------
def _cache_key(account: str) -> str:
	"""The Redis key of the account's encrypted token cache copy (read and written past Frappe's
	per-request copy of cached values: another worker may have refreshed meanwhile)."""
	return frappe.cache.make_key(f"atlas:outlook-token-cache:{account}")


def load_cache_state(account: str) -> str | None:
	"""The newest serialized MSAL token cache of ``account``: the encrypted copy in Redis (written by the
	last refresh, in any worker) when there is one, else the Password field."""
	from frappe.utils.password import decrypt

	cached = frappe.cache.get(_cache_key(account))
	if cached:
		try:
			return decrypt(cached.decode() if isinstance(cached, bytes) else cached)
		except Exception:
			pass
	return get_decrypted_password(DOCTYPE, account, "token_cache", raise_exception=False) or None


def save_cache_state(account: str, state: str) -> None:
	"""Keep a changed token cache: encrypted in Redis at once (every worker refreshes from it) and in the
	Password field (in the current transaction). The field's column holds a fixed mask, so a form save
	keeps the stored value."""
	from frappe.utils.password import encrypt

	frappe.cache.set(_cache_key(account), encrypt(state), ex=90 * 86400)
	set_encrypted_password(DOCTYPE, account, state, "token_cache")
	frappe.db.set_value(DOCTYPE, account, "token_cache", "*" * 8, update_modified=False)


def forget_cache(account: str) -> None:
	"""Delete the account's token cache (Redis copy and Password field)."""
	frappe.cache.delete(_cache_key(account))
	remove_encrypted_password(DOCTYPE, account, "token_cache")
	frappe.db.set_value(DOCTYPE, account, "token_cache", None, update_modified=False)


class TokenSource:
	"""The access token of one mailbox, as ``fn(force: bool) -> str`` for :class:`GraphClient`.

	Delegated: MSAL's ``acquire_token_silent`` on the mailbox's token cache, which refreshes when the access
	token is due. Refreshes are serialized per mailbox by a Redis lock, and the cache is read again inside it,
	so two workers never refresh with the same (rotated, hence spent) refresh token. Application: MSAL's
	``acquire_token_for_client`` (cached by MSAL per process).

	Raises (when called):
		AuthRevoked: the stored authorization is gone (no account in the cache, ``invalid_grant``, consent
			withdrawn). Temporary: the identity platform could not answer.
	"""

	def __init__(self, account: str, kind: str, home_account_id: str | None, username: str | None):
		self.account, self.kind, self.home_account_id, self.username = account, kind, home_account_id, username
		self._token: str | None = None
		self._expires = 0.0
		self._app = None
		self._cache = None

	def __repr__(self) -> str:
		return f"TokenSource({self.account!r}, {self.kind!r})"

	def __call__(self, force: bool = False) -> str:
		if self._token and not force and self._expires > time.time() + 120:
			return self._token
		result = self._application(force) if self.kind == SHARED else self._delegated(force)
		if not result or "access_token" not in result:
			raise from_token_result(result, "token")
		self._token = result["access_token"]
		self._expires = time.time() + float(result.get("expires_in") or 300)
		return self._token

	def _application(self, force: bool) -> dict:
		app = msal_app()
		if force:
			app.remove_tokens_for_client()
		return app.acquire_token_for_client(APP_SCOPES)

	def _delegated(self, force: bool) -> dict | None:
		import msal

		with frappe.cache.lock(f"{frappe.local.site}:atlas:outlook-token:{self.account}", timeout=60,
							   blocking_timeout=90):
			state = load_cache_state(self.account)
			if not state:
				raise AuthRevoked("token: the mailbox holds no authorization", 401, "no_token_cache")
			if self._cache is None:
				self._cache = msal.SerializableTokenCache()
				self._app = msal_app(self._cache)
			self._cache.deserialize(state)
			found = [a for a in self._app.get_accounts()
					 if a.get("home_account_id") == self.home_account_id or not self.home_account_id]
			if not found:
				raise AuthRevoked("token: the mailbox's account is not in its token cache", 401, "no_account")
			result = self._app.acquire_token_silent_with_error(SCOPES, account=found[0], force_refresh=force)
			if self._cache.has_state_changed:
				save_cache_state(self.account, self._cache.serialize())
				self._cache.has_state_changed = False
			return result


def token_source(account: str) -> TokenSource:
	"""The :class:`TokenSource` of ``account``."""
	row = frappe.db.get_value(DOCTYPE, account, ["account_type", "home_account_id", "email_address"], as_dict=True)
	if not row:
		messages.throw(NOT_CONNECTED_MESSAGE, account, title="Outlook")
	return TokenSource(account, row.account_type or PERSONAL, row.home_account_id, row.email_address)


def mailbox_path(kind: str, address: str | None) -> str:
	"""Where a mailbox's Graph resources are: ``me`` (delegated) or ``users/{address}`` (application)."""
	import urllib.parse

	if kind == SHARED:
		return "users/" + urllib.parse.quote((address or "").strip().lower(), safe="@")
	return "me"


def permits(account: str):
	"""The mailbox's 4 concurrent requests, shared by every worker (:class:`~atlas_integrations.quota.
	Permits`; site config ``atlas_outlook_concurrency`` overrides)."""
	from atlas_integrations.quota import Permits

	limit = int(conf_number("atlas_outlook_concurrency", CONCURRENCY))
	return Permits(frappe.cache, f"{frappe.local.site}:atlas:outlook-permits:{account}", limit,
				   lease=conf_number("atlas_outlook_timeout", HTTP_TIMEOUT) * 2 + 10)


def window(account: str):
	"""The mailbox's 10,000 requests per 10 minutes (times :data:`QUOTA_SHARE`), shared by every worker
	(:class:`~atlas_integrations.quota.MovingWindow`; site config ``atlas_outlook_requests_per_10_minutes``
	overrides, ``0`` turns pacing off). None when off."""
	from atlas_integrations.quota import MovingWindow

	if str(frappe.conf.get("atlas_outlook_requests_per_10_minutes")).strip() in ("0", "0.0"):
		return None
	limit = conf_number("atlas_outlook_requests_per_10_minutes", WINDOW_REQUESTS)
	return MovingWindow(frappe.cache, f"{frappe.local.site}:atlas:outlook-window:{account}",
						max(1, int(limit * QUOTA_SHARE)), window=float(WINDOW_SECONDS))


def client_for(account: str, tokens: TokenSource | None = None, kind: str | None = None,
			   address: str | None = None) -> GraphClient:
	"""The one way to get a Graph client for ``account`` (Graph root from site config
	``atlas_graph_api_url``; the mailbox's permits and window; ``tokens``, ``kind`` and ``address`` for a
	mailbox being connected, else the stored ones).

	Raises:
		frappe.ValidationError: Outlook not configured, or the account does not exist.
	"""
	row = frappe.db.get_value(DOCTYPE, account, ["account_type", "email_address"], as_dict=True) or frappe._dict()
	kind = kind or row.account_type or PERSONAL
	return GraphClient(get_endpoint("atlas_graph_api_url"), mailbox_path(kind, address or row.email_address),
					   tokens or token_source(account), http_session(), permits=permits(account),
					   window=window(account), timeout=conf_number("atlas_outlook_timeout", HTTP_TIMEOUT))


def secrets_of(account: str) -> list[str]:
	"""Every secret value tied to ``account`` (for scrubbing error text): the client secret and every token
	in its cache. Never log the result."""
	values = [get_decrypted_password("Atlas Settings", "Atlas Settings", "microsoft_client_secret", raise_exception=False)]
	state = load_cache_state(account) if account else None
	if state:
		try:
			cache = json.loads(state)
		except ValueError:
			cache = {}
		for section in ("AccessToken", "RefreshToken", "IdToken"):
			values += [str(item.get("secret") or "") for item in (cache.get(section) or {}).values()
					   if isinstance(item, dict)]
	return [v for v in values if v]


def run_as_user(account: str) -> str:
	"""The user a worker run for ``account`` executes as: its owner when an enabled user, else
	``Administrator`` (:func:`atlas_integrations.jobs.resolve_run_as`)."""
	return jobs.resolve_run_as(frappe.db.get_value(DOCTYPE, account, "user") if account else None)


# -- state ------------------------------------------------------------------------------------------------
def store_connection(account: str, email_address: str, cache_state: str | None, home_account_id: str | None,
					 scopes: list[str] | None) -> None:
	"""Record a completed connection: the token cache (delegated), the connected address, status SYNCING,
	health healthy. A different address than the one synced before starts over (folder state cleared)."""
	doc = messages.get_doc(DOCTYPE, account)
	if doc.email_address and doc.email_address.lower() != email_address.lower():
		doc.folder_state = None
		doc.sync_stage = "Not started"
	doc.email_address = email_address
	if not doc.account_name or doc.account_name == doc.user:
		doc.account_name = email_address
	doc.home_account_id = home_account_id
	doc.granted_scopes = " ".join(scopes or [])
	doc.connected_at = now_datetime()
	doc.enabled = 1
	doc.status = SYNCING
	doc.health = HEALTHY
	doc.consecutive_failures = 0
	doc.last_error = None
	doc.flags.ignore_permissions = True
	doc.save()
	if cache_state:
		save_cache_state(account, cache_state)


def clear_credentials(account: str, note: str | None = None) -> None:
	"""Delete the stored authorization; status NOT CONNECTED, health disabled, enabled off. Synced mail is
	kept."""
	forget_cache(account)
	frappe.db.set_value(DOCTYPE, account, {"status": NOT_CONNECTED, "health": DISABLED, "enabled": 0,
										   "home_account_id": None, "last_error": note})


def mark_unauthorized(account: str, error: str) -> None:
	"""Microsoft refused the stored authorization: UNAUTHORIZED, unhealthy, admins notified once."""
	name = frappe.db.get_value(DOCTYPE, account, "account_name") or account
	health.mark_unauthorized(DOCTYPE, account, error, f"Outlook Account {name} needs to be reconnected")


def record_run(account: str, succeeded: bool, error: str | None = None) -> None:
	"""After a run: last processed time, failures, success rate and health
	(:func:`atlas_integrations.inbox.health.record_run`)."""
	health.record_run(DOCTYPE, account, succeeded, error)


__all__ = ["PERSONAL", "SHARED", "DOCTYPE", "client_for", "token_source", "record_run", "mark_unauthorized"]
