"""Replies and quote emails through an Outlook mailbox, exactly once, against the real site (HTTP for the
desk's calls, real rq workers for the sync) and the local Graph server: a createReply draft carrying the
request key in an extended property, committed before /send; a double submit, a timeout after Graph
accepted, a sent copy that shows up late ("not found yet" waits, never resends), a process killed between
the draft and /send: one message per key at the server every time."""

from __future__ import annotations

import email
import email.policy
import subprocess
import time
import uuid

import pytest

from tests.conftest import BENCH, SITE, SITES_PATH
from tests.realsite.conftest import login, parallel
from tests.realsite.mail import msg_ids
from tests.realsite.outlook_fixtures import OutlookAccounts, graph  # noqa: F401 - the fixtures

API = "/api/method/atlas_integrations.api.smart_inbox"
KEY_PROPERTY = "String {6b1f0c3e-4d2a-4e8b-9a57-0c8e2f1d7a31} Name AtlasRequestKey"


@pytest.fixture(scope="module")
def mailbox(site, graph):  # noqa: F811
	"""The Administrator's Outlook mailbox with 12 corpus messages, synced once."""
	helper = OutlookAccounts(site, graph)
	address = helper.mailbox(load=12)
	account, _ = helper.connect(address)
	job = helper.sync(account)
	assert job.status == "succeeded", job.last_error
	yield {"server": graph, "address": address, "account": account, "helper": helper}
	graph.faults.clear()
	graph.send_lag = 0.0
	helper.cleanup()


@pytest.fixture(autouse=True)
def fresh(site, graph):  # noqa: F811
	"""No faults, no lag, nothing sent in the last minute (the rate limit is its own test)."""
	from atlas_integrations.inbox import send_limit

	graph.faults.clear()
	graph.send_lag = 0.0
	send_limit.reset("Administrator")
	yield
	graph.faults.clear()
	graph.send_lag = 0.0
	send_limit.reset("Administrator")


def _thread(frappe, account: str):
	"""An inbox thread of the mailbox (its latest message received)."""
	name = frappe.get_all("Inbox Thread", filters={"mailbox_type": "Outlook Account", "mailbox": account},
						  order_by="last_message_at desc", pluck="name", limit=1)[0]
	return frappe.get_doc("Inbox Thread", name)


def _sent_with(server, key_hash: str) -> list[dict]:
	"""The messages the Graph server sent carrying request key ``key_hash``."""
	return [s for s in server.sent if s["extended"].get(KEY_PROPERTY) == key_hash]


def _send(http, web, thread, key=None, **fields):
	data = {"thread": thread, "to": "customer@atlas-test.example", "body": "<p>Thanks, we are on it.</p>",
			"client_key": key or uuid.uuid4().hex, **fields}
	return http.post(f"{web}{API}.send_reply", data=data, timeout=90)


def test_reply_is_a_createreply_draft_sent_once_and_one_communication_after_delta(site, web, mailbox):
	from atlas_integrations.inbox import outbox

	frappe = site
	server, address, account = mailbox["server"], mailbox["address"], mailbox["account"]
	thread = _thread(frappe, account)
	box = server.mailbox(address)
	latest = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread.name},
							fields=["atlas_provider_message_id"], order_by="communication_date desc", limit=1)[0]
	parent = box.messages[latest.atlas_provider_message_id]
	http = login(web)
	upload = http.post(f"{web}/api/method/upload_file", files={"file": ("quote.txt", b"Quote: 40 pallets", "text/plain")},
					   data={"is_private": 1})
	assert upload.status_code == 200, upload.text[:300]
	key = uuid.uuid4().hex
	r = _send(http, web, thread.name, key=key, cc="boss@atlas-test.example",
			  attachments=f'["{upload.json()["message"]["name"]}"]')
	assert r.status_code == 200, r.text[:500]
	out = r.json()["message"]
	assert out["status"] == "Sent" and out["communication"], out
	(sent,) = _sent_with(server, outbox.reply_key("Administrator", key))
	msg = email.message_from_bytes(sent["raw"], policy=email.policy.default)
	# Graph's own threading: In-Reply-To the parent, References ending with it, the parent's conversation
	assert msg_ids(msg["In-Reply-To"]) == msg_ids(parent.internet_message_id)
	assert msg_ids(msg["References"])[-1:] == msg_ids(parent.internet_message_id)
	assert box.messages[sent["id"]].conversation_id == parent.conversation_id == out["provider_thread_id"]
	assert sorted(sent["to"]) == ["boss@atlas-test.example", "customer@atlas-test.example"]
	assert "Thanks, we are on it." in msg.get_body(preferencelist=("html",)).get_content()
	assert [p.get_filename() for p in msg.iter_attachments()] == ["quote.txt"]
	# the draft's immutable id is the sent message's, now in Sent Items
	assert out["provider_message_id"] == sent["id"]
	stored = box.messages[sent["id"]]
	assert not stored.is_draft and stored.folder == box.folder_id("sentitems")
	frappe.db.rollback()
	record = frappe.db.get_value("Outgoing Mail", out["name"], ["provider_draft_id", "message_id", "attempts"], as_dict=True)
	assert record.provider_draft_id == sent["id"] and record.attempts == 1
	assert msg_ids(record.message_id) == msg_ids(sent["internetMessageId"])
	comm = frappe.db.get_value("Communication", out["communication"],
							   ["sent_or_received", "atlas_inbox_thread", "atlas_provider_message_id", "atlas_tags"], as_dict=True)
	assert (comm.sent_or_received, comm.atlas_inbox_thread) == ("Sent", thread.name)
	assert "SENT" in comm.atlas_tags.split(",")
	# the sent message comes back through delta (Sent Items is followed): the same record
	job = mailbox["helper"].sync(account)
	assert job.status == "succeeded", job.last_error
	assert frappe.db.count("Communication", {"atlas_mailbox_key": f"{account}:{sent['id']}"}) == 1
	assert frappe.db.count("Communication", {"atlas_provider_message_id": sent["id"]}) == 1


