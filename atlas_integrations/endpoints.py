"""Remote endpoints of Google, Microsoft and Xero, each overridable from site config.

Production uses the real hosts. A site (or the tests and the demo) points any of them at a local
compatible server by setting the key in ``site_config.json`` (``bench --site X set-config KEY URL``).
"""

from __future__ import annotations

#: site config key -> production default
DEFAULTS: dict[str, str] = {
	# Gmail REST root; the client appends ``gmail/v1/...`` and the batch path ``batch/gmail/v1``.
	"atlas_gmail_api_url": "https://gmail.googleapis.com/",
	# Google OAuth 2.0 for web server apps (developers.google.com/identity/protocols/oauth2/web-server)
	"atlas_google_auth_url": "https://accounts.google.com/o/oauth2/auth",
	"atlas_google_token_url": "https://oauth2.googleapis.com/token",
	"atlas_google_revoke_url": "https://oauth2.googleapis.com/revoke",
	# Google's ID-token signing certificates ({kid: X.509 PEM}) that verify Pub/Sub push OIDC tokens
	"atlas_google_certs_url": "https://www.googleapis.com/oauth2/v1/certs",
	# Microsoft identity platform: the authority host; the authority is this plus the tenant (Atlas Settings
	# "Microsoft Tenant": common, organizations or a tenant id) (learn.microsoft.com/entra/identity-platform)
	"atlas_microsoft_login_url": "https://login.microsoftonline.com",
	# Microsoft Graph root with its version; the Outlook client appends ``me/...``, ``users/...``, ``$batch``
	"atlas_graph_api_url": "https://graph.microsoft.com/v1.0",
	# Xero OAuth 2.0 (developer.xero.com/documentation/guides/oauth2/auth-flow)
	"atlas_xero_login_url": "https://login.xero.com/identity/connect/authorize",
	"atlas_xero_identity_url": "https://identity.xero.com",
	"atlas_xero_api_url": "https://api.xero.com",
}


def get_endpoint(key: str, conf: dict | None = None) -> str:
	"""Return the URL configured for ``key``.

	Args:
		key: one of :data:`DEFAULTS` (e.g. ``"atlas_gmail_api_url"``).
		conf: a site config mapping; defaults to ``frappe.conf`` of the current site.

	Returns:
		The override from site config when set (non-empty), else the production default.

	Raises:
		KeyError: ``key`` is not a known endpoint key.
	"""
	default = DEFAULTS[key]
	if conf is None:
		import frappe

		conf = frappe.conf or {}
	return (conf.get(key) or default).strip()


def gmail_api_root(conf: dict | None = None) -> str:
	"""The Gmail API root URL, always with a trailing slash (``https://gmail.googleapis.com/``)."""
	url = get_endpoint("atlas_gmail_api_url", conf)
	return url if url.endswith("/") else url + "/"


def is_loopback(url: str) -> bool:
	"""True when ``url`` points at this machine: ``localhost`` / ``*.localhost`` (RFC 6761), or an IP
	address that :mod:`ipaddress` calls loopback (127.0.0.0/8, ::1). A name like ``127.evil.com`` is not."""
	import ipaddress
	from urllib.parse import urlsplit

	host = (urlsplit(url).hostname or "").lower().rstrip(".")
	if host == "localhost" or host.endswith(".localhost"):
		return True
	try:
		return ipaddress.ip_address(host).is_loopback
	except ValueError:
		return False


def conf_number(key: str, default: float, conf: dict | None = None) -> float:
	"""A number from site config (e.g. ``atlas_gmail_timeout``, seconds), or ``default`` when the key is
	absent, empty, ``"None"`` (what ``bench set-config KEY None`` leaves in a running process) or not a
	number."""
	import frappe

	value = (conf if conf is not None else frappe.conf).get(key)
	try:
		number = float(value)
	except (TypeError, ValueError):
		return default
	return number if number > 0 else default
