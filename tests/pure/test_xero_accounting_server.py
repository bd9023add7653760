"""The Accounting API of the local Xero server (atlas_integrations.testing.xero) driven by the official SDK
xero-python (no frappe): Contacts / Invoices / CreditNotes batches, credit note allocations, where filters
(AND / OR), totals (with TaxAmount overrides), summarizeErrors, idempotency, void / delete rules, injected
429s and timeouts. Every JSON body the SDK sends is checked against the requestBody schema of the matching
operation in Xero's OpenAPI spec.

Neither ``jsonschema`` nor ``openapi-core`` is installed in the bench env, so :func:`check_spec` is a small
hand-written validator over the YAML (``$ref``, ``type``, ``format: uuid``, ``enum``, ``maxLength``,
``required``, array ``items``, ``x-is-msdate`` date strings, no keys outside ``properties``, no ``readOnly``
properties sent).

Run: ``python -m pytest -q -p no:randomly tests/pure/test_xero_accounting_server.py``
"""

from __future__ import annotations

import datetime
from decimal import Decimal as D
import threading
import time
import uuid

import pytest


pytest.importorskip("xero_python")
from xero_python.accounting import (  # noqa: E402
	Contact,
	Contacts,
	CreditNote,
	CreditNotes,
	CurrencyCode,
	Invoice,
	Invoices,
	LineAmountTypes,
	LineItem,
)
from xero_python.exceptions import ApiException, HTTPStatusException, RateLimitException  # noqa: E402

from tests.pure.xero_fixtures import (  # noqa: F401 - fixtures and helpers
	ROOT,
	SCHEMAS,
	acme,
	allocation,
	api,
	check_sent_bodies,
	check_spec,
	contact,
	credit_note,
	first_error,
	invoice,
	jsonschema,
	line,
	make_api,
	new_contact,
	obtain_token,
	requests,
	val,
	xero,
)



# -- contacts ---------------------------------------------------------------------------------------------
def test_contacts_batch_create_update_and_where(xero, acme, api):
	batch = Contacts(
		contacts=[
			contact("Bruce Banner", email_address="bruce@banner.com", contact_number="C-001"),
			contact("Tony Stark", email_address="tony@stark.com", contact_number="C-002"),
		]
	)
	data, status, headers = api.create_contacts(acme, batch, _return_http_data_only=False)
	assert status == 200
	bruce, tony = data.contacts
	assert bruce.name == "Bruce Banner" and val(bruce.contact_status) == "ACTIVE"
	assert bruce.has_validation_errors is False and uuid.UUID(str(bruce.contact_id))
	assert int(headers["X-DayLimit-Remaining"]) == 4999 and int(headers["X-MinLimit-Remaining"]) == 59
	assert int(headers["X-AppMinLimit-Remaining"]) == 9999
	# update one by ContactID and create another in the same POST batch
	upd = Contacts(
		contacts=[
			Contact(contact_id=bruce.contact_id, email_address="hulk@banner.com"),
			contact("Natasha Romanoff", contact_number="C-003"),
		]
	)
	data, _, headers = api.update_or_create_contacts(acme, upd, _return_http_data_only=False)
	assert int(headers["X-DayLimit-Remaining"]) == 4998
	updated = data.contacts[0]
	assert updated.contact_id == bruce.contact_id and updated.email_address == "hulk@banner.com"
	assert data.contacts[0].name == "Bruce Banner"
	assert len(xero.contacts(acme)) == 3
	# where filters and IDs
	assert [c.name for c in api.get_contacts(acme, where='ContactNumber=="C-002"').contacts] == ["Tony Stark"]
	assert [c.name for c in api.get_contacts(acme, where='Name=="tony stark"').contacts] == ["Tony Stark"]
	by_mail = api.get_contacts(acme, where='EmailAddress=="hulk@banner.com"').contacts
	assert [c.contact_id for c in by_mail] == [bruce.contact_id]
	ids = api.get_contacts(acme, i_ds=[bruce.contact_id, tony.contact_id]).contacts
	assert {c.name for c in ids} == {"Bruce Banner", "Tony Stark"}
	assert len(api.get_contacts(acme).contacts) == 3
	assert api.get_contact(acme, tony.contact_id).contacts[0].email_address == "tony@stark.com"
	with pytest.raises(HTTPStatusException) as exc:
		api.get_contact(acme, str(uuid.uuid4()))
	assert exc.value.status == 404
	# the recorded requests carry method, path, headers and JSON body
	sent = xero.requests_received(acme, "Contacts")
	assert [r["method"] for r in sent][:2] == ["PUT", "POST"]
	assert sent[0]["json"]["Contacts"][0]["Name"] == "Bruce Banner"
	assert sent[0]["headers"]["xero-tenant-id"] == acme
	assert check_sent_bodies(xero) == 2


def test_duplicate_name_summarize_errors(xero, acme, api):
	new_contact(api, acme, "Buzz Lightyear")
	mixed = Contacts(contacts=[contact("Buzz Lightyear"), contact("Woody")])
	# summarizeErrors=false: 200, bad element flagged, good one stored
	res = api.create_contacts(acme, mixed, summarize_errors=False)
	bad, good = res.contacts
	assert bad.has_validation_errors is True
	assert bad.validation_errors[0].message == (
		"The contact name Buzz Lightyear is already assigned to another contact. "
		"The contact name must be unique across all active contacts."
	)
	assert good.has_validation_errors is False and good.contact_id
	assert sorted(c["Name"] for c in xero.contacts(acme)) == ["Buzz Lightyear", "Woody"]
	# default (summarizeErrors=true): 400 ValidationException, nothing stored
	again = Contacts(contacts=[contact("Jessie"), contact("Woody"), Contact(email_address="no-name@x.com")])
	with pytest.raises(ApiException) as exc:
		api.create_contacts(acme, again)
	assert exc.value.status == 400
	body = exc.value.error_data
	assert (body["ErrorNumber"], body["Type"], body["Message"]) == (
		10,
		"ValidationException",
		"A validation exception occurred",
	)
	messages = [e["ValidationErrors"][0]["Message"] for e in body["Elements"]]
	assert messages[0].startswith("The contact name Woody is already assigned")
	assert messages[1] == "The contact name must be specified."
	assert all(e["HasValidationErrors"] is True for e in body["Elements"])
	assert sorted(c["Name"] for c in xero.contacts(acme)) == ["Buzz Lightyear", "Woody"]
	# duplicates inside one batch are refused too
	with pytest.raises(ApiException):
		api.create_contacts(acme, Contacts(contacts=[contact("Rex"), contact("rex")]))
	assert "Rex" not in {c["Name"] for c in xero.contacts(acme)}


