"""Fixtures and helpers of the pure Xero server tests: the local Xero server driven by xero-python, Xero's OpenAPI spec as JSON schemas, and the checks of what was sent against it."""

from __future__ import annotations

import datetime
import re
import time
import urllib.parse
import uuid
from pathlib import Path

import pytest

requests = pytest.importorskip("requests")
yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")
pytest.importorskip("xero_python")
from xero_python.accounting import (  # noqa: E402
	AccountingApi,
	Allocation,
	Allocations,
	Contact,
	Contacts,
	CreditNote,
	Invoice,
	LineAmountTypes,
	LineItem,
)
from xero_python.api_client import ApiClient, Configuration  # noqa: E402
from xero_python.api_client.oauth2 import OAuth2Token  # noqa: E402

from atlas_integrations.testing.xero import XeroTestServer, s256  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
#: Xero's OpenAPI spec in ../shared (beside the checkout)
SPEC = ROOT.parent / "shared" / "xero" / "spec" / "xero_accounting.yaml"
CLIENT_ID, CLIENT_SECRET = "ATLASCLIENTID0000000000000000000", "atlas-client-secret"
REDIRECT = "http://127.0.0.1:8000/api/method/atlas_integrations.api.xero.oauth_callback"
SCOPES = (
	"openid profile email offline_access accounting.settings accounting.transactions accounting.contacts"
)


# -- spec validation of request bodies ----------------------------------------------------------------
def _load_spec() -> dict:
	if not SPEC.is_file():
		return {}
	return yaml.safe_load(SPEC.read_text())


SPEC_DOC = _load_spec()


SCHEMAS = SPEC_DOC.get("components", {}).get("schemas", {})


def _request_schemas() -> list:
	"""(path regex, METHOD, requestBody schema) of every spec operation taking a JSON body."""
	out = []
	for template, ops in SPEC_DOC.get("paths", {}).items():
		pattern = re.compile("(?i)^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "/?$")
		for method, op in ops.items():
			if not isinstance(op, dict):
				continue
			schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
			if schema:
				out.append((pattern, method.upper(), schema))
	return out


REQUEST_SCHEMAS = _request_schemas()


# how Xero (and xero-python) write x-is-msdate / x-is-msdate-time strings
_MSDATE_RE = re.compile(
	r"^(/Date\(-?\d+([+-]\d{4})?\)/|\d{4}-\d{2}-\d{2}([T ][0-9:.]+(Z|[+-]\d{2}:?\d{2})?)?)$"
)


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


def check_spec(value, schema: dict, where: str = "$", top: bool = True) -> None:
	"""Assert ``value`` conforms to the OpenAPI ``schema`` as a request body: first with **jsonschema**
	(Draft 4, the JSON Schema dialect OpenAPI 3.0 builds on; ``$ref`` resolved inside the spec), then the
	rules the spec states that JSON Schema does not (no readOnly property sent, no key outside the
	properties, ``format: uuid``, Xero's ``x-is-msdate`` dates)."""
	if top:  # the top of a body: one jsonschema pass over the whole value
		errors = sorted(jsonschema.Draft4Validator({**schema, "components": SPEC_DOC.get("components", {})})
						.iter_errors(value), key=lambda e: list(e.absolute_path))
		assert not errors, f"{where}: " + "; ".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
													 for e in errors[:5])
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
		if schema.get("x-is-msdate") or schema.get("x-is-msdate-time"):
			assert _MSDATE_RE.match(value), f"{where}: {value!r} is not a date"
		if "maxLength" in schema:
			assert len(value) <= schema["maxLength"], where
	if isinstance(value, list) and "items" in schema:
		for i, item in enumerate(value):
			check_spec(item, schema["items"], f"{where}[{i}]", top=False)
	if isinstance(value, dict) and "properties" in schema:
		props = schema["properties"]
		for name in schema.get("required", []):
			assert name in value, f"{where}: required {name} missing"
		for name, item in value.items():
			assert name in props, f"{where}: {name} is not a property of the spec's schema"
			prop = _resolve(props[name])
			if props[name].get("readOnly"):  # only the SDK models' own defaults may be sent
				assert name in SDK_SENT_READONLY, f"{where}.{name} is readOnly but was sent"
			check_spec(item, prop, f"{where}.{name}", top=False)


def check_sent_bodies(xero) -> int:
	"""Validate every JSON body sent (POST / PUT) against the requestBody schema of the spec operation its
	method and path match (Contacts, Invoices, CreditNotes, CreditNotes/{id}/Allocations, ...)."""
	if not SCHEMAS:
		return 0
	n = 0
	for req in xero.requests_received():
		if req["method"] not in ("POST", "PUT") or req["json"] is None:
			continue
		rel = req["path"][len("/api.xro/2.0") :]
		schema = next((sc for pat, m, sc in REQUEST_SCHEMAS if m == req["method"] and pat.match(rel)), None)
		assert schema is not None, f"no spec operation takes a JSON body at {req['method']} {req['path']}"
		check_spec(req["json"], schema, f"{req['method']} {req['path']}")
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


def credit_note(cid, lines=None, status="AUTHORISED", kind="ACCRECCREDIT", amounts=LineAmountTypes.EXCLUSIVE,
				**kw) -> CreditNote:
	return CreditNote(
		type=kind,
		contact=Contact(contact_id=cid),
		line_items=lines if lines is not None else [line()],
		line_amount_types=amounts,
		status=status,
		date=datetime.date(2025, 6, 5),
		**kw,
	)


def allocation(invoice_id, amount, date=datetime.date(2025, 6, 10)) -> Allocations:
	one = Allocation(invoice=Invoice(invoice_id=invoice_id), amount=amount, date=date)
	return Allocations(allocations=[one])


def first_error(exc) -> str:
	return exc.value.error_data["Elements"][0]["ValidationErrors"][0]["Message"]
