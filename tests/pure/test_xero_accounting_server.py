"""The Accounting API of the local Xero server (atlas_integrations.testing.xero) driven by the official SDK
xero-python (no frappe): Contacts / Invoices batches, where filters, totals, summarizeErrors, idempotency,
void / delete rules, injected 429s and timeouts. Every JSON body the SDK sends for Contacts and Invoices is
checked against the request schema of Xero's OpenAPI spec.

Neither ``jsonschema`` nor ``openapi-core`` is installed in the bench env, so :func:`check_spec` is a small
hand-written validator over the YAML (``$ref``, ``type``, ``format: uuid``, ``enum``, ``maxLength``, array
``items``, no keys outside ``properties``, no ``readOnly`` properties sent).

Run: ``python -m pytest -q -p no:randomly tests/pure/test_xero_accounting_server.py``
"""

from __future__ import annotations

import datetime
from decimal import Decimal as D
import sys
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

requests = pytest.importorskip("requests")
yaml = pytest.importorskip("yaml")
pytest.importorskip("xero_python")
from xero_python.accounting import (  # noqa: E402
	AccountingApi,
	Contact,
	Contacts,
	CurrencyCode,
	Invoice,
	Invoices,
	LineAmountTypes,
	LineItem,
)
from xero_python.api_client import ApiClient, Configuration  # noqa: E402
from xero_python.api_client.oauth2 import OAuth2Token  # noqa: E402
from xero_python.exceptions import ApiException, HTTPStatusException, RateLimitException  # noqa: E402

from atlas_integrations.testing.xero import XeroTestServer, s256  # noqa: E402

SPEC = Path("/work/shared/xero/spec/xero_accounting.yaml")
CLIENT_ID, CLIENT_SECRET = "ATLASCLIENTID0000000000000000000", "atlas-client-secret"
REDIRECT = "http://127.0.0.1:8000/api/method/atlas_integrations.api.xero.oauth_callback"
SCOPES = (
	"openid profile email offline_access accounting.settings accounting.transactions accounting.contacts"
)


# -- spec validation of request bodies ----------------------------------------------------------------
def _load_schemas() -> dict:
	if not SPEC.is_file():
		return {}
	return yaml.safe_load(SPEC.read_text())["components"]["schemas"]


SCHEMAS = _load_schemas()
# readOnly properties that xero-python's models always serialise (their default False)
SDK_SENT_READONLY = {"HasAttachments"}
_TYPES = {
	"string": str,
	"number": (int, float),
	"integer": int,
	"boolean": bool,
	"array": list,
	"object": dict,
}


def _resolve(schema: dict) -> dict:
	while "$ref" in schema:
		ref = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
		schema = dict(ref, **{k: v for k, v in schema.items() if k != "$ref"})
	return schema


def check_spec(value, schema: dict, where: str = "$") -> None:
	"""Assert ``value`` conforms to the (resolved) OpenAPI ``schema`` as a request body."""
	schema = _resolve(schema)
	kind = schema.get("type") or ("object" if "properties" in schema else None)
	if kind is not None:
		ok = isinstance(value, _TYPES[kind])
		if kind in ("number", "integer") and isinstance(value, bool):
			ok = False
		assert ok, f"{where}: expected {kind}, got {value!r}"
	if "enum" in schema:
		assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
	if isinstance(value, str):
		if schema.get("format") == "uuid":
			uuid.UUID(value)
		if "maxLength" in schema:
			assert len(value) <= schema["maxLength"], where
	if isinstance(value, list) and "items" in schema:
		for i, item in enumerate(value):
			check_spec(item, schema["items"], f"{where}[{i}]")
	if isinstance(value, dict) and "properties" in schema:
		props = schema["properties"]
		for name in schema.get("required", []):
			assert name in value, f"{where}: required {name} missing"
		for name, item in value.items():
			assert name in props, f"{where}: {name} is not a property of the spec's schema"
			prop = _resolve(props[name])
			if props[name].get("readOnly"):  # only the SDK models' own defaults may be sent
				assert name in SDK_SENT_READONLY, f"{where}.{name} is readOnly but was sent"
			check_spec(item, prop, f"{where}.{name}")