def test_auth_checks_like_organisation(xero, acme, api):
	beta = xero.add_tenant("Beta Ltd")
	url = xero.url + "api.xro/2.0/Contacts"
	resp = requests.get(url, headers={"xero-tenant-id": acme}, timeout=10)
	assert resp.status_code == 401 and resp.json()["Detail"] == "AuthenticationUnsuccessful"
	token = obtain_token(xero)
	xero.set_consent(tenants=[acme])
	auth = {"Authorization": "Bearer " + token["access_token"]}
	other = xero.add_tenant("Gamma Ltd")  # never connected
	resp = requests.get(url, headers=dict(auth, **{"xero-tenant-id": other}), timeout=10)
	assert resp.status_code == 403 and resp.json()["Title"] == "Forbidden"
	assert requests.get(url, headers=dict(auth, **{"xero-tenant-id": beta}), timeout=10).status_code == 200
	narrow = obtain_token(xero, "openid offline_access accounting.settings.read")
	resp = requests.get(
		url, headers={"Authorization": "Bearer " + narrow["access_token"], "xero-tenant-id": acme}, timeout=10
	)
	assert resp.status_code == 401 and resp.json()["Detail"] == "AuthorizationUnsuccessful"
	assert requests.get(url.replace("Contacts", "Nope"), headers=dict(auth, **{"xero-tenant-id": acme}),
						timeout=10).status_code == 404
	# tenants keep separate stores
	new_contact(api, acme, "Only In Acme")
	assert xero.contacts(beta) == [] and len(xero.contacts(acme)) == 1


# -- invoices ---------------------------------------------------------------------------------------------
def test_invoices_totals_and_reads(xero, acme, api):
	cid = new_contact(api, acme)
	batch = Invoices(
		invoices=[
			invoice(cid, [line(2, 20.0), line(1, 10.005, tax="NONE")], status="AUTHORISED", reference="Web"),
			invoice(cid, [line(1, 115.0)], amounts=LineAmountTypes.INCLUSIVE, invoice_number="ATL-9"),
			invoice(cid, [line(3, 10.0)], amounts=LineAmountTypes.NOTAX, currency_code=CurrencyCode.AUD),
			invoice(cid, [line(4, 25.0, discount_rate=10.0)]),
			invoice(cid, [LineItem(item_code="WIDGET", quantity=2)]),
		]
	)
	res = api.create_invoices(acme, batch)
	ex, inc, notax, disc, item = res.invoices
	assert (ex.sub_total, ex.total_tax, ex.total) == (D("50.01"), 6, D("56.01"))
	assert ex.invoice_number == "INV-0001" and val(ex.status) == "AUTHORISED" and ex.reference == "Web"
	assert ex.amount_due == D("56.01") and ex.amount_paid == 0 and val(ex.currency_code) == "NZD"
	assert ex.date == datetime.date(2025, 6, 1) and ex.due_date == datetime.date(2025, 6, 30)
	assert ex.contact.contact_id == cid and ex.contact.name == "Liam Gallagher"
	assert [li.tax_amount for li in ex.line_items] == [6.0, 0.0]
	assert (inc.sub_total, inc.total_tax, inc.total, inc.invoice_number) == (100.0, 15.0, 115.0, "ATL-9")
	got_notax = (notax.sub_total, notax.total_tax, notax.total, val(notax.currency_code))
	assert got_notax == (30.0, 0.0, 30.0, "AUD")
	assert (disc.sub_total, disc.total_tax, disc.total) == (90.0, 13.5, 103.5)
	assert disc.line_items[0].line_amount == 90.0
	assert (item.sub_total, item.total, item.line_items[0].account_code) == (200.0, 230.0, "200")
	# reads: by id, by number, list filters
	got = api.get_invoice(acme, ex.invoice_id).invoices[0]
	assert got.total == D("56.01") and got.line_items[0].line_item_id == ex.line_items[0].line_item_id
	assert [i.invoice_id for i in api.get_invoices(acme, where='InvoiceNumber=="ATL-9"').invoices] == [
		inc.invoice_id
	]
	assert [i.invoice_id for i in api.get_invoices(acme, statuses=["AUTHORISED"]).invoices] == [ex.invoice_id]
	assert len(api.get_invoices(acme, i_ds=[ex.invoice_id, disc.invoice_id]).invoices) == 2
	assert len(api.get_invoices(acme, contact_i_ds=[cid]).invoices) == 5
	assert xero.contacts(acme)[0]["IsCustomer"] is True
	# a settable tax rate table
	xero.set_tax_rates(acme, {"OUTPUT2": 12.5, "NONE": 0})
	assert api.get_invoice(acme, ex.invoice_id).invoices[0].total_tax == 5.0
	rates = {r.tax_type: r.effective_rate for r in api.get_tax_rates(acme).tax_rates}
	assert rates == {"OUTPUT2": 12.5, "NONE": 0.0}


