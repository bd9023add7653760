"""Quotes, payments (and over/prepayments applied to invoices), If-Modified-Since / order / paging on every
list read, and webhooks of the local Xero server (atlas_integrations.testing.xero), driven by the official
SDK xero-python over real HTTP (no frappe). Webhooks are delivered to a real local receiver that checks
Xero's signature. Every JSON body the SDK sends is checked against Xero's OpenAPI spec (the ``xero``
fixture of test_xero_accounting_server), every webhook payload against xero-webhooks.yaml.

Run: ``python -m pytest -q -p no:randomly tests/pure/test_xero_server_quotes_payments.py``
"""

from __future__ import annotations

import base64
import calendar
import datetime
import hashlib
import hmac
import http.server
import io
import json
import os
import re
import socket
import threading
import time
import uuid
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests.pure.xero_fixtures import (  # noqa: F401 - xero / acme / api are fixtures
	SCHEMAS,
	acme,
	allocation,
	api,
	check_sent_bodies,
	check_spec,
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
	yaml,
)
from xero_python.accounting import (  # noqa: E402
	Contact,
	CreditNotes,
	Invoice,
	Invoices,
	PaymentDelete,
	Quote,
	QuoteLineAmountTypes,
	Quotes,
	QuoteStatusCodes,
)
from xero_python.exceptions import ApiException, NotFoundException  # noqa: E402

WEBHOOK_SPEC = Path("/work/shared/xero/spec/xero-webhooks.yaml")
QUOTE_DATE = datetime.date(2026, 12, 1)


# -- helpers ----------------------------------------------------------------------------------------------
class Clock:
	"""A server clock the test moves, in whole milliseconds (from the current second: tokens stay valid)."""

	def __init__(self):
		self.ms = int(time.time()) * 1000

	def __call__(self) -> float:
		return (self.ms + 0.5) / 1000  # half a millisecond in: the server's int(ts * 1000) is self.ms

	def tick(self, ms: int = 1000) -> int:
		self.ms += ms
		return self.ms

	def utc(self, offset_ms: int = 0) -> datetime.datetime:
		"""Naive UTC datetime of the clock (+ offset ms), as xero-python is given one."""
		return datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=self.ms + offset_ms)


@pytest.fixture
def clock(xero):
	c = Clock()
	xero.set_clock(c)
	xero.set_rate_limits(minute=100_000, day=100_000)  # a still clock would keep one minute's budget
	return c


def quote(cid, number=None, status="DRAFT", lines=None, **kw) -> Quote:
	return Quote(
		contact=Contact(contact_id=cid),
		quote_number=number,
		date=QUOTE_DATE,
		status=QuoteStatusCodes(status),
		line_items=lines if lines is not None else [line(qty=3, unit=33.33)],
		**kw,
	)


def contact_id(api, tenant, name="Liam Gallagher") -> str:
	return str(new_contact(api, tenant, name=name))


def token(xero) -> str:
	return obtain_token(xero)["access_token"]


def authorised(api, tenant, cid, lines=None) -> str:
	made = api.create_invoices(tenant, Invoices(invoices=[invoice(cid, lines, status="AUTHORISED")]))
	return str(made.invoices[0].invoice_id)


def set_quote(api, tenant, qid, status, cid) -> Quote:
	change = Quote(status=QuoteStatusCodes(status), contact=Contact(contact_id=cid), date=QUOTE_DATE)
	body = Quotes(quotes=[change])
	return api.update_quote(tenant, qid, body).quotes[0]


def stamp(dt: datetime.datetime) -> int:
	"""Epoch ms of an aware datetime the SDK gave back."""
	return int(round(dt.timestamp() * 1000))


def pdf_is_well_formed(data: bytes) -> None:
	"""Header, xref table whose every offset points at its ``n 0 obj``, startxref at the xref, %%EOF."""
	assert data.startswith(b"%PDF-1.4\n") and data.rstrip().endswith(b"%%EOF")
	start = int(re.search(rb"startxref\n(\d+)\n%%EOF", data).group(1))
	assert data[start : start + 5] == b"xref\n"
	table = data[start:].split(b"\n")
	first, count = map(int, table[1].split())
	assert (first, count) == (0, 6) and table[2] == b"0000000000 65535 f "
	for number, entry in enumerate(table[3 : 3 + count - 1], 1):
		offset = int(entry[:10])
		assert data[offset:].startswith(f"{number} 0 obj\n".encode()), (number, offset)
	length = int(re.search(rb"/Length (\d+) >>\nstream\n", data).group(1))
	body = data.split(b"stream\n", 1)[1]
	assert body[length:].startswith(b"\nendstream")


