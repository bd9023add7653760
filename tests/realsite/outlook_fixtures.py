"""Fixtures and helpers of the real-site Outlook tests: the local Microsoft identity platform + Graph server
(HTTPS on 127.0.0.1, its own certificate) with the site pointed at it, and Outlook Accounts connected through
MSAL's real authorization code flow, removed with everything they produced."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.realsite.conftest import CORPUS, run_worker

CLIENT_ID = "4f6c2b8e-8d0a-4c53-9a38-atlas0test01"
CLIENT_SECRET = "atlas-graph-secret~" + uuid.uuid4().hex
KEYS = ("atlas_microsoft_login_url", "atlas_graph_api_url", "atlas_microsoft_ca_bundle")


@pytest.fixture(scope="session")
def graph(site):
	"""The local Graph server; site config (endpoints, the certificate to trust) and Atlas Settings (the app
	registration) point at it. Restores both afterwards."""
	import frappe
	from frappe.installer import update_site_config

	from atlas_integrations.testing.graph import GraphTestServer

	server = GraphTestServer().start()
	server.add_client(CLIENT_ID, CLIENT_SECRET)
	previous = {k: frappe.conf.get(k) for k in KEYS}
	urls = {"atlas_microsoft_login_url": server.base, "atlas_graph_api_url": server.graph_url,
			"atlas_microsoft_ca_bundle": server.ca_path}
	for key, value in urls.items():
		update_site_config(key, value)
	frappe.local.conf.update(urls)
	settings = frappe.get_single("Atlas Settings")
	saved = (settings.get("microsoft_client_id"), settings.get("microsoft_tenant"), settings.workspace_state)
	settings.microsoft_client_id = CLIENT_ID
	settings.microsoft_client_secret = CLIENT_SECRET
	settings.microsoft_tenant = "common"
	settings.workspace_state = "Active"
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	yield server
	for key, value in previous.items():
		update_site_config(key, value if value else "None")
		frappe.local.conf[key] = value
	settings = frappe.get_single("Atlas Settings")
	settings.microsoft_client_id, settings.microsoft_tenant, settings.workspace_state = saved
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	server.stop()
	assert not server.errors, server.errors[-1]


class OutlookAccounts:
	"""Creates Outlook Accounts connected through the real flows, and removes all they produced."""

	def __init__(self, frappe, server):
		self.frappe, self.server = frappe, server
		self.names: list[str] = []

	def mailbox(self, load: int | None = 0, folder: str = "inbox", spread_days: float = 20) -> str:
		"""A new user + mailbox on the Graph server; ``load`` corpus messages delivered to ``folder`` (None:
		the whole corpus)."""
		address = f"olk-{uuid.uuid4().hex[:10]}@contoso-test.example"
		box = self.server.mailbox(address)
		if load is None or load:
			self.deliver(address, load, folder=folder, spread_days=spread_days)
		assert box.address == address
		return address

	def deliver(self, address: str, count: int | None, folder: str = "inbox", start: int = 0,
				spread_days: float = 20) -> list:
		"""Deliver ``count`` corpus messages (from the ``start``-th) into ``folder``; returns them."""
		import time

		paths = sorted(Path(CORPUS).rglob("*.eml"))
		paths = paths[start:start + count] if count is not None else paths[start:]
		now = time.time()
		box = self.server.mailbox(address)
		return [box.add(p.read_bytes(), folder, received=now - spread_days * 86400 * (len(paths) - i) / len(paths))
				for i, p in enumerate(paths)]

	def create(self, name: str = "test outlook", user: str = "Administrator", account_type: str = "Personal",
			   email: str | None = None) -> str:
		doc = self.frappe.get_doc({"doctype": "Outlook Account", "account_name": name, "user": user,
								   "account_type": account_type, "email_address": email}).insert(ignore_permissions=True)
		self.frappe.db.commit()
		self.names.append(doc.name)
		return doc.name

	def authorize(self, account: str, address: str, as_user: str = "Administrator") -> dict:
		"""The browser's part of the sign-in: MSAL's authorization URL followed to Microsoft's redirect
		(not further). Returns the callback's query (``state`` and ``code``, or ``error``)."""
		import urllib.parse

		import requests

		from atlas_integrations.outlook import oauth

		frappe = self.frappe
		frappe.set_user(as_user)
		try:
			started = oauth.begin(account)
		finally:
			frappe.set_user("Administrator")
		query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(started["authorization_url"]).query))
		query["login_hint"] = address  # the user who signs in at the server
		url = started["authorization_url"].split("?")[0] + "?" + urllib.parse.urlencode(query)
		answer = requests.get(url, verify=self.server.ca_path, allow_redirects=False, timeout=10)
		assert answer.status_code == 302, answer.text
		location = answer.headers["Location"]
		assert location.startswith(oauth.redirect_uri() + "?")
		return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))

	def connect(self, address: str | None = None, user: str = "Administrator", name: str = "test outlook") -> tuple[str, str]:
		"""A personal mailbox created and connected through the sign-in; its initial sync is queued (not run)."""
		from atlas_integrations.outlook import oauth

		address = address or self.mailbox()
		account = self.create(name, user=user)
		query = self.authorize(account, address, as_user=user)
		self.frappe.set_user(user)
		try:
			oauth.complete(query)
		finally:
			self.frappe.set_user("Administrator")
		self.frappe.db.commit()
		return account, address

	def sync(self, account: str):
		"""Queue a manual sync run, run it on a real burst worker and return its Sync Job, read fresh."""
		from atlas_integrations.outlook.sync import enqueue_sync

		frappe = self.frappe
		result = enqueue_sync(account, trigger="manual")
		frappe.db.commit()
		proc = run_worker()
		assert proc.returncode == 0, proc.stdout + proc.stderr
		frappe.db.rollback()
		return frappe.get_doc("Sync Job", result["sync_job"])

	def cleanup(self) -> None:
		"""Delete everything the accounts produced (the Mailbox Erase code path), then the accounts."""
		frappe = self.frappe
		frappe.db.rollback()
		frappe.set_user("Administrator")
		from atlas_integrations.inbox import erase
		from atlas_integrations.outlook import accounts

		for name in self.names:
			erase.erase("Outlook Account", name)
			frappe.cache.delete(accounts._cache_key(name))
			frappe.db.delete("Sync Job", {"reference_doctype": "Outlook Account", "reference_name": name})
			frappe.db.delete("Notification Log", {"document_type": "Outlook Account", "document_name": name})
			frappe.db.delete("Outlook Account", {"name": name})
			frappe.db.delete("__Auth", {"doctype": "Outlook Account", "name": name})
		frappe.db.commit()


@pytest.fixture
def outlook(site, graph):
	"""An :class:`OutlookAccounts` helper; what it made is removed afterwards."""
	helper = OutlookAccounts(site, graph)
	yield helper
	graph.faults.clear()
	graph.identity.admin_consent_required = False
	graph.identity.app_consented = True
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		helper.cleanup()