def test_invoice_validation_and_summarize_errors(xero, acme, api):
	cid = new_contact(api, acme)
	api.create_invoices(acme, Invoices(invoices=[invoice(cid, invoice_number="INV-100")]))
	cases = Invoices(
		invoices=[
			invoice(str(uuid.uuid4())),  # unknown contact
			invoice(cid, lines=[]),  # no line items
			invoice(cid, invoice_number="inv-100"),  # duplicate number (case-insensitive)
			invoice(cid, [line(account="999")]),  # unknown account
			invoice(cid, [line(tax="BOGUS")]),  # unknown tax type
			invoice(cid, invoice_number="INV-101"),  # fine
		]
	)
	with pytest.raises(ApiException) as exc:
		api.create_invoices(acme, cases)
	assert exc.value.status == 400
	elements = exc.value.error_data["Elements"]
	assert len(elements) == 5 and all(e["HasErrors"] for e in elements)
	msgs = [e["ValidationErrors"][0]["Message"] for e in elements]
	assert "could not be found" in msgs[0]
	assert msgs[1] == "Invoices must have at least one line item."
	assert msgs[2] == "Invoice # must be unique."
	assert msgs[3] == "Account code '999' is not a valid code for this document."
	assert msgs[4].startswith("The TaxType code 'BOGUS' does not exist")
	assert [i["InvoiceNumber"] for i in xero.invoices(acme)] == ["INV-100"]
	res = api.create_invoices(acme, cases, summarize_errors=False)
	flags = [bool(i.validation_errors) for i in res.invoices]
	assert flags == [True, True, True, True, True, False]
	assert res.invoices[5].invoice_number == "INV-101" and res.invoices[5].total == 115.0
	assert res.invoices[0].has_errors is True
	assert sorted(i["InvoiceNumber"] for i in xero.invoices(acme)) == ["INV-100", "INV-101"]


def test_void_and_delete_rules(xero, acme, api):
	cid = new_contact(api, acme)
	draft, authorised, paid = api.create_invoices(
		acme,
		Invoices(
			invoices=[invoice(cid), invoice(cid, status="AUTHORISED"), invoice(cid, status="AUTHORISED")]
		),
	).invoices

	def set_status(inv, status):
		return api.update_invoice(acme, inv.invoice_id, Invoices(invoices=[Invoice(status=status)]))

	with pytest.raises(ApiException) as exc:
		set_status(draft, "VOIDED")  # a draft cannot be voided
	assert exc.value.status == 400
	assert exc.value.error_data["Elements"][0]["ValidationErrors"][0]["Message"] == (
		"Invoice not of valid status for modification"
	)
	assert val(set_status(draft, "DELETED").invoices[0].status) == "DELETED"
	with pytest.raises(ApiException):
		set_status(authorised, "DELETED")  # authorised: void, not delete
	voided = set_status(authorised, "VOIDED").invoices[0]
	assert val(voided.status) == "VOIDED" and voided.amount_due == 0
	with pytest.raises(ApiException):
		set_status(authorised, "AUTHORISED")  # voided is final
	xero.pay_invoice(acme, paid.invoice_id, 10)
	with pytest.raises(ApiException) as exc:
		set_status(paid, "VOIDED")
	assert "payment" in exc.value.error_data["Elements"][0]["ValidationErrors"][0]["Message"]
	states = {i["InvoiceID"]: i["Status"] for i in xero.invoices(acme)}
	expected = {draft.invoice_id: "DELETED", authorised.invoice_id: "VOIDED", paid.invoice_id: "AUTHORISED"}
	assert states == expected
	# update by InvoiceID in a batch POST: reference and lines change, totals follow
	change = Invoice(invoice_id=paid.invoice_id, reference="New ref", line_items=[line(2, 50.0)])
	upd = Invoices(invoices=[change])
	got = api.update_or_create_invoices(acme, upd).invoices[0]
	assert (got.reference, got.total, got.amount_due, got.amount_paid) == ("New ref", 115.0, 105.0, 10.0)
	# a DELETED number can be reused
	reused = api.create_invoices(acme, Invoices(invoices=[invoice(cid, invoice_number=draft.invoice_number)]))
	assert reused.invoices[0].invoice_number == draft.invoice_number


# -- idempotency, rate limits, faults ------------------------------------------------------------------
def test_idempotency_replay(xero, acme, api):
	key = str(uuid.uuid4())
	first = api.create_contacts(acme, Contacts(contacts=[contact("Once Only")]), idempotency_key=key)
	again = api.create_contacts(acme, Contacts(contacts=[contact("Once Only")]), idempotency_key=key)
	assert again.contacts[0].contact_id == first.contacts[0].contact_id
	assert len(xero.contacts(acme)) == 1 and xero.calls("idempotent_replay") == 1
	# another key (or path) is a new request: here a duplicate name
	with pytest.raises(ApiException):
		other_key = str(uuid.uuid4())
		api.create_contacts(acme, Contacts(contacts=[contact("Once Only")]), idempotency_key=other_key)
	cid = first.contacts[0].contact_id
	inv_key = "inv-" + key
	a = api.create_invoices(acme, Invoices(invoices=[invoice(cid)]), idempotency_key=inv_key)
	b = api.create_invoices(acme, Invoices(invoices=[invoice(cid)]), idempotency_key=inv_key)
	assert a.invoices[0].invoice_id == b.invoices[0].invoice_id and len(xero.invoices(acme)) == 1
	assert len(xero.requests_received(acme, "Invoices")) == 2  # both received, one applied


