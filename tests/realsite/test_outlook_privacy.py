"""Outlook mailboxes are as private as Gmail's — proven over HTTP as another dispatcher and as a desk user
with no Atlas role: REST lists and gets, downloads, form loads, link search, group-by counts, the mailbox
record itself (its token cache never leaves the server), re-homing PUTs; erase removes a mailbox's mail."""

from __future__ import annotations

import os
from email.message import EmailMessage

import pytest

from tests.realsite.conftest import TEST_PASSWORD, ensure_user, login, run_worker
from tests.realsite.outlook_fixtures import OutlookAccounts, graph  # noqa: F401 - the fixture

A = "atlas-olk-a@atlas-test.example"
B = "atlas-olk-b@atlas-test.example"
NO_ROLE = "atlas-olk-norole@atlas-test.example"


def _mail(subject: str, to: str, attachment: str) -> bytes:
	msg = EmailMessage()
	msg["From"] = "Sender <sender@x.org>"
	msg["To"] = to
	msg["Subject"] = subject
	msg["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
	msg["Message-ID"] = f"<{attachment}@x.org>"
	msg.set_content(f"body of {subject}")
	msg.add_attachment(b"%PDF-1.4\n%" + attachment.encode() + b"\n", maintype="application",
					   subtype="octet-stream", filename=attachment)
	return msg.as_bytes()


@pytest.fixture(scope="module")
def olk(site, graph):
	"""Three synced Outlook mailboxes (A's, B's, a shared one), each with one message and one attachment."""
	frappe = site
	# A also holds Frappe's Inbox User and Super Email User roles, which widen Frappe's own Communication rules
	ensure_user(frappe, A, ("Atlas Dispatcher", "Inbox User", "Super Email User"))
	ensure_user(frappe, B, ("Atlas Dispatcher",))
	ensure_user(frappe, NO_ROLE, ("Sales User",))
	helper = OutlookAccounts(site, graph)
	out = {}
	for key, user in (("a", A), ("b", B)):
		address = helper.mailbox()
		graph.mailbox(address).add(_mail(f"outlook secret of {key}", address, f"olk-{key}-secret.bin"))
		account, _ = helper.connect(address, user=user, name=f"Outlook {key}")
		out[key] = {"account": account}
	address = helper.mailbox()
	graph.mailbox(address).add(_mail("outlook secret of shared", address, "olk-shared-secret.bin"))
	from atlas_integrations.outlook import oauth

	shared = helper.create("Outlook shared", account_type="Shared workspace mailbox", email=address)
	oauth.connect_shared(shared)
	frappe.db.commit()
	out["shared"] = {"account": shared}
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	for key, box in out.items():
		comm = frappe.get_all("Communication", filters={"atlas_mailbox": box["account"]},
							  fields=["name", "atlas_inbox_thread", "subject"])
		assert len(comm) == 1, (key, comm)
		box["comm"], box["thread"], box["subject"] = comm[0].name, comm[0].atlas_inbox_thread, comm[0].subject
		f = frappe.get_all("File", filters={"attached_to_doctype": "Communication", "attached_to_name": comm[0].name},
						   fields=["name", "file_url"])
		assert len(f) == 1, (key, f)
		box["file"], box["file_url"] = f[0].name, f[0].file_url
	yield out
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		helper.cleanup()


def _names(response) -> set[str]:
	assert response.status_code == 200, response.text[:500]
	return {row["name"] for row in response.json()["data"]}


def test_another_dispatcher_reads_only_the_shared_mailbox_and_their_own(web, olk):
	as_a = login(web, A, TEST_PASSWORD)
	b, shared, mine = olk["b"], olk["shared"], olk["a"]
	for doctype, key in (("Communication", "comm"), ("Inbox Thread", "thread"), ("File", "file"),
						 ("Outlook Account", "account")):
		listed = _names(as_a.get(f"{web}/api/resource/{doctype}", params={"limit_page_length": 0}, timeout=30))
		assert b[key] not in listed, doctype
		assert shared[key] in listed and mine[key] in listed, doctype
		r = as_a.get(f"{web}/api/resource/{doctype}/{b[key]}", timeout=30)
		assert r.status_code == 403 and b["subject"] not in r.text, (doctype, r.status_code)
	assert as_a.get(web + b["file_url"], timeout=30).status_code == 403
	assert as_a.get(web + shared["file_url"], timeout=30).status_code == 200
	r = as_a.get(f"{web}/api/method/frappe.desk.form.load.getdoc",
				 params={"doctype": "Inbox Thread", "name": b["thread"]}, timeout=30)
	assert r.status_code == 403 and b["subject"] not in r.text
	# the site's generic readers: link search and group-by counts name no mailbox A may not read
	r = as_a.post(f"{web}/api/method/frappe.desk.search.search_link",
				  data={"doctype": "Outlook Account", "txt": "", "page_length": 50}, timeout=30)
	assert r.status_code == 200 and b["account"] not in r.text and "Outlook b" not in r.text
	r = as_a.post(f"{web}/api/method/frappe.desk.listview.get_group_by_count",
				  data={"doctype": "Communication", "current_filters": "[]", "field": "atlas_mailbox"}, timeout=30)
	assert r.status_code == 200 and b["account"] not in r.text


def test_a_desk_user_without_an_atlas_role_reads_no_outlook_mail(web, olk):
	http = login(web, NO_ROLE, TEST_PASSWORD)
	for doctype, key in (("Communication", "comm"), ("Inbox Thread", "thread"), ("Outlook Account", "account")):
		r = http.get(f"{web}/api/resource/{doctype}", params={"limit_page_length": 0}, timeout=30)
		assert r.status_code in (200, 403), r.text[:200]
		if r.status_code == 200:
			assert not {olk[k][key] for k in olk} & _names(r), doctype
		for k in olk:
			assert http.get(f"{web}/api/resource/{doctype}/{olk[k][key]}", timeout=30).status_code == 403
	for k in olk:
		assert http.get(web + olk[k]["file_url"], timeout=30).status_code == 403


def test_the_token_cache_never_leaves_the_server_and_a_mailbox_cannot_be_re_homed(site, web, olk):
	frappe = site
	as_a = login(web, A, TEST_PASSWORD)
	mine, b = olk["a"], olk["b"]
	from atlas_integrations.outlook.accounts import secrets_of

	secrets = secrets_of(mine["account"])
	assert len(secrets) >= 3  # the client secret, the access and refresh tokens (and the id token)
	answers = [as_a.get(f"{web}/api/resource/Outlook Account/{mine['account']}", timeout=30),
			   as_a.get(f"{web}/api/method/frappe.desk.form.load.getdoc",
						params={"doctype": "Outlook Account", "name": mine["account"]}, timeout=30),
			   login(web).get(f"{web}/api/resource/Outlook Account", params={"fields": '["*"]', "limit_page_length": 0},
							  timeout=30)]
	for r in answers:
		assert r.status_code == 200, r.text[:300]
		assert not [s for s in secrets if s in r.text]
	for name, change in ((mine["account"], {"user": B}), (mine["account"], {"account_type": "Shared workspace mailbox"}),
						 (b["account"], {"user": A}), (olk["shared"]["account"], {"enabled": 0})):
		before = frappe.db.get_value("Outlook Account", name, list(change), as_dict=True)
		r = as_a.put(f"{web}/api/resource/Outlook Account/{name}", json=change, timeout=30)
		assert r.status_code in (403, 417), (change, r.status_code, r.text[:200])
		frappe.db.rollback()
		assert frappe.db.get_value("Outlook Account", name, list(change), as_dict=True) == before


def test_erasing_an_outlook_mailbox_removes_its_mail_and_keeps_the_record(site, graph):
	from atlas_integrations.inbox import erase

	frappe = site
	helper = OutlookAccounts(site, graph)
	try:
		address = helper.mailbox(load=4)
		account, _ = helper.connect(address)
		assert helper.sync(account).status == "succeeded"
		assert frappe.db.count("Communication", {"atlas_mailbox_type": "Outlook Account", "atlas_mailbox": account}) == 4
		erase.erase("Outlook Account", account)
		frappe.db.commit()
		assert frappe.db.count("Communication", {"atlas_mailbox_type": "Outlook Account", "atlas_mailbox": account}) == 0
		assert frappe.db.count("Inbox Thread", {"mailbox_type": "Outlook Account", "mailbox": account}) == 0
		assert frappe.db.get_value("Outlook Account", account, "status") == "ACTIVE"  # the record and its connection stay
	finally:
		helper.cleanup()