def test_double_submit_sends_once(site, web, mailbox):
	from atlas_integrations.inbox import outbox

	frappe = site
	server = mailbox["server"]
	thread = _thread(frappe, mailbox["account"])
	key = uuid.uuid4().hex
	sessions = [login(web) for _ in range(3)]
	answers = parallel([lambda h=h: _send(h, web, thread.name, key=key) for h in sessions])
	assert all(a.status_code in (200, 417) for a in answers), [a.text[:300] for a in answers]
	names = {a.json()["message"]["name"] for a in answers if a.status_code == 200}
	assert len(names) == 1
	later = _send(login(web), web, thread.name, key=key)
	assert later.status_code == 200, later.text[:300]
	later = later.json()["message"]
	assert later["name"] in names and later["status"] == "Sent"
	assert len(_sent_with(server, outbox.reply_key("Administrator", key))) == 1


def test_timeout_after_graph_accepted_is_found_not_resent(site, web, mailbox):
	from frappe.installer import update_site_config

	from atlas_integrations.inbox import outbox

	frappe = site
	server = mailbox["server"]
	thread = _thread(frappe, mailbox["account"])
	key = uuid.uuid4().hex
	update_site_config("atlas_outlook_timeout", 2)
	fault = server.add_fault("POST", r"/messages/[^/]+/send$", status=None, delay=5, after=True)
	try:
		r = _send(login(web), web, thread.name, key=key)
	finally:
		update_site_config("atlas_outlook_timeout", "None")
	assert fault.hits == 1
	assert r.status_code == 200, r.text[:500]
	out = r.json()["message"]
	assert out["status"] == "Sent"  # the draft is no longer one: sent, recorded, not sent again
	assert len(_sent_with(server, outbox.reply_key("Administrator", key))) == 1
	frappe.db.rollback()
	assert frappe.db.get_value("Outgoing Mail", out["name"], "attempts") == 1


def test_a_sent_copy_that_shows_late_is_waited_for_never_resent(site, web, mailbox):
	from atlas_integrations.inbox import outbox

	frappe = site
	server = mailbox["server"]
	thread = _thread(frappe, mailbox["account"])
	key = uuid.uuid4().hex
	server.send_lag = 4.0  # Graph takes it, files it in Sent Items 4 s later; its answer is lost
	server.add_fault("POST", r"/messages/[^/]+/send$", status=503, after=True)
	http = login(web)
	r = _send(http, web, thread.name, key=key)
	assert r.status_code == 417 and "has not confirmed the message yet" in r.text, r.text[:500]
	frappe.db.rollback()
	name = outbox.existing(outbox.reply_key("Administrator", key))
	assert frappe.db.get_value("Outgoing Mail", name, "status") == "Sending"
	# the same request again at once: still not shown, still not sent again
	again = _send(http, web, thread.name, key=key)
	assert again.status_code == 200 and again.json()["message"]["status"] == "Sending", again.text[:300]
	assert len(_sent_with(server, outbox.reply_key("Administrator", key))) == 1
	time.sleep(4.5)
	done = _send(http, web, thread.name, key=key)
	assert done.status_code == 200 and done.json()["message"]["status"] == "Sent", done.text[:300]
	assert len(_sent_with(server, outbox.reply_key("Administrator", key))) == 1
	frappe.db.rollback()
	assert frappe.db.get_value("Outgoing Mail", name, "attempts") == 1


