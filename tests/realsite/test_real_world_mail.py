"""Real mail that came out wrong (issue 17), through both ways in, into the site, the reader and the timeline:
RFC 1341's sample whose sender has no domain (``Nathaniel Borenstein <nsb>``) and Outlook's
``ks_c_5601-1987`` (windows-949) name, subject and body. Fixtures: tests/pure/data/charset_mail/.

Real site, the local Gmail server and a real rq worker; the Inbound Route over HTTP through the site's own
web server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import requests

from atlas_integrations.inbox.inbound import sign
from tests.realsite.conftest import Accounts, login, run_worker

MAIL = Path(__file__).resolve().parents[1] / "pure" / "data" / "charset_mail"
KOREAN_NAME, KOREAN_SUBJECT = "김똠희", "똠양꿍 식당 견적서 요청드립니다"
KOREAN_TEXT = "안녕하세요, 똠양꿍 식당 김똠희입니다.\r\n견적서를 보내주시겠어요?"
KEY = "route-signing-key-" + uuid.uuid4().hex


def fixture_mail(name: str) -> bytes:
	"""A fixture message; the Outlook one with a Message-ID of its own (the pipeline calls a Message-ID
	another mailbox accepted first a ``duplicate``: every run and mailbox gets a fresh one)."""
	raw = (MAIL / name).read_bytes()
	return raw.replace(b"<000a01c99b9f$2c4d5e60$6401a8c0@KIMPC>", f"<{uuid.uuid4().hex}@KIMPC>".encode())


def assert_stored(frappe, rows: dict) -> None:
	"""The two messages as the site keeps them: ``rows`` is fixture name -> Communication name."""
	from atlas_integrations.inbox.text import plain

	nsb = frappe.get_doc("Communication", rows["rfc1341_nsb.eml"])
	assert nsb.sender is None  # an Email field: Frappe refuses "nsb"
	assert plain(nsb.atlas_sender_as_written) == "nsb" and plain(nsb.sender_full_name) == "Nathaniel Borenstein"
	assert nsb.text_content.startswith("This is implicitly typed plain ASCII text.")
	kim = frappe.get_doc("Communication", rows["ks_c_5601_1987_outlook.eml"])
	assert (plain(kim.sender_full_name), kim.sender, kim.atlas_sender_as_written) == (
		KOREAN_NAME, "ddom.kim@tomyum.example.kr", None)
	assert plain(kim.subject) == KOREAN_SUBJECT and kim.text_content == KOREAN_TEXT
	assert "똠양꿍 식당 김똠희입니다" in kim.content and "\ufffd" not in kim.content
	# a domain-less sender matches nothing (and breaks nothing): the thread waits as an unknown sender
	assert nsb.atlas_outcome == "unknown_sender", nsb.atlas_outcome_reason
	thread = frappe.get_doc("Inbox Thread", nsb.atlas_inbox_thread)
	assert thread.match_state == "unknown_sender" and not thread.sender_address
	assert plain(thread.participants).split(", ")[0] == "nsb"  # the Smart Inbox list names the sender


def assert_read(messages: list[dict]) -> None:
	"""The reader's data (``open_thread``'s ``messages``) of the two threads."""
	by_subject = {m["subject"]: m for m in messages}
	nsb = by_subject["Sample message"]
	assert (nsb["sender"], nsb["sender_as_written"], nsb["sender_full_name"]) == (None, "nsb", "Nathaniel Borenstein")
	kim = by_subject[KOREAN_SUBJECT]
	assert (kim["sender"], kim["sender_as_written"], kim["sender_full_name"]) == (
		"ddom.kim@tomyum.example.kr", "", KOREAN_NAME)
	assert "김똠희입니다" in kim["html"]


def assert_form_and_timeline(frappe, communication: str, thread: str) -> None:
	from atlas_integrations.inbox import timeline

	field = frappe.get_meta("Communication").get_field("atlas_sender_as_written")
	assert field.read_only and not field.hidden and field.fieldtype == "Small Text"
	[row] = [r for r in timeline.get_communications("Inbox Thread", thread) if r.name == communication]
	assert "from nsb (address as written)" in row.content


@pytest.fixture(scope="module")
def gmail_rows(site, google):
	"""The two messages arriving in a connected mailbox after its initial sync (so the pipeline runs on them,
	as on any new mail). Yields fixture name -> Communication name."""
	from atlas_integrations.gmail.sync import enqueue_sync

	frappe = site
	helper = Accounts(site, google)
	email = helper.mailbox(load_corpus=False)
	account, _ = helper.connect(email)
	proc = run_worker()  # the initial sync of the empty mailbox
	assert proc.returncode == 0, proc.stdout + proc.stderr
	ids = {name: google.insert_message(email, fixture_mail(name), label_ids=["INBOX", "UNREAD"])
		   for name in ("rfc1341_nsb.eml", "ks_c_5601_1987_outlook.eml")}
	enqueue_sync(account, trigger="manual")
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	stored = dict(frappe.get_all("Communication", filters={"atlas_mailbox": account},
								 fields=["atlas_provider_message_id", "name"], as_list=True))
	yield {name: stored[mid] for name, mid in ids.items()}
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		helper.cleanup()


def test_gmail_stores_the_address_as_written_and_windows_949_text(site, gmail_rows):
	assert_stored(site, gmail_rows)


def test_gmail_thread_reads_them_in_the_reader_and_the_timeline(site, gmail_rows):
	from atlas_integrations.api.inbox import open_thread

	frappe = site
	threads = {frappe.db.get_value("Communication", c, "atlas_inbox_thread") for c in gmail_rows.values()}
	assert len(threads) == 2
	assert_read([m for t in threads for m in open_thread(t)["messages"]])
	nsb = gmail_rows["rfc1341_nsb.eml"]
	assert_form_and_timeline(frappe, nsb, frappe.db.get_value("Communication", nsb, "atlas_inbox_thread"))


@pytest.fixture(scope="module")
def route_rows(site, web):
	"""The two messages posted, signed, to a new Inbound Route (it requires a known sender) over HTTP, and
	processed by the pipeline on a real worker. Yields (route, fixture name -> Communication name)."""
	frappe = site
	name = f"Real mail route {uuid.uuid4().hex[:6]}"
	route = frappe.get_doc({"doctype": "Inbound Route", "route_name": name, "signing_key": KEY,
							"inbound_address": f"in-{uuid.uuid4().hex[:6]}@atlas-test.example",
							"require_known_sender": 1}).insert(ignore_permissions=True).name
	frappe.db.commit()
	rows = {}
	for fixture in ("rfc1341_nsb.eml", "ks_c_5601_1987_outlook.eml"):
		body = fixture_mail(fixture)
		r = requests.post(f"{web}/api/method/atlas_integrations.api.inbound.receive", params={"route": route},
						  data=body, headers={"Content-Type": "message/rfc822", "X-Atlas-Signature": sign(KEY, body)},
						  timeout=30)
		assert r.status_code == 200 and r.json()["message"]["status"] == "accepted", r.text
		rows[fixture] = r.json()["message"]["communication"]
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	yield route, rows
	frappe.db.rollback()
	comms = frappe.get_all("Communication", filters={"atlas_mailbox": route}, pluck="name")
	frappe.db.delete("Communication Link", {"parent": ["in", comms or [""]]})
	frappe.db.delete("Communication", {"atlas_mailbox": route})
	frappe.db.delete("Inbox Thread", {"mailbox": route})
	frappe.delete_doc("Inbound Route", route, ignore_permissions=True, force=True)
	frappe.db.commit()


def test_inbound_route_stores_the_address_as_written_and_windows_949_text(site, route_rows):
	assert_stored(site, route_rows[1])


def test_inbound_route_thread_reads_them_over_http_and_in_the_timeline(site, web, route_rows):
	frappe = site
	_, rows = route_rows
	http = login(web)
	messages = []
	for communication in rows.values():
		thread = frappe.db.get_value("Communication", communication, "atlas_inbox_thread")
		r = http.post(f"{web}/api/method/atlas_integrations.api.inbox.open_thread", data={"thread": thread}, timeout=30)
		assert r.status_code == 200, r.text
		messages += r.json()["message"]["messages"]
	assert_read(messages)
	nsb = rows["rfc1341_nsb.eml"]
	assert_form_and_timeline(frappe, nsb, frappe.db.get_value("Communication", nsb, "atlas_inbox_thread"))