# -- quotes -------------------------------------------------------------------------------------------------
def test_quote_totals_numbers_validation_and_reads(xero, acme, api):
	cid = contact_id(api, acme)
	lines = [line(qty=3, unit=33.33), line(qty=2, unit=19.99, discount_rate=10), line(1, 50.0, tax="NONE")]
	made = api.create_quotes(acme, Quotes(quotes=[quote(cid, lines=lines, title="Kitchen")])).quotes[0]
	same = api.create_invoices(acme, Invoices(invoices=[invoice(cid, lines)])).invoices[0]
	assert (made.sub_total, made.total_tax, made.total, made.total_discount) == (
		same.sub_total, same.total_tax, same.total, same.total_discount
	)
	assert made.total == D("206.37") and made.total_discount == 4  # 99.99 + 35.98 + 50 + 15.00 + 5.40 GST
	assert (made.quote_number, val(made.status), made.date) == ("QU-0001", "DRAFT", QUOTE_DATE)
	assert made.title == "Kitchen"
	assert made.contact.name == "Liam Gallagher" and val(made.line_amount_types) == "EXCLUSIVE"
	inclusive = quote(cid, lines=[line(1, 115.0)], line_amount_types=QuoteLineAmountTypes.INCLUSIVE)
	got = api.create_quotes(acme, Quotes(quotes=[inclusive])).quotes[0]
	assert (got.quote_number, got.sub_total, got.total_tax, got.total) == ("QU-0002", 100.0, 15.0, 115.0)
	# QuoteNumber is unique (case-insensitive); a summarised batch with a bad element stores nothing
	with pytest.raises(ApiException) as exc:
		api.create_quotes(acme, Quotes(quotes=[quote(cid, "Q-9"), quote(cid, "qu-0001")]))
	assert exc.value.status == 400 and first_error(exc) == "Quote # must be unique."
	assert len(xero.quotes(acme)) == 2
	# summarizeErrors=false: the good one is stored, the bad ones carry their errors
	mixed = [quote(cid, "Q-9"), quote(cid, lines=[]), quote(cid, lines=[line(account="999")]),
			 quote(str(uuid.uuid4())), quote(cid, status="ACCEPTED")]
	res = api.create_quotes(acme, Quotes(quotes=mixed), summarize_errors=False).quotes
	assert [r.status_attribute_string for r in res] == ["OK", "ERROR", "ERROR", "ERROR", "ERROR"]
	assert [r.validation_errors[0].message for r in res[1:]] == [
		"Quotes must have at least one line item.",
		"Account code '999' is not a valid code for this document.",
		f"The contact {mixed[3].contact.contact_id} could not be found.",
		"Quote status ACCEPTED is not valid for a new quote.",
	]
	assert [q["QuoteNumber"] for q in xero.quotes(acme)] == ["QU-0001", "QU-0002", "Q-9"]
	# reads: by id, by number, status and contact
	qid = str(made.quote_id)
	assert api.get_quote(acme, qid).quotes[0].total == D("206.37")
	assert [q.quote_number for q in api.get_quotes(acme, quote_number="q-9").quotes] == ["Q-9"]
	other = contact_id(api, acme, name="Noel Gallagher")
	api.create_quotes(acme, Quotes(quotes=[quote(other, status="SENT")]))
	assert [q.contact.name for q in api.get_quotes(acme, status="SENT").quotes] == ["Noel Gallagher"]
	assert len(api.get_quotes(acme, contact_id=cid).quotes) == 3
	with pytest.raises(NotFoundException):
		api.get_quote(acme, str(uuid.uuid4()))
	assert xero.calls("quotes") == 10
	assert check_sent_bodies(xero) == 8  # 2 contacts, 1 invoice, 5 quote batches: all as the spec says


