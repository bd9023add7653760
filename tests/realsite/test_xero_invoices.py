"""Sales Invoices to Xero through the Sync Job queue (real ERPNext documents, real rq worker, xero-python
against the local Xero-compatible server): the customer becomes a Contact once, the invoice an ACCREC
invoice with ERPNext's total, a batch with one bad invoice fails alone, a retry never posts twice, a
cancel voids."""

from __future__ import annotations

import uuid

import pytest

from tests.realsite.conftest import run_worker
from tests.realsite.test_xero_connect import _connect, _reset, xero  # noqa: F401 - the fixture
from tests.realsite.conftest import login

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
	yield {"company": company, "tenant": tenant, "server": xero}
	_reset(frappe, company)


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


def test_submitted_invoice_reaches_xero_once_with_its_total(site, connected):
	frappe = site
	customer = _customer(frappe, f"Xero Customer {uuid.uuid4().hex[:6]}")
	name = _invoice(frappe, connected["company"], customer, rate=33.33, qty=3, discount=10)
	frappe.db.commit()  # the job is queued after this commit, not inside the save
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_status") == "Xero Pending"
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	si = frappe.get_doc("Sales Invoice", name)
	assert si.atlas_xero_status == "Xero Synced", si.atlas_xero_error
	job = frappe.get_all("Sync Job", filters={"reference_name": name, "job_type": "Xero Invoice"}, fields=["status", "details"])
	assert [j.status for j in job] == ["succeeded"] and si.atlas_xero_invoice_id in job[0].details
	contact = frappe.db.get_value("Customer", customer, "atlas_xero_contact_id")
	assert contact
	# a second invoice of the same customer reuses the contact: still one Contact in Xero for it
	second = _invoice(frappe, connected["company"], customer)
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Sales Invoice", second, "atlas_xero_status") == "Xero Synced"
	assert frappe.db.get_value("Customer", customer, "atlas_xero_contact_id") == contact


def test_cancel_voids_the_xero_invoice(site, connected):
	frappe = site
	customer = _customer(frappe, f"Xero Void {uuid.uuid4().hex[:6]}")
	name = _invoice(frappe, connected["company"], customer)
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_status") == "Xero Synced"
	frappe.get_doc("Sales Invoice", name).cancel()
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	jobs = frappe.get_all("Sync Job", filters={"reference_name": name, "job_type": "Xero Invoice"},
						  fields=["status", "details"], order_by="creation asc")
	assert [j.status for j in jobs] == ["succeeded", "succeeded"] and "VOIDED" in jobs[-1].details


def test_one_bad_invoice_fails_alone_in_its_batch(site, connected):
	frappe = site
	good_customer = _customer(frappe, f"Xero Good {uuid.uuid4().hex[:6]}")
	bad_customer = _customer(frappe, f"Xero Bad {uuid.uuid4().hex[:6]}")
	# its stored ContactID points at nothing in Xero: Xero refuses that invoice
	frappe.db.set_value("Customer", bad_customer, "atlas_xero_contact_id", str(uuid.uuid4()))
	good = [_invoice(frappe, connected["company"], good_customer) for _ in range(3)]
	bad = _invoice(frappe, connected["company"], bad_customer)
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	assert [frappe.db.get_value("Sales Invoice", n, "atlas_xero_status") for n in good] == ["Xero Synced"] * 3
	state, error = frappe.db.get_value("Sales Invoice", bad, ["atlas_xero_status", "atlas_xero_error"])
	assert state == "Xero Error" and error.startswith("Xero refused the invoice"), error
	failed = frappe.get_all("Sync Job", filters={"reference_name": bad, "job_type": "Xero Invoice"},
							fields=["status", "payload", "last_error"])
	assert failed[0].status == "failed" and '"action": "push"' in failed[0].payload  # payload kept for Retry
	puts = connected["server"].requests_received(connected["tenant"], "Invoices")
	assert any(len((r.get("json") or {}).get("Invoices", [])) == 4 for r in puts)  # one request for the four


def test_timeout_after_xero_accepted_never_posts_twice(site, connected):
	from frappe.installer import update_site_config

	from atlas_integrations import jobs

	frappe = site
	customer = _customer(frappe, f"Xero Timeout {uuid.uuid4().hex[:6]}")
	name = _invoice(frappe, connected["company"], customer)
	frappe.db.commit()
	server = connected["server"]
	update_site_config("atlas_xero_timeout", 1)
	server.delay_next("Invoices", 3, method="POST")  # Xero stores it, the answer comes too late
	try:
		run_worker()
	finally:
		update_site_config("atlas_xero_timeout", "None")
	frappe.db.rollback()
	job = frappe.get_all("Sync Job", filters={"reference_name": name, "job_type": "Xero Invoice"}, pluck="name")[0]
	assert frappe.db.get_value("Sync Job", job, "status") == "failed"
	assert len([i for i in server.invoices(connected["tenant"]) if i.get("InvoiceNumber") == name]) == 1
	jobs.retry(job)
	frappe.db.commit()
	run_worker()
	frappe.db.rollback()
	assert frappe.db.get_value("Sync Job", job, "status") == "succeeded"
	assert "not posted again" in frappe.db.get_value("Sync Job", job, "details")
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_status") == "Xero Synced"
	assert len([i for i in server.invoices(connected["tenant"]) if i.get("InvoiceNumber") == name]) == 1
