"""Fixtures for real-site tests: the Frappe site, the local Google server wired in through site config,
real rq workers, and per-test cleanup of everything a test's accounts produced."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import BENCH, SITE, SITES_PATH, WHY_NO_SITE

CORPUS = Path(os.environ.get("ATLAS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus"))
CLIENT_ID = "atlas-test-client.apps.googleusercontent.com"
CLIENT_SECRET = "atlas-test-client-secret-do-not-leak"
ENDPOINT_KEYS = ("atlas_gmail_api_url", "atlas_google_auth_url", "atlas_google_token_url", "atlas_google_revoke_url")


def pytest_collection_modifyitems(config, items):
	for item in items:
		if Path(str(item.fspath)).parent == Path(__file__).parent:
			item.add_marker(pytest.mark.site)


@pytest.fixture(scope="session")
def site():
	"""The connected Frappe site (session user Administrator)."""
	if WHY_NO_SITE:
		pytest.skip(WHY_NO_SITE)
	import frappe

	os.chdir(SITES_PATH)  # frappe writes its logs to ../logs relative to the sites folder
	frappe.init(site=SITE, sites_path=str(SITES_PATH))
	frappe.connect()
	frappe.set_user("Administrator")
	yield frappe
	frappe.db.rollback()
	frappe.destroy()


@pytest.fixture(scope="session")
def google(site):
	"""The local Google-compatible server, with the site's endpoint keys and Atlas Settings pointing at it.

	Restores the previous site config and settings afterwards.
	"""
	import frappe
	from frappe.installer import update_site_config

	from atlas_integrations.testing.gmail_server import GmailTestServer

	server = GmailTestServer().start()
	server.register_client(CLIENT_ID, CLIENT_SECRET)
	previous = {k: frappe.conf.get(k) for k in ENDPOINT_KEYS}
	urls = {
		"atlas_gmail_api_url": server.url,
		"atlas_google_auth_url": server.url + "o/oauth2/auth",
		"atlas_google_token_url": server.url + "token",
		"atlas_google_revoke_url": server.url + "revoke",
	}
	for key, value in urls.items():
		update_site_config(key, value)
	frappe.local.conf.update(urls)
	settings = frappe.get_single("Atlas Settings")
	saved = (settings.google_client_id, settings.workspace_state, settings.body_storage_mode)
	settings.google_client_id = CLIENT_ID
	settings.google_client_secret = CLIENT_SECRET
	settings.workspace_state = "Active"
	settings.body_storage_mode = "full"
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	yield server
	for key, value in previous.items():
		update_site_config(key, value if value else "None")
	settings = frappe.get_single("Atlas Settings")
	settings.google_client_id, settings.workspace_state, settings.body_storage_mode = saved
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	server.stop()


def run_worker(burst: bool = True, queues: str = "long,default,short", timeout: int = 300) -> subprocess.CompletedProcess:
	"""Run a real rq worker of the bench on the site (burst: drain the queues, then exit)."""
	cmd = [str(BENCH / "env" / "bin" / "python"), "-m", "frappe.utils.bench_helper", "frappe", "--site", SITE,
		   "worker", "--queue", queues]
	if burst:
		cmd.append("--burst")
	return subprocess.run(cmd, cwd=str(SITES_PATH), capture_output=True, text=True, timeout=timeout)


def race_two_runs(frappe, account: str) -> list[str]:
	"""Two Sync Jobs of one account handed to two real workers at the same moment (bypassing the
	per-account dedupe on purpose); waits for both workers. Returns the two Sync Job names."""
	from atlas_integrations import jobs

	names = []
	for n in range(2):
		job = jobs.create("Gmail Sync", "Gmail Account", account, payload={"account": account}, trigger=f"race-{n}")
		names.append(job.name)
		frappe.enqueue("atlas_integrations.gmail.sync.run_sync_job", queue="long", job_id=f"race-{job.name}",
					   enqueue_after_commit=True, sync_job=job.name)
	frappe.db.commit()
	workers = [start_worker(), start_worker()]
	for w in workers:
		out, _ = w.communicate(timeout=600)
		assert w.returncode == 0, out
	frappe.db.rollback()
	return names


def sync_account(frappe, account: str):
	"""Queue a manual sync run of Gmail Account ``account``, run it on a real burst worker (which drains the
	queues), and return its Sync Job, read fresh. Fails the test when the worker exits non-zero."""
	from atlas_integrations.gmail.sync import enqueue_sync

	result = enqueue_sync(account, trigger="manual")
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	return frappe.get_doc("Sync Job", result["sync_job"])


def start_worker(queues: str = "long,default,short", burst: bool = True) -> subprocess.Popen:
	"""Start a real rq worker process without waiting for it."""
	cmd = [str(BENCH / "env" / "bin" / "python"), "-m", "frappe.utils.bench_helper", "frappe", "--site", SITE,
		   "worker", "--queue", queues]
	if burst:
		cmd.append("--burst")
	return subprocess.Popen(cmd, cwd=str(SITES_PATH), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


class Accounts:
	"""Creates Gmail Accounts connected through the real OAuth flow, and removes all they produced."""

	def __init__(self, frappe, server):
		self.frappe = frappe
		self.server = server
		self.names: list[str] = []

	def mailbox(self, load_corpus: bool = True, spread_days: int = 20) -> str:
		email = f"mbx-{uuid.uuid4().hex[:10]}@atlas-test.example"
		self.server.add_mailbox(email)
		if load_corpus:
			self.server.load_eml_dir(email, str(CORPUS), spread_days=spread_days)
		return email

	def create(self, email: str | None = None, user: str = "Administrator", account_type: str = "Personal") -> str:
		frappe = self.frappe
		doc = frappe.get_doc(
			{"doctype": "Gmail Account", "account_name": email or "test account", "user": user,
			 "account_type": account_type}
		).insert(ignore_permissions=True)
		frappe.db.commit()
		self.names.append(doc.name)
		return doc.name

	def authorize(self, account: str, email: str, as_user: str = "Administrator", action: str = "allow") -> dict:
		"""Run the consent flow up to Google's redirect; returns the callback query (state, code|error)."""
		import requests
		from urllib.parse import parse_qs, urlsplit

		from atlas_integrations.gmail import oauth

		frappe = self.frappe
		self.server.set_consent(email=email, action=action)
		frappe.set_user(as_user)
		try:
			started = oauth.begin(account)
		finally:
			frappe.set_user("Administrator")
		response = requests.get(started["authorization_url"], allow_redirects=False, timeout=10)
		assert response.status_code in (302, 303), response.text
		location = response.headers["Location"]
		assert location.startswith(oauth.redirect_uri())
		return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}

	def connect(self, email: str | None = None, **kwargs) -> tuple[str, str]:
		"""Create and connect an account over the real OAuth flow; the initial sync is queued (not run)."""
		from atlas_integrations.gmail import oauth

		email = email or self.mailbox()
		account = self.create(email, **{k: v for k, v in kwargs.items() if k in ("user", "account_type")})
		query = self.authorize(account, email)
		oauth.complete(query.get("state"), code=query.get("code"), error=query.get("error"))
		self.frappe.db.commit()
		return account, email

	def cleanup(self):
		"""Delete everything the accounts produced (the Mailbox Erase code path, then the accounts)."""
		frappe = self.frappe
		frappe.db.rollback()
		frappe.set_user("Administrator")
		from atlas_integrations.inbox import erase

		for name in self.names:
			erase.erase("Gmail Account", name)  # threads, messages, attachments (the app's own erasure)
			frappe.db.delete("Sync Job", {"reference_doctype": "Gmail Account", "reference_name": name})
			frappe.db.delete("Notification Log", {"document_type": "Gmail Account", "document_name": name})
			frappe.db.delete("Gmail Account", {"name": name})
			frappe.db.delete("__Auth", {"doctype": "Gmail Account", "name": name})
		frappe.db.commit()