def test_quote_updates_and_status_moves(xero, acme, api):
	cid = contact_id(api, acme)
	made = api.create_quotes(acme, Quotes(quotes=[quote(cid, "Q-1")])).quotes[0]
	qid = str(made.quote_id)
	# POST /Quotes (create or update by QuoteID): new lines, new totals, the number kept
	change = Quote(quote_id=qid, contact=Contact(contact_id=cid), date=QUOTE_DATE, line_items=[line(2, 50.0)],
				   reference="Rev 2")
	upd = api.update_or_create_quotes(acme, Quotes(quotes=[change])).quotes[0]
	assert (upd.quote_id, upd.quote_number, upd.total) == (made.quote_id, "Q-1", 115.0)
	assert upd.reference == "Rev 2"
	assert len(xero.quotes(acme)) == 1

	def refused(status) -> str:
		with pytest.raises(ApiException) as exc:
			set_quote(api, acme, qid, status, cid)
		assert exc.value.status == 400
		assert exc.value.error_data["Type"] == "ValidationException"
		return first_error(exc)

	assert refused("ACCEPTED") == "A quote in DRAFT status cannot be changed to ACCEPTED."
	assert val(set_quote(api, acme, qid, "SENT", cid).status) == "SENT"
	before = len(xero.requests_received(acme))
	assert xero.set_quote_status(acme, qid, "ACCEPTED")["Status"] == "ACCEPTED"  # the customer accepted it
	assert len(xero.requests_received(acme)) == before  # a change in Xero, not a request
	assert refused("DELETED") == "A quote in ACCEPTED status cannot be changed to DELETED."
	assert refused("DRAFT") == "A quote in ACCEPTED status cannot be changed to DRAFT."
	assert val(set_quote(api, acme, qid, "SENT", cid).status) == "SENT"  # un-accepted
	assert val(set_quote(api, acme, qid, "DECLINED", cid).status) == "DECLINED"
	assert refused("SENT") == "This quote cannot be edited as it is declined."  # final
	with pytest.raises(ValueError):
		xero.set_quote_status(acme, qid, "SENT")
	# SENT -> DRAFT -> DELETED; a DELETED quote's number can be used again
	again = api.create_quotes(acme, Quotes(quotes=[quote(cid, "Q-2", status="SENT")])).quotes[0]
	assert val(set_quote(api, acme, str(again.quote_id), "DRAFT", cid).status) == "DRAFT"
	assert val(set_quote(api, acme, str(again.quote_id), "DELETED", cid).status) == "DELETED"
	assert api.create_quotes(acme, Quotes(quotes=[quote(cid, "Q-2")])).quotes[0].quote_number == "Q-2"
	# ACCEPTED -> INVOICED is final too
	third = api.create_quotes(acme, Quotes(quotes=[quote(cid, status="SENT")])).quotes[0]
	xero.set_quote_status(acme, str(third.quote_id), "ACCEPTED")
	xero.set_quote_status(acme, str(third.quote_id), "INVOICED")
	assert api.get_quote(acme, str(third.quote_id)).quotes[0].status == QuoteStatusCodes.INVOICED
	statuses = {q["QuoteNumber"]: q["Status"] for q in xero.quotes(acme)}
	assert statuses == {"Q-1": "DECLINED", "Q-2": "DRAFT", "QU-0001": "INVOICED"}


def test_quote_readonly_fields_ignored_idempotency_and_scopes(xero, acme, api):
	cid = contact_id(api, acme)
	headers = {"Authorization": f"Bearer {token(xero)}", "xero-tenant-id": acme,
			   "Accept": "application/json"}
	sloppy = {"Quotes": [{"QuoteID": None, "Contact": {"ContactID": cid}, "Date": "2026-12-01", "Total": 1.0,
						  "SubTotal": 1.0, "UpdatedDateUTC": "/Date(0+0000)/",
						  "LineItems": [{"Description": "x", "Quantity": 1, "UnitAmount": 20,
										 "AccountCode": "200"}]}]}
	answer = requests.put(xero.url + "api.xro/2.0/Quotes", json=sloppy, headers=headers, timeout=10)
	assert answer.status_code == 200, answer.text
	got = answer.json()["Quotes"][0]
	assert (got["SubTotal"], got["TotalTax"], got["Total"]) == (20.0, 3.0, 23.0)
	assert got["UpdatedDateUTC"] != "/Date(0+0000)/" and got["DateString"] == "2026-12-01T00:00:00"
	assert set(answer.json()) == {"Id", "Status", "ProviderName", "DateTimeUTC", "Quotes"}
	if SCHEMAS:
		with pytest.raises(AssertionError):  # the spec refuses it (a null id, readOnly totals) ...
			check_spec(sloppy, {"$ref": "#/components/schemas/Quotes"})
	xero.clear_requests()  # ... so it is kept out of the fixture's check_sent_bodies
	# Idempotency-Key: the same create twice is one quote
	key = str(uuid.uuid4())
	first = api.create_quotes(acme, Quotes(quotes=[quote(cid)]), idempotency_key=key).quotes[0]
	second = api.create_quotes(acme, Quotes(quotes=[quote(cid)]), idempotency_key=key).quotes[0]
	assert first.quote_id == second.quote_id and len(xero.quotes(acme)) == 2
	assert xero.calls("idempotent_replay") == 1
	# scopes as for invoices: .read reads, only accounting.transactions writes
	read_only = "offline_access accounting.transactions.read accounting.contacts"
	reader = make_api(xero, obtain_token(xero, read_only))
	assert len(reader.get_quotes(acme).quotes) == 2
	with pytest.raises(ApiException) as exc:
		reader.create_quotes(acme, Quotes(quotes=[quote(cid)]))
	assert exc.value.status == 401
	outsider = make_api(xero, obtain_token(xero, "offline_access accounting.contacts"))
	with pytest.raises(ApiException) as exc:
		outsider.get_quotes(acme)
	assert exc.value.status == 401


