"""Payments back from Xero on the real site (real ERPNext Payment Entries, rq workers, xero-python against the
local Xero server, payments made "in Xero" by the test): partial and full payments are recorded and
posted once per PaymentID; a payment deleted in Xero cancels its entry; a credit-note allocation or an
overpayment settles an invoice without a payment; repeated and overlapping pulls post nothing twice; a
spent day budget pauses the pull (pending, no attempt used)."""

from __future__ import annotations

import uuid


from tests.realsite.conftest import run_worker, start_worker
from tests.realsite.xero_fixtures import xero  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import _customer, _invoice, _sync, connected  # noqa: F401 - the fixture
from tests.realsite.xero_fixtures import BANK_CODE, _entries, posting  # noqa: F401 - fixtures and helpers


def _pull(frappe, company: str, **ids) -> None:
	from atlas_integrations.xero import payments

	payments.queue_pull(company, trigger="test", **ids)
	frappe.db.commit()
	_sync(frappe)


def _xero_state(frappe, invoice: str):
	frappe.db.rollback()
	return frappe.db.get_value("Sales Invoice", invoice, ["atlas_xero_invoice_status", "atlas_xero_amount_paid",
														  "atlas_xero_amount_due", "atlas_xero_amount_credited",
														  "atlas_xero_fully_paid_on", "outstanding_amount", "status",
														  "atlas_xero_invoice_id", "grand_total", "rounded_total"],
							   as_dict=True)


def _synced_invoice(frappe, company: str, tag: str, rate: float = 50, qty: float = 2) -> str:
	name = _invoice(frappe, company, _customer(frappe, f"Xero Payer {tag}"), rate=rate, qty=qty)
	frappe.db.commit()
	_sync(frappe)
	assert frappe.db.get_value("Sales Invoice", name, "atlas_xero_status") == "Xero Synced"
	return name


def test_partial_then_full_payment_are_recorded_and_posted_once(site, posting):
	frappe = site
	company, server, tenant = posting["company"], posting["server"], posting["tenant"]
	name = _synced_invoice(frappe, company, uuid.uuid4().hex[:6])  # 100.00
	xero_id = frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id")
	first = server.pay_invoice(tenant, xero_id, 30, account_code=BANK_CODE, reference="BACS 1")
	_pull(frappe, company)
	state = _xero_state(frappe, name)
	assert (state.atlas_xero_invoice_status, state.atlas_xero_amount_paid, state.atlas_xero_amount_due) == ("AUTHORISED", 30, 70)
	entries = _entries(frappe, name)
	assert len(entries) == 1 and entries[0].paid_amount == 30 and entries[0].reference_no == "BACS 1"
	assert entries[0].atlas_xero_payment_id == first["PaymentID"].lower() and entries[0].reference_date
	assert state.outstanding_amount == 70
	server.pay_invoice(tenant, xero_id, account_code=BANK_CODE)  # the rest
	_pull(frappe, company)
	state = _xero_state(frappe, name)
	assert state.atlas_xero_invoice_status == "PAID" and state.atlas_xero_amount_due == 0 and state.atlas_xero_fully_paid_on
	assert len(_entries(frappe, name)) == 2 and state.outstanding_amount == 0 and state.status == "Paid"


def test_replayed_and_overlapping_pulls_post_no_payment_twice(site, posting):
	frappe = site
	company, server, tenant = posting["company"], posting["server"], posting["tenant"]
	names = [_synced_invoice(frappe, company, uuid.uuid4().hex[:6]) for _ in range(3)]
	for name in names:
		server.pay_invoice(tenant, frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id"), 25,
						   account_code=BANK_CODE)
	_pull(frappe, company)
	_pull(frappe, company)  # the same pull again
	# the cursors lost: everything since the connection is read again
	frappe.db.set_value("Xero Connection", company, {"invoices_pulled_until": None, "payments_pulled_until": None})
	frappe.db.commit()
	_pull(frappe, company, invoice_ids=[frappe.db.get_value("Sales Invoice", n, "atlas_xero_invoice_id") for n in names])
	# two workers pulling at once (two pull jobs handed out past the one-at-a-time rules)
	from atlas_integrations import jobs
	from atlas_integrations.xero.jobs import XERO_PULL

	for n in range(2):
		job = jobs.create(XERO_PULL, "Xero Connection", company, payload={"company": company, "action": "pull"},
						  trigger=f"race-{n}")
		frappe.enqueue("atlas_integrations.xero.drain.run_sync_job", queue="short", job_id=f"race-pull-{job.name}",
					   enqueue_after_commit=True, sync_job=job.name)
	frappe.db.set_value("Xero Connection", company, "payments_pulled_until", None)
	frappe.db.commit()
	workers = [start_worker(), start_worker()]
	for w in workers:
		out, _ = w.communicate(timeout=600)
		assert w.returncode == 0, out
	_sync(frappe)  # a pull deferred by the lock runs now
	for name in names:
		entries = _entries(frappe, name)
		assert len(entries) == 1 and entries[0].paid_amount == 25, entries
	assert len(set(frappe.get_all("Payment Entry", filters={"atlas_xero_payment_id": ["is", "set"]},
								  pluck="atlas_xero_payment_id"))) == \
		frappe.db.count("Payment Entry", {"atlas_xero_payment_id": ["is", "set"]})


