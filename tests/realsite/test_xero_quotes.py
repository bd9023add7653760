"""Quotations to Xero Quotes and "Send quote" on the real site (real ERPNext documents, rq worker, xero-python
against the local Xero server, the quote PDF emailed through the local Gmail server): the quote reaches
Xero once with ERPNext's total; cancel deletes a draft and declines a sent one; an amendment is a new
quote; the send goes out exactly once with the PDF and marks the quote SENT; every failure shows
"Xero send failed" with a reason naming the recipient, the integration or the Xero quote."""

from __future__ import annotations

import base64
import email
import email.policy
import uuid

import pytest

from tests.realsite.conftest import Accounts, burst_under_send_limit, ensure_user, login, run_worker, TEST_PASSWORD
from tests.realsite.xero_fixtures import xero  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import ITEM, _customer, _sync, connected  # noqa: F401 - the fixture

API = "/api/method/atlas_integrations.api.xero"
QUOTER = "atlas-quoter@atlas-test.example"


@pytest.fixture(scope="module")
def mailbox(site, google, connected):  # noqa: F811
	"""An empty shared workspace mailbox, connected over OAuth and synced, chosen to send quotes."""
	frappe = site
	helper = Accounts(frappe, google)
	address = helper.mailbox(load_corpus=False)
	account, _ = helper.connect(address, account_type="Shared workspace mailbox")
	assert run_worker().returncode == 0
	frappe.db.rollback()
	frappe.db.set_value("Xero Connection", connected["company"], {"quote_mailbox_type": "Gmail Account",
																   "quote_mailbox": account})
	ensure_user(frappe, QUOTER, ("Atlas Dispatcher", "Sales User"))
	frappe.db.commit()
	yield {"account": account, "address": address, "server": google}
	frappe.db.rollback()
	frappe.db.set_value("Xero Connection", connected["company"], {"quote_mailbox_type": None, "quote_mailbox": None})
	frappe.db.delete("Outgoing Mail", {"mailbox": account})
	frappe.db.commit()
	helper.cleanup()


def _quotation(frappe, company: str, customer: str, rate: float = 40, qty: float = 3, to: str = "Customer",
			   submit: bool = True) -> str:
	from frappe.utils import add_days, today

	doc = frappe.get_doc({"doctype": "Quotation", "quotation_to": to, "party_name": customer, "company": company,
						  "transaction_date": today(), "valid_till": add_days(today(), 20),
						  "items": [{"item_code": ITEM, "qty": qty, "rate": rate}]})
	doc.insert(ignore_permissions=True)
	if submit:
		doc.submit()
	frappe.db.commit()
	return doc.name


def _xero_quote(server, tenant: str, number: str) -> dict:
	return next(q for q in server.quotes(tenant) if q.get("QuoteNumber") == number)


def _state(frappe, name: str):
	frappe.db.rollback()
	return frappe.db.get_value("Quotation", name, ["atlas_xero_status", "atlas_xero_error", "atlas_xero_quote_id",
												   "atlas_xero_quote_status", "atlas_xero_sent_at"], as_dict=True)


def _sent_to(server, address: str, recipient: str) -> list:
	out = []
	for m in server.dump_messages(address):
		raw = base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4))
		msg = email.message_from_bytes(raw, policy=email.policy.default)
		if recipient in str(msg.get("To", "")):
			out.append(msg)
	return out


def test_quote_reaches_xero_once_then_cancel_deletes_it_and_an_amendment_is_a_new_quote(site, connected):
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	customer = _customer(frappe, f"Quote Customer {uuid.uuid4().hex[:6]}")
	name = _quotation(frappe, company, customer, rate=33.33, qty=3)
	assert _state(frappe, name).atlas_xero_status == "Queued in Xero"  # before any worker ran
	_sync(frappe)
	state = _state(frappe, name)
	assert state.atlas_xero_status == "Synced to Xero", state.atlas_xero_error
	quote = _xero_quote(server, tenant, name)
	grand = frappe.db.get_value("Quotation", name, "rounded_total") or frappe.db.get_value("Quotation", name, "grand_total")
	assert quote["Status"] == "DRAFT" and float(quote["Total"]) == pytest.approx(float(grand))
	assert quote["QuoteID"] == state.atlas_xero_quote_id and quote["Contact"]["Name"] == customer
	_sync(frappe)  # nothing new: no second quote
	assert [q["QuoteNumber"] for q in server.quotes(tenant)].count(name) == 1
	# cancel: a DRAFT quote is deleted; the amendment is a new quote that names the original
	doc = frappe.get_doc("Quotation", name)
	doc.cancel()
	amended = frappe.copy_doc(doc)
	amended.amended_from = name
	amended.insert(ignore_permissions=True)
	amended.submit()
	frappe.db.commit()
	_sync(frappe)
	assert _xero_quote(server, tenant, name)["Status"] == "DELETED"
	assert _state(frappe, name).atlas_xero_quote_status == "DELETED"
	new = _xero_quote(server, tenant, amended.name)
	assert new["QuoteID"] != quote["QuoteID"] and new["Reference"] == f"Amends {name}"
	assert _state(frappe, amended.name).atlas_xero_status == "Synced to Xero"


