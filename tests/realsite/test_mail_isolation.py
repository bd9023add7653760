"""No one reads or takes over a mailbox that is not theirs — proven over HTTP as the other user.

Dispatchers A and B each have a personal mailbox; there is a shared workspace mailbox. A also holds
Frappe's Inbox User and Super Email User roles (which widen Frappe's own Communication rules). Every
path Frappe offers to a document is tried as A against B's mail: REST list/get, File list, the private
file download, ``getdoc`` (the form and its timeline), ``/printview``, report view export, PUTs that would
re-home B's account, thread or message, shares and assignments. A still reads and downloads the shared
mailbox's mail.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, login, run_worker

A = "atlas-iso-a@atlas-test.example"
B = "atlas-iso-b@atlas-test.example"
OUTSIDER = "atlas-iso-outsider@atlas-test.example"


def _mail(subject: str, to: str, attachment: str) -> bytes:
	from email.message import EmailMessage

	msg = EmailMessage()
	msg["From"] = "Sender <sender@x.org>"
	msg["To"] = to
	msg["Subject"] = subject
	msg["Date"] = "Tue, 01 Dec 2026 09:00:00 +0000"
	msg.set_content(f"body of {subject}")
	# distinct bytes per mailbox: identical bytes share one file on disk (content-hash dedupe), and Frappe
	# serves a shared file to whoever may read any of its File rows
	msg.add_attachment(b"%PDF-1.4\n%" + attachment.encode() + b"\n", maintype="application",
					   subtype="octet-stream", filename=attachment)
	return msg.as_bytes()


@pytest.fixture(scope="module")
def boxes(site, google):
	"""Three synced mailboxes (A's, B's, shared), each with one message and one attachment."""
	frappe = site
	ensure_user(frappe, A, ("Atlas Dispatcher", "Inbox User", "Super Email User"))
	ensure_user(frappe, B, ("Atlas Dispatcher",))
	ensure_user(frappe, OUTSIDER, ("Atlas Dispatcher",))
	helper = Accounts(site, google)
	out = {}
	for key, user, kind in (("a", A, "Personal"), ("b", B, "Personal"), ("shared", "Administrator",
																		   "Shared workspace mailbox")):
		email = helper.mailbox(load_corpus=False)
		google.insert_message(email, _mail(f"secret of {key}", email, f"{key}-secret.bin"))
		account, _ = helper.connect(email, user=user, account_type=kind)
		out[key] = {"account": account}
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


@pytest.fixture(scope="module")
def as_a(web, boxes):
	return login(web, A, TEST_PASSWORD)


def _names(response) -> set[str]:
	assert response.status_code == 200, response.text[:500]
	return {row["name"] for row in response.json()["data"]}


def test_rest_lists_and_gets_show_only_mailboxes_a_may_read(web, boxes, as_a):
	b, shared, mine = boxes["b"], boxes["shared"], boxes["a"]
	for doctype, key in (("Communication", "comm"), ("Inbox Thread", "thread"), ("File", "file")):
		listed = _names(as_a.get(f"{web}/api/resource/{doctype}", params={"limit_page_length": 0}, timeout=30))
		assert b[key] not in listed, doctype
		assert shared[key] in listed and mine[key] in listed, doctype
		r = as_a.get(f"{web}/api/resource/{doctype}/{b[key]}", timeout=30)
		assert r.status_code == 403, (doctype, r.status_code)
		assert b["subject"] not in r.text
		assert as_a.get(f"{web}/api/resource/{doctype}/{shared[key]}", timeout=30).status_code == 200
	# filtering straight at B's mailbox finds nothing either
	r = as_a.get(f"{web}/api/resource/Communication", params={
		"filters": json.dumps([["atlas_mailbox", "=", b["account"]]]), "fields": '["name","subject"]'}, timeout=30)
	assert _names(r) == set()


def test_downloads_follow_the_mailbox(web, boxes, as_a):
	assert as_a.get(web + boxes["b"]["file_url"], timeout=30).status_code == 403
	r = as_a.get(web + boxes["shared"]["file_url"], timeout=30)
	assert r.status_code == 200 and r.content.startswith(b"%PDF")
	assert r.headers["Content-Disposition"].startswith("attachment")
	assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_form_load_timeline_print_and_export_refuse_bs_mail(web, boxes, as_a):
	b, shared = boxes["b"], boxes["shared"]
	for doctype, key in (("Communication", "comm"), ("Inbox Thread", "thread")):
		r = as_a.get(f"{web}/api/method/frappe.desk.form.load.getdoc", params={"doctype": doctype, "name": b[key]},
					 timeout=30)
		assert r.status_code == 403 and b["subject"] not in r.text, (doctype, r.status_code)
		r = as_a.get(f"{web}/printview", params={"doctype": doctype, "name": b[key], "format": "Standard"}, timeout=30)
		assert b["subject"] not in r.text and f"body of secret of b" not in r.text, doctype
	# the shared thread's form loads, and its timeline (docinfo) carries only its own mail
	r = as_a.get(f"{web}/api/method/frappe.desk.form.load.getdoc", params={"doctype": "Inbox Thread",
																		  "name": shared["thread"]}, timeout=30)
	assert r.status_code == 200, r.text[:300]
	timeline = r.json()["docinfo"]["communications"]
	assert [c["name"] for c in timeline] == [shared["comm"]]
	# report view export of every Communication A can see
	r = as_a.post(f"{web}/api/method/frappe.desk.reportview.export_query", data={
		"doctype": "Communication", "file_format_type": "CSV", "fields": json.dumps(["`tabCommunication`.`name`",
		"`tabCommunication`.`subject`"]), "filters": "[]"}, timeout=60)
	assert r.status_code == 200, r.text[:300]
	assert b["comm"] not in r.text and "secret of b" not in r.text
	assert shared["comm"] in r.text


def test_puts_that_would_re_home_mail_are_refused(site, web, boxes, as_a):
	frappe = site
	b, shared, mine = boxes["b"], boxes["shared"], boxes["a"]
	attempts = [
		("Gmail Account", b["account"], {"user": A}),
		("Gmail Account", mine["account"], {"user": B}),
		("Gmail Account", mine["account"], {"account_type": "Shared workspace mailbox"}),
		("Inbox Thread", b["thread"], {"mailbox": mine["account"]}),
		("Inbox Thread", shared["thread"], {"mailbox": mine["account"]}),
		("Inbox Thread", b["thread"], {"mailbox_type": "Inbound Route"}),  # half of the Dynamic Link pair
		("Communication", b["comm"], {"atlas_mailbox": mine["account"]}),
		("Communication", shared["comm"], {"atlas_mailbox": mine["account"], "atlas_inbox_thread": mine["thread"]}),
		("Communication", shared["comm"], {"reference_name": mine["thread"]}),
		("File", b["file"], {"attached_to_name": mine["comm"]}),
		("File", shared["file"], {"attached_to_name": mine["comm"]}),
	]
	for doctype, name, change in attempts:
		before = frappe.db.get_value(doctype, name, list(change), as_dict=True)
		r = as_a.put(f"{web}/api/resource/{doctype}/{name}", json=change, timeout=30)
		assert r.status_code in (403, 417), (doctype, change, r.status_code, r.text[:300])
		frappe.db.rollback()
		assert frappe.db.get_value(doctype, name, list(change), as_dict=True) == before, (doctype, change)
	# planting mail in B's mailbox is refused too
	r = as_a.post(f"{web}/api/resource/Communication", json={
		"communication_medium": "Email", "subject": "planted", "atlas_mailbox_type": "Gmail Account",
		"atlas_mailbox": b["account"],
		"atlas_inbox_thread": b["thread"], "reference_doctype": "Inbox Thread", "reference_name": b["thread"]}, timeout=30)
	assert r.status_code in (403, 417), r.text[:300]
	r = as_a.post(f"{web}/api/resource/File", json={
		"file_name": "planted.txt", "content": "x", "is_private": 1, "attached_to_doctype": "Communication",
		"attached_to_name": b["comm"]}, timeout=30)
	assert r.status_code in (403, 417), r.text[:300]


def test_no_share_or_assignment_opens_a_mailbox_to_someone_outside_it(site, boxes, web):
	from frappe.desk.form import assign_to
	from frappe.share import add_docshare

	frappe = site
	b, shared = boxes["b"], boxes["shared"]
	for doctype, key in (("Inbox Thread", "thread"), ("Communication", "comm")):
		with pytest.raises(frappe.PermissionError):
			add_docshare(doctype, b[key], A, read=1, flags={"ignore_share_permission": True})
		frappe.db.rollback()
		with pytest.raises(frappe.PermissionError):
			add_docshare(doctype, shared[key], everyone=1, read=1, flags={"ignore_share_permission": True})
		frappe.db.rollback()
	with pytest.raises(frappe.PermissionError):
		assign_to.add({"assign_to": [A], "doctype": "Inbox Thread", "name": b["thread"]})
	frappe.db.rollback()
	assert not frappe.db.exists("DocShare", {"share_name": b["thread"], "user": A})
	# assigning a shared mailbox's thread to a dispatcher works (they may read it)
	assign_to.add({"assign_to": [OUTSIDER], "doctype": "Inbox Thread", "name": shared["thread"]})
	frappe.db.commit()
	try:
		assert frappe.db.exists("ToDo", {"reference_name": shared["thread"], "allocated_to": OUTSIDER})
		outsider = login(web, OUTSIDER, TEST_PASSWORD)
		assert outsider.get(f"{web}/api/resource/Inbox Thread/{b['thread']}", timeout=30).status_code == 403
	finally:
		frappe.db.delete("ToDo", {"reference_name": shared["thread"]})
		frappe.db.delete("DocShare", {"share_name": shared["thread"]})
		frappe.db.commit()


def test_mail_rows_without_a_mailbox_are_denied_by_default(site, boxes, web, as_a):
	frappe = site
	orphan = frappe.generate_hash(length=10)
	frappe.db.sql("""insert into `tabInbox Thread` (name, creation, modified, owner, modified_by, subject, thread_key)
		values (%s, now(), now(), 'Administrator', 'Administrator', 'orphan thread', %s)""", (orphan, orphan))
	frappe.db.sql("""update `tabCommunication` set atlas_mailbox=null where name=%s""", boxes["shared"]["comm"])
	frappe.db.commit()
	try:
		assert as_a.get(f"{web}/api/resource/Inbox Thread/{orphan}", timeout=30).status_code == 403
		assert orphan not in _names(as_a.get(f"{web}/api/resource/Inbox Thread", params={"limit_page_length": 0}, timeout=30))
		assert as_a.get(f"{web}/api/resource/Communication/{boxes['shared']['comm']}", timeout=30).status_code == 403
		assert as_a.get(web + boxes["shared"]["file_url"], timeout=30).status_code == 403
	finally:
		frappe.db.delete("Inbox Thread", {"name": orphan})
		frappe.db.set_value("Communication", boxes["shared"]["comm"], "atlas_mailbox", boxes["shared"]["account"])
		frappe.db.commit()


def test_hooks_answer_every_permission_type(site, boxes):
	frappe = site
	b, shared = boxes["b"], boxes["shared"]
	for ptype in ("read", "print", "email", "export", "report", "share", "write", "delete"):
		for doctype, key in (("Communication", "comm"), ("Inbox Thread", "thread"), ("File", "file")):
			assert not frappe.has_permission(doctype, ptype, doc=b[key], user=A), (doctype, ptype)
	for ptype in ("read", "print", "email", "export", "report"):
		assert frappe.has_permission("Communication", ptype, doc=shared["comm"], user=A), ptype
	assert frappe.has_permission("File", "read", doc=shared["file"], user=A)


def test_locked_workspace_refuses_every_mutating_method(site, boxes, web, as_a):
	frappe = site
	mine = boxes["a"]
	failed = frappe.get_doc({"doctype": "Sync Job", "job_type": "Gmail Sync", "reference_doctype": "Gmail Account",
							 "reference_name": mine["account"], "status": "failed", "payload": "{}"}).insert(ignore_permissions=True)
	admin = login(web)
	calls = [
		(as_a, "atlas_integrations.api.inbox.set_labels", {"thread": mine["thread"], "add": "STARRED"}),
		(as_a, "atlas_integrations.api.inbox.mark_read", {"thread": mine["thread"], "read": 1}),
		(as_a, "atlas_integrations.api.gmail.sync_now", {"account": mine["account"]}),
		(as_a, "atlas_integrations.api.gmail.disconnect", {"account": mine["account"]}),
		(admin, "atlas_integrations.api.jobs.retry", {"sync_job": failed.name}),
	]
	try:
		for state in ("Locked", "Read-only", "Archived"):
			frappe.db.set_single_value("Atlas Settings", "workspace_state", state)
			frappe.db.commit()
			for http, method, data in calls:
				r = http.post(f"{web}/api/method/{method}", data=data, timeout=30)
				assert r.status_code == 417, (state, method, r.status_code, r.text[:200])
				assert "Workspace changes are temporarily unavailable" in r.text, (state, method)
		frappe.db.rollback()
		assert frappe.db.get_value("Sync Job", failed.name, "status") == "failed"
		assert frappe.db.get_value("Gmail Account", mine["account"], "status") != "DISCONNECTED"
	finally:
		frappe.db.set_single_value("Atlas Settings", "workspace_state", "Active")
		frappe.db.delete("Sync Job", {"name": failed.name})
		frappe.db.commit()