def test_payment_deleted_in_xero_cancels_its_entry(site, posting):
	frappe = site
	company, server, tenant = posting["company"], posting["server"], posting["tenant"]
	name = _synced_invoice(frappe, company, uuid.uuid4().hex[:6])
	xero_id = frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id")
	payment = server.pay_invoice(tenant, xero_id, account_code=BANK_CODE)
	_pull(frappe, company)
	assert _xero_state(frappe, name).atlas_xero_invoice_status == "PAID" and len(_entries(frappe, name)) == 1
	server.delete_payment(tenant, payment["PaymentID"])
	_pull(frappe, company)
	state = _xero_state(frappe, name)
	assert state.atlas_xero_invoice_status == "AUTHORISED" and state.atlas_xero_amount_due == 100
	assert not state.atlas_xero_fully_paid_on
	assert _entries(frappe, name) == [] and len(_entries(frappe, name, docstatus=2)) == 1
	assert state.outstanding_amount == 100
	_pull(frappe, company)  # replayed: still one cancelled entry, none posted again
	assert _entries(frappe, name) == [] and len(_entries(frappe, name, docstatus=None)) == 1


def test_credit_note_allocation_and_overpayment_settle_invoices_without_a_payment(site, posting):
	from erpnext.accounts.doctype.sales_invoice.sales_invoice import make_sales_return

	frappe = site
	company, server, tenant = posting["company"], posting["server"], posting["tenant"]
	name = _synced_invoice(frappe, company, uuid.uuid4().hex[:6])
	ret = make_sales_return(name)  # the whole invoice returned: a credit note allocated to it in Xero
	ret.insert(ignore_permissions=True)
	ret.submit()
	frappe.db.commit()
	_sync(frappe)
	note_id = frappe.db.get_value("Sales Invoice", ret.name, "atlas_xero_invoice_id")
	_pull(frappe, company, credit_note_ids=[note_id])
	state = _xero_state(frappe, name)
	assert state.atlas_xero_amount_credited == 100 and state.atlas_xero_amount_due == 0
	assert state.atlas_xero_invoice_status == "PAID" and state.atlas_xero_amount_paid == 0
	assert _entries(frappe, name, docstatus=None) == []  # settled by credit: no Payment Entry
	other = _synced_invoice(frappe, company, uuid.uuid4().hex[:6])
	server.apply_overpayment(tenant, frappe.db.get_value("Sales Invoice", other, "atlas_xero_invoice_id"), 40)
	_pull(frappe, company)
	state = _xero_state(frappe, other)
	assert (state.atlas_xero_amount_credited, state.atlas_xero_amount_due) == (40, 60)


def test_unmapped_account_is_recorded_not_posted_and_a_spent_day_budget_pauses_the_pull(site, posting):
	from atlas_integrations.xero.client import tenant_limiter

	frappe = site
	company, server, tenant = posting["company"], posting["server"], posting["tenant"]
	name = _synced_invoice(frappe, company, uuid.uuid4().hex[:6])
	server.pay_invoice(tenant, frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id"), 10,
					   account_code="091")  # a Xero bank account the connection does not map
	_pull(frappe, company)
	assert _xero_state(frappe, name).atlas_xero_amount_paid == 10 and _entries(frappe, name) == []
	job = frappe.get_all("Sync Job", filters={"job_type": "Xero Pull", "reference_name": company, "status": "succeeded"},
						 fields=["details"], order_by="creation desc", limit=1)[0]
	assert "unmapped 1" in job.details.split(", ")
	# the organisation's day budget is spent: its pull waits (pending, no attempt used), nothing fails
	server.set_rate_limits(day=0)
	try:
		from atlas_integrations.xero import payments

		pending = payments.queue_pull(company, trigger="test")
		frappe.db.commit()
		assert run_worker().returncode == 0
		frappe.db.rollback()
		row = frappe.db.get_value("Sync Job", pending, ["status", "attempts", "next_retry_at"], as_dict=True)
		assert row.status == "pending" and row.attempts == 0 and row.next_retry_at
		other = tenant_limiter(f"another-{uuid.uuid4().hex[:6]}").state()  # another organisation is not paused
		assert other["paused_for"] == 0
	finally:
		server.set_rate_limits(day=5000)
		frappe.cache.delete(f"atlas:xero:{tenant}:paused_until")
		frappe.db.set_value("Sync Job", pending, "next_retry_at", None)
		frappe.db.commit()
		_sync(frappe)