def test_timeout_after_apply_then_idempotent_retry(xero, acme, api):
	xero.delay_next("Contacts", 2.5, method="POST")
	key = "retry-" + str(uuid.uuid4())
	batch = Contacts(contacts=[contact("Slow Poke")])
	started = time.monotonic()
	with pytest.raises(Exception) as exc:  # urllib3 read timeout (no urllib3 retry for POST)
		api.update_or_create_contacts(acme, batch, idempotency_key=key, _request_timeout=1)
	assert not isinstance(exc.value, ApiException) and time.monotonic() - started < 2.4
	assert [c["Name"] for c in xero.contacts(acme)] == ["Slow Poke"]  # applied despite the timeout
	retry = api.update_or_create_contacts(acme, batch, idempotency_key=key)
	assert retry.contacts[0].name == "Slow Poke" and len(xero.contacts(acme)) == 1
	time.sleep(1.6)  # let the delayed response thread finish before the server stops


def test_fail_next_429_with_headers(xero, acme):
	api = make_api(xero, obtain_token(xero), retries=False)
	xero.fail_next("Invoices", count=2)
	cid = new_contact(api, acme)  # Contacts unaffected
	for _ in range(2):
		with pytest.raises(RateLimitException) as exc:
			api.create_invoices(acme, Invoices(invoices=[invoice(cid)]))
		err = exc.value
		assert isinstance(err, HTTPStatusException) and err.status == 429
		assert err.headers["Retry-After"] == "1" and err.headers["X-Rate-Limit-Problem"] == "minute"
		assert err.rate_limit == "minute" and "X-DayLimit-Remaining" in err.headers
	assert xero.invoices(acme) == []  # not applied
	assert len(api.create_invoices(acme, Invoices(invoices=[invoice(cid)])).invoices) == 1
	xero.fail_next("/api.xro/2.0/Contacts", status=503, headers={"X-Test": "1"}, method="GET")
	with pytest.raises(HTTPStatusException) as exc:
		api.get_contacts(acme)
	assert exc.value.status == 503 and exc.value.headers["X-Test"] == "1"


def test_sdk_default_retries_429_on_put_but_not_post(xero, acme, api):
	"""With its default urllib3 pool, xero-python waits Retry-After and re-sends a PUT by itself."""
	cid = new_contact(api, acme)
	xero.clear_requests()
	xero.fail_next("Invoices", count=1)
	res = api.create_invoices(acme, Invoices(invoices=[invoice(cid)]))  # PUT: retried after 1 s
	assert len(res.invoices) == 1 and len(xero.requests_received(acme, "Invoices")) == 2
	xero.fail_next("Invoices", count=1)
	with pytest.raises(RateLimitException):
		api.update_or_create_invoices(acme, Invoices(invoices=[invoice(cid)]))  # POST: not retried
	assert len(xero.invoices(acme)) == 1


def test_rate_limit_budgets(xero, acme):
	api = make_api(xero, obtain_token(xero), retries=False)  # a day-limit Retry-After is hours long
	xero.set_rate_limits(day=3)
	seen = []
	for _ in range(3):
		_, _, headers = api.get_accounts(acme, _return_http_data_only=False)
		seen.append(int(headers["X-DayLimit-Remaining"]))
	assert seen == [2, 1, 0]
	with pytest.raises(RateLimitException) as exc:
		api.get_accounts(acme)
	assert exc.value.headers["X-Rate-Limit-Problem"] == "day" and int(exc.value.headers["Retry-After"]) >= 1
	assert xero.rate_limit_remaining(acme)["day"] == 0
	xero.set_rate_limits(day=5000, minute=2)
	api.get_items(acme)
	api.get_items(acme)
	with pytest.raises(RateLimitException) as exc:
		api.get_items(acme)
	assert exc.value.rate_limit == "minute"


def test_settings_endpoints_seeded_and_settable(xero, acme, api):
	codes = {a.code: val(a.type) for a in api.get_accounts(acme).accounts}
	assert codes["200"] == "REVENUE" and codes["090"] == "BANK"
	assert {r.tax_type for r in api.get_tax_rates(acme).tax_rates} >= {"OUTPUT2", "INPUT2", "NONE"}
	assert [i.code for i in api.get_items(acme).items] == ["WIDGET"]
	xero.set_accounts(acme, [{"Code": "201", "Name": "Consulting", "Type": "REVENUE", "TaxType": "OUTPUT2"}])
	xero.set_items(acme, [{"Code": "HOUR", "Name": "Hour", "SalesDetails": {"UnitPrice": 150.0}}])
	assert [a.code for a in api.get_accounts(acme).accounts] == ["201"]
	assert [i.code for i in api.get_items(acme, where='Code=="HOUR"').items] == ["HOUR"]
	cid = new_contact(api, acme)
	with pytest.raises(ApiException):
		api.create_invoices(acme, Invoices(invoices=[invoice(cid)]))  # account 200 is gone
	hour = LineItem(item_code="HOUR", account_code="201")
	ok = api.create_invoices(acme, Invoices(invoices=[invoice(cid, [hour])]))
	assert ok.invoices[0].total == 172.5


def test_concurrent_batches_keep_unique_numbers(xero, acme, api):
	cid = new_contact(api, acme)
	errors = []

	def worker():
		try:
			api.create_invoices(acme, Invoices(invoices=[invoice(cid) for _ in range(3)]))
		except Exception as exc:  # pragma: no cover - reported below
			errors.append(exc)

	threads = [threading.Thread(target=worker) for _ in range(4)]
	for t in threads:
		t.start()
	for t in threads:
		t.join(10)
	assert not errors
	numbers = [i["InvoiceNumber"] for i in xero.invoices(acme)]
	assert len(numbers) == 12 and len(set(numbers)) == 12


