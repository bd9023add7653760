"""Fixtures and helpers of the real-site Xero tests: the local Xero server with the site pointed at it, a connected Company, Customers, invoices and the payment set-up, shared by every Xero test module."""

from __future__ import annotations

import uuid

import pytest
import requests

from tests.realsite.conftest import ensure_user, login, run_worker

CLIENT_ID, CLIENT_SECRET = "atlas-xero-test-client", "atlas-xero-test-secret-" + uuid.uuid4().hex


KEYS = ("atlas_xero_login_url", "atlas_xero_identity_url", "atlas_xero_api_url")


DISPATCHER = "atlas-xero-dispatcher@atlas-test.example"


SECOND_COMPANY = "Atlas Test Two Ltd"


@pytest.fixture(scope="module")
def xero(site, web):
	"""The local Xero server, the site's endpoint keys and Atlas Settings pointing at it."""
	import frappe
	from frappe.installer import update_site_config

	from atlas_integrations.testing.xero import XeroTestServer
	from atlas_integrations.xero import oauth

	server = XeroTestServer().start()
	server.register_client(CLIENT_ID, CLIENT_SECRET, [oauth.redirect_uri()])
	previous = {k: frappe.conf.get(k) for k in KEYS}
	urls = {"atlas_xero_login_url": server.authorize_url, "atlas_xero_identity_url": server.url,
			"atlas_xero_api_url": server.url}
	for key, value in urls.items():
		update_site_config(key, value)
	frappe.local.conf.update(urls)
	settings = frappe.get_single("Atlas Settings")
	settings.xero_client_id, settings.xero_client_secret = CLIENT_ID, CLIENT_SECRET
	settings.workspace_state = "Active"
	settings.save(ignore_permissions=True)
	if not frappe.db.exists("Company", SECOND_COMPANY):
		frappe.get_doc({"doctype": "Company", "company_name": SECOND_COMPANY, "abbr": "ATT2", "default_currency": "USD",
						"country": "United States"}).insert(ignore_permissions=True)
	ensure_user(frappe, DISPATCHER, ("Atlas Dispatcher",))
	frappe.db.commit()
	yield server
	frappe.db.rollback()
	for name in frappe.get_all("Xero Connection", pluck="name"):
		frappe.delete_doc("Xero Connection", name, ignore_permissions=True, force=True)
	for name in frappe.get_all("Xero Grant", pluck="name"):
		frappe.delete_doc("Xero Grant", name, ignore_permissions=True, force=True)
	for key, value in previous.items():
		update_site_config(key, value if value else "None")
	frappe.db.commit()
	server.stop()


def _connect(web, http, company: str) -> requests.Response:
	"""Connect → Xero consent → the site's callback, as the browser would; returns the callback's answer."""
	started = http.post(f"{web}/api/method/atlas_integrations.api.xero.connect", data={"company": company})
	assert started.status_code == 200, started.text[:300]
	url = started.json()["message"]["authorization_url"]
	assert "code_challenge_method=S256" in url and "offline_access" in url
	consent = requests.get(url, allow_redirects=False, timeout=30)
	assert consent.status_code == 302, consent.text[:300]
	return http.get(consent.headers["Location"], allow_redirects=False, timeout=30)


def _reset(frappe, *companies):
	frappe.db.rollback()
	for company in companies:
		if frappe.db.exists("Xero Connection", company):
			frappe.delete_doc("Xero Connection", company, ignore_permissions=True, force=True)
	frappe.db.commit()




ITEM = "ATLAS-XERO-SVC"


@pytest.fixture(scope="module")
def connected(site, web, xero):  # noqa: F811 - the fixture imported above
	frappe = site
	company = frappe.defaults.get_global_default("company")
	tenant = xero.add_tenant(f"Invoices Org {uuid.uuid4().hex[:4]}", base_currency="GBP")
	xero.set_consent(tenants=[tenant])
	_connect(web, login(web), company)
	frappe.db.rollback()
	assert frappe.db.get_value("Xero Connection", company, "status") == "connected"
	if not frappe.db.exists("Item", ITEM):
		frappe.get_doc({"doctype": "Item", "item_code": ITEM, "item_name": "Atlas service", "is_stock_item": 0,
						"item_group": "All Item Groups", "stock_uom": "Nos"}).insert(ignore_permissions=True)
	frappe.db.commit()
	xero.clear_requests()
	yield {"company": company, "tenant": tenant, "server": xero}
	_reset(frappe, company)
	# every body the app sent in this module, checked against Xero's OpenAPI spec (jsonschema)
	from tests.pure.xero_fixtures import SCHEMAS, check_sent_bodies

	writes = [r for r in xero.requests_received() if r["method"] in ("POST", "PUT") and r["json"] is not None]
	assert check_sent_bodies(xero) == (len(writes) if SCHEMAS else 0)  # each one checked (a module may send none)


def _customer(frappe, name: str) -> str:
	if not frappe.db.exists("Customer", name):
		frappe.get_doc({"doctype": "Customer", "customer_name": name}).insert(ignore_permissions=True)
	return name


def _invoice(frappe, company: str, customer: str, rate: float = 50, qty: float = 2, submit: bool = True,
			 discount: float = 0) -> str:
	si = frappe.get_doc({"doctype": "Sales Invoice", "company": company, "customer": customer,
						 "items": [{"item_code": ITEM, "qty": qty, "rate": rate}], "discount_amount": discount})
	si.set_missing_values()
	si.insert(ignore_permissions=True)
	if submit:
		si.submit()
	return si.name


def _sync(frappe):
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()




BANK_CODE = "090"  # the local server's demo chart: Business Bank Account


@pytest.fixture(scope="module")
def posting(site, connected):  # noqa: F811
	"""The connection posts Payment Entries: Xero's bank account 090 -> the company's bank account."""
	frappe = site
	company = connected["company"]
	bank = frappe.db.get_value("Account", {"company": company, "account_type": "Bank", "is_group": 0}, "name")
	if not bank:
		parent = frappe.db.get_value("Account", {"company": company, "account_type": "Bank", "is_group": 1}, "name") or \
			frappe.db.get_value("Account", {"company": company, "root_type": "Asset", "is_group": 1}, "name")
		bank = frappe.get_doc({"doctype": "Account", "account_name": "Atlas Xero Bank", "company": company,
							   "parent_account": parent, "account_type": "Bank", "is_group": 0}).insert(
			ignore_permissions=True).name
	conn = frappe.get_doc("Xero Connection", company)
	conn.create_payment_entries = 1
	conn.pull_payments = 1
	conn.set("bank_map", [{"xero_account_code": BANK_CODE, "mode_of_payment": "Wire Transfer"
						   if frappe.db.exists("Mode of Payment", "Wire Transfer") else None, "erpnext_account": bank}])
	conn.save(ignore_permissions=True)
	frappe.db.commit()
	yield {**connected, "bank": bank}
	frappe.db.rollback()
	conn = frappe.get_doc("Xero Connection", company)
	conn.create_payment_entries = 0
	conn.set("bank_map", [])
	conn.save(ignore_permissions=True)
	frappe.db.commit()


def _entries(frappe, invoice: str, docstatus: int | None = 1) -> list:
	rows = frappe.db.sql(
		"""select pe.name, pe.docstatus, pe.paid_amount, pe.reference_no, pe.reference_date, pe.atlas_xero_payment_id
		from `tabPayment Entry` pe join `tabPayment Entry Reference` r on r.parent = pe.name
		where r.reference_doctype='Sales Invoice' and r.reference_name=%s""", invoice, as_dict=True)
	return [r for r in rows if docstatus is None or r.docstatus == docstatus]
