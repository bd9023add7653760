"""Sales Invoices to Xero through the Sync Job queue (real ERPNext documents, real rq worker, xero-python
against the local Xero-compatible server): the customer becomes a Contact once, the invoice an ACCREC
invoice with ERPNext's total, a batch with one bad invoice fails alone, a retry never posts twice, a
cancel voids."""

from __future__ import annotations

import uuid

import pytest

from tests.realsite.conftest import run_worker
from tests.realsite.xero_fixtures import _connect, _reset, xero  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import (  # noqa: F401 - fixtures and helpers
	ITEM,
	_customer,
	_invoice,
	_sync,
	connected,
)


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
	frappe.db.set_value("Customer", bad_customer, {"atlas_xero_contact_id": str(uuid.uuid4()),
												   "atlas_xero_tenant_id": connected["tenant"]})
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
	from frappe.utils import add_to_date, now_datetime

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
	row = frappe.db.get_value("Sync Job", job, ["status", "attempts", "next_retry_at", "last_error", "payload"], as_dict=True)
	# a passing failure: back to pending with a backoff, the payload kept; the invoice still "Xero Pending"
	assert row.status == "pending" and row.attempts == 1 and row.next_retry_at > now_datetime(), row
	assert "did not answer in time" in row.last_error and '"action": "push"' in row.payload
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_status") == "Xero Pending"
	assert len([i for i in server.invoices(connected["tenant"]) if i.get("InvoiceNumber") == name]) == 1
	# not due yet: the scheduler's hook leaves it; once due it dispatches it and the retry finds the invoice
	assert job not in jobs.dispatch_due()
	frappe.db.set_value("Sync Job", job, "next_retry_at", add_to_date(now_datetime(), seconds=-1))
	frappe.db.commit()
	assert job in jobs.dispatch_due()
	run_worker()
	frappe.db.rollback()
	row = frappe.db.get_value("Sync Job", job, ["status", "attempts", "details", "result_ids"], as_dict=True)
	assert row.status == "succeeded" and row.attempts == 2 and "not posted again" in row.details, row
	assert len([i for i in server.invoices(connected["tenant"]) if i.get("InvoiceNumber") == name]) == 1
	assert row.result_ids == frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id")


def _tax_account(frappe, company: str) -> str:
	account = frappe.db.get_value("Account", {"company": company, "account_type": "Tax", "is_group": 0}, "name")
	assert account, "the test company has a Tax account"
	return account


def _map_tax(frappe, company: str, account: str, tax_type: str) -> None:
	conn = frappe.get_doc("Xero Connection", company)
	conn.set("tax_map", [{"erpnext_account": account, "xero_tax_type": tax_type}])
	conn.save(ignore_permissions=True)
	frappe.db.commit()


def _xero_invoice(server, tenant: str, number: str) -> dict:
	return next(i for i in server.invoices(tenant) if i.get("InvoiceNumber") == number and i["Status"] != "DELETED")


def test_mapped_tax_travels_as_line_tax_with_erpnext_total(site, connected):
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	account = _tax_account(frappe, company)
	rate = next(r for r in server._book(server._tenant_id(tenant))["tax_rates"]
				if r.get("EffectiveRate") and r.get("CanApplyToRevenue", True))
	_map_tax(frappe, company, account, rate["TaxType"])
	try:
		customer = _customer(frappe, f"Xero Tax {uuid.uuid4().hex[:6]}")
		si = frappe.get_doc({"doctype": "Sales Invoice", "company": company, "customer": customer,
							 "items": [{"item_code": ITEM, "qty": 3, "rate": 33.33}, {"item_code": ITEM, "qty": 1, "rate": 19.99}],
							 "discount_amount": 7.5,
							 "taxes": [{"charge_type": "On Net Total", "account_head": account, "description": "VAT",
										"rate": float(rate["EffectiveRate"])},
									   {"charge_type": "Actual", "account_head": account, "description": "Fixed fee",
										"tax_amount": 2.35}]})
		si.set_missing_values()
		si.insert(ignore_permissions=True)
		si.submit()
		frappe.db.commit()
		_sync(frappe)
		si.reload()
		assert si.atlas_xero_status == "Xero Synced", si.atlas_xero_error
		xero = _xero_invoice(server, tenant, si.name)
		assert xero["LineAmountTypes"] == "Exclusive"
		billed = si.rounded_total if not si.disable_rounded_total and si.rounded_total else si.grand_total
		assert round(xero["Total"], 2) == round(billed, 2)
		assert round(xero["TotalTax"], 2) == round(sum(t.tax_amount_after_discount_amount for t in si.taxes), 2)
		assert {li["TaxType"] for li in xero["LineItems"] if li["TaxAmount"]} == {rate["TaxType"]}
	finally:
		conn = frappe.get_doc("Xero Connection", company)
		conn.set("tax_map", [])
		conn.save(ignore_permissions=True)
		frappe.db.commit()