def test_send_quote_emails_the_xero_pdf_once_and_marks_it_sent(site, web, connected, mailbox):
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	customer = _customer(frappe, f"Quote Send {uuid.uuid4().hex[:6]}")
	name = _quotation(frappe, company, customer)
	_sync(frappe)
	recipient = f"buyer-{uuid.uuid4().hex[:6]}@atlas-test.example"
	http = login(web, QUOTER, TEST_PASSWORD)
	key = uuid.uuid4().hex
	first = http.post(f"{web}{API}.send_quote", data={"quotation": name, "client_key": key, "to": recipient}, timeout=30)
	assert first.status_code == 200, first.text
	again = http.post(f"{web}{API}.send_quote", data={"quotation": name, "client_key": key, "to": recipient}, timeout=30)
	assert again.json()["message"]["sync_job"] == first.json()["message"]["sync_job"]  # a double submit: one job
	assert _state(frappe, name).atlas_xero_status == "Queued in Xero"
	_sync(frappe)
	state = _state(frappe, name)
	assert state.atlas_xero_status == "Synced to Xero", state.atlas_xero_error
	assert state.atlas_xero_quote_status == "SENT" and state.atlas_xero_sent_at
	assert _xero_quote(server, tenant, name)["Status"] == "SENT"
	sent = _sent_to(mailbox["server"], mailbox["address"], recipient)
	assert len(sent) == 1, "exactly one email at Gmail"
	pdfs = [p for p in sent[0].iter_attachments() if p.get_content_type() == "application/pdf"]
	assert len(pdfs) == 1 and pdfs[0].get_filename() == f"{name}.pdf"
	assert pdfs[0].get_content().startswith(b"%PDF") and name.encode() in pdfs[0].get_content()
	# the email is on the Quotation's timeline
	assert frappe.db.exists("Communication Link", {"link_doctype": "Quotation", "link_name": name})
	_sync(frappe)  # the job ran: nothing is sent again
	assert len(_sent_to(mailbox["server"], mailbox["address"], recipient)) == 1
	# a SENT quote is declined when the Quotation is cancelled
	frappe.get_doc("Quotation", name).cancel()
	frappe.db.commit()
	_sync(frappe)
	assert _xero_quote(server, tenant, name)["Status"] == "DECLINED"


def test_a_quote_sent_and_accepted_in_xero_shows_on_the_quotation_after_a_pull(site, connected):
	"""The route without Gmail: the user opens the quote in Xero and sends it from there; the next pull
	(If-Modified-Since on GET /Quotes) brings SENT, then ACCEPTED, back onto the Quotation and its timeline."""
	from atlas_integrations.xero import payments

	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	name = _quotation(frappe, company, _customer(frappe, f"Quote In Xero {uuid.uuid4().hex[:6]}"))
	_sync(frappe)
	state = _state(frappe, name)
	assert (state.atlas_xero_quote_status, state.atlas_xero_sent_at) == ("DRAFT", None)

	def pull():
		payments.queue_pull(company, trigger="test")
		frappe.db.commit()
		_sync(frappe)

	server.set_quote_status(tenant, state.atlas_xero_quote_id, "SENT")
	pull()
	state = _state(frappe, name)
	assert state.atlas_xero_quote_status == "SENT" and state.atlas_xero_sent_at
	assert state.atlas_xero_status == "Synced to Xero"
	server.set_quote_status(tenant, state.atlas_xero_quote_id, "ACCEPTED")
	pull()
	pull()  # read again: nothing changes twice
	assert _state(frappe, name).atlas_xero_quote_status == "ACCEPTED"
	comments = frappe.get_all("Comment", filters={"reference_doctype": "Quotation", "reference_name": name,
												   "comment_type": "Info"}, pluck="content", order_by="creation asc")
	assert [c for c in comments if c.startswith("Xero quote is now")] == [
		"Xero quote is now SENT (was DRAFT)", "Xero quote is now ACCEPTED (was SENT)"]
	assert frappe.db.get_value("Xero Connection", company, "quotes_pulled_until")


