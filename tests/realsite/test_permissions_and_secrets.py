"""Roles and row-level access; secrets never leave their Password fields."""

from __future__ import annotations

import json

import pytest

from tests.realsite.conftest import CLIENT_SECRET, run_worker

DISPATCHERS = ("atlas-dispatcher-1@atlas-test.example", "atlas-dispatcher-2@atlas-test.example")


@pytest.fixture(scope="module")
def dispatchers(site):
	frappe = site
	for email in DISPATCHERS:
		if not frappe.db.exists("User", email):
			frappe.get_doc({"doctype": "User", "email": email, "first_name": email.split("@")[0],
							"send_welcome_email": 0, "roles": [{"role": "Atlas Dispatcher"}]}).insert(ignore_permissions=True)
	frappe.db.commit()
	return DISPATCHERS


def test_roles_exist_and_system_managers_are_owners(site):
	frappe = site
	for role in ("Atlas Owner", "Atlas Admin", "Atlas Dispatcher"):
		assert frappe.db.exists("Role", role)
	assert "Atlas Owner" in frappe.get_roles("Administrator")


def test_dispatcher_cannot_connect_or_disconnect_shared_mailbox(site, accounts, dispatchers):
	from atlas_integrations.gmail import oauth

	frappe = site
	shared, _ = accounts.connect(account_type="Shared workspace mailbox")
	frappe.set_user(dispatchers[0])
	try:
		assert frappe.has_permission("Gmail Account", "read", doc=shared)  # they work its inbox
		with pytest.raises(frappe.PermissionError, match="^Only admins can connect Gmail$"):
			oauth.begin(shared)
		with pytest.raises(frappe.PermissionError, match="^Only admins can connect Gmail$"):
			oauth.disconnect(shared)
		with pytest.raises(frappe.PermissionError):
			frappe.get_doc({"doctype": "Gmail Account", "account_name": "sneaky", "user": dispatchers[0],
							"account_type": "Shared workspace mailbox"}).insert()
	finally:
		frappe.set_user("Administrator")
		frappe.db.rollback()
	assert frappe.db.get_value("Gmail Account", shared, "status") == "SYNCING"


def test_dispatcher_cannot_touch_another_users_personal_account(site, accounts, dispatchers):
	from atlas_integrations.api.gmail import sync_now
	from atlas_integrations.gmail import oauth

	frappe = site
	mine, _ = accounts.connect(user=dispatchers[0])
	theirs, _ = accounts.connect(user=dispatchers[1])
	frappe.set_user(dispatchers[0])
	try:
		visible = set(frappe.get_list("Gmail Account", pluck="name"))
		assert mine in visible and theirs not in visible
		assert not frappe.has_permission("Gmail Account", "read", doc=theirs)
		with pytest.raises(frappe.PermissionError):
			frappe.get_doc("Gmail Account", theirs).check_permission("read")
		for action in (oauth.begin, oauth.disconnect, sync_now):
			with pytest.raises(frappe.PermissionError):
				action(theirs)
		# their own personal mailbox they may connect
		assert oauth.begin(mine)["authorization_url"]
	finally:
		frappe.set_user("Administrator")
		frappe.db.rollback()


def test_dispatcher_sees_threads_of_visible_accounts_only(site, accounts, dispatchers):
	frappe = site
	theirs, mailbox = accounts.connect(user=dispatchers[1])
	run_worker()
	frappe.db.rollback()
	assert frappe.db.count("Inbox Thread", {"mailbox": theirs}) > 0
	frappe.set_user(dispatchers[0])
	try:
		assert frappe.get_list("Inbox Thread", filters={"mailbox": theirs}, pluck="name") == []
	finally:
		frappe.set_user("Administrator")
	frappe.set_user(dispatchers[1])
	try:
		assert len(frappe.get_list("Inbox Thread", filters={"mailbox": theirs}, pluck="name", limit=0)) > 0
	finally:
		frappe.set_user("Administrator")


def test_no_secret_in_sync_jobs_error_logs_or_api_responses(site, accounts):
	"""Runs a good sync and a failing one, then looks for every token and the client secret everywhere."""
	from atlas_integrations.api.gmail import connect, sync_now
	from frappe.client import get as client_get, get_list as client_get_list

	frappe = site
	started = frappe.utils.now_datetime()
	good, good_mailbox = accounts.connect()
	bad, bad_mailbox = accounts.connect()
	accounts.server.revoke_tokens(bad_mailbox)
	run_worker()
	frappe.db.rollback()
	secrets = {CLIENT_SECRET}
	for mailbox in (good_mailbox, bad_mailbox):
		secrets |= set(accounts.server.issued_refresh_tokens(mailbox))
		secrets |= set(accounts.server.issued_access_tokens(mailbox))
	assert len(secrets) >= 5

	haystacks = []
	for row in frappe.get_all("Sync Job", filters={"reference_name": ["in", [good, bad]]}, fields=["*"]):
		haystacks.append(json.dumps(row, default=str))
	for row in frappe.get_all("Error Log", filters={"creation": [">=", started]}, fields=["*"]):
		haystacks.append(json.dumps(row, default=str))
	for name in (good, bad):
		haystacks.append(json.dumps(client_get("Gmail Account", name), default=str))
		haystacks.append(json.dumps(sync_now(name) if name == good else {}, default=str))
		haystacks.append(json.dumps(connect(name), default=str))
	haystacks.append(json.dumps(client_get_list("Gmail Account", fields=["*"], limit_page_length=0), default=str))
	haystacks.append(json.dumps(frappe.get_single("Atlas Settings").as_dict(), default=str))
	frappe.db.rollback()
	text = "\n".join(haystacks)
	assert good in text and bad in text  # we really looked at those rows
	for secret in secrets:
		assert secret not in text