# -- line TaxAmount override, where with OR ----------------------------------------------------------------
def test_line_tax_amount_override(xero, acme, api):
	cid = new_contact(api, acme)
	exclusive = invoice(cid, [line(2, 20.0, tax_amount=5.99), line(1, 10.0, tax_amount=1.51), line(1, 10.0)])
	inclusive = invoice(cid, [line(1, 115.0, tax_amount=14.99)], amounts=LineAmountTypes.INCLUSIVE)
	notax = invoice(cid, [line(1, 30.0, tax_amount=4.5)], amounts=LineAmountTypes.NOTAX)
	ex, inc, nt = api.create_invoices(acme, Invoices(invoices=[exclusive, inclusive, notax])).invoices
	# computed would be 6.00 / 1.50 / 1.50; the given amounts (one cent off) are kept
	assert [li.tax_amount for li in ex.line_items] == [D("5.99"), D("1.51"), D("1.5")]
	amounts = sum(D(str(li.line_amount)) for li in ex.line_items)
	given = D("5.99") + D("1.51") + D("1.5")
	assert (ex.sub_total, ex.total_tax, ex.total) == (60, D("9.00"), amounts + given)
	assert ex.total == D("69.00") and ex.amount_due == D("69.00")
	assert (inc.sub_total, inc.total_tax, inc.total) == (D("100.01"), D("14.99"), 115)
	assert (nt.total_tax, nt.total) == (0, 30.0)  # NoTax: never any tax
	assert api.get_invoice(acme, ex.invoice_id).invoices[0].total == D("69.00")
	stored = {i["InvoiceID"]: i for i in xero.invoices(acme)}
	assert stored[ex.invoice_id]["TotalTax"] == 9.0
	# the override is stored with the line: a new tax rate table changes only the computed lines
	xero.set_tax_rates(acme, {"OUTPUT2": 10, "NONE": 0})
	got = api.get_invoice(acme, ex.invoice_id).invoices[0]
	assert [li.tax_amount for li in got.line_items] == [D("5.99"), D("1.51"), 1] and got.total == D("68.50")


def test_where_with_or(xero, acme, api):
	batch = Contacts(
		contacts=[
			contact("Alpha", contact_number="CUST-1", email_address="a@one.com"),
			contact("Beta", contact_number="CUST-2", email_address="b@two.com"),
			contact("Gamma", contact_number="CUST-3", email_address="a@b.c"),
			contact("Salt OR Pepper", contact_number="CUST-4"),
		]
	)
	alpha, beta, gamma, salt = api.create_contacts(acme, batch).contacts

	def names(where):
		return sorted(c.name for c in api.get_contacts(acme, where=where).contacts)

	where = 'ContactNumber=="CUST-1" OR ContactNumber=="CUST-2" OR EmailAddress=="a@b.c"'
	assert names(where) == ["Alpha", "Beta", "Gamma"]
	assert names('ContactNumber=="cust-1" || Name=="nobody"') == ["Alpha"]
	assert names('ContactNumber=="CUST-1" or ContactNumber=="CUST-4"') == ["Alpha", "Salt OR Pepper"]
	# AND binds tighter than OR; parentheses group
	assert names('Name=="Alpha" AND ContactNumber=="CUST-2" OR ContactNumber=="CUST-3"') == ["Gamma"]
	assert names('Name=="Alpha" && (ContactNumber=="CUST-2" OR ContactNumber=="CUST-1")') == ["Alpha"]
	assert names('(Name=="Beta" OR Name=="Gamma") AND EmailAddress=="b@two.com"') == ["Beta"]
	by_guid = f'ContactID==Guid("{beta.contact_id}") OR Name=="Salt OR Pepper"'
	assert names(by_guid) == ["Beta", "Salt OR Pepper"]
	assert names('ContactNumber=="CUST-1" AND ContactNumber=="CUST-2"') == []
	for bad in ('ContactNumber=="CUST-1" OR', '(Name=="Alpha"', 'Name=="Alpha" OR OR Name=="Beta"'):
		with pytest.raises(ApiException) as exc:
			api.get_contacts(acme, where=bad)
		assert exc.value.status == 400 and exc.value.error_data["Type"] == "QueryParseException"
	assert alpha.contact_id and gamma.contact_id and salt.contact_id


