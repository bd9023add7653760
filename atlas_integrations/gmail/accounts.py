"""Gmail Account state: validation, token material, status/health transitions."""

from __future__ import annotations

from datetime import datetime

import frappe
from frappe.utils import now_datetime
from frappe.utils.password import get_decrypted_password, remove_encrypted_password, set_encrypted_password

from atlas_integrations import jobs, messages
from atlas_integrations.endpoints import get_endpoint, gmail_api_root
from atlas_integrations.gmail.client import HTTP_TIMEOUT, GmailClient, TokenState
from atlas_integrations.inbox import health
# the states and health values every mailbox type shares (re-exported: the Gmail code names them from here)
from atlas_integrations.inbox.health import (ACTIVE, DISABLED, HEALTH_WINDOW, HEALTHY, NOT_CONNECTED,  # noqa: F401
											 SYNCING, UNAUTHORIZED, UNHEALTHY, UNHEALTHY_AFTER)
from atlas_integrations.permissions import PERSONAL, SHARED, is_admin

DOCTYPE = "Gmail Account"
GMAIL_NOT_CONFIGURED = "Gmail not configured"
ONLY_ADMINS = "Only admins can connect Gmail"


def validate_account(doc) -> None:
	"""Controller ``validate``: defaults and who may own which kind of account.

	Raises:
		frappe.PermissionError: a non-admin creates or edits a shared mailbox, or an account of someone else.
	"""
	user = frappe.session.user
	if not doc.user:
		doc.user = user
	if not doc.account_name:
		doc.account_name = doc.email_address or doc.user
	if doc.flags.ignore_permissions or is_admin(user):
		return
	if doc.account_type == SHARED:
		frappe.throw(frappe._(ONLY_ADMINS), frappe.PermissionError)
	if doc.user != user:
		frappe.throw(frappe._("You can only add your own Gmail account"), frappe.PermissionError)


def client_credentials() -> tuple[str, str]:
	"""Google OAuth client id and secret from Atlas Settings.

	Raises:
		frappe.ValidationError: "Gmail not configured" when either is missing.
	"""
	settings = frappe.get_cached_doc("Atlas Settings")
	client_id = (settings.google_client_id or "").strip()
	secret = get_decrypted_password("Atlas Settings", "Atlas Settings", "google_client_secret", raise_exception=False)
	if not client_id or not secret:
		frappe.throw(frappe._(GMAIL_NOT_CONFIGURED), title=frappe._("Gmail"))
	return client_id, secret


def token_state(account: str) -> TokenState:
	"""Token material of ``account`` for :class:`~atlas_integrations.gmail.client.GmailClient`.

	Raises:
		frappe.ValidationError: Gmail not configured, or the account holds no refresh token.
	"""
	client_id, secret = client_credentials()
	refresh = get_decrypted_password(DOCTYPE, account, "refresh_token", raise_exception=False)
	if not refresh:
		messages.throw("Gmail Account {0} is not connected", account, title="Gmail")
	access = get_decrypted_password(DOCTYPE, account, "access_token", raise_exception=False)
	expiry = frappe.db.get_value(DOCTYPE, account, "access_token_expires_at")
	return TokenState(
		client_id=client_id,
		client_secret=secret,
		token_uri=get_endpoint("atlas_google_token_url"),
		refresh_token=refresh,
		access_token=access or None,
		expiry=expiry if access else None,
	)


def client_for(account: str, tokens: TokenState | None = None) -> GmailClient:
	"""The one way to get an authorised Gmail client for ``account``.

	Args:
		account: Gmail Account name (used for its stored tokens unless ``tokens`` is given).
		tokens: token material to use instead of the stored one, e.g. tokens just obtained from an OAuth
			consent and not stored yet.

	Returns:
		A :class:`~atlas_integrations.gmail.client.GmailClient` on the configured Gmail API root (site
		config ``atlas_gmail_api_url``). It refreshes its access token itself; the caller keeps a
		refreshed one with :func:`save_access_token` (``client.credentials.token`` / ``.expiry``, naive UTC).

	Raises:
		frappe.ValidationError: Gmail not configured (no Google client id/secret in Atlas Settings), or the
			account holds no refresh token (when ``tokens`` is not given).
	"""
	from atlas_integrations.endpoints import conf_number

	timeout = int(conf_number("atlas_gmail_timeout", HTTP_TIMEOUT))  # seconds per request (tests shorten it)
	return GmailClient(tokens if tokens is not None else token_state(account), gmail_api_root(), timeout=timeout,
					   quota=user_quota(account))


#: the share of Gmail's per-user quota a mailbox's clients pace themselves at: below 1, so that requests
#: Gmail counts a little later than they were sent (its window and ours are not aligned) stay within it
QUOTA_SHARE = 0.98


def user_quota(account: str):
	"""The moving-minute quota every client of ``account`` takes its units from (one Redis window per
	mailbox, all workers): Gmail's 15,000 units per user per minute (site config
	``atlas_gmail_user_quota_per_minute`` overrides; 0 turns pacing off) times :data:`QUOTA_SHARE`.
	Returns an :class:`atlas_integrations.quota.MovingWindow`, or None when pacing is off."""
	from atlas_integrations.endpoints import conf_number
	from atlas_integrations.gmail.client import USER_QUOTA_PER_MINUTE
	from atlas_integrations.quota import MovingWindow

	if str(frappe.conf.get("atlas_gmail_user_quota_per_minute")).strip() in ("0", "0.0"):
		return None
	per_minute = conf_number("atlas_gmail_user_quota_per_minute", USER_QUOTA_PER_MINUTE)
	return MovingWindow(frappe.cache, f"{frappe.local.site}:atlas:gmail-quota:{account}",
						max(1, int(per_minute * QUOTA_SHARE)), window=60.0)