def test_a_quote_accepted_in_xero_refuses_the_cancel(site, connected):
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	name = _quotation(frappe, company, _customer(frappe, f"Quote Accepted {uuid.uuid4().hex[:6]}"))
	_sync(frappe)
	quote_id = _state(frappe, name).atlas_xero_quote_id
	server.set_quote_status(tenant, quote_id, "SENT")
	server.set_quote_status(tenant, quote_id, "ACCEPTED")
	with pytest.raises(frappe.ValidationError, match="ACCEPTED in Xero"):
		frappe.get_doc("Quotation", name).cancel()
	frappe.db.rollback()
	assert frappe.db.get_value("Quotation", name, "docstatus") == 1


def test_send_quote_rules_and_failures_name_their_reason(site, web, connected, mailbox):
	from frappe.utils import add_days, today

	frappe = site
	company, server = connected["company"], connected["server"]
	google = mailbox["server"]
	http = login(web, QUOTER, TEST_PASSWORD)

	def send(name, **data):
		return http.post(f"{web}{API}.send_quote", data={"quotation": name, "client_key": uuid.uuid4().hex, **data},
						 timeout=30)

	name = _quotation(frappe, company, _customer(frappe, f"Quote Rules {uuid.uuid4().hex[:6]}"))
	_sync(frappe)
	# refused at once: no recipient, a bad address, a draft Quotation, a user without an Atlas role
	assert "Add at least one To recipient" in send(name).text
	assert "is not a valid email address" in send(name, to="not-an-address").text
	draft = _quotation(frappe, company, _customer(frappe, f"Quote Draft {uuid.uuid4().hex[:6]}"), submit=False)
	assert "Submit the Quotation before sending it" in send(draft, to="a@atlas-test.example").text
	outsider = "atlas-quote-outsider@atlas-test.example"
	ensure_user(frappe, outsider, ("Sales User",))
	frappe.db.commit()
	refused = login(web, outsider, TEST_PASSWORD).post(
		f"{web}{API}.send_quote", data={"quotation": name, "client_key": "k", "to": "a@atlas-test.example"}, timeout=30)
	assert refused.status_code == 403
	# recipient: Gmail refuses the message
	google.inject_fault(r"/messages/send", 400, reason="invalidArgument", method="POST")
	assert send(name, to="refused@atlas-test.example").status_code == 200
	_sync(frappe)
	google.clear_faults()
	state = _state(frappe, name)
	assert state.atlas_xero_status == "Xero send failed" and "Recipient" in state.atlas_xero_error
	assert state.atlas_xero_quote_status == "DRAFT"  # not marked SENT: nothing reached the customer
	# integration: the mailbox became unhealthy after the send was queued
	assert send(name, to="later@atlas-test.example").status_code == 200
	frappe.db.set_value("Gmail Account", mailbox["account"], "health", "unhealthy")
	frappe.db.commit()
	try:
		_sync(frappe)
		state = _state(frappe, name)
		assert state.atlas_xero_status == "Xero send failed" and state.atlas_xero_error.startswith("Integration")
		assert "not healthy" in send(name, to="now@atlas-test.example").text  # and now refused at once
	finally:
		frappe.db.set_value("Gmail Account", mailbox["account"], "health", "healthy")
		frappe.db.commit()
	assert not _sent_to(google, mailbox["address"], "later@atlas-test.example")
	# Xero quote: a Quotation to a Lead has no Xero contact
	lead = frappe.get_doc({"doctype": "Lead", "lead_name": f"Quote Lead {uuid.uuid4().hex[:6]}",
						   "email_id": f"lead-{uuid.uuid4().hex[:6]}@atlas-test.example"}).insert(ignore_permissions=True)
	frappe.db.commit()
	to_lead = frappe.get_doc({"doctype": "Quotation", "quotation_to": "Lead", "party_name": lead.name, "company": company,
							  "transaction_date": today(), "valid_till": add_days(today(), 10),
							  "items": [{"item_code": ITEM, "qty": 1, "rate": 10}]}).insert(ignore_permissions=True)
	to_lead.submit()
	frappe.db.commit()
	assert send(to_lead.name, to="lead@atlas-test.example").status_code == 200
	_sync(frappe)
	state = _state(frappe, to_lead.name)
	assert state.atlas_xero_status == "Xero send failed" and state.atlas_xero_error.startswith("Xero quote")
	assert not [q for q in server.quotes(connected["tenant"]) if q.get("QuoteNumber") == to_lead.name]


