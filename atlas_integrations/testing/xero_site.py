"""Point a real site at the local Xero-compatible server and connect a Company through the real OAuth
redirect flow (the admin's browser: connect -> consent -> the site's callback), for the demo and the
benchmarks. Needs a connected frappe and the site's web server at ``site_url``."""

from __future__ import annotations

ENDPOINT_KEYS = ("atlas_xero_login_url", "atlas_xero_identity_url", "atlas_xero_api_url")


def point_site_at(frappe, server, client_id: str, client_secret: str, site_url: str) -> None:
	"""Register the app's client at ``server`` (both redirect URIs the site may use), set the site's
	``atlas_xero_*`` endpoint keys to it and the client credentials in Atlas Settings; commits."""
	from frappe.installer import update_site_config

	from atlas_integrations.xero import oauth

	server.register_client(client_id, client_secret, [oauth.redirect_uri(), f"{site_url}/api/method/{oauth.CALLBACK_METHOD}"])
	for key, value in {"atlas_xero_login_url": server.authorize_url, "atlas_xero_identity_url": server.url,
					   "atlas_xero_api_url": server.url}.items():
		update_site_config(key, value)
		frappe.local.conf[key] = value
	settings = frappe.get_single("Atlas Settings")
	settings.xero_client_id, settings.xero_client_secret = client_id, client_secret
	settings.workspace_state = "Active"
	settings.save(ignore_permissions=True)
	frappe.db.commit()


def unpoint_site(frappe) -> None:
	"""Remove the endpoint keys again (production defaults apply)."""
	from frappe.installer import update_site_config

	for key in ENDPOINT_KEYS:
		update_site_config(key, "None")
		frappe.local.conf.pop(key, None)


def connect(frappe, site_url: str, company: str, password: str | None = None) -> int:
	"""Connect ``company`` as Administrator over HTTP: ``api.xero.connect`` -> the consent URL at the
	server -> the site's callback. Returns the callback's HTTP status.

	Raises:
		SystemExit: the site refused to start the flow.
	"""
	import requests

	http = requests.Session()
	http.post(site_url + "/api/method/login", timeout=30,
			  data={"usr": "Administrator", "pwd": password or frappe.conf.get("admin_password") or "admin"}).raise_for_status()
	r = http.post(site_url + "/api/method/atlas_integrations.api.xero.connect", data={"company": company}, timeout=30)
	if r.status_code != 200:
		raise SystemExit(f"Xero connect failed: {r.status_code} {r.text[:500]}")
	consent = requests.get(r.json()["message"]["authorization_url"], allow_redirects=False, timeout=30)
	done = http.get(consent.headers["Location"], allow_redirects=False, timeout=120)
	frappe.db.rollback()
	return done.status_code
