"""Benchmark: payments for 1,000 synced invoices read back from Xero (the local Xero-compatible server,
xero-python, a real rq worker, the tenant's shared rate limiter at Xero's 60 calls a minute).

Seeds 1,000 submitted Sales Invoices with bulk inserts (as ``bench/xero_invoices.py`` does), connects the
bench Company and pushes them (not timed), then pays every invoice "in Xero" (900 in full, 100 in part)
and times one pull: the incremental read of invoices and payments changed since the connection, with
"Create Payment Entries" on (each payment a submitted ERPNext Payment Entry). Then pulls again (nothing
new) and checks that no Payment Entry was posted twice.

Prints wall time, Accounting API calls of the pull, Payment Entries posted and per second.

    scripts/run-in-bench.sh bench/xero_payments.py [--invoices 1000 --customers 100]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import xero_invoices as base  # noqa: E402 - the seed and connection of the invoice benchmark

BANK = "Atlas Xero Bench Bank"


def worker(site: str) -> subprocess.CompletedProcess:
	return subprocess.run([sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, "worker",
						   "--queue", "long,short,default", "--burst"], stdout=open("../logs/atlas-xero-bench-worker.log", "a"),
						  stderr=subprocess.STDOUT, timeout=3600)


def bank_account(frappe) -> str:
	name = frappe.db.get_value("Account", {"company": base.COMPANY, "account_type": "Bank", "is_group": 0}, "name")
	if name:
		return name
	parent = frappe.db.get_value("Account", {"company": base.COMPANY, "account_type": "Bank", "is_group": 1}, "name") or \
		frappe.db.get_value("Account", {"company": base.COMPANY, "root_type": "Asset", "is_group": 1}, "name")
	return frappe.get_doc({"doctype": "Account", "account_name": BANK, "company": base.COMPANY, "parent_account": parent,
						   "account_type": "Bank", "is_group": 0}).insert(ignore_permissions=True).name


def receivables(frappe, names: list[str]) -> None:
	"""The Payment Ledger rows a submitted Sales Invoice has (bulk inserts), so that ERPNext sees each seeded
	invoice's outstanding amount when a Payment Entry is allocated to it (GL rows are left out: nothing
	here reads them)."""
	from frappe.utils import now_datetime

	now = now_datetime()
	rows = frappe.db.sql("""select name, customer, debit_to, grand_total, posting_date, due_date from `tabSales Invoice`
		where name in %(names)s""", {"names": names}, as_dict=True)
	frappe.db.bulk_insert("Payment Ledger Entry", [
		"name", "creation", "modified", "owner", "modified_by", "docstatus", "posting_date", "account_type", "account",
		"party_type", "party", "voucher_type", "voucher_no", "against_voucher_type", "against_voucher_no", "amount",
		"account_currency", "amount_in_account_currency", "delinked", "company", "due_date"],
		[(frappe.generate_hash(length=10), now, now, "Administrator", "Administrator", 1, r.posting_date, "Receivable",
		  r.debit_to, "Customer", r.customer, "Sales Invoice", r.name, "Sales Invoice", r.name, r.grand_total, "GBP",
		  r.grand_total, 0, base.COMPANY, r.due_date) for r in rows])
	frappe.db.commit()


def cleanup(frappe) -> None:
	frappe.db.sql("""delete per from `tabPayment Entry Reference` per join `tabPayment Entry` pe on pe.name = per.parent
		where pe.company=%s""", base.COMPANY)
	frappe.db.sql("delete from `tabGL Entry` where company=%s and voucher_type='Payment Entry'", base.COMPANY)
	frappe.db.sql("delete from `tabPayment Ledger Entry` where company=%s and voucher_type='Payment Entry'", base.COMPANY)
	frappe.db.sql("delete from `tabPayment Entry` where company=%s", base.COMPANY)
	frappe.db.sql("delete from `tabPayment Ledger Entry` where voucher_no like 'XB-SINV-%%'")
	frappe.db.sql("delete from `tabSync Job` where job_type='Xero Payment' and payload like %s", f"%{base.COMPANY}%")
	frappe.db.sql("delete from `tabSync Job` where reference_doctype='Xero Connection' and reference_name=%s", base.COMPANY)
	frappe.db.commit()
	base.cleanup(frappe)


def main() -> int:
	parser = argparse.ArgumentParser()
	parser.add_argument("--invoices", type=int, default=1000)
	parser.add_argument("--customers", type=int, default=100)
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	args = parser.parse_args()

	import frappe
	from frappe.utils import add_days, today

	from atlas_integrations.testing import xero_site
	from atlas_integrations.testing.site_web import start_site_web
	from atlas_integrations.testing.xero import XeroTestServer
	from atlas_integrations.xero import payments

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	cleanup(frappe)
	names = base.seed(frappe, args.invoices, args.customers)
	receivables(frappe, names)
	server = XeroTestServer().start()
	site_url, web = start_site_web(args.site, log=open("../logs/atlas-xero-bench-web.log", "a"))
	try:
		tenant = server.add_tenant("Atlas Xero Payments Bench", base_currency="GBP")
		server.set_consent(tenants=[tenant])
		xero_site.point_site_at(frappe, server, base.CLIENT_ID, base.CLIENT_SECRET, site_url)
		frappe.get_doc({"doctype": "Xero Connection", "company": base.COMPANY, "status": "not connected",
						"sync_from": add_days(today(), -7), "push_existing": 1, "pull_payments": 1,
						"create_payment_entries": 1, "pull_interval_minutes": 600,
						"bank_map": [{"xero_account_code": "090", "erpnext_account": bank_account(frappe)}]}).insert(
			ignore_permissions=True)
		frappe.db.commit()
		xero_site.connect(frappe, site_url, base.COMPANY)
		t0 = time.monotonic()
		for _ in range(10):
			worker(args.site)
			frappe.db.rollback()
			synced = frappe.db.count("Sales Invoice", {"name": ["like", "XB-SINV-%"], "atlas_xero_status": "Xero Synced"})
			if synced == len(names):
				break
		print(f"pushed {synced}/{len(names)} invoices to Xero in {time.monotonic() - t0:.1f} s (not the measure)")
		frappe.db.set_value("Xero Connection", base.COMPANY, "last_pull_at", frappe.utils.now_datetime())
		frappe.db.sql("delete from `tabSync Job` where job_type='Xero Pull' and reference_name=%s", base.COMPANY)
		frappe.db.commit()
		ids = [i["InvoiceID"] for i in server.invoices(tenant) if i["InvoiceNumber"].startswith("XB-SINV-")]
		for n, invoice_id in enumerate(ids):
			if n % 10 == 9:
				total = next(i["Total"] for i in server.invoices(tenant) if i["InvoiceID"] == invoice_id)
				server.pay_invoice(tenant, invoice_id, round(total / 2, 2), account_code="090", reference=f"part {n}")
			else:
				server.pay_invoice(tenant, invoice_id, account_code="090", reference=f"BACS {n}")
		print(f"paid {len(ids)} invoices in Xero ({len(ids) // 10} in part)")
		server.clear_requests()
		payments.queue_pull(base.COMPANY, trigger="bench")
		frappe.db.commit()
		t1 = time.monotonic()
		worker(args.site)
		wall = time.monotonic() - t1
		frappe.db.rollback()
		job = frappe.get_all("Sync Job", filters={"job_type": "Xero Pull", "reference_name": base.COMPANY},
							 fields=["status", "details", "duration"], order_by="creation desc", limit=1)[0]
		calls = server.requests_received(tenant)
		posted = frappe.db.count("Payment Entry", {"company": base.COMPANY, "docstatus": 1})
		paid = frappe.db.count("Sales Invoice", {"name": ["like", "XB-SINV-%"], "atlas_xero_invoice_status": "PAID"})
		print(f"pull: {job.status} in {wall:.1f} s wall (worker start included; job {job.duration or 0:.1f} s); "
			  f"{len(calls)} Accounting API calls ({', '.join(sorted({r['path'].rsplit('/', 1)[-1] for r in calls}))}); "
			  f"{posted} Payment Entries posted ({posted / max(job.duration or wall, 0.001):.1f}/s); {paid} invoices PAID")
		print(f"figures: {job.details}")
		for why, count in frappe.db.sql("""select last_error, count(*) from `tabSync Job` where job_type='Xero Payment'
			and status='failed' group by last_error order by count(*) desc limit 3"""):
			print(f"  failed Xero Payment jobs: {count} x {why}")
		server.clear_requests()
		payments.queue_pull(base.COMPANY, trigger="bench")
		frappe.db.commit()
		t2 = time.monotonic()
		worker(args.site)
		frappe.db.rollback()
		again = frappe.db.count("Payment Entry", {"company": base.COMPANY, "docstatus": 1})
		dupes = frappe.db.sql("""select count(*) from (select atlas_xero_payment_id from `tabPayment Entry` where
			company=%s and docstatus=1 group by atlas_xero_payment_id having count(*) > 1) d""", base.COMPANY)[0][0]
		print(f"pull again: {time.monotonic() - t2:.1f} s, {len(server.requests_received(tenant))} calls, "
			  f"Payment Entries {again} (duplicates {dupes})")
		return 0 if posted == len(ids) and again == posted and not dupes else 1
	finally:
		xero_site.unpoint_site(frappe)
		cleanup(frappe)
		web.terminate()
		server.stop()


if __name__ == "__main__":
	sys.exit(main())