def test_return_becomes_a_credit_note_allocated_to_its_invoice(site, connected):
	from erpnext.accounts.doctype.sales_invoice.sales_invoice import make_sales_return

	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	customer = _customer(frappe, f"Xero Return {uuid.uuid4().hex[:6]}")
	name = _invoice(frappe, company, customer, rate=40, qty=3)  # 120
	ret = make_sales_return(name)
	ret.items[0].qty = -1
	ret.save(ignore_permissions=True)  # both queued: the return waits for its invoice if needed
	ret.submit()
	frappe.db.commit()
	_sync(frappe)  # one drain: the invoice first, then its return as a credit note allocated to it
	state = frappe.db.get_value("Sales Invoice", ret.name, ["atlas_xero_status", "atlas_xero_invoice_id", "atlas_xero_error"],
								as_dict=True)
	assert state.atlas_xero_status == "Xero Synced", state
	note = next(c for c in server.credit_notes(tenant) if c["CreditNoteID"] == state.atlas_xero_invoice_id)
	assert note["Type"] == "ACCRECCREDIT" and note["CreditNoteNumber"] == ret.name and round(note["Total"], 2) == 40.0
	invoice = _xero_invoice(server, tenant, name)
	assert round(invoice["AmountCredited"], 2) == 40.0 and round(invoice["AmountDue"], 2) == 80.0
	allocations = [a for a in server.allocations(tenant) if a["CreditNote"]["CreditNoteID"] == note["CreditNoteID"]]
	assert len(allocations) == 1


def test_cancel_is_refused_when_xero_has_payments_and_amendment_references_the_void(site, connected):
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	customer = _customer(frappe, f"Xero Paid {uuid.uuid4().hex[:6]}")
	paid = _invoice(frappe, company, customer)
	other = _invoice(frappe, company, customer)
	frappe.db.commit()
	_sync(frappe)
	server.pay_invoice(tenant, frappe.db.get_value("Sales Invoice", paid, "atlas_xero_invoice_id"), 10)
	frappe.local.atlas_xero_cancel_unchecked = None
	try:
		frappe.get_doc("Sales Invoice", paid).cancel()
		pytest.fail(f"cancel was not refused (payments not checked: {frappe.local.atlas_xero_cancel_unchecked})")
	except frappe.ValidationError as exc:
		assert "paid or credited in Xero" in str(exc)
	frappe.db.rollback()
	assert frappe.db.get_value("Sales Invoice", paid, "docstatus") == 1
	# without payments: cancel voids, the amendment is a new Xero invoice that references the voided one
	doc = frappe.get_doc("Sales Invoice", other)
	doc.cancel()
	amended = frappe.copy_doc(doc)  # as the desk's Amend does (here copying even the no-copy fields)
	amended.amended_from = other
	amended.insert(ignore_permissions=True)
	amended.submit()
	frappe.db.commit()
	_sync(frappe)
	assert frappe.db.get_value("Sales Invoice", amended.name, "atlas_xero_status") == "Xero Synced", \
		frappe.db.get_value("Sales Invoice", amended.name, "atlas_xero_error")
	old = next(i for i in server.invoices(tenant) if i.get("InvoiceNumber") == other)
	new = _xero_invoice(server, tenant, amended.name)
	assert old["Status"] == "VOIDED" and new["Reference"] == f"Amends {other}" and new["InvoiceID"] != old["InvoiceID"]


