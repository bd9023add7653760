"""Replies from the Smart Inbox through Gmail, exactly once, over HTTP against the real site and the local
Gmail server: threading headers, one Communication when the sent message comes back through history, a
double submit, a timeout after Gmail accepted, a process killed between send and record, send-as
aliases, attachments, and every reply rule as a clear error."""

from __future__ import annotations

import base64
import email
import email.policy
import subprocess
import threading
import time
import uuid

import pytest

from tests.conftest import BENCH, SITE, SITES_PATH
from tests.realsite.conftest import TEST_PASSWORD, burst_under_send_limit, login, parallel, run_worker
from tests.realsite.mail import msg_ids
from tests.realsite.reply_fixtures import (  # noqa: F401 - fixtures and helpers
	DISPATCHER,
	_gmail_thread,
	_thread,
	box,
)
from tests.realsite.reply_fixtures import OUTSIDER  # noqa: F401 - fixtures and helpers

API = "/api/method/atlas_integrations.api.smart_inbox"


@pytest.fixture(autouse=True)
def fresh_rate_limits(site):
	"""Each test starts with nothing sent in the last minute (the per-user limit is its own test)."""
	from atlas_integrations.inbox import send_limit

	for user in ("Administrator", DISPATCHER, OUTSIDER):
		send_limit.reset(user)
	yield
	for user in ("Administrator", DISPATCHER, OUTSIDER):
		send_limit.reset(user)


def _send(http, web, thread, key=None, **fields):
	data = {"thread": thread, "to": "customer@atlas-test.example", "body": "<p>Thanks, we are on it.</p>",
			"client_key": key or uuid.uuid4().hex, **fields}
	return http.post(f"{web}{API}.send_reply", data=data, timeout=60)


def test_reply_threads_in_gmail_and_is_one_communication_after_history(site, web, box):
	frappe = site
	server, mailbox, account = box["server"], box["mailbox"], box["account"]
	thread = _thread(frappe, account)
	before = _gmail_thread(server, mailbox, thread.provider_thread_id)
	parent = max(before, key=lambda p: int(p[0]["internalDate"]))[1]
	http = login(web)
	r = _send(http, web, thread.name, cc="boss@atlas-test.example")
	assert r.status_code == 200, r.text[:500]
	out = r.json()["message"]
	assert out["status"] == "Sent" and out["communication"] and out["provider_thread_id"] == thread.provider_thread_id
	after = _gmail_thread(server, mailbox, thread.provider_thread_id)
	new = [p for p in after if p[0]["id"] not in {b[0]["id"] for b in before}]
	assert len(new) == 1
	meta, msg = new[0]
	assert "SENT" in meta["labelIds"]
	assert msg_ids(msg["In-Reply-To"]) == msg_ids(parent["Message-ID"])  # parsed ids: folding aside
	refs = msg_ids(msg["References"])
	assert refs[-1:] == msg_ids(parent["Message-ID"])
	assert all(x in refs for x in msg_ids(parent.get("References")))
	assert str(msg["Subject"]).lower().startswith("re:") and msg["From"] == mailbox
	assert msg_ids(msg["Message-ID"]) == msg_ids(out["message_id"]) and msg["Cc"] == "boss@atlas-test.example"
	frappe.db.rollback()
	comm = frappe.db.get_value("Communication", out["communication"], ["sent_or_received", "atlas_inbox_thread",
																	   "atlas_provider_message_id"], as_dict=True)
	assert comm.sent_or_received == "Sent" and comm.atlas_inbox_thread == thread.name
	assert comm.atlas_provider_message_id == out["provider_message_id"]
	# the sent message comes back through history: reconciled onto the same record
	r = http.post(f"{web}/api/method/atlas_integrations.api.gmail.sync_now", data={"account": account})
	assert r.status_code == 200, r.text[:300]
	run_worker()
	frappe.db.rollback()
	from atlas_integrations.inbox.mime import rfc_message_key

	assert frappe.db.count("Communication", {"atlas_message_key": rfc_message_key(out["message_id"])}) == 1
	# the same request again answers the first result
	again = http.post(f"{web}{API}.send_reply", data={"thread": thread.name, "to": "x@atlas-test.example",
													   "body": "other", "client_key": "never-used-" + uuid.uuid4().hex})
	assert again.json()["message"]["name"] != out["name"]  # a new key is a new message