KILLED = """
import sys, frappe
frappe.init(site=sys.argv[1], sites_path=sys.argv[2]); frappe.connect(); frappe.set_user("Administrator")
from atlas_integrations.outlook import send
send.send_new(sys.argv[3], "Administrator", sys.argv[4], ["buyer@atlas-test.example"], "Your quote",
			  "<p>Quote attached</p>", attachments=[("Q-1.pdf", "application/pdf", b"%PDF-1.4 quote")])
"""


def test_process_killed_between_draft_and_send_sends_that_draft_once_after_waiting(site, mailbox):
	from frappe.utils import add_to_date, now_datetime

	from atlas_integrations.inbox import outbox
	from atlas_integrations.outlook import send

	frappe = site
	server, account = mailbox["server"], mailbox["account"]
	request_key = f"test-quote-{uuid.uuid4().hex}"
	key_hash = outbox.job_key(request_key)
	# /send is held (and never done) while the process is killed: the draft exists, nothing was sent
	server.add_fault("POST", r"/messages/[^/]+/send$", status=503, delay=20)
	before = len(server.requests)
	proc = subprocess.Popen([str(BENCH / "env" / "bin" / "python"), "-c", KILLED, SITE, str(SITES_PATH), account,
							 request_key], cwd=str(SITES_PATH), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
	deadline = time.monotonic() + 60
	while time.monotonic() < deadline and not any(p.endswith("/send") for _m, p in server.requests[before:]):
		time.sleep(0.05)
	proc.kill()
	proc.wait()
	frappe.db.rollback()
	record = frappe.db.get_value("Outgoing Mail", {"request_key": key_hash},
								 ["name", "status", "provider_draft_id"], as_dict=True)
	assert record and record.status == "Sending" and record.provider_draft_id, "the draft was committed before /send"
	box = server.mailbox(mailbox["address"])
	assert box.messages[record.provider_draft_id].is_draft and not _sent_with(server, key_hash)
	# the job runs again at once: the draft may still be on its way, so it waits (never a second draft)
	with pytest.raises(outbox.NotConfirmed):
		send.send_new(account, "Administrator", request_key, ["buyer@atlas-test.example"], "Your quote", "<p>x</p>")
	assert not _sent_with(server, key_hash)
	# long after, a draft still unsent was not sent: that same draft is sent, once
	frappe.db.sql("update `tabOutgoing Mail` set modified=%s where name=%s",
				  (add_to_date(now_datetime(), seconds=-(send.SEND_SETTLE + 5)), record.name))
	frappe.db.commit()
	out = send.send_new(account, "Administrator", request_key, ["buyer@atlas-test.example"], "Your quote", "<p>x</p>")
	assert out.status == "Sent" and out.provider_message_id == record.provider_draft_id
	(sent,) = _sent_with(server, key_hash)
	msg = email.message_from_bytes(sent["raw"], policy=email.policy.default)
	assert [p.get_filename() for p in msg.iter_attachments()] == ["Q-1.pdf"] and sent["to"] == ["buyer@atlas-test.example"]
	assert len([m for m in box.messages.values() if m.extended.get(KEY_PROPERTY) == key_hash]) == 1  # one draft ever


def test_outlook_reply_rules(site, web, mailbox):
	frappe = site
	thread = _thread(frappe, mailbox["account"])
	http = login(web)
	r = _send(http, web, thread.name, from_address="someone-else@contoso-test.example")
	assert r.status_code == 417 and "not a verified send-as address" in r.text
	choices = http.get(f"{web}{API}.from_addresses", params={"thread": thread.name}).json()["message"]
	assert [c["address"] for c in choices] == [mailbox["address"]]
	# an attachment over Graph's 3 MB for one request: refused in words before anything is made or sent
	big = http.post(f"{web}/api/method/upload_file", data={"is_private": 1},
					files={"file": ("big.bin", b"\0" * (3 * 1024 * 1024 + 1), "application/octet-stream")})
	assert big.status_code == 200, big.text[:300]
	sent_before, requests_before = len(mailbox["server"].sent), len(mailbox["server"].requests)
	r = _send(http, web, thread.name, attachments=f'["{big.json()["message"]["name"]}"]')
	assert r.status_code == 417 and "larger than Outlook's 3 MB per message" in r.text, r.text[:300]
	assert len(mailbox["server"].sent) == sent_before
	assert not [p for _m, p in mailbox["server"].requests[requests_before:] if "/messages" in p]
	frappe.db.set_value("Outlook Account", mailbox["account"], "health", "unhealthy")
	frappe.db.commit()
	try:
		r = _send(http, web, thread.name)
		assert r.status_code == 417 and "is not healthy" in r.text
	finally:
		frappe.db.set_value("Outlook Account", mailbox["account"], "health", "healthy")
		frappe.db.commit()