def check_sent_bodies(xero) -> int:
	"""Validate every JSON body sent to Contacts / Invoices against the spec's requestBody schema."""
	if not SCHEMAS:
		return 0
	n = 0
	for req in xero.requests_received():
		if req["method"] not in ("POST", "PUT") or req["json"] is None:
			continue
		resource = req["path"].split("/")[3].lower()
		name = {"contacts": "Contacts", "invoices": "Invoices"}.get(resource)
		if name:
			ref = {"$ref": f"#/components/schemas/{name}"}
			check_spec(req["json"], ref, f"{req['method']} {req['path']}")
			n += 1
	return n


# -- fixtures -----------------------------------------------------------------------------------------------
def obtain_token(xero, scope: str = SCOPES) -> dict:
	"""A token from the server's authorize + token endpoints (PKCE, confidential client)."""
	verifier = "atlas-verifier-" + "k" * 40
	params = {
		"client_id": CLIENT_ID,
		"redirect_uri": REDIRECT,
		"response_type": "code",
		"scope": scope,
		"state": "st",
		"code_challenge": s256(verifier),
		"code_challenge_method": "S256",
	}
	resp = requests.get(xero.authorize_url, params=params, allow_redirects=False, timeout=10)
	code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(resp.headers["Location"]).query))["code"]
	data = {
		"grant_type": "authorization_code",
		"code": code,
		"redirect_uri": REDIRECT,
		"code_verifier": verifier,
	}
	token = requests.post(xero.token_url, data=data, auth=(CLIENT_ID, CLIENT_SECRET), timeout=10).json()
	token["expires_at"] = time.time() + token["expires_in"]
	return token


def make_api(xero, token: dict, retries: bool = True) -> AccountingApi:
	"""xero-python's AccountingApi on the test server. ``retries=False`` turns off urllib3's default
	``Retry(3)``, which otherwise silently retries GET/PUT (not POST) on 429/503 with ``Retry-After``
	(sleeping that long) and on read timeouts."""
	store = {"token": token}
	client = ApiClient(
		Configuration(oauth2_token=OAuth2Token(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)),
		oauth2_token_getter=lambda: store["token"],
		oauth2_token_saver=lambda new: store.update(token=new),
	)
	if not retries:
		client.rest_client.pool_manager.connection_pool_kw["retries"] = False
	return AccountingApi(client, base_url=xero.url + "api.xro/2.0")


@pytest.fixture
def xero():
	srv = XeroTestServer().start()  # real clock: the SDK checks token expiry against time.time()
	srv.register_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT], name="Atlas Integrations")
	yield srv
	try:
		check_sent_bodies(srv)
	finally:
		srv.stop()
	assert not srv.errors, srv.errors


@pytest.fixture
def acme(xero):
	return xero.add_tenant("Acme Ltd", short_code="!AcMe1", base_currency="NZD")


@pytest.fixture
def api(xero, acme):
	return make_api(xero, obtain_token(xero))


def val(x):
	"""An SDK enum's value (spec-inline enums come back as plain strings)."""
	return getattr(x, "value", x)


def contact(name, **kw) -> Contact:
	return Contact(name=name, **kw)


def new_contact(api, tenant, name="Liam Gallagher", **kw) -> str:
	return api.create_contacts(tenant, Contacts(contacts=[contact(name, **kw)])).contacts[0].contact_id


def line(qty=1, unit=100.0, account="200", tax="OUTPUT2", **kw) -> LineItem:
	return LineItem(
		description="Work", quantity=qty, unit_amount=unit, account_code=account, tax_type=tax, **kw
	)


def invoice(cid, lines=None, status="DRAFT", amounts=LineAmountTypes.EXCLUSIVE, **kw) -> Invoice:
	return Invoice(
		type="ACCREC",
		contact=Contact(contact_id=cid),
		line_items=lines if lines is not None else [line()],
		line_amount_types=amounts,
		status=status,
		date=datetime.date(2025, 6, 1),
		due_date=datetime.date(2025, 6, 30),
		**kw,
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