def test_double_submit_sends_once(site, web, box):
	frappe = site
	server, mailbox = box["server"], box["mailbox"]
	thread = _thread(frappe, box["account"])
	before = len(_gmail_thread(server, mailbox, thread.provider_thread_id))
	key = uuid.uuid4().hex
	http_a, http_b = login(web), login(web)
	answers = []
	go = threading.Barrier(2)

	def submit(http):
		go.wait()
		answers.append(_send(http, web, thread.name, key=key))

	workers = [threading.Thread(target=submit, args=(h,)) for h in (http_a, http_b)]
	for w in workers:
		w.start()
	for w in workers:
		w.join()
	assert all(a.status_code == 200 for a in answers), [a.text[:300] for a in answers]
	names = {a.json()["message"]["name"] for a in answers}
	assert len(names) == 1
	# and once more, later: the first result
	third = _send(login(web), web, thread.name, key=key).json()["message"]
	assert third["name"] in names and third["status"] == "Sent"
	assert len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before + 1


def test_timeout_after_gmail_accepted_is_reconciled_not_resent(site, web, box):
	from frappe.installer import update_site_config

	frappe = site
	server, mailbox = box["server"], box["mailbox"]
	thread = _thread(frappe, box["account"])
	before = len(_gmail_thread(server, mailbox, thread.provider_thread_id))
	update_site_config("atlas_gmail_timeout", 2)
	server.delay_response(r"messages/send", 5)  # Gmail stores it; its answer comes after the client gave up
	try:
		r = _send(login(web), web, thread.name)
	finally:
		update_site_config("atlas_gmail_timeout", "None")
	assert r.status_code == 200, r.text[:500]
	out = r.json()["message"]
	assert out["status"] == "Sent"  # found by rfc822msgid:, recorded, not sent again
	assert len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before + 1
	frappe.db.rollback()
	assert frappe.db.get_value("Outgoing Mail", out["name"], "attempts") == 1


KILLED_SEND = """
import sys, frappe
frappe.init(site=sys.argv[1], sites_path=sys.argv[2]); frappe.connect(); frappe.set_user("Administrator")
from atlas_integrations.gmail import send
send.reply(sys.argv[3], ["customer@atlas-test.example"], "<p>Sent just before the lights went out</p>", sys.argv[4])
"""