def test_quote_pdf(xero, acme, api):
	cid = contact_id(api, acme, name="Café (Ltd)")
	made = api.create_quotes(acme, Quotes(quotes=[quote(cid, "QU-PDF-7")])).quotes[0]
	path = api.get_quote_as_pdf(acme, str(made.quote_id))  # GET /Quotes/{id}, Accept: application/pdf
	try:
		data = Path(path).read_bytes()
	finally:
		os.remove(path)
	pdf_is_well_formed(data)
	assert b"QU-PDF-7" in data and b"Total: NZD 114.99" in data
	assert "Caf\xe9 \\(Ltd\\)".encode("latin-1") in data  # Latin-1, parentheses escaped
	got = xero.requests_received(acme, "Quotes")[-1]
	assert got["headers"]["accept"] == "application/pdf" and got["method"] == "GET"
	try:
		import pypdf
	except ImportError:
		pypdf = None
	if pypdf is not None:  # a real PDF reader opens it
		text = pypdf.PdfReader(io.BytesIO(data), strict=True).pages[0].extract_text()
		assert "QU-PDF-7" in text and "Café (Ltd)" in text and "114.99" in text
	# the /pdf path answers the same bytes; an unknown quote is 404
	headers = {"Authorization": f"Bearer {token(xero)}", "xero-tenant-id": acme,
			   "Accept": "application/pdf"}
	raw = requests.get(f"{xero.url}api.xro/2.0/Quotes/{made.quote_id}/pdf", headers=headers, timeout=10)
	assert raw.status_code == 200 and raw.headers["Content-Type"] == "application/pdf" and raw.content == data
	with pytest.raises(NotFoundException):
		api.get_quote_as_pdf(acme, str(uuid.uuid4()))


# -- payments ----------------------------------------------------------------------------------------------
def test_payments_partial_full_and_deleted(xero, acme, api, clock):
	cid = contact_id(api, acme)
	iid = authorised(api, acme, cid)  # 100 + 15 % GST
	number = api.get_invoice(acme, iid).invoices[0].invoice_number
	clock.tick()
	first = xero.pay_invoice(acme, iid, 15, date=datetime.date(2026, 11, 30), reference="part")
	bank = {a.code: str(a.account_id) for a in api.get_accounts(acme).accounts}
	assert (first["Status"], first["PaymentType"], first["Amount"], first["Reference"]) == (
		"AUTHORISED", "ACCRECPAYMENT", 15.0, "part")
	assert first["Account"] == {"AccountID": bank["090"], "Code": "090"}
	assert first["Date"] == f"/Date({calendar.timegm((2026, 11, 30, 0, 0, 0)) * 1000}+0000)/"
	assert (first["Invoice"]["InvoiceID"], first["Invoice"]["InvoiceNumber"]) == (iid, number)
	assert first["Invoice"]["Contact"]["ContactID"] == cid and first["IsReconciled"] is False
	assert first["HasAccount"] is True and first["CurrencyRate"] == 1.0 and first["BankAmount"] == 15.0
	got = api.get_invoice(acme, iid).invoices[0]
	assert (got.amount_paid, got.amount_due, val(got.status)) == (15, 100, "AUTHORISED")
	assert got.fully_paid_on_date is None
	assert [(str(p.payment_id), p.amount, p.reference) for p in got.payments] == [
		(first["PaymentID"], 15, "part")]
	assert stamp(got.updated_date_utc) == clock.ms  # the payment moved the invoice
	# the rest, into the second bank account: PAID with FullyPaidOnDate = the settling payment's date
	clock.tick()
	rest = xero.pay_invoice(acme, iid, account_code="091", date="2026-12-01")
	got = api.get_invoice(acme, iid).invoices[0]
	assert (got.amount_paid, got.amount_due, val(got.status)) == (115, 0, "PAID")
	assert got.fully_paid_on_date == datetime.date(2026, 12, 1) and len(got.payments) == 2
	assert rest["Amount"] == 100.0 and rest["Account"]["Code"] == "091"
	# reads
	assert [p.amount for p in api.get_payments(acme).payments] == [15, 100]
	one = api.get_payment(acme, first["PaymentID"]).payments[0]
	assert (str(one.invoice.invoice_id), one.account.code, val(one.status)) == (iid, "090", "AUTHORISED")
	by_invoice = api.get_payments(acme, where=f'Invoice.InvoiceID==guid("{iid}") AND Status=="AUTHORISED"')
	assert len(by_invoice.payments) == 2
	# Xero's delete: POST /Payments/{id} {"Status": "DELETED"}; the payment stays, DELETED
	clock.tick()
	deleted = api.delete_payment(acme, first["PaymentID"], PaymentDelete(status="DELETED")).payments[0]
	assert val(deleted.status) == "DELETED" and stamp(deleted.updated_date_utc) == clock.ms
	got = api.get_invoice(acme, iid).invoices[0]
	assert (got.amount_paid, got.amount_due, val(got.status)) == (100, 15, "AUTHORISED")
	assert got.fully_paid_on_date is None
	assert stamp(got.updated_date_utc) == clock.ms and len(got.payments) == 1
	assert [val(p.status) for p in api.get_payments(acme).payments] == ["DELETED", "AUTHORISED"]
	assert len(api.get_payments(acme, where='Status=="AUTHORISED"').payments) == 1
	with pytest.raises(ApiException) as exc:
		api.delete_payment(acme, first["PaymentID"], PaymentDelete(status="DELETED"))
	assert first_error(exc) == "This payment has already been deleted"
	with pytest.raises(NotFoundException):
		api.get_payment(acme, str(uuid.uuid4()))
	# the control deletes too; misuse is refused
	assert xero.delete_payment(acme, rest["PaymentID"])["Status"] == "DELETED"
	assert api.get_invoice(acme, iid).invoices[0].amount_due == 115
	for kw in ({"amount": 116}, {"amount": 0}, {"account_code": "200"}):
		with pytest.raises(ValueError):
			xero.pay_invoice(acme, iid, **kw)
	draft = api.create_invoices(acme, Invoices(invoices=[invoice(cid)])).invoices[0]
	with pytest.raises(ValueError):
		xero.pay_invoice(acme, str(draft.invoice_id))
	assert [p["Status"] for p in xero.payments(acme)] == ["DELETED", "DELETED"]


