"""Benchmark: 1,000 submitted Sales Invoices for 100 customers synced to Xero (the local Xero-compatible
server, xero-python, real rq workers, the tenant's shared rate limiter at Xero's 60 calls a minute).

The invoices are seeded with bulk inserts (not 1,000 ORM submits) into a bench Company, dated before the
connection; the Company is then connected through the real OAuth redirect flow with "Push Invoices From"
set, so the app queues them itself (``push_existing``) and two workers drain the queue.

Prints wall time (connect -> every invoice "Xero Synced"), Accounting API calls beyond contacts (target
<= 25), contact calls, the peak calls in any 60 s window (must stay <= 60) and the mismatches found.

    scripts/run-in-bench.sh bench/xero_invoices.py [--invoices 1000 --customers 100]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

COMPANY, ABBR = "Atlas Xero Bench Ltd", "AXB"
ITEM = "ATLAS-XERO-BENCH"
CLIENT_ID, CLIENT_SECRET = "atlas-xero-bench", "atlas-xero-bench-secret"


def peak(times: list[float], window: float = 60.0) -> int:
	"""Most requests in any ``window`` seconds."""
	times = sorted(times)
	best, j = 0, 0
	for i, t in enumerate(times):
		while times[j] <= t - window:
			j += 1
		best = max(best, i - j + 1)
	return best


def seed(frappe, invoices: int, customers: int) -> list[str]:
	"""The bench Company, its customers and ``invoices`` submitted Sales Invoices (bulk inserts)."""
	from frappe.utils import add_days, now_datetime, today

	if not frappe.db.exists("Company", COMPANY):
		frappe.get_doc({"doctype": "Company", "company_name": COMPANY, "abbr": ABBR, "default_currency": "GBP",
						"country": "United Kingdom"}).insert(ignore_permissions=True)
	if not frappe.db.exists("Item", ITEM):
		frappe.get_doc({"doctype": "Item", "item_code": ITEM, "item_name": "Bench service", "is_stock_item": 0,
						"item_group": "All Item Groups", "stock_uom": "Nos"}).insert(ignore_permissions=True)
	cleanup(frappe)
	income = frappe.db.get_value("Company", COMPANY, "default_income_account")
	debtors = frappe.db.get_value("Company", COMPANY, "default_receivable_account")
	now, day = now_datetime(), add_days(today(), -3)
	names = [f"Xero Bench Customer {i:03d}" for i in range(customers)]
	frappe.db.bulk_insert("Customer", ["name", "customer_name", "customer_type", "customer_group", "territory",
									   "creation", "modified", "owner", "modified_by", "docstatus"],
						  [(n, n, "Company", "All Customer Groups", "All Territories", now, now, "Administrator",
							"Administrator", 0) for n in names])
	rng = random.Random(7)
	si_rows, item_rows, out = [], [], []
	for i in range(invoices):
		name = f"XB-SINV-{i:05d}"
		qty, rate = rng.randint(1, 9), round(rng.uniform(5, 500), 2)
		total = round(qty * rate, 2)
		si_rows.append((name, COMPANY, names[i % customers], names[i % customers], day, day, "GBP", 1.0, "GBP",
						total, total, total, total, total, total, 0, 1, 0, debtors, "Unpaid", now, now,
						"Administrator", "Administrator"))
		item_rows.append((frappe.generate_hash(length=10), name, "Sales Invoice", "items", 1, ITEM, "Bench service",
						  "Bench service", qty, rate, total, rate, total, income, "Nos", 1.0, now, now,
						  "Administrator", "Administrator", 1))
		out.append(name)
	frappe.db.bulk_insert("Sales Invoice", [
		"name", "company", "customer", "customer_name", "posting_date", "due_date", "currency", "conversion_rate",
		"price_list_currency", "total", "net_total", "grand_total", "base_grand_total", "outstanding_amount",
		"rounded_total", "rounding_adjustment", "disable_rounded_total", "is_return", "debit_to", "status",
		"creation", "modified", "owner", "modified_by"], si_rows)
	frappe.db.sql("update `tabSales Invoice` set docstatus=1 where name like 'XB-SINV-%%'")
	frappe.db.bulk_insert("Sales Invoice Item", [
		"name", "parent", "parenttype", "parentfield", "idx", "item_code", "item_name", "description", "qty", "rate",
		"amount", "net_rate", "net_amount", "income_account", "uom", "conversion_factor", "creation", "modified",
		"owner", "modified_by", "docstatus"], item_rows)
	frappe.db.commit()
	return out


def cleanup(frappe) -> None:
	frappe.db.sql("delete from `tabSales Invoice Item` where parent like 'XB-SINV-%%'")
	frappe.db.sql("delete from `tabSales Invoice` where name like 'XB-SINV-%%'")
	frappe.db.sql("delete from `tabSync Job` where reference_name like 'XB-SINV-%%'")
	frappe.db.sql("delete from `tabCustomer` where name like 'Xero Bench Customer %%'")
	if frappe.db.exists("Xero Connection", COMPANY):
		frappe.delete_doc("Xero Connection", COMPANY, ignore_permissions=True, force=True)
	frappe.db.commit()


def main() -> int:
	parser = argparse.ArgumentParser()
	parser.add_argument("--invoices", type=int, default=1000)
	parser.add_argument("--customers", type=int, default=100)
	parser.add_argument("--workers", type=int, default=2)
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	parser.add_argument("--keep", action="store_true", help="keep the seeded documents")
	args = parser.parse_args()

	import frappe
	from frappe.utils import add_days, today

	from atlas_integrations.testing import xero_site
	from atlas_integrations.testing.site_web import start_site_web
	from atlas_integrations.testing.xero import XeroTestServer

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	started = time.monotonic()
	names = seed(frappe, args.invoices, args.customers)
	print(f"seeded {len(names)} submitted Sales Invoices for {args.customers} customers in {time.monotonic() - started:.1f} s")
	server = XeroTestServer().start()
	site_url, web = start_site_web(args.site, log=open("../logs/atlas-xero-bench-web.log", "a"))
	try:
		tenant = server.add_tenant("Atlas Xero Bench", base_currency="GBP")
		server.set_consent(tenants=[tenant])
		xero_site.point_site_at(frappe, server, CLIENT_ID, CLIENT_SECRET, site_url)
		frappe.get_doc({"doctype": "Xero Connection", "company": COMPANY, "status": "not connected",
						"sync_from": add_days(today(), -7), "push_existing": 1}).insert(ignore_permissions=True)
		frappe.db.commit()
		began = time.time()
		t0 = time.monotonic()
		status = xero_site.connect(frappe, site_url, COMPANY)
		if frappe.db.get_value("Xero Connection", COMPANY, "status") != "connected":
			raise SystemExit(f"connect failed (callback {status})")
		at_connect = [r["path"].rsplit("/", 1)[-1] for r in server.requests_received(tenant)]
		workers = [subprocess.Popen([sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", args.site,
									 "worker", "--queue", "long,short", "--burst"],
									stdout=open("../logs/atlas-xero-bench-worker.log", "a"), stderr=subprocess.STDOUT)
				   for _ in range(args.workers)]
		deadline = time.monotonic() + 1800
		synced = 0
		while time.monotonic() < deadline:
			frappe.db.rollback()
			synced = frappe.db.count("Sales Invoice", {"name": ["like", "XB-SINV-%"], "atlas_xero_status": "Xero Synced"})
			queued = frappe.db.count("Sync Job", {"reference_name": ["like", "XB-SINV-%"]})
			open_jobs = frappe.db.count("Sync Job", {"reference_name": ["like", "XB-SINV-%"], "status": ["in", ["pending", "processing"]]})
			if synced == len(names) or (queued >= len(names) and not open_jobs):
				break
			if all(w.poll() is not None for w in workers):  # a burst ended with work queued later: start another
				workers = [subprocess.Popen([sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site",
											 args.site, "worker", "--queue", "long,short", "--burst"],
											stdout=open("../logs/atlas-xero-bench-worker.log", "a"), stderr=subprocess.STDOUT)]
			time.sleep(0.5)
		wall = time.monotonic() - t0
		for w in workers:  # burst workers end when the queues are empty; a late drain is not waited for
			try:
				w.wait(timeout=30)
			except subprocess.TimeoutExpired:
				w.terminate()
		received = [r for r in server.requests_received(tenant) if r["at"] >= began]
		contacts = [r for r in received if "/contacts" in r["path"].lower()]
		beyond = len(received) - len(contacts)
		in_xero = {i["InvoiceNumber"]: i for i in server.invoices(tenant)}
		mismatch = sum(1 for n in names if n not in in_xero)
		duplicates = len(server.invoices(tenant)) - len(in_xero)
		failed = frappe.db.count("Sync Job", {"reference_name": ["like", "XB-SINV-%"], "status": "failed"})
		print(f"synced {synced}/{len(names)} Sales Invoices in {wall:.1f} s wall (connect -> all synced), "
			  f"{args.workers} workers; failed jobs {failed}; missing in Xero {mismatch}; duplicates {duplicates}")
		print(f"Accounting API calls: {len(received)} in all = {len(contacts)} contact calls + {beyond} beyond contacts "
			  f"(target <= 25; {len(at_connect)} of them at connect: {', '.join(at_connect)})")
		print(f"peak calls in any 60 s window: {peak([r['at'] for r in received])} (limit 60)")
		return 0 if synced == len(names) and beyond <= 25 and not duplicates else 1
	finally:
		for w in workers if "workers" in locals() else []:
			if w.poll() is None:
				w.terminate()
		xero_site.unpoint_site(frappe)
		if not args.keep:
			cleanup(frappe)
		web.terminate()
		server.stop()


if __name__ == "__main__":
	sys.exit(main())