# -- credit notes -------------------------------------------------------------------------------------------
def test_credit_notes_create_read_update(xero, acme, api):
	cid = new_contact(api, acme)
	batch = CreditNotes(
		credit_notes=[
			credit_note(cid, [line(2, 20.0)], reference="Refund"),
			credit_note(cid, [line(2, 20.0, "400", "INPUT2")], status="DRAFT", kind="ACCPAYCREDIT"),
			credit_note(cid, [line(1, 100.0, tax_amount=14.99)], credit_note_number="CR-77"),
		]
	)
	data, status, _ = api.create_credit_notes(acme, batch, _return_http_data_only=False)
	assert status == 200
	sale, supplier, custom = data.credit_notes
	assert uuid.UUID(str(sale.credit_note_id)) and sale.credit_note_number == "CN-0001"
	assert (val(sale.type), val(sale.status), sale.reference) == ("ACCRECCREDIT", "AUTHORISED", "Refund")
	assert (sale.sub_total, sale.total_tax, sale.total, sale.remaining_credit) == (40.0, 6.0, 46.0, 46.0)
	assert sale.allocations == [] and sale.applied_amount == 0 and sale.has_errors is False
	assert sale.date == datetime.date(2025, 6, 5) and val(sale.currency_code) == "NZD"
	assert sale.contact.contact_id == cid and sale.contact.name == "Liam Gallagher"
	assert supplier.credit_note_number == "" and val(supplier.status) == "DRAFT"
	assert supplier.line_items[0].tax_type == "INPUT2" and supplier.total == 46.0
	assert (custom.credit_note_number, custom.total_tax, custom.total) == ("CR-77", D("14.99"), D("114.99"))
	assert xero.contacts(acme)[0]["IsCustomer"] is True and xero.contacts(acme)[0]["IsSupplier"] is True
	# reads
	assert api.get_credit_note(acme, sale.credit_note_id).credit_notes[0].total == 46.0
	listed = api.get_credit_notes(acme).credit_notes
	ids = [sale.credit_note_id, supplier.credit_note_id, custom.credit_note_id]
	assert [n.credit_note_id for n in listed] == ids
	where = 'Type=="ACCPAYCREDIT" OR CreditNoteNumber=="CR-77"'
	by_type = api.get_credit_notes(acme, where=where).credit_notes
	assert [n.credit_note_id for n in by_type] == [supplier.credit_note_id, custom.credit_note_id]
	mine = api.get_credit_notes(acme, where=f'Contact.ContactID==Guid("{cid}") AND Status=="DRAFT"')
	assert [n.credit_note_id for n in mine.credit_notes] == [supplier.credit_note_id]
	assert len(api.get_credit_notes(acme, page=1).credit_notes) == 3
	assert api.get_credit_notes(acme, page=2).credit_notes == []
	with pytest.raises(HTTPStatusException) as exc:
		api.get_credit_note(acme, str(uuid.uuid4()))
	assert exc.value.status == 404
	# POST batch: update one by CreditNoteID, create another; numbers stay unique
	upd = CreditNotes(
		credit_notes=[
			CreditNote(credit_note_id=sale.credit_note_id, reference="Refund 2"),
			credit_note(cid, [line(1, 10.0)], status="SUBMITTED"),
		]
	)
	changed, created = api.update_or_create_credit_notes(acme, upd).credit_notes
	got = (changed.credit_note_id, changed.reference, changed.total)
	assert got == (sale.credit_note_id, "Refund 2", 46.0)
	assert created.credit_note_number == "CN-0002" and val(created.status) == "SUBMITTED"
	with pytest.raises(ApiException) as exc:
		dup = credit_note(cid, credit_note_number="cr-77")
		api.create_credit_notes(acme, CreditNotes(credit_notes=[dup]))
	assert first_error(exc) == "Credit Note # must be unique."

	# status rules through POST /CreditNotes/{id}
	def set_status(note, status):
		body = CreditNotes(credit_notes=[CreditNote(status=status)])
		return api.update_credit_note(acme, note.credit_note_id, body)

	with pytest.raises(ApiException) as exc:
		set_status(sale, "DELETED")  # authorised: void, not delete
	assert first_error(exc) == "Credit Note not of valid status for modification"
	with pytest.raises(ApiException) as exc:
		set_status(supplier, "VOIDED")  # a draft cannot be voided
	assert first_error(exc) == "Credit Note not of valid status for modification"
	assert val(set_status(supplier, "DELETED").credit_notes[0].status) == "DELETED"
	voided = set_status(custom, "VOIDED").credit_notes[0]
	assert val(voided.status) == "VOIDED" and voided.remaining_credit == 0
	with pytest.raises(ApiException) as exc:
		set_status(custom, "AUTHORISED")  # voided is final
	assert first_error(exc) == "This document cannot be edited as it is voided."
	states = {n["CreditNoteID"]: n["Status"] for n in xero.credit_notes(acme)}
	assert states == {
		sale.credit_note_id: "AUTHORISED",
		supplier.credit_note_id: "DELETED",
		custom.credit_note_id: "VOIDED",
		created.credit_note_id: "SUBMITTED",
	}
	assert xero.calls("creditnotes") >= 10
	# scopes as for Invoices: accounting.transactions to write, .read enough to read
	reader = make_api(xero, obtain_token(xero, "openid offline_access accounting.transactions.read"))
	assert len(reader.get_credit_notes(acme).credit_notes) == 4
	with pytest.raises(HTTPStatusException) as exc:
		reader.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(cid)]))
	assert exc.value.status == 401


def test_credit_note_batch_one_bad_fails_alone(xero, acme, api):
	cid = new_contact(api, acme)
	batch = CreditNotes(
		credit_notes=[
			credit_note(cid, reference="first"),
			credit_note(str(uuid.uuid4()), reference="bad"),  # unknown contact
			credit_note(cid, reference="third"),
		]
	)
	# default (summarizeErrors=true): 400 ValidationException with the bad element only, nothing stored
	with pytest.raises(ApiException) as exc:
		api.create_credit_notes(acme, batch)
	body = exc.value.error_data
	assert (exc.value.status, body["ErrorNumber"], body["Type"]) == (400, 10, "ValidationException")
	assert len(body["Elements"]) == 1 and body["Elements"][0]["Reference"] == "bad"
	assert body["Elements"][0]["HasErrors"] is True and "could not be found" in first_error(exc)
	assert xero.credit_notes(acme) == []
	# summarizeErrors=false: 200, the bad one flagged, the other two stored
	first, bad, third = api.create_credit_notes(acme, batch, summarize_errors=False).credit_notes
	assert bad.has_errors is True and bad.status_attribute_string == "ERROR"
	assert "could not be found" in bad.validation_errors[0].message and bad.credit_note_id is None
	assert first.status_attribute_string == "OK" and not first.validation_errors
	assert (first.credit_note_number, third.credit_note_number) == ("CN-0001", "CN-0002")
	assert [n["Reference"] for n in xero.credit_notes(acme)] == ["first", "third"]