def test_an_unexpected_error_in_a_pull_leaves_the_job_pending_with_its_payload_not_processing(site, posting):
	"""A job whose run raises something the drain does not expect (here a malformed payload) goes back to
	pending with the attempt counted, its payload kept and the reason in Last Error; the traceback is in
	an Error Log of the Xero Connection. Nothing stays "processing"."""
	import json

	from atlas_integrations import jobs

	frappe = site
	company = posting["company"]
	bad = {"company": company, "action": "pull", "invoice_ids": 5, "credit_note_ids": [], "contact_ids": []}
	name = jobs.create("Xero Pull", "Xero Connection", company, payload=bad, trigger="test").name
	frappe.db.commit()
	errors_before = frappe.db.count("Error Log", {"reference_doctype": "Xero Connection", "reference_name": company})
	try:
		from atlas_integrations.xero import drain

		drain.drain(company)
		frappe.db.rollback()
		row = frappe.db.get_value("Sync Job", name, ["status", "attempts", "last_error", "payload"], as_dict=True)
		assert row.status == "pending" and row.attempts == 1, row
		assert row.last_error.startswith("Unexpected error talking to Xero (TypeError)")
		assert json.loads(row.payload)["invoice_ids"] == 5  # the payload is kept as it was
		assert frappe.db.count("Error Log", {"reference_doctype": "Xero Connection",
											  "reference_name": company}) == errors_before + 1
	finally:
		frappe.db.rollback()
		frappe.db.delete("Sync Job", {"name": name})
		frappe.db.commit()


def test_a_payment_erpnext_refuses_is_a_failed_job_with_its_payload_and_retry_posts_it_once(site, posting):
	"""The mapping names a Mode of Payment that no longer exists: the Payment Entry cannot be saved, so the
	pull keeps the payment as a failed "Xero Payment" job (its payload and ERPNext's reason) and moves on;
	after the mapping is fixed, Retry posts it, and a second Retry posts nothing more."""
	import json

	from atlas_integrations import jobs

	frappe = site
	company, server, tenant = posting["company"], posting["server"], posting["tenant"]
	name = _synced_invoice(frappe, company, uuid.uuid4().hex[:6])
	row = frappe.db.get_value("Xero Bank Account Map", {"parent": company, "xero_account_code": BANK_CODE},
							  ["name", "mode_of_payment"], as_dict=True)
	frappe.db.set_value("Xero Bank Account Map", row.name, "mode_of_payment", "Atlas No Such Mode")
	frappe.db.commit()
	try:
		payment = server.pay_invoice(tenant, frappe.db.get_value("Sales Invoice", name, "atlas_xero_invoice_id"), 20,
									 account_code=BANK_CODE, reference="refused")
		_pull(frappe, company)
		assert _entries(frappe, name) == []
		failed = frappe.get_all("Sync Job", filters={"job_type": "Xero Payment", "reference_name": name},
								fields=["name", "status", "payload", "last_error"])
		assert len(failed) == 1 and failed[0].status == "failed", failed
		assert failed[0].last_error.startswith(f"Xero payment {payment['PaymentID'].lower()} not posted:")
		kept = json.loads(failed[0].payload)["payment"]
		assert (kept["payment_id"], kept["amount"], kept["reference"]) == (payment["PaymentID"].lower(), 20.0, "refused")
		_pull(frappe, company)  # read again: still one job, nothing posted
		assert frappe.db.count("Sync Job", {"job_type": "Xero Payment", "reference_name": name}) == 1
	finally:
		frappe.db.set_value("Xero Bank Account Map", row.name, "mode_of_payment", row.mode_of_payment)
		frappe.db.commit()
	jobs.retry(failed[0].name)
	frappe.db.commit()
	_sync(frappe)
	assert frappe.db.get_value("Sync Job", failed[0].name, "status") == "succeeded"
	entries = _entries(frappe, name)
	assert len(entries) == 1 and entries[0].paid_amount == 20 and entries[0].reference_no == "refused"
	frappe.db.set_value("Sync Job", failed[0].name, "status", "failed")  # a second Retry of the same payment
	frappe.db.commit()
	jobs.retry(failed[0].name)
	frappe.db.commit()
	_sync(frappe)
	assert len(_entries(frappe, name)) == 1