def test_parallel_send_quote_of_one_user_never_exceeds_the_rate_limit(site, web, connected, mailbox):
	"""Send quote shares the replies' per-user budget, checked and recorded atomically: 20 requests with
	different keys from one user at the same moment, over 20 HTTP sessions, queue exactly the limit, and
	after the queue ran Gmail holds exactly those emails."""
	from atlas_integrations.inbox import send_limit

	frappe = site
	company = connected["company"]
	limit = 3
	name = _quotation(frappe, company, _customer(frappe, f"Quote Burst {uuid.uuid4().hex[:6]}"))
	_sync(frappe)
	sessions = [login(web, QUOTER, TEST_PASSWORD) for _ in range(20)]
	recipients = [f"burst-{n}-{uuid.uuid4().hex[:6]}@atlas-test.example" for n in range(20)]
	answers, elapsed = burst_under_send_limit(frappe, QUOTER, limit, [
		lambda i=i: sessions[i].post(f"{web}{API}.send_quote", timeout=60, data={
			"quotation": name, "client_key": uuid.uuid4().hex, "to": recipients[i]}) for i in range(20)])
	accepted = [recipients[i] for i, a in enumerate(answers) if a.status_code == 200]
	jobs = {a.json()["message"]["sync_job"] for a in answers if a.status_code == 200}
	assert len(jobs) == limit
	_sync(frappe)
	for i, recipient in enumerate(recipients):
		assert len(_sent_to(mailbox["server"], mailbox["address"], recipient)) == (1 if recipient in accepted else 0)
	assert send_limit.used(QUOTER) == limit
	send_limit.reset(QUOTER)
	print(f"20 parallel Send quote, limit {limit}: {limit} queued and emailed, {20 - limit} refused in {elapsed:.2f} s")


def test_send_quotes_from_is_a_shared_mailbox_of_any_type_that_can_send(site, connected, mailbox):
	""""Send Quotes From" is a Dynamic Link over the registered mailbox types that can send: the form offers
	those types (not the Inbound Route, which cannot send) and refuses a personal mailbox or another Company's;
	patch ``quote_mailbox_dynamic_link`` gives a connection migrated from the Link-to-Gmail-Account field its
	type."""
	from atlas_integrations.patches import quote_mailbox_dynamic_link
	from atlas_integrations.xero import quotes

	frappe = site
	company, account = connected["company"], mailbox["account"]
	doc = frappe.get_doc("Xero Connection", company)
	doc.run_method("onload")
	offered = doc.get_onload().quote_mailbox_types
	assert offered.get("Gmail Account") == {"account_type": "Shared workspace mailbox"} and "Inbound Route" not in offered

	def save(mailbox_type, name):
		doc = frappe.get_doc("Xero Connection", company)  # as stored (another save may have moved its modified)
		doc.update({"quote_mailbox_type": mailbox_type, "quote_mailbox": name})
		doc.save(ignore_permissions=True)

	try:
		todo = frappe.get_doc({"doctype": "ToDo", "description": "not a mailbox"}).insert(ignore_permissions=True)
		with pytest.raises(frappe.ValidationError, match="ToDo is not a kind of mailbox that can send quotes"):
			save("ToDo", todo.name)  # an existing document, but not a mailbox
		frappe.db.set_value("Gmail Account", account, "account_type", "Personal")
		with pytest.raises(frappe.ValidationError, match="is a personal mailbox"):
			save("Gmail Account", account)
		frappe.db.sql("update `tabGmail Account` set account_type='Shared workspace mailbox', company=%s where name=%s",
					  ("Another Company Ltd", account))  # the column only: no such Company needs to exist
		with pytest.raises(frappe.ValidationError, match="belongs to Company Another Company Ltd"):
			save("Gmail Account", account)
		frappe.db.set_value("Gmail Account", account, "company", None)
		save("Gmail Account", account)
		assert quotes.quote_mailbox(company) == ("Gmail Account", account)
		# a connection of the old schema: a mailbox, no type
		frappe.db.set_value("Xero Connection", company, "quote_mailbox_type", None)
		quote_mailbox_dynamic_link.execute()
		quote_mailbox_dynamic_link.execute()  # idempotent
		assert frappe.db.get_value("Xero Connection", company, ["quote_mailbox_type", "quote_mailbox"]) == (
			"Gmail Account", account)
	finally:
		frappe.db.rollback()