def test_process_killed_between_send_and_record_leaves_one_message(site, web, box):
	frappe = site
	server, mailbox = box["server"], box["mailbox"]
	thread = _thread(frappe, box["account"])
	before = len(_gmail_thread(server, mailbox, thread.provider_thread_id))
	key = uuid.uuid4().hex
	server.delay_response(r"messages/send", 10)
	proc = subprocess.Popen([str(BENCH / "env" / "bin" / "python"), "-c", KILLED_SEND, SITE, str(SITES_PATH),
							 thread.name, key], cwd=str(SITES_PATH), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
	deadline = time.monotonic() + 60
	while time.monotonic() < deadline and len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before:
		time.sleep(0.1)  # Gmail has it: the process waits for the answer
	proc.kill()
	proc.wait()
	frappe.db.rollback()
	name = frappe.db.get_value("Outgoing Mail", {"inbox_thread": thread.name, "status": "Sending"}, "name")
	assert name, "the record was committed before Gmail was called"
	assert len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before + 1
	# Reconcile (the form's action, over HTTP) finishes it without sending
	r = login(web).post(f"{web}{API}.reconcile_send", data={"outgoing_mail": name})
	assert r.status_code == 200 and r.json()["message"]["status"] == "Sent", r.text[:300]
	assert len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before + 1
	frappe.db.rollback()
	assert frappe.db.get_value("Outgoing Mail", name, "communication")


def test_send_as_alias_and_attachment(site, web, box):
	frappe = site
	server, mailbox = box["server"], box["mailbox"]
	alias = "sales-" + mailbox
	server.add_send_as(mailbox, alias, display_name="Sales <Team>")
	server.add_send_as(mailbox, "unverified-" + mailbox, verified=False)
	thread = _thread(frappe, box["account"])
	http = login(web)
	choices = http.get(f"{web}{API}.from_addresses", params={"thread": thread.name}).json()["message"]
	assert [c["address"] for c in choices] == [mailbox, alias]
	upload = http.post(f"{web}/api/method/upload_file", files={"file": ("quote.txt", b"Quote: 40 pallets", "text/plain")},
					   data={"is_private": 1})
	assert upload.status_code == 200, upload.text[:300]
	file_name = upload.json()["message"]["name"]
	r = _send(http, web, thread.name, from_address=alias, attachments=f'["{file_name}"]')
	assert r.status_code == 200, r.text[:400]
	sent = [p for p in _gmail_thread(server, mailbox, thread.provider_thread_id)
			if msg_ids(p[1]["Message-ID"]) == msg_ids(r.json()["message"]["message_id"])]
	assert len(sent) == 1
	msg = sent[0][1]
	assert alias in str(msg["From"])
	parts = [p for p in msg.iter_attachments()]
	assert [p.get_filename() for p in parts] == ["quote.txt"] and parts[0].get_content().strip() == "Quote: 40 pallets"
	bad = _send(http, web, thread.name, from_address="unverified-" + mailbox)
	assert bad.status_code == 417 and "not a verified send-as address" in bad.text


def test_reply_rules_are_enforced_over_http(site, web, box):
	frappe = site
	thread = _thread(frappe, box["account"])
	admin = login(web)
	r = _send(admin, web, thread.name, to="")
	assert r.status_code == 417 and "Add at least one To recipient" in r.text
	r = _send(admin, web, thread.name, body="<p> </p>")
	assert r.status_code == 417 and "Write a message before sending" in r.text
	outsider = login(web, OUTSIDER, TEST_PASSWORD)
	r = _send(outsider, web, thread.name)
	assert r.status_code == 403 and "Only Atlas users" in r.text
	assert outsider.get(f"{web}/api/resource/Outgoing Mail").json().get("data") in ([], None)
	# a dispatcher may use the shared mailbox, and sees its sends; not another user's personal mailbox
	dispatcher = login(web, DISPATCHER, TEST_PASSWORD)
	r = _send(dispatcher, web, thread.name)
	assert r.status_code == 200 and r.json()["message"]["status"] == "Sent", r.text[:300]
	listed = dispatcher.get(f"{web}/api/resource/Outgoing Mail", params={"fields": '["name","user"]'}).json()["data"]
	assert r.json()["message"]["name"] in [x["name"] for x in listed]
	# the record cannot be rewritten over REST (no write permission), ownership included
	put = dispatcher.put(f"{web}/api/resource/Outgoing Mail/{r.json()['message']['name']}",
						 json={"mailbox": "other", "user": "Administrator"})
	assert put.status_code == 403
	# an unhealthy mailbox
	frappe.db.set_value("Gmail Account", box["account"], "health", "unhealthy")
	frappe.db.commit()
	try:
		r = _send(admin, web, thread.name)
		assert r.status_code == 417 and "is not healthy" in r.text
	finally:
		frappe.db.set_value("Gmail Account", box["account"], "health", "healthy")
		frappe.db.commit()
	# the workspace not Active
	frappe.db.set_single_value("Atlas Settings", "workspace_state", "Locked")
	frappe.db.commit()
	try:
		r = _send(admin, web, thread.name)
		assert r.status_code == 417 and "Workspace changes are temporarily unavailable" in r.text
	finally:
		frappe.db.set_single_value("Atlas Settings", "workspace_state", "Active")
		frappe.db.commit()
	# the per-user rate limit
	from atlas_integrations.inbox import send_limit

	frappe.db.set_single_value("Atlas Settings", "reply_rate_limit", 2)
	frappe.db.commit()
	send_limit.reset(DISPATCHER)
	try:
		answers = [_send(dispatcher, web, thread.name) for _ in range(3)]
		assert [a.status_code for a in answers] == [200, 200, 429], [a.text[:200] for a in answers]
		assert "You are sending too fast: at most 2 messages a minute" in answers[2].text
	finally:
		frappe.db.set_single_value("Atlas Settings", "reply_rate_limit", 10)
		frappe.db.commit()


def _threads(frappe, account: str, n: int) -> list[str]:
	"""``n`` threads of the mailbox whose latest message was received."""
	rows = frappe.db.sql(
		"""select t.name from `tabInbox Thread` t where t.mailbox=%s and exists (select 1 from
		`tabCommunication` c where c.atlas_inbox_thread=t.name and c.sent_or_received='Received')
		order by t.name limit %s""", (account, n), pluck=True)
	assert len(rows) == n, f"the corpus gives {n} threads with received mail"
	return rows


def test_parallel_replies_of_one_user_never_exceed_the_rate_limit(site, web, box):
	"""20 replies with 20 different keys from one user at the same moment, over 20 HTTP sessions: the
	check-and-record is one Redis script, so exactly the limit get through, and Gmail holds exactly those."""
	from atlas_integrations.inbox import send_limit

	frappe = site
	server, mailbox = box["server"], box["mailbox"]
	limit = 4
	threads = _threads(frappe, box["account"], 20)
	sessions = [login(web, DISPATCHER, TEST_PASSWORD) for _ in threads]
	before = len(server.dump_messages(mailbox))
	answers, elapsed = burst_under_send_limit(frappe, DISPATCHER, limit,
											  [lambda h=h, t=t: _send(h, web, t) for h, t in zip(sessions, threads)])
	sent = [a.json()["message"] for a in answers if a.status_code == 200]
	assert all(m["status"] == "Sent" for m in sent)
	assert len(server.dump_messages(mailbox)) == before + limit  # Gmail holds exactly the accepted ones
	assert {m["message_id"] for m in sent} <= {
		email.message_from_bytes(base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4)))["Message-ID"]
		for m in server.dump_messages(mailbox)}
	assert send_limit.used(DISPATCHER) == limit
	frappe.db.rollback()
	assert frappe.db.count("Outgoing Mail", {"user": DISPATCHER, "name": ["in", [m["name"] for m in sent]]}) == limit
	print(f"20 parallel replies, limit {limit}: {limit} sent, {20 - limit} refused in {elapsed:.2f} s")


