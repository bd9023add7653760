"""Secrets never show in a repr; the OAuth callback checks the granted scopes; oauthlib's insecure-transport
switch is on only while every configured Google endpoint is loopback."""

from __future__ import annotations

import os

import pytest


def test_insecure_transport_only_while_every_google_endpoint_is_loopback(site, google):
	import frappe

	from atlas_integrations.gmail import oauth

	assert oauth.set_insecure_transport() is True  # the tests' local Google server
	assert os.environ.get("OAUTHLIB_INSECURE_TRANSPORT") == "1"
	saved = frappe.local.conf.get("atlas_google_revoke_url")
	frappe.local.conf["atlas_google_revoke_url"] = "https://oauth2.googleapis.com/revoke"
	try:
		assert oauth.set_insecure_transport() is False
		assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ
	finally:
		frappe.local.conf["atlas_google_revoke_url"] = saved
	assert oauth.set_insecure_transport() is True


def test_callback_without_gmail_modify_is_refused_with_a_clear_message(site, accounts):
	from atlas_integrations.gmail import oauth

	frappe = site
	email = accounts.mailbox(load_corpus=False)
	account = accounts.create(email)
	accounts.server.set_consent(email=email, action="allow", scopes=["https://www.googleapis.com/auth/gmail.readonly"])
	try:
		from urllib.parse import parse_qs, urlsplit

		import requests

		started = oauth.begin(account)
		response = requests.get(started["authorization_url"], allow_redirects=False, timeout=10)
		assert response.status_code == 302, (response.status_code, response.text[:500])
		location = response.headers["Location"]
		query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
		with pytest.raises(frappe.ValidationError, match="gmail.modify"):
			oauth.complete(query["state"], code=query["code"])
	finally:
		accounts.server.set_consent(email=email, action="allow")
	frappe.db.rollback()
	doc = frappe.get_doc("Gmail Account", account)
	assert doc.status not in ("SYNCING", "ACTIVE")
	assert not doc.get_password("refresh_token", raise_exception=False)
	assert not frappe.db.exists("Sync Job", {"reference_name": account})