@pytest.fixture
def snippet_only(site, google):
	"""Atlas Settings body storage mode ``snippet only`` for one test (back to ``full`` afterwards)."""
	site.db.set_single_value("Atlas Settings", "body_storage_mode", "snippet only")
	site.db.commit()
	yield
	site.db.rollback()
	site.db.set_single_value("Atlas Settings", "body_storage_mode", "full")
	site.db.commit()


@pytest.fixture
def accounts(site, google):
	helper = Accounts(site, google)
	yield helper
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		helper.cleanup()


__all__ = ["run_worker", "start_worker", "CLIENT_SECRET", "CORPUS", "sys"]


@pytest.fixture(scope="session")
def web(site, google):
	"""The site's own web server (``frappe serve``) on a free port, with ``host_name`` pointing at it so
	the OAuth redirect URI leads back to it. Yields its base URL."""
	import frappe
	from frappe.installer import update_site_config

	from atlas_integrations.testing.site_web import start_site_web

	previous = frappe.conf.get("host_name")
	url, proc = start_site_web(SITE, python=str(BENCH / "env" / "bin" / "python"), cwd=str(SITES_PATH))
	try:
		yield url
	finally:
		proc.terminate()
		proc.wait(timeout=20)
		update_site_config("host_name", previous or "None")
		frappe.local.conf.host_name = previous