def test_payments_if_modified_since_order_and_paging(xero, acme, api, clock):
	cid = contact_id(api, acme)
	iid = authorised(api, acme, cid, [line(3, 100.0)])  # 345.00
	ids = []
	for n in range(105):
		clock.tick(1)  # one millisecond apart
		ids.append(xero.pay_invoice(acme, iid, 1, reference=f"p{n}")["PaymentID"])
	assert api.get_invoice(acme, iid).invoices[0].amount_due == 240
	page1 = api.get_payments(acme, order="UpdatedDateUTC ASC", page=1)
	page2 = api.get_payments(acme, order="UpdatedDateUTC ASC", page=2)
	assert [str(p.payment_id) for p in page1.payments + page2.payments] == ids  # 100 per page
	assert (page1.pagination.page, page1.pagination.page_size, page1.pagination.page_count,
			page1.pagination.item_count) == (1, 100, 2, 105)
	small = api.get_payments(acme, order="UpdatedDateUTC", page=3, page_size=10).payments
	assert [str(p.payment_id) for p in small] == ids[20:30]
	assert api.get_payments(acme).pagination is None  # not paged: no pagination block
	# If-Modified-Since: strictly after, to the millisecond, in every form a client may send
	def since(value) -> list:
		return [str(p.payment_id) for p in api.get_payments(acme, if_modified_since=value).payments]

	cut = clock.utc(-5)  # the stamp of ids[99] (ids[104] is now)
	assert since(cut) == ids[100:]  # xero-python sends datetime.isoformat(): 2026-12-02T09:12:33.995000
	nz = datetime.timezone(datetime.timedelta(hours=13))
	assert since(clock.utc(-6).replace(tzinfo=datetime.timezone.utc).astimezone(nz)) == ids[99:]  # +13:00
	assert since(cut.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z") == ids[100:]
	assert since(cut.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "-08:00") == []  # 8 hours later
	whole = clock.utc(-105).replace(microsecond=0)  # RFC 7231 dates have whole seconds
	assert since(whole.strftime("%a, %d %b %Y %H:%M:%S GMT")) == ids
	assert since(clock.utc()) == []
	# a change moves a record to the end of the UpdatedDateUTC order (creation order otherwise)
	clock.tick()
	xero.delete_payment(acme, ids[0])
	latest = api.get_payments(acme, if_modified_since=clock.utc(-500), order="UpdatedDateUTC ASC").payments
	assert [str(p.payment_id) for p in latest] == [ids[0]]
	ordered = [str(p.payment_id) for p in api.get_payments(acme, order="UpdatedDateUTC").payments]
	assert ordered == ids[1:] + ids[:1]
	assert [str(p.payment_id) for p in api.get_payments(acme).payments] == ids
	assert str(api.get_payments(acme, order="UpdatedDateUTC DESC").payments[0].payment_id) == ids[0]
	with pytest.raises(ApiException) as exc:
		api.get_payments(acme, if_modified_since="yesterday")
	assert exc.value.status == 400


def test_if_modified_since_on_every_list(xero, acme, api, clock):
	old = contact_id(api, acme, name="Old Customer")
	old_inv = authorised(api, acme, old)
	old_note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(old)])).credit_notes[0]
	old_quote = api.create_quotes(acme, Quotes(quotes=[quote(old)])).quotes[0]
	xero.apply_overpayment(acme, old_inv, 5)
	xero.apply_prepayment(acme, old_inv, 5)
	mark = clock.utc()
	clock.tick()
	new = contact_id(api, acme, name="New Customer")
	new_inv = authorised(api, acme, new)
	new_note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(new)])).credit_notes[0]
	new_quote = api.create_quotes(acme, Quotes(quotes=[quote(new)])).quotes[0]
	over = xero.apply_overpayment(acme, new_inv, 5)
	pre = xero.apply_prepayment(acme, new_inv, 5)
	assert [str(c.contact_id) for c in api.get_contacts(acme, if_modified_since=mark).contacts] == [new]
	assert [str(i.invoice_id) for i in api.get_invoices(acme, if_modified_since=mark).invoices] == [new_inv]
	assert [n.credit_note_id for n in api.get_credit_notes(acme, if_modified_since=mark).credit_notes] == [
		new_note.credit_note_id]
	assert [q.quote_id for q in api.get_quotes(acme, if_modified_since=mark).quotes] == [new_quote.quote_id]
	overs = api.get_overpayments(acme, if_modified_since=mark).overpayments
	assert [str(o.overpayment_id) for o in overs] == [over["OverpaymentID"]]
	assert [str(p.prepayment_id) for p in api.get_prepayments(acme, if_modified_since=mark).prepayments] == [
		pre["PrepaymentID"]]
	# an update of an old record brings it back, last in UpdatedDateUTC order
	clock.tick()
	api.update_invoice(acme, old_inv, Invoices(invoices=[Invoice(reference="changed")]))
	set_quote(api, acme, str(old_quote.quote_id), "SENT", old)
	got = api.get_invoices(acme, if_modified_since=mark, order="UpdatedDateUTC ASC").invoices
	assert [str(i.invoice_id) for i in got] == [new_inv, old_inv]
	got = api.get_invoices(acme, if_modified_since=mark).invoices  # creation order
	assert [str(i.invoice_id) for i in got] == [old_inv, new_inv]
	got = api.get_quotes(acme, if_modified_since=mark, order="UpdatedDateUTC").quotes
	assert [q.quote_id for q in got] == [new_quote.quote_id, old_quote.quote_id]
	# paging after filtering, with Xero's pagination block where the spec has one
	paged = api.get_invoices(acme, if_modified_since=mark, order="UpdatedDateUTC", page=2, page_size=1)
	assert [str(i.invoice_id) for i in paged.invoices] == [old_inv] and paged.pagination.item_count == 2
	assert api.get_contacts(acme, page=1).pagination.item_count == 2
	assert api.get_credit_notes(acme, page=1, if_modified_since=mark).pagination.item_count == 1
	assert old_note.credit_note_id != new_note.credit_note_id


