"""The managed inbound route over HTTP through the site's own web server: signed raw messages and
Mailgun's forward(); bad, stale, replayed, oversized and broken messages; the same pipeline after."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

import pytest
import requests

from atlas_integrations.inbox.inbound import sign
from tests.realsite.mail import make_mail
from tests.realsite.conftest import run_worker

KEY = "route-signing-key-" + uuid.uuid4().hex
MAILGUN_KEY = "mailgun-key-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def route(site, web):
	frappe = site
	# the tests' default sender must be unknown (an interrupted run may have left a Contact for it)
	for contact in frappe.get_all("Contact Email", filters={"email_id": "someone@nowhere.example",
															 "parenttype": "Contact"}, pluck="parent"):
		frappe.delete_doc("Contact", contact, ignore_permissions=True, force=True)
	name = f"Test route {uuid.uuid4().hex[:6]}"
	doc = frappe.get_doc({"doctype": "Inbound Route", "route_name": name,
						  "inbound_address": f"in-{uuid.uuid4().hex[:6]}@atlas-test.example",
						  "signing_key": KEY, "mailgun_signing_key": MAILGUN_KEY, "max_message_mb": 0.05,
						  "require_known_sender": 1}).insert(ignore_permissions=True)
	frappe.db.commit()
	yield doc.name
	frappe.db.rollback()
	comms = frappe.get_all("Communication", filters={"atlas_inbound_route": doc.name}, pluck="name")
	frappe.db.delete("File", {"attached_to_doctype": "Communication", "attached_to_name": ["in", comms or [""]]})
	frappe.db.delete("Communication Link", {"parent": ["in", comms or [""]]})
	frappe.db.delete("Communication", {"atlas_inbound_route": doc.name})
	frappe.db.delete("Inbox Thread", {"inbound_route": doc.name})
	frappe.delete_doc("Inbound Route", doc.name, ignore_permissions=True, force=True)
	frappe.db.commit()


def _url(web, route, mailgun=False):
	method = "mailgun_mime" if mailgun else "receive"
	return f"{web}/api/method/atlas_integrations.api.inbound.{method}"


def _message(subject: str, sender: str = "Stranger <someone@nowhere.example>") -> bytes:
	return make_mail(sender, "in@atlas-test.example", subject, f"Body of {subject}. Could you send a quote?")


def _post(web, route, body: bytes, key: str = KEY, t: int | None = None, header: str | None = None):
	headers = {"Content-Type": "message/rfc822",
			   "X-Atlas-Signature": header if header is not None else sign(key, body, t)}
	return requests.post(_url(web, route), params={"route": route}, data=body, headers=headers, timeout=30)


def _stored(frappe, route):
	frappe.db.rollback()
	return frappe.get_all("Communication", filters={"atlas_inbound_route": route},
						  fields=["name", "subject", "atlas_outcome", "atlas_outcome_reason", "atlas_parse_error",
								  "atlas_inbox_thread"])


def test_signed_message_is_stored_once_and_goes_through_the_pipeline(site, web, route):
	frappe = site
	body = _message("Hello via route")
	started = time.monotonic()
	first = _post(web, route, body)
	elapsed = time.monotonic() - started
	assert first.status_code == 200, first.text
	assert first.json()["message"]["status"] == "accepted"
	assert elapsed < 1.0, f"answered in {elapsed:.2f} s"
	replay = _post(web, route, body)  # the same delivery again, freshly signed
	assert replay.status_code == 200 and replay.json()["message"]["status"] == "duplicate"
	rows = [r for r in _stored(frappe, route) if r.subject == "Hello via route"]
	assert len(rows) == 1
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	row = [r for r in _stored(frappe, route) if r.subject == "Hello via route"][0]
	assert row.atlas_outcome == "unknown_sender", row.atlas_outcome_reason  # the route requires a known sender
	thread = frappe.get_doc("Inbox Thread", row.atlas_inbox_thread)
	assert (thread.inbound_route, thread.gmail_account, thread.match_state) == (route, None, "unknown_sender")
	assert thread.category == "Quote request"


def test_bad_missing_stale_signatures_are_refused_and_nothing_is_stored(site, web, route):
	frappe = site
	before = len(_stored(frappe, route))
	body = _message("Forged")
	cases = {
		"wrong key": _post(web, route, body, key="not-the-key"),
		"missing": _post(web, route, body, header=""),
		"malformed": _post(web, route, body, header="v1=abc"),
		"stale": _post(web, route, body, t=int(time.time()) - 301),
		"body changed": requests.post(_url(web, route), params={"route": route}, data=body + b"x",
									  headers={"X-Atlas-Signature": sign(KEY, body)},
									  timeout=30),
	}
	for case, response in cases.items():
		assert response.status_code == 401, (case, response.status_code, response.text)
		assert KEY not in response.text
	assert len(_stored(frappe, route)) == before
	assert frappe.db.get_value("Inbound Route", route, "rejected_count") >= len(cases)


def test_oversized_and_unknown_route_are_refused(site, web, route):
	frappe = site
	big = _message("Big") + b"x" * 60_000  # over the 0.05 MB limit
	r = _post(web, route, big)
	assert r.status_code == 406, r.text
	unknown = _post(web, "no-such-route", _message("Lost"))
	assert unknown.status_code == 404
	assert not [x for x in _stored(frappe, route) if x.subject == "Big"]


def test_broken_message_is_stored_with_its_error_as_failed(site, web, route):
	frappe = site
	broken = b"\x00\x01 this is not a mail message at all \xff\xfe"
	r = _post(web, route, broken)
	assert r.status_code == 200, r.text
	frappe.db.rollback()  # a fresh snapshot: the web server committed the row
	row = frappe.get_doc("Communication", r.json()["message"]["communication"])
	assert row.atlas_outcome == "failed" and "unreadable message" in row.atlas_outcome_reason


def test_mailgun_forward_verifies_token_and_rejects_replays(site, web, route):
	frappe = site
	raw = _message("Via Mailgun")
	timestamp, token = str(int(time.time())), uuid.uuid4().hex
	signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
	form = {"timestamp": timestamp, "token": token, "signature": signature, "body-mime": raw.decode(),
			"recipient": "in@atlas-test.example"}
	ok = requests.post(_url(web, route, mailgun=True), params={"route": route}, data=form, timeout=30)
	assert ok.status_code == 200 and ok.json()["message"]["status"] == "accepted", ok.text
	again = requests.post(_url(web, route, mailgun=True), params={"route": route}, data=form, timeout=30)
	assert again.status_code == 401 and "replay" in again.text  # the same token twice
	bad = dict(form, token=uuid.uuid4().hex)  # signature no longer matches
	assert requests.post(_url(web, route, mailgun=True), params={"route": route}, data=bad, timeout=30).status_code == 401
	stale_ts = str(int(time.time()) - 1000)
	stale = dict(form, timestamp=stale_ts, token=uuid.uuid4().hex)
	stale["signature"] = hmac.new(MAILGUN_KEY.encode(), (stale_ts + stale["token"]).encode(), hashlib.sha256).hexdigest()
	assert requests.post(_url(web, route, mailgun=True), params={"route": route}, data=stale, timeout=30).status_code == 401
	assert len([r for r in _stored(frappe, route) if r.subject == "Via Mailgun"]) == 1


def test_route_mail_is_readable_by_atlas_roles_only(site, web, route):
	from tests.realsite.conftest import TEST_PASSWORD, ensure_user, login

	frappe = site
	body = _message("Who may read me")
	r = _post(web, route, body)
	comm = r.json()["message"]["communication"]
	ensure_user(frappe, "atlas-route-dispatcher@atlas-test.example", ("Atlas Dispatcher",))
	ensure_user(frappe, "atlas-route-sales@atlas-test.example", ("Sales User",))
	dispatcher = login(web, "atlas-route-dispatcher@atlas-test.example", TEST_PASSWORD)
	sales = login(web, "atlas-route-sales@atlas-test.example", TEST_PASSWORD)
	assert dispatcher.get(f"{web}/api/resource/Communication/{comm}").status_code == 200
	assert sales.get(f"{web}/api/resource/Communication/{comm}").status_code == 403


def test_route_that_says_so_creates_a_contact_for_an_unknown_sender(site, web, route):
	frappe = site
	address = f"new-person-{uuid.uuid4().hex[:6]}@newcomer.example"
	run_worker()  # what other tests posted is processed under the route's usual settings, not these
	frappe.db.rollback()
	frappe.db.set_value("Inbound Route", route, {"create_contacts": 1, "require_known_sender": 0})
	frappe.db.commit()
	try:
		r = _post(web, route, _message("First contact", sender=f"Nina Newcomer <{address}>"))
		assert r.status_code == 200, r.text
		proc = run_worker()
		assert proc.returncode == 0, proc.stdout + proc.stderr
		frappe.db.rollback()
		contact = frappe.db.get_value("Contact Email", {"email_id": address, "parenttype": "Contact"}, "parent")
		assert contact and frappe.db.get_value("Contact", contact, ["first_name", "last_name"]) == ("Nina", "Newcomer")
		comm = frappe.get_doc("Communication", r.json()["message"]["communication"])
		thread = frappe.get_doc("Inbox Thread", comm.atlas_inbox_thread)
		assert (thread.match_state, thread.contact, thread.party) == ("matched", contact, None)
		assert comm.atlas_outcome == "pending_review"  # a known person now, but no party and no rule
	finally:
		frappe.db.set_value("Inbound Route", route, {"create_contacts": 0, "require_known_sender": 1})
		frappe.db.commit()
		for name in frappe.get_all("Contact Email", filters={"email_id": address}, pluck="parent"):
			frappe.delete_doc("Contact", name, ignore_permissions=True, force=True)
		frappe.db.commit()