def login(url: str, user: str = "Administrator", password: str | None = None):
	"""A requests session logged in to the site as ``user``."""
	import frappe
	import requests

	http = requests.Session()
	pwd = password or frappe.conf.get("admin_password") or "admin"
	response = http.post(url + "/api/method/login", data={"usr": user, "pwd": pwd}, timeout=30)
	response.raise_for_status()
	return http


TEST_PASSWORD = "Atlas-Test-Pass-7391"


def ensure_user(frappe, email: str, roles: tuple[str, ...] | list[str], password: str = TEST_PASSWORD) -> str:
	"""A desk user with exactly ``roles`` (plus Frappe's automatic ones) and ``password``; committed."""
	from frappe.utils.password import update_password

	for role in roles:  # e.g. "Super Email User": Frappe's Communication rules name it, v15 creates none
		if not frappe.db.exists("Role", role):
			frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(ignore_permissions=True)
	if not frappe.db.exists("User", email):
		frappe.get_doc({"doctype": "User", "email": email, "first_name": email.split("@")[0],
						"send_welcome_email": 0, "user_type": "System User"}).insert(ignore_permissions=True)
	user = frappe.get_doc("User", email)
	wanted = set(roles)
	user.set("roles", [r for r in user.roles if r.role in wanted])
	for role in wanted - {r.role for r in user.roles}:
		user.append("roles", {"role": role})
	user.flags.ignore_permissions = True
	user.save()
	update_password(email, password)
	frappe.db.commit()
	frappe.clear_cache(user=email)
	return email


def parallel(calls: list) -> list:
	"""Run the zero-argument ``calls`` in threads released together (a barrier); their results, in order."""
	import threading

	go = threading.Barrier(len(calls))
	results = [None] * len(calls)

	def run(i, call):
		go.wait()
		results[i] = call()

	workers = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
	for w in workers:
		w.start()
	for w in workers:
		w.join()
	return results


def burst_under_send_limit(frappe, user: str, limit: int, calls: list) -> tuple[list, float]:
	"""Atlas Settings ``reply_rate_limit`` = ``limit`` and ``user``'s window empty, then the HTTP ``calls``
	in parallel; asserts exactly ``limit`` answered 200 and the rest 429 with the rate-limit message.
	Returns ``(answers, seconds)``; the setting goes back to 10."""
	import time

	from atlas_integrations.inbox import send_limit

	frappe.db.set_single_value("Atlas Settings", "reply_rate_limit", limit)
	frappe.db.commit()
	send_limit.reset(user)
	try:
		started = time.monotonic()
		answers = parallel(calls)
		elapsed = time.monotonic() - started
	finally:
		frappe.db.set_single_value("Atlas Settings", "reply_rate_limit", 10)
		frappe.db.commit()
	codes = sorted(a.status_code for a in answers)
	n = len(calls)
	assert codes == [200] * limit + [429] * (n - limit), [a.text[:200] for a in answers if a.status_code not in (200, 429)]
	assert all(f"You are sending too fast: at most {limit} messages a minute" in a.text
			   for a in answers if a.status_code == 429)
	return answers, elapsed