def test_credit_note_allocation_settles_invoice(xero, acme, api):
	cid = new_contact(api, acme)
	inv = api.create_invoices(acme, Invoices(invoices=[invoice(cid, status="AUTHORISED")])).invoices[0]
	other = api.create_invoices(acme, Invoices(invoices=[invoice(cid, status="AUTHORISED")])).invoices[0]
	note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(cid, [line(2, 100.0)])]))
	note = note.credit_notes[0]
	assert (inv.total, note.total) == (115.0, 230.0)
	# a part
	res = api.create_credit_note_allocation(acme, note.credit_note_id, allocation(inv.invoice_id, 15.0))
	alloc = res.allocations[0]
	assert uuid.UUID(str(alloc.allocation_id)) and alloc.amount == 15.0
	assert alloc.date == datetime.date(2025, 6, 10) and alloc.invoice.invoice_id == inv.invoice_id
	assert alloc.credit_note.credit_note_id == note.credit_note_id
	got = api.get_invoice(acme, inv.invoice_id).invoices[0]
	assert (got.amount_due, got.amount_credited, val(got.status)) == (100.0, 15.0, "AUTHORISED")
	assert [(c.credit_note_id, c.applied_amount) for c in got.credit_notes] == [(note.credit_note_id, 15.0)]
	assert got.credit_notes[0].credit_note_number == "CN-0001"
	cn = api.get_credit_note(acme, note.credit_note_id).credit_notes[0]
	assert (cn.remaining_credit, cn.applied_amount, val(cn.status)) == (215.0, 15.0, "AUTHORISED")
	assert [(a.invoice.invoice_id, a.amount) for a in cn.allocations] == [(inv.invoice_id, 15.0)]
	# the rest of the invoice: AmountDue 0, PAID, AmountCredited = Total
	api.create_credit_note_allocation(acme, note.credit_note_id, allocation(inv.invoice_id, 100.0))
	got = api.get_invoice(acme, inv.invoice_id).invoices[0]
	assert (got.amount_due, val(got.status), got.amount_credited) == (0, "PAID", got.total)
	assert got.amount_paid == 0 and got.credit_notes[0].applied_amount == 115.0
	# the rest of the credit: the credit note becomes PAID
	api.create_credit_note_allocation(acme, note.credit_note_id, allocation(other.invoice_id, 115.0))
	cn = api.get_credit_note(acme, note.credit_note_id).credit_notes[0]
	assert (cn.remaining_credit, cn.applied_amount, val(cn.status)) == (0, 230.0, "PAID")
	assert cn.fully_paid_on_date == datetime.date(2025, 6, 10)
	assert val(api.get_invoice(acme, other.invoice_id).invoices[0].status) == "PAID"
	# controls
	assert [(a["Invoice"]["InvoiceID"], a["Amount"]) for a in xero.allocations(acme)] == [
		(inv.invoice_id, 15.0),
		(inv.invoice_id, 100.0),
		(other.invoice_id, 115.0),
	]
	assert {a["CreditNote"]["CreditNoteID"] for a in xero.allocations(acme)} == {note.credit_note_id}
	assert xero.credit_notes(acme)[0]["RemainingCredit"] == 0.0
	assert {i["InvoiceID"]: i["AmountCredited"] for i in xero.invoices(acme)} == {
		inv.invoice_id: 115.0,
		other.invoice_id: 115.0,
	}
	sent = xero.requests_received(acme, "CreditNotes")
	allocs = [r for r in sent if r["path"].endswith("/Allocations")]
	assert allocs[0]["method"] == "PUT" and allocs[0]["json"]["Allocations"][0]["Amount"] == 15.0
	assert check_sent_bodies(xero) == 7  # 2 invoices, 1 credit note, 3 allocations, 1 contact


def test_allocation_validation(xero, acme, api):
	cid = new_contact(api, acme)
	someone = new_contact(api, acme, "Someone Else")
	inv, draft_inv, bill, theirs, aud = api.create_invoices(
		acme,
		Invoices(
			invoices=[
				invoice(cid, status="AUTHORISED"),
				invoice(cid),
				Invoice(
					type="ACCPAY",
					contact=Contact(contact_id=cid),
					line_items=[line(account="400", tax="INPUT2")],
					status="AUTHORISED",
				),
				invoice(someone, status="AUTHORISED"),
				invoice(cid, status="AUTHORISED", currency_code=CurrencyCode.AUD),
			]
		),
	).invoices
	small, draft = api.create_credit_notes(
		acme, CreditNotes(credit_notes=[credit_note(cid, [line(1, 50.0)]), credit_note(cid, status="DRAFT")])
	).credit_notes
	assert small.total == 57.5 and inv.total == 115.0

	def refused(note, inv_id, amount) -> list:
		with pytest.raises(ApiException) as exc:
			api.create_credit_note_allocation(acme, note.credit_note_id, allocation(inv_id, amount))
		body = exc.value.error_data
		assert (exc.value.status, body["ErrorNumber"], body["Type"]) == (400, 10, "ValidationException")
		element = body["Elements"][0]
		assert element["StatusAttributeString"] == "ERROR"
		return [e["Message"] for e in element["ValidationErrors"]]

	# over the remaining credit (57.50 < 60, though the invoice owes 115)
	assert refused(small, inv.invoice_id, 60.0) == [
		"Credit Note cannot be allocated as amount is greater than amount outstanding"
	]
	assert refused(draft, inv.invoice_id, 10.0) == ["Credit Note not of valid status for allocation"]
	assert refused(small, draft_inv.invoice_id, 10.0) == ["Invoice not of valid status for allocation"]
	wrong_type = "Credit Note cannot be allocated to an incorrect invoice type"
	assert refused(small, bill.invoice_id, 10.0) == [wrong_type]
	wrong_contact = "The Credit Note and the Invoice must be for the same contact"
	assert refused(small, theirs.invoice_id, 10.0) == [wrong_contact]
	wrong_currency = "The Credit Note and the Invoice must be in the same currency"
	assert refused(small, aud.invoice_id, 10.0) == [wrong_currency]
	assert refused(small, inv.invoice_id, 0) == ["Amount must be greater than zero."]
	assert "could not be found" in refused(small, str(uuid.uuid4()), 10.0)[0]
	assert xero.allocations(acme) == []
	assert api.get_invoice(acme, inv.invoice_id).invoices[0].amount_due == 115.0
	# over the invoice's amount due: pay most of it first
	xero.pay_invoice(acme, inv.invoice_id, 100.0)
	over_due = "The amount allocated is greater than the amount due on the invoice"
	assert refused(small, inv.invoice_id, 20.0) == [over_due]
	# two in one request count together; summarizeErrors=false keeps the good one
	both = allocation(inv.invoice_id, 15.0)
	both.allocations += allocation(inv.invoice_id, 1.0).allocations
	res = api.create_credit_note_allocation(acme, small.credit_note_id, both, summarize_errors=False)
	ok, bad = res.allocations
	assert ok.status_attribute_string == "OK" and ok.allocation_id
	assert bad.status_attribute_string == "ERROR"
	paid_off = "The invoice you are trying to allocate to has already been paid off"
	assert bad.validation_errors[0].message == paid_off
	got = api.get_invoice(acme, inv.invoice_id).invoices[0]
	assert (got.amount_paid, got.amount_credited, got.amount_due, val(got.status)) == (100.0, 15.0, 0, "PAID")
	assert api.get_credit_note(acme, small.credit_note_id).credit_notes[0].remaining_credit == 42.5
	assert len(xero.allocations(acme)) == 1


