"""The REST API and the OAuth redirect flow over real HTTP through the site's own web server."""

from __future__ import annotations

from tests.realsite.conftest import CLIENT_SECRET, login


def test_connect_over_http_follows_google_back_to_the_desk(site, accounts, web):
	frappe = site
	mailbox = accounts.mailbox(load_corpus=False)
	account = accounts.create("HTTP connect")
	accounts.server.set_consent(email=mailbox, action="allow")
	http = login(web)
	r = http.post(web + "/api/method/atlas_integrations.api.gmail.connect", data={"account": account}, timeout=30)
	assert r.status_code == 200, r.text
	auth_url = r.json()["message"]["authorization_url"]
	assert auth_url.startswith(accounts.server.url + "o/oauth2/auth?")
	r = http.get(auth_url, timeout=60)  # Google consent -> site callback -> desk form
	assert [h.status_code for h in r.history][:2] == [302, 302]
	assert r.history[1].headers["Location"] == f"/app/gmail-account/{account}"
	frappe.db.rollback()
	assert frappe.db.get_value("Gmail Account", account, ["status", "email_address"]) == ("SYNCING", mailbox)

	# the REST API never returns a token or the client secret
	secrets = set(accounts.server.issued_refresh_tokens(mailbox)) | set(accounts.server.issued_access_tokens(mailbox))
	secrets.add(CLIENT_SECRET)
	bodies = [
		http.get(f"{web}/api/resource/Gmail Account/{account}", timeout=30).text,
		http.get(f"{web}/api/resource/Gmail Account", params={"fields": '["*"]'}, timeout=30).text,
		http.get(f"{web}/api/resource/Atlas Settings/Atlas Settings", timeout=30).text,
		http.post(f"{web}/api/method/atlas_integrations.api.gmail.sync_now", data={"account": account}, timeout=30).text,
	]
	assert account in bodies[0] and mailbox in bodies[0]
	for body in bodies:
		for secret in secrets:
			assert secret not in body


def test_cancelled_consent_over_http_shows_the_reason(site, accounts, web):
	mailbox = accounts.mailbox(load_corpus=False)
	account = accounts.create("HTTP cancelled")
	accounts.server.set_consent(email=mailbox, action="deny")
	http = login(web)
	auth_url = http.post(web + "/api/method/atlas_integrations.api.gmail.connect", data={"account": account},
						 timeout=30).json()["message"]["authorization_url"]
	r = http.get(auth_url, timeout=60)
	assert r.status_code == 400
	assert "Gmail connection was cancelled" in r.text


def test_guest_cannot_call_the_api(site, web):
	import requests

	r = requests.post(web + "/api/method/atlas_integrations.api.gmail.sync_now", data={"account": "x"}, timeout=30)
	assert r.status_code == 403