def test_two_parallel_retries_of_a_failed_send_send_one_message(site, web, box):
	"""A send Gmail refused is retried twice with its key at the same moment (two sessions): the
	Outgoing Mail row lock makes the second wait for the first's outcome; one message reaches Gmail and
	both callers get the same Sent record."""
	frappe = site
	server, mailbox = box["server"], box["mailbox"]
	thread = _thread(frappe, box["account"])
	before = len(_gmail_thread(server, mailbox, thread.provider_thread_id))
	key = uuid.uuid4().hex
	server.inject_fault(r"/messages/send", 400, reason="failedPrecondition", method="POST")
	first = _send(login(web), web, thread.name, key=key)
	assert first.status_code == 417 and "Gmail refused the message" in first.text, first.text[:300]
	frappe.db.rollback()
	name = frappe.db.get_value("Outgoing Mail", {"inbox_thread": thread.name}, "name")
	assert frappe.db.get_value("Outgoing Mail", name, ["status", "attempts"]) == ("Failed", 1)
	assert len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before
	server.delay_response(r"/messages/send", 2)  # the first retry is inside Gmail when the second arrives
	sessions = [login(web), login(web)]
	answers = parallel([lambda h=h: _send(h, web, thread.name, key=key) for h in sessions])
	assert [a.status_code for a in answers] == [200, 200], [a.text[:300] for a in answers]
	results = [a.json()["message"] for a in answers]
	assert {r["name"] for r in results} == {name} and {r["status"] for r in results} == {"Sent"}
	assert len({r["provider_message_id"] for r in results}) == 1
	sent = [(m["id"], m["threadId"]) for m in server.dump_messages(mailbox) if "SENT" in (m.get("labelIds") or [])]
	assert (results[0]["provider_message_id"], thread.provider_thread_id) in sent  # the message Gmail took, in the thread
	assert len(_gmail_thread(server, mailbox, thread.provider_thread_id)) == before + 1
	frappe.db.rollback()
	assert frappe.db.get_value("Outgoing Mail", name, "attempts") == 2  # one refused, one retry: no third send