def test_credit_allocated_blocks_void(xero, acme, api):
	cid = new_contact(api, acme)
	paid, credited = api.create_invoices(
		acme, Invoices(invoices=[invoice(cid, status="AUTHORISED"), invoice(cid, status="AUTHORISED")])
	).invoices
	note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(cid)])).credit_notes[0]
	xero.pay_invoice(acme, paid.invoice_id, 10)
	api.create_credit_note_allocation(acme, note.credit_note_id, allocation(credited.invoice_id, 10.0))

	def void(inv):
		with pytest.raises(ApiException) as exc:
			api.update_invoice(acme, inv.invoice_id, Invoices(invoices=[Invoice(status="VOIDED")]))
		return first_error(exc)

	allocated = "This document cannot be voided as it has a payment or credit note allocated to it."
	assert void(credited) == void(paid) == allocated  # the same message as for a payment
	# the allocated credit note cannot be voided or re-lined either
	with pytest.raises(ApiException) as exc:
		body = CreditNotes(credit_notes=[CreditNote(status="VOIDED")])
		api.update_credit_note(acme, note.credit_note_id, body)
	assert first_error(exc) == allocated
	with pytest.raises(ApiException) as exc:
		change = CreditNote(line_items=[line(1, 5.0)])
		api.update_credit_note(acme, note.credit_note_id, CreditNotes(credit_notes=[change]))
	assert first_error(exc) == allocated.replace("voided", "edited")
	# a payment of the rest settles the credited invoice
	xero.pay_invoice(acme, credited.invoice_id)
	settled = api.get_invoice(acme, credited.invoice_id).invoices[0]
	assert (settled.amount_paid, settled.amount_credited, settled.amount_due, getattr(settled.status, "value", settled.status)) == (
		105.0,
		10.0,
		0.0,
		"PAID",
	)


def test_credit_note_idempotent_replay(xero, acme, api):
	cid = new_contact(api, acme)
	key = str(uuid.uuid4())
	batch = CreditNotes(credit_notes=[credit_note(cid)])
	first = api.create_credit_notes(acme, batch, idempotency_key=key).credit_notes[0]
	again = api.create_credit_notes(acme, batch, idempotency_key=key).credit_notes[0]
	assert again.credit_note_id == first.credit_note_id and again.credit_note_number == "CN-0001"
	assert len(xero.credit_notes(acme)) == 1 and xero.calls("idempotent_replay") == 1
	assert len(xero.requests_received(acme, "CreditNotes")) == 2  # both received, one applied
	# allocations too
	inv = api.create_invoices(acme, Invoices(invoices=[invoice(cid, status="AUTHORISED")])).invoices[0]
	alloc_key = "alloc-" + key
	a = api.create_credit_note_allocation(
		acme, first.credit_note_id, allocation(inv.invoice_id, 20.0), idempotency_key=alloc_key
	)
	b = api.create_credit_note_allocation(
		acme, first.credit_note_id, allocation(inv.invoice_id, 20.0), idempotency_key=alloc_key
	)
	assert a.allocations[0].allocation_id == b.allocations[0].allocation_id
	assert len(xero.allocations(acme)) == 1
	assert api.get_invoice(acme, inv.invoice_id).invoices[0].amount_due == 95.0
	# a new key is a new request
	api.create_credit_notes(acme, batch, idempotency_key=str(uuid.uuid4()))
	assert [n["CreditNoteNumber"] for n in xero.credit_notes(acme)] == ["CN-0001", "CN-0002"]


def test_spec_check_is_jsonschema_and_rejects_what_xero_would():
	"""The validator itself: a wrong type, a value outside an enum and an unknown key each fail."""
	if not SCHEMAS:
		pytest.skip("the Xero OpenAPI spec is not in ../shared/xero/spec")
	schema = {"$ref": "#/components/schemas/Invoices"}
	check_spec({"Invoices": [{"Type": "ACCREC", "LineItems": [{"Quantity": 2.0, "UnitAmount": 9.5}]}]}, schema)
	for bad, why in (({"Invoices": [{"Type": "ACCREC", "LineItems": [{"Quantity": "lots"}]}]}, "is not of type"),
					 ({"Invoices": [{"Type": "SALES"}]}, "is not one of"),
					 ({"Invoices": [{"Type": "ACCREC", "Colour": "red"}]}, "not a property")):
		with pytest.raises(AssertionError, match=why):
			check_spec(bad, schema)