def run_as_user(account: str) -> str:
	"""The user a worker run for ``account`` executes as: the account's owner (Gmail Account ``user``)
	when it is an enabled user, else ``Administrator`` (see :func:`atlas_integrations.jobs.resolve_run_as`)."""
	return jobs.resolve_run_as(frappe.db.get_value(DOCTYPE, account, "user") if account else None)


def secrets_of(account: str) -> list[str]:
	"""Every secret value tied to ``account`` (for scrubbing error text). Never log the result."""
	values = [
		get_decrypted_password(DOCTYPE, account, f, raise_exception=False) for f in ("refresh_token", "access_token")
	]
	values.append(get_decrypted_password("Atlas Settings", "Atlas Settings", "google_client_secret", raise_exception=False))
	return [v for v in values if v]


def save_access_token(account: str, token: str | None, expiry: datetime | None) -> None:
	"""Keep a refreshed access token (Password field) and its expiry (naive UTC) so the next run need not
	refresh again."""
	if not token:
		return
	set_encrypted_password(DOCTYPE, account, token, "access_token")
	frappe.db.set_value(DOCTYPE, account, "access_token_expires_at", expiry, update_modified=False)


def store_connection(account: str, email_address: str, refresh_token: str, access_token: str | None,
					 expiry: datetime | None, scopes: list[str] | None) -> None:
	"""Record a completed OAuth consent: credentials in Password fields, status SYNCING, health healthy.

	When the connected Gmail address differs from the one synced before, the history cursor is reset so
	the new mailbox gets its own initial sync.
	"""
	doc = messages.get_doc(DOCTYPE, account)
	if doc.email_address and doc.email_address.lower() != email_address.lower():
		doc.history_id = None
		doc.sync_stage = "Not started"
	doc.email_address = email_address
	if not doc.account_name or doc.account_name == doc.user:
		doc.account_name = email_address
	doc.refresh_token = refresh_token
	doc.access_token = access_token
	doc.access_token_expires_at = expiry if access_token else None
	doc.granted_scopes = " ".join(scopes or [])
	doc.connected_at = now_datetime()
	doc.enabled = 1
	doc.status = SYNCING
	doc.health = HEALTHY
	doc.consecutive_failures = 0
	doc.last_error = None
	doc.flags.ignore_permissions = True
	doc.save()


def clear_credentials(account: str, note: str | None = None) -> None:
	"""Delete stored tokens; status NOT CONNECTED, health disabled, enabled off. Synced mail is kept."""
	for field in ("refresh_token", "access_token"):
		remove_encrypted_password(DOCTYPE, account, field)
	frappe.db.set_value(
		DOCTYPE,
		account,
		{
			"status": NOT_CONNECTED,
			"health": DISABLED,
			"enabled": 0,
			"access_token_expires_at": None,
			"last_error": note,
		},
	)


def mark_unauthorized(account: str, error: str) -> None:
	"""Google refused the token (invalid_grant / 401): UNAUTHORIZED, unhealthy, admins notified once
	(:func:`atlas_integrations.inbox.health.mark_unauthorized`). Polling skips UNAUTHORIZED accounts until
	they are reconnected."""
	name = frappe.db.get_value(DOCTYPE, account, "account_name") or account
	health.mark_unauthorized(DOCTYPE, account, error, f"Gmail Account {name} needs to be reconnected")


def notify_admins(subject: str, account: str, detail: str = "") -> None:
	"""A Notification Log (desk bell) about Gmail Account ``account`` for every enabled Atlas Owner/Admin
	and System Manager (:func:`atlas_integrations.notify.notify_admins`)."""
	from atlas_integrations.notify import notify_admins as notify

	notify(subject, DOCTYPE, account, detail)


def record_run(account: str, succeeded: bool, error: str | None = None) -> None:
	"""After a run: last processed time, consecutive failures, success rate and health
	(:func:`atlas_integrations.inbox.health.record_run`)."""
	health.record_run(DOCTYPE, account, succeeded, error)


__all__ = ["PERSONAL", "SHARED"]


def send_as(account: str) -> list[dict]:
	"""The verified send-as aliases of ``account`` other than its own address (Gmail
	``users.settings.sendAs``, ``verificationStatus`` ``accepted``) -> ``[{"address", "display_name",
	"default"}]``; ``default`` is Gmail's ``isDefault``. [] when Gmail cannot list them right now (the composer
	still has the mailbox's own address).

	The mailbox type's ``send_as`` entry point (:mod:`atlas_integrations.inbox.mailboxes`)."""
	from atlas_integrations.gmail.errors import GmailError

	own = (frappe.db.get_value(DOCTYPE, account, "email_address") or "").lower()
	try:
		aliases = client_for(account).list_send_as()
	except GmailError:
		return []
	return [{"address": alias.get("sendAsEmail") or "", "display_name": alias.get("displayName") or "",
			 "default": bool(alias.get("isDefault"))}
			for alias in aliases
			if alias.get("verificationStatus") == "accepted" and (alias.get("sendAsEmail") or "").lower() != own]