def test_outgoing_mails_gmail_named_ids_move_to_the_neutral_columns_without_loss(site):
	"""Patch ``neutral_outgoing_mail_ids``: on a site migrated from the Gmail-named schema, each Outgoing
	Mail's ``gmail_message_id`` / ``gmail_thread_id`` (columns Frappe keeps after the rename) fill the new
	``provider_message_id`` / ``provider_thread_id``; running it again changes nothing, and a value the new
	column already has (written after the migration) is never overwritten."""
	import uuid

	from atlas_integrations.patches import neutral_outgoing_mail_ids

	frappe = site
	added = [c for c in ("gmail_message_id", "gmail_thread_id") if not frappe.db.has_column("Outgoing Mail", c)]
	for column in added:  # a fresh site never had them: make the old schema (DDL commits)
		frappe.db.sql_ddl(f"alter table `tabOutgoing Mail` add column `{column}` varchar(140)")
	frappe.cache.hdel("table_columns", "tabOutgoing Mail")  # Frappe caches a table's columns
	rows = []
	try:
		for old_id, new_id in (("gm-old-1", None), ("gm-old-2", "provider-new-2"), (None, None)):
			doc = frappe.get_doc({"doctype": "Outgoing Mail", "request_key": uuid.uuid4().hex, "status": "Sent",
								  "user": "Administrator", "message_id": f"<{uuid.uuid4().hex}@atlas.test>",
								  "provider_message_id": new_id})
			doc.db_insert()
			frappe.db.sql("update `tabOutgoing Mail` set gmail_message_id=%s, gmail_thread_id=%s where name=%s",
						  (old_id, f"thread-of-{old_id}" if old_id else None, doc.name))
			rows.append(doc.name)
		frappe.db.commit()
		neutral_outgoing_mail_ids.execute()
		neutral_outgoing_mail_ids.execute()  # idempotent
		got = {r[0]: r[1:] for r in frappe.db.sql(
			"select name, provider_message_id, provider_thread_id from `tabOutgoing Mail` where name in %s",
			(tuple(rows),))}
		assert [got[n] for n in rows] == [("gm-old-1", "thread-of-gm-old-1"),
											  ("provider-new-2", "thread-of-gm-old-2"),  # kept, not overwritten
											  (None, None)]
	finally:
		frappe.db.rollback()
		frappe.db.delete("Outgoing Mail", {"name": ["in", rows or ["-"]]})
		frappe.db.commit()
		for column in added:
			frappe.db.sql_ddl(f"alter table `tabOutgoing Mail` drop column `{column}`")
		frappe.cache.hdel("table_columns", "tabOutgoing Mail")
