"""The managed inbound route over HTTP through the site's own web server: signed raw messages and
Mailgun's forward(); bad, stale, replayed, oversized and broken messages; the same pipeline after."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid

import pytest
import requests

from atlas_integrations.inbox.inbound import sign
from tests.realsite.mail import make_mail
from tests.realsite.conftest import login, run_worker

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
	comms = frappe.get_all("Communication", filters={"atlas_mailbox": doc.name}, pluck="name")
	frappe.db.delete("File", {"attached_to_doctype": "Communication", "attached_to_name": ["in", comms or [""]]})
	frappe.db.delete("Communication Link", {"parent": ["in", comms or [""]]})
	frappe.db.delete("Communication", {"atlas_mailbox": doc.name})
	frappe.db.delete("Inbox Thread", {"mailbox": doc.name})
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
	return frappe.get_all("Communication", filters={"atlas_mailbox": route},
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
	assert (thread.mailbox_type, thread.mailbox, thread.match_state) == ("Inbound Route", route, "unknown_sender")
	assert thread.category == "Quote request"


def _route_row(frappe, route):
	frappe.db.rollback()
	return frappe.db.get_value("Inbound Route", route, ["rejected_count", "last_rejection", "received_count",
														"modified"], as_dict=True)


def _refused(route):
	from atlas_integrations.inbox.inbound import refusal_figures

	return refusal_figures(route)["count"]


def test_bad_missing_stale_signatures_are_refused_counted_in_redis_and_nothing_is_written(site, web, route):
	frappe = site
	before = len(_stored(frappe, route))
	row_before, refused_before = _route_row(frappe, route), _refused(route)
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
	# counted in Redis, no database write: the route row is as it was
	assert _refused(route) == refused_before + len(cases)
	assert _route_row(frappe, route) == row_before
	# the form shows the stored total plus what Redis counted since
	form = login(web).get(f"{web}/api/method/frappe.desk.form.load.getdoc",
						  params={"doctype": "Inbound Route", "name": route}).json()["docs"][0]
	assert form["rejected_count"] == (row_before.rejected_count or 0) + refused_before + len(cases)
	assert form["last_rejection"] == "signature does not match"  # the last case: the body changed
	# the next accepted message folds the count into the stored total, in the update it makes anyway
	assert _post(web, route, _message(f"Folds {uuid.uuid4().hex}")).status_code == 200
	row = _route_row(frappe, route)
	assert row.rejected_count == (row_before.rejected_count or 0) + refused_before + len(cases)
	assert row.last_rejection == "signature does not match" and _refused(route) == 0


def test_oversized_is_refused_413_before_the_signature_and_unknown_route_404(site, web, route):
	from atlas_integrations.inbox.inbound import refusal_figures

	frappe = site
	refused_before, unknown_before = _refused(route), refusal_figures(None)["count"]
	big = _message("Big") + b"x" * 60_000  # over the 0.05 MB limit
	cases = {
		"signed, Content-Length": _post(web, route, big),
		# a forged signature gets 413, not 401: the size is checked before any HMAC work
		"forged, Content-Length": _post(web, route, big, header="t=1,v1=00"),
		# chunked: no Content-Length announced, the body's own length is checked
		"forged, chunked": requests.post(_url(web, route), params={"route": route}, timeout=30,
										 data=(big[i:i + 8192] for i in range(0, len(big), 8192)),
										 headers={"X-Atlas-Signature": "t=1,v1=00"}),
	}
	for case, r in cases.items():
		assert r.status_code == 413, (case, r.status_code, r.text[:300])
		assert "over the route's limit of 52428 bytes" in r.json()["message"]["reason"]
	unknown = _post(web, "no-such-route", _message("Lost"))
	assert unknown.status_code == 404
	assert not [x for x in _stored(frappe, route) if x.subject == "Big"]
	assert _refused(route) == refused_before + len(cases)
	assert refusal_figures(None)["count"] == unknown_before + 1  # unknown routes share one counter


def _mailgun_form(raw: bytes, token: str | None = None, timestamp: str | None = None) -> dict:
	timestamp, token = timestamp or str(int(time.time())), token or uuid.uuid4().hex
	signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
	return {"timestamp": timestamp, "token": token, "signature": signature, "body-mime": raw.decode(),
			"recipient": "in@atlas-test.example"}


def _mailgun(web, route, form: dict):
	return requests.post(_url(web, route, mailgun=True), params={"route": route}, data=form, timeout=30)


def test_mailgun_oversized_is_refused_413_before_the_signature(site, web, route):
	frappe = site
	refused_before = _refused(route)
	forged = dict(_mailgun_form(_message("Big via Mailgun") + b"x" * 60_000), signature="0" * 64)
	assert _mailgun(web, route, forged).status_code == 413  # body-mime over the limit, form within the allowance
	huge = dict(_mailgun_form(_message("Huge via Mailgun")), signature="0" * 64, padding="p" * (1024 * 1024 + 60_000))
	r = _mailgun(web, route, huge)  # the request's Content-Length is over the limit + the form allowance
	assert r.status_code == 413 and "over the route's limit" in r.text
	assert _refused(route) == refused_before + 2
	assert not [x for x in _stored(frappe, route) if "via Mailgun" in (x.subject or "") and "Big" in x.subject]


def test_mailgun_token_is_used_only_once_its_message_is_stored(site, web, route):
	"""A store that fails (here: the route row is locked by another transaction and the site's statement
	timeout ends the request) leaves the token unused: Mailgun's retry of the same delivery is stored.
	While a store is running, a replay of its token is refused; once stored, the token is used."""
	from frappe.installer import update_site_config

	frappe = site
	raw = _message(f"Retried by Mailgun {uuid.uuid4().hex[:6]}")
	form = _mailgun_form(raw)
	refused_before = _refused(route)
	note = requests.post(_url(web, route), params={"route": route}, data=b"x", timeout=30,
						 headers={"X-Atlas-Signature": "t=1,v1=00"})  # one refusal waiting to be folded
	assert note.status_code == 401 and _refused(route) == refused_before + 1
	frappe.db.rollback()
	frappe.db.sql("select name from `tabInbound Route` where name=%s for update", route)  # the store will wait
	update_site_config("enable_db_statement_timeout", 1)
	update_site_config("http_timeout", 1)  # a web request's statements end after 1 s
	try:
		failed = _mailgun(web, route, form)
	finally:
		frappe.db.rollback()
		update_site_config("enable_db_statement_timeout", "None")
		update_site_config("http_timeout", "None")
	assert failed.status_code >= 500, (failed.status_code, failed.text[:300])
	assert not [x for x in _stored(frappe, route) if x.subject == plain_subject(raw)]
	assert _refused(route) == refused_before + 1  # the count taken for the failed update went back to Redis
	retry = _mailgun(web, route, form)  # Mailgun's retry: the same form, the same token
	assert retry.status_code == 200 and retry.json()["message"]["status"] == "accepted", retry.text[:300]
	assert len([x for x in _stored(frappe, route) if x.subject == plain_subject(raw)]) == 1
	assert _refused(route) == 0  # the accepted message folded the waiting count into the route's total
	replay = _mailgun(web, route, form)
	assert replay.status_code == 401 and "replay" in replay.text
	assert _refused(route) == 1  # and the replay is counted, in Redis


def test_mailgun_token_replayed_while_its_message_is_being_stored_is_refused(site, web, route):
	from atlas_integrations.inbox import inbound

	frappe = site
	raw = _message(f"Original {uuid.uuid4().hex[:6]}")
	form = _mailgun_form(raw)
	forged = dict(form, **{"body-mime": _message("Forged with a sniffed token").decode()})
	frappe.db.rollback()
	frappe.db.sql("select name from `tabInbound Route` where name=%s for update", route)  # the store waits
	answers = {}
	first = threading.Thread(target=lambda: answers.setdefault("first", _mailgun(web, route, form)))
	first.start()
	try:
		deadline = time.monotonic() + 20
		while not (frappe.cache.get(inbound._token_key(form["token"])) or b"").startswith(b"claim:"):
			assert time.monotonic() < deadline, "the first request claims the token"
			time.sleep(0.05)
		answers["replay"] = _mailgun(web, route, forged)  # the same token, another body, meanwhile
	finally:
		frappe.db.rollback()  # the first request's store goes on
		first.join()
	assert answers["replay"].status_code == 401 and "replay" in answers["replay"].text
	assert answers["first"].status_code == 200 and answers["first"].json()["message"]["status"] == "accepted"
	subjects = [x.subject for x in _stored(frappe, route)]
	assert plain_subject(raw) in subjects and "Forged with a sniffed token" not in subjects
	assert frappe.cache.get(inbound._token_key(form["token"])) == b"used"


def plain_subject(raw: bytes) -> str:
	import email

	return str(email.message_from_bytes(raw)["Subject"])


def test_site_request_limit_is_set_once_and_bounds_what_frappe_reads(site, web, route):
	from frappe.installer import update_site_config

	from atlas_integrations.setup import install

	frappe = site
	previous = frappe.conf.get("max_file_size")
	try:
		update_site_config("max_file_size", "None")
		frappe.local.conf.pop("max_file_size", None)
		assert install.set_request_limit() == install.REQUEST_LIMIT == 26 * 1024 * 1024
		assert frappe.get_site_config()["max_file_size"] == install.REQUEST_LIMIT
		assert install.set_request_limit() == install.REQUEST_LIMIT  # idempotent
		update_site_config("max_file_size", 40_000)  # an admin's value is kept
		frappe.local.conf.max_file_size = 40_000
		assert install.set_request_limit() == 40_000 and frappe.get_site_config()["max_file_size"] == 40_000
		# a body over it is refused by Frappe itself, before Atlas's code runs (so not counted either)
		refused_before = _refused(route)
		body = _message("Bigger than the site reads") + b"y" * 45_000
		r = _post(web, route, body)
		assert r.status_code == 413 and _refused(route) == refused_before
	finally:
		update_site_config("max_file_size", previous if previous else "None")
		frappe.local.conf.max_file_size = previous
		if not previous:
			frappe.local.conf.pop("max_file_size", None)


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


def test_a_reply_joins_its_route_thread_and_the_thread_adds_it_up(site, route):
	"""The route has no provider thread ids: the writer threads a message by its In-Reply-To / References
	within the route; a new thread's aggregates come from the row in memory, an existing one's are read."""
	from atlas_integrations.inbox import inbound

	frappe = site
	r = inbound.route_for(route)
	u = uuid.uuid4().hex[:8]
	try:
		first = inbound.store(r, make_mail("Ann <ann@nowhere.example>", "in@atlas-test.example", f"Order {u}",
										   "Ten boxes, please.", message_id=f"first-{u}@nowhere.example",
										   date="Mon, 30 Nov 2026 09:00:00 +0000"))
		thread = frappe.db.get_value("Communication", first["communication"], "atlas_inbox_thread")
		one = frappe.get_doc("Inbox Thread", thread)
		assert (one.message_count, one.unread, one.subject) == (1, 1, f"Order {u}")
		reply = inbound.store(r, make_mail("Bob <bob@nowhere.example>", "in@atlas-test.example", f"Re: Order {u}",
										   "Make it twelve.", in_reply_to=f"first-{u}@nowhere.example",
										   date="Mon, 30 Nov 2026 10:00:00 +0000"))
		assert frappe.db.get_value("Communication", reply["communication"], "atlas_inbox_thread") == thread
		two = frappe.get_doc("Inbox Thread", thread)
		assert (two.message_count, two.subject, two.snippet) == (2, f"Order {u}", "Make it twelve.")
		assert "ann@nowhere.example" in two.participants and "bob@nowhere.example" in two.participants
		assert (two.last_message_at - two.first_message_at).total_seconds() == 3600
		other = inbound.store(r, _message(f"Unrelated {u}"))  # no reference: a thread of its own
		assert frappe.db.get_value("Communication", other["communication"], "atlas_inbox_thread") != thread
	finally:
		frappe.db.rollback()


def test_a_row_the_database_drops_is_refused_503_so_the_sender_sends_it_again(site, route, monkeypatch):
	"""Nothing is lost: a message whose row the ``INSERT IGNORE`` dropped although its key is not stored
	(here a name collision) is not answered as a duplicate but refused with 503, which senders retry."""
	from atlas_integrations.inbox import inbound

	frappe = site
	r = inbound.route_for(route)
	u = uuid.uuid4().hex[:8]
	try:
		kept = inbound.store(r, _message(f"Kept {u}"))
		assert kept["status"] == "accepted"
		monkeypatch.setattr(frappe, "generate_hash", lambda *a, **k: kept["communication"])  # the new name collides
		with pytest.raises(inbound.Refused) as refused:
			inbound.store(r, _message(f"Dropped {u}"))
		assert refused.value.status == 503 and "send it again" in refused.value.reason
		assert not frappe.db.exists("Communication", {"atlas_mailbox": route, "subject": f"Dropped {u}"})
	finally:
		frappe.db.rollback()