def test_existing_contact_is_matched_and_customer_changes_update_it(site, connected):
	frappe = site
	company, server, tenant = connected["company"], connected["server"], connected["tenant"]
	name = f"Xero Known {uuid.uuid4().hex[:6]}"
	contact_id = server.add_contact(tenant, name)  # already in Xero before the first invoice
	before = len(server.contacts(tenant))
	customer = _customer(frappe, name)
	_invoice(frappe, company, customer)
	frappe.db.commit()
	_sync(frappe)
	assert frappe.db.get_value("Customer", customer, "atlas_xero_contact_id") == contact_id
	assert len(server.contacts(tenant)) == before  # matched by name, not created again
	doc = frappe.get_doc("Customer", customer)
	doc.tax_id = "GB123456789"
	doc.save(ignore_permissions=True)
	frappe.db.commit()
	jobs_ = frappe.get_all("Sync Job", filters={"job_type": "Xero Contact", "reference_name": customer}, pluck="name")
	assert len(jobs_) == 1
	_sync(frappe)
	assert frappe.db.get_value("Sync Job", jobs_[0], "status") == "succeeded"
	xero = next(c for c in server.contacts(tenant) if c["ContactID"] == contact_id)
	assert xero["TaxNumber"] == "GB123456789"


def test_push_from_a_start_date_only(site, connected):
	from frappe.utils import add_days, today

	from atlas_integrations.xero import push_existing

	frappe = site
	company = connected["company"]
	customer = _customer(frappe, f"Xero Dated {uuid.uuid4().hex[:6]}")
	frappe.db.set_value("Xero Connection", company, {"sync_from": today()})
	frappe.db.commit()
	try:
		old = frappe.get_doc({"doctype": "Sales Invoice", "company": company, "customer": customer, "set_posting_time": 1,
							  "posting_date": add_days(today(), -10), "due_date": add_days(today(), 20),
							  "items": [{"item_code": ITEM, "qty": 1, "rate": 10}]})
		old.set_missing_values()
		old.insert(ignore_permissions=True)
		old.submit()
		frappe.db.commit()
		assert not frappe.get_all("Sync Job", filters={"reference_name": old.name})  # before the start date
		assert not frappe.db.get_value("Sales Invoice", old.name, "atlas_xero_status")
		frappe.db.set_value("Xero Connection", company, "sync_from", add_days(today(), -10))
		frappe.db.commit()
		assert push_existing.queue_invoices(company) >= 1
		frappe.db.commit()
		_sync(frappe)
		assert frappe.db.get_value("Sales Invoice", old.name, "atlas_xero_status") == "Xero Synced"
	finally:
		frappe.db.set_value("Xero Connection", company, "sync_from", None)
		frappe.db.commit()


def test_a_contact_id_of_another_organisation_is_not_reused(site, connected):
	frappe = site
	customer = _customer(frappe, f"Xero Moved {uuid.uuid4().hex[:6]}")
	stale = str(uuid.uuid4())  # from the organisation the Company was connected to before
	frappe.db.set_value("Customer", customer, {"atlas_xero_contact_id": stale, "atlas_xero_tenant_id": str(uuid.uuid4())})
	name = _invoice(frappe, connected["company"], customer)
	frappe.db.commit()
	_sync(frappe)
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_status") == "Xero Synced", \
		frappe.db.get_value("Sales Invoice", name, "atlas_xero_error")
	contact, tenant = frappe.db.get_value("Customer", customer, ["atlas_xero_contact_id", "atlas_xero_tenant_id"])
	assert contact != stale and tenant == connected["tenant"]
	assert any(c["ContactID"] == contact for c in connected["server"].contacts(connected["tenant"]))