def test_overpayment_and_prepayment_count_as_credited(xero, acme, api, clock):
	cid = contact_id(api, acme)
	iid = authorised(api, acme, cid)  # 115.00
	clock.tick()
	over = xero.apply_overpayment(acme, iid, 15)
	assert (over["Type"], over["Status"], over["Total"], over["RemainingCredit"]) == (
		"RECEIVE-OVERPAYMENT", "PAID", 15.0, 0.0)
	assert over["Contact"]["ContactID"] == cid and over["Allocations"][0]["Invoice"]["InvoiceID"] == iid
	assert over["Allocations"][0]["Amount"] == 15.0
	got = api.get_invoice(acme, iid).invoices[0]
	assert (got.amount_credited, got.amount_due, got.amount_paid) == (15, 100, 0)
	assert val(got.status) == "AUTHORISED"
	assert [(str(o.overpayment_id), o.applied_amount) for o in got.overpayments] == [
		(over["OverpaymentID"], 15)]
	assert stamp(got.updated_date_utc) == clock.ms
	# a credit note and a payment count too
	note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(cid, [line(1, 20.0)])]))
	note = note.credit_notes[0]
	api.create_credit_note_allocation(acme, note.credit_note_id, allocation(iid, 23.0))
	xero.pay_invoice(acme, iid, 7)
	got = api.get_invoice(acme, iid).invoices[0]
	assert (got.amount_credited, got.amount_paid, got.amount_due) == (38, 7, 70)
	with pytest.raises(ValueError):
		xero.apply_prepayment(acme, iid, 70.01)  # more than is due
	clock.tick()
	pre = xero.apply_prepayment(acme, iid, 70)
	got = api.get_invoice(acme, iid).invoices[0]
	assert (got.amount_credited, got.amount_due, val(got.status)) == (108, 0, "PAID")
	assert got.fully_paid_on_date == clock.utc().date()
	assert [(str(p.prepayment_id), p.applied_amount) for p in got.prepayments] == [(pre["PrepaymentID"], 70)]
	# reads
	overs = api.get_overpayments(acme).overpayments
	assert [(o.type, val(o.status), o.total, o.remaining_credit) for o in overs] == [
		("RECEIVE-OVERPAYMENT", "PAID", 15, 0)]
	assert str(overs[0].allocations[0].invoice.invoice_id) == iid
	assert [p.type for p in api.get_prepayments(acme).prepayments] == ["RECEIVE-PREPAYMENT"]
	assert api.get_prepayment(acme, pre["PrepaymentID"]).prepayments[0].total == 70
	assert api.get_overpayments(acme, page=1).pagination.item_count == 1
	# an invoice with an over/prepayment applied cannot be voided
	with pytest.raises(ApiException) as exc:
		other = authorised(api, acme, cid)
		xero.apply_prepayment(acme, other, 1)
		api.update_invoice(acme, other, Invoices(invoices=[Invoice(status="VOIDED")]))
	assert "allocated" in first_error(exc)


