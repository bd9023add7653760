"""Connecting Gmail through the real OAuth flow against the local Google server: every outcome."""

from __future__ import annotations

import pytest

from tests.realsite.conftest import CLIENT_ID


def _complete(frappe, query):
	from atlas_integrations.gmail import oauth

	return oauth.complete(query.get("state"), code=query.get("code"), error=query.get("error"))


def test_connect_stores_refresh_token_and_queues_initial_sync(site, accounts):
	frappe = site
	email = accounts.mailbox(load_corpus=False)
	account = accounts.create("Ops inbox")
	query = accounts.authorize(account, email)
	assert query["state"] and query["code"]
	assert _complete(frappe, query) == account
	frappe.db.commit()
	doc = frappe.get_doc("Gmail Account", account)
	assert doc.status == "SYNCING"
	assert doc.health == "healthy"
	assert doc.email_address == email  # the connected Gmail address, not the login
	assert doc.refresh_token and set(doc.refresh_token) == {"*"}  # masked in the document
	assert doc.get_password("refresh_token") in accounts.server.issued_refresh_tokens(email)
	job = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["status", "trigger", "payload"])
	assert [(j.status, j.trigger) for j in job] == [("pending", "connect")]


def test_authorization_url_asks_offline_access_with_pkce_and_state_is_checked(site, accounts):
	from urllib.parse import parse_qs, urlsplit

	from atlas_integrations.gmail import oauth

	frappe = site
	account = accounts.create("PKCE check")
	started = oauth.begin(account)
	params = {k: v[0] for k, v in parse_qs(urlsplit(started["authorization_url"]).query).items()}
	assert params["access_type"] == "offline"
	assert params["client_id"] == CLIENT_ID
	assert params["code_challenge_method"] == "S256" and params["code_challenge"]
	assert params["scope"] == "https://www.googleapis.com/auth/gmail.modify"
	assert params["redirect_uri"] == oauth.redirect_uri()
	# a forged or replayed state is refused
	with pytest.raises(frappe.ValidationError, match="expired or was already used"):
		oauth.complete("forged-state", code="whatever")


def test_consent_denied_is_cancelled(site, accounts):
	frappe = site
	email = accounts.mailbox(load_corpus=False)
	account = accounts.create("Denied")
	query = accounts.authorize(account, email, action="deny")
	assert query["error"] == "access_denied"
	with pytest.raises(frappe.ValidationError, match="^Gmail connection was cancelled$"):
		_complete(frappe, query)
	assert frappe.db.get_value("Gmail Account", account, "status") == "NOT CONNECTED"


def test_no_refresh_token_means_no_offline_access(site, accounts):
	frappe = site
	email = accounts.mailbox(load_corpus=False)
	account = accounts.create("No offline")
	query = accounts.authorize(account, email, action="no_refresh")
	with pytest.raises(frappe.ValidationError, match="^Gmail did not grant offline access$"):
		_complete(frappe, query)
	assert not frappe.get_doc("Gmail Account", account).get_password("refresh_token", raise_exception=False)


def test_missing_client_config(site, accounts):
	from atlas_integrations.gmail import oauth

	frappe = site
	account = accounts.create("Unconfigured")
	frappe.db.set_single_value("Atlas Settings", "google_client_id", "")
	frappe.clear_document_cache("Atlas Settings", "Atlas Settings")
	try:
		with pytest.raises(frappe.ValidationError, match="^Gmail not configured$"):
			oauth.begin(account)
	finally:
		frappe.db.rollback()
		frappe.clear_document_cache("Atlas Settings", "Atlas Settings")


@pytest.mark.parametrize("state", ["Locked", "Read-only", "Archived"])
def test_workspace_not_active(site, accounts, state):
	from atlas_integrations.gmail import oauth

	frappe = site
	account = accounts.create("Locked out")
	frappe.db.set_single_value("Atlas Settings", "workspace_state", state)
	frappe.clear_document_cache("Atlas Settings", "Atlas Settings")
	try:
		with pytest.raises(frappe.ValidationError, match="^Workspace changes are temporarily unavailable$"):
			oauth.begin(account)
		with pytest.raises(frappe.ValidationError, match="^Workspace changes are temporarily unavailable$"):
			oauth.disconnect(account)
	finally:
		frappe.db.rollback()
		frappe.clear_document_cache("Atlas Settings", "Atlas Settings")


def test_disconnect_revokes_deletes_credentials_keeps_mail_and_reconnect_works(site, accounts):
	from atlas_integrations.gmail import oauth
	from tests.realsite.conftest import run_worker

	frappe = site
	email = accounts.mailbox(spread_days=20)
	account, _ = accounts.connect(email)
	run_worker()
	frappe.db.rollback()
	stored = frappe.db.count("Communication", {"atlas_mailbox": account})
	assert stored > 0
	refresh = frappe.get_doc("Gmail Account", account).get_password("refresh_token")

	result = oauth.disconnect(account)
	frappe.db.commit()
	assert result == {"account": account, "revoked": True}
	assert accounts.server.token_is_revoked(refresh)
	doc = frappe.get_doc("Gmail Account", account)
	assert (doc.status, doc.health, doc.enabled) == ("NOT CONNECTED", "disabled", 0)
	assert not doc.get_password("refresh_token", raise_exception=False)
	assert not doc.get_password("access_token", raise_exception=False)
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == stored

	query = accounts.authorize(account, email)
	assert _complete(frappe, query) == account
	frappe.db.commit()
	doc.reload()
	assert (doc.status, doc.health, doc.enabled) == ("SYNCING", "healthy", 1)
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Gmail Account", account, "status") == "ACTIVE"
	assert frappe.db.count("Communication", {"atlas_mailbox": account}) == stored