def test_credit_note_allocation_bumps_and_settles_the_invoice(xero, acme, api, clock):
	cid = contact_id(api, acme)
	iid = authorised(api, acme, cid)
	note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(cid, [line(2, 100.0)])]))
	note = note.credit_notes[0]
	created = stamp(api.get_invoice(acme, iid).invoices[0].updated_date_utc)
	mark = clock.utc()
	assert api.get_invoices(acme, if_modified_since=mark).invoices == []
	clock.tick()
	api.create_credit_note_allocation(acme, note.credit_note_id, allocation(iid, 15.0))
	got = api.get_invoice(acme, iid).invoices[0]
	assert stamp(got.updated_date_utc) == clock.ms > created and val(got.status) == "AUTHORISED"
	assert [str(i.invoice_id) for i in api.get_invoices(acme, if_modified_since=mark).invoices] == [iid]
	assert stamp(api.get_credit_note(acme, note.credit_note_id).credit_notes[0].updated_date_utc) == clock.ms
	clock.tick()
	settling = allocation(iid, 100.0, datetime.date(2026, 11, 3))
	api.create_credit_note_allocation(acme, note.credit_note_id, settling)
	got = api.get_invoice(acme, iid).invoices[0]
	assert (val(got.status), got.amount_due) == ("PAID", 0)
	assert got.fully_paid_on_date == datetime.date(2026, 11, 3)  # the settling allocation's date
	assert stamp(got.updated_date_utc) == clock.ms


# -- webhooks ----------------------------------------------------------------------------------------------
class _Receiver(http.server.BaseHTTPRequestHandler):
	"""A webhook endpoint as an app writes one: HMAC-SHA256 of the raw body with the key, constant-time
	compare, 200 with an empty body or 401."""

	def do_POST(self):  # noqa: N802 - http.server's name
		state = self.server.state
		body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
		expected = base64.b64encode(hmac.new(state["key"].encode(), body, hashlib.sha256).digest()).decode()
		good = hmac.compare_digest(expected.encode(), (self.headers.get("x-xero-signature") or "").encode())
		headers = {k.lower(): v for k, v in self.headers.items()}
		state["received"].append({"body": body, "headers": headers, "good": good})
		status = state.get("force") or (200 if good else 401)
		reply = state.get("reply", b"")
		self.send_response(status)
		self.send_header("Content-Length", str(len(reply)))
		self.end_headers()
		self.wfile.write(reply)

	def log_message(self, *args):
		pass


@pytest.fixture
def receiver():
	srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
	srv.state = {"key": "hook-key-" + uuid.uuid4().hex, "received": []}
	thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
	thread.start()
	yield {"url": f"http://127.0.0.1:{srv.server_address[1]}/xero/hook", "state": srv.state}
	srv.shutdown()
	srv.server_close()


def _webhook_errors(payload: dict, name: str) -> list:
	"""jsonschema (2020-12: the spec is OpenAPI 3.1) errors of ``payload`` against a schema of
	xero-webhooks.yaml (formats not asserted: the spec's own eventDateUtc example has no zone)."""
	spec = yaml.safe_load(WEBHOOK_SPEC.read_text())
	schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
	validator = jsonschema.Draft202012Validator(schema)
	return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(payload)]


def _check_payload(payload: dict) -> None:
	if WEBHOOK_SPEC.is_file():
		assert not _webhook_errors(payload, "WebhookEvent")
		for event in payload["events"]:  # a credit note event alone is a CreditNoteWebhookEvent (with data)
			if event["eventCategory"] == "CREDITNOTE":
				assert not _webhook_errors(dict(payload, events=[event]), "CreditNoteWebhookEvent")
	for event in payload["events"]:
		assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$", event["eventDateUtc"])
		assert event["resourceUrl"].endswith("/" + event["resourceId"])


def test_intent_to_receive(xero, receiver):
	xero.configure_webhook(receiver["url"], receiver["state"]["key"])
	outcome = xero.intent_to_receive()
	assert outcome["ok"], outcome
	assert (outcome["good"]["status"], outcome["good"]["body"], outcome["bad"]["status"]) == (200, b"", 401)
	assert outcome["good"]["seconds"] < 5 and outcome["bad"]["seconds"] < 5
	good, bad = receiver["state"]["received"]
	assert good["good"] and not bad["good"] and good["body"] == bad["body"]
	itr = json.loads(good["body"])
	assert itr["events"] == [] and re.match(r"^[A-Z]{20}$", itr["entropy"])
	assert good["headers"]["content-type"] == "application/json"
	# receivers Xero does not accept: one that answers 200 to everything, one that answers with a body
	receiver["state"]["force"] = 200
	assert not xero.intent_to_receive()["ok"]
	receiver["state"].pop("force")
	receiver["state"]["reply"] = b"ok"
	assert not xero.intent_to_receive()["ok"]
	with pytest.raises(RuntimeError):
		type(xero)().post_webhook(b"{}")  # nothing configured


def test_webhook_events_delivered_signed_and_kept_on_failure(xero, acme, api, receiver, clock):
	state = receiver["state"]
	xero.configure_webhook(receiver["url"], state["key"])
	cid = contact_id(api, acme)
	iid = authorised(api, acme, cid)
	api.update_invoice(acme, iid, Invoices(invoices=[Invoice(reference="R2")]))
	note = api.create_credit_notes(acme, CreditNotes(credit_notes=[credit_note(cid)])).credit_notes[0]
	api.create_credit_note_allocation(acme, note.credit_note_id, allocation(iid, 10.0))
	api.create_quotes(acme, Quotes(quotes=[quote(cid)]))  # quotes have no webhook category
	clock.tick()
	payment = xero.pay_invoice(acme, iid)
	seen = [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in xero.pending_events()]
	assert seen == [
		("CONTACT", "CREATE", cid),
		("INVOICE", "CREATE", iid),
		("INVOICE", "UPDATE", iid),
		("CREDITNOTE", "CREATE", str(note.credit_note_id)),
		("CREDITNOTE", "UPDATE", str(note.credit_note_id)),
		("INVOICE", "UPDATE", iid),  # the allocation
		("INVOICE", "UPDATE", iid),  # the payment
	]
	last = xero.pending_events()[-1]
	assert last["tenantId"] == acme and last["tenantType"] == "ORGANISATION"
	assert last["resourceUrl"] == f"https://api.xero.com/api.xro/2.0/Invoices/{iid}"
	assert last["eventDateUtc"] == clock.utc().strftime("%Y-%m-%dT%H:%M:%S.000")
	assert xero.pending_events()[3]["data"] == {"Type": "ACCRECCREDIT", "Status": "AUTHORISED"}
	out = xero.deliver_webhooks(max_per_payload=3)
	assert [(o["status"], len(o["events"])) for o in out] == [(200, 3), (200, 3), (200, 1)]
	assert xero.pending_events() == []
	payloads = [json.loads(r["body"]) for r in state["received"]]
	assert all(r["good"] and r["headers"]["content-type"] == "application/json" for r in state["received"])
	assert [(p["firstEventSequence"], p["lastEventSequence"]) for p in payloads] == [(1, 3), (4, 6), (7, 7)]
	delivered = [(e["eventCategory"], e["eventType"], e["resourceId"]) for p in payloads for e in p["events"]]
	assert delivered == seen
	for p in payloads:
		_check_payload(p)
	# the receiver refuses the signature (another key): 401, the events stay pending (Xero retries)
	state["key"] = "another-key"
	xero.delete_payment(acme, payment["PaymentID"])
	refused = xero.deliver_webhooks()
	assert [o["status"] for o in refused] == [401] and len(xero.pending_events()) == 1
	closed = socket.socket()
	closed.bind(("127.0.0.1", 0))
	receiver_down = f"http://127.0.0.1:{closed.getsockname()[1]}/nothing-listens"
	closed.close()
	xero.configure_webhook(receiver_down, "another-key")
	assert xero.deliver_webhooks()[0]["status"] == 0 and len(xero.pending_events()) == 1
	xero.configure_webhook(receiver["url"], "another-key")  # the keys agree again: delivered
	delivered = xero.deliver_webhooks()
	assert [o["status"] for o in delivered] == [200] and xero.pending_events() == []
	retried = json.loads(state["received"][-1]["body"])
	assert retried["firstEventSequence"] == retried["lastEventSequence"] == 8
	assert retried["events"] == delivered[0]["events"] and retried["events"][0]["resourceId"] == iid
	# post_webhook: exact bytes, signed unless told otherwise (replays, bad signatures)
	raw = state["received"][-1]["body"]
	assert xero.post_webhook(raw)["status"] == 200 and state["received"][-1]["body"] == raw
	assert xero.post_webhook(raw, signature="bad")["status"] == 401
	assert xero.post_webhook(raw, signature="")["status"] == 401
	assert xero.deliver_webhooks() == []


def test_webhook_events_of_controls(xero, acme, api, receiver):
	xero.configure_webhook(receiver["url"], receiver["state"]["key"])
	cid = xero.add_contact(acme, "Made In Xero")
	iid = authorised(api, acme, cid)
	xero.apply_overpayment(acme, iid, 5)
	xero.apply_prepayment(acme, iid, 5)
	kinds = [(e["eventCategory"], e["eventType"], e["resourceId"]) for e in xero.pending_events()]
	assert kinds == [("CONTACT", "CREATE", cid), ("INVOICE", "CREATE", iid), ("INVOICE", "UPDATE", iid),
					 ("INVOICE", "UPDATE", iid)]
	assert [o["status"] for o in xero.deliver_webhooks()] == [200]
	payload = json.loads(receiver["state"]["received"][-1]["body"])
	_check_payload(payload)
	assert payload["firstEventSequence"] == 1 and payload["lastEventSequence"] == 4
