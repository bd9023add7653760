"""Benchmark: what the mail guard (atlas_integrations/guard.py) costs each RPC request, on the real site.

The guard runs on every ``/api/method`` call after login. For a method on its allowlist it only looks the
method up; otherwise it collects the arguments' strings (JSON parsed) and asks MariaDB once whether any of
them names mail. This times :func:`atlas_integrations.guard.check_request` in-process against a real
request context for typical desk calls (allowlisted list reads, a Link search, a form save, a chart with
a JSON definition, a 1 MB JSON argument) and prints the median and p95 in microseconds. Target: a few
hundred microseconds for a desk call (a desk request costs tens of milliseconds).

    scripts/run-in-bench.sh bench/mail_guard.py [--rounds 500]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
	parser = argparse.ArgumentParser()
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	parser.add_argument("--rounds", type=int, default=500)
	args = parser.parse_args()
	sys.path.insert(0, str(ROOT))
	import frappe
	from werkzeug.test import EnvironBuilder
	from werkzeug.wrappers import Request

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	from atlas_integrations import guard

	big = json.dumps([{"field": f"value {i}", "n": i} for i in range(20000)])
	cases = {
		"allowlisted list read (reportview.get)": ("/api/method/frappe.desk.reportview.get",
												   {"doctype": "Communication", "fields": '["name"]'}),
		"Link search (allowlisted override)": ("/api/method/frappe.desk.search.search_link",
											   {"doctype": "Customer", "txt": "acme"}),
		"not allowlisted, names nothing (a report)": ("/api/method/frappe.desk.query_report.run",
													  {"report_name": "General Ledger", "filters": '{"company": "x"}'}),
		"not allowlisted, chart JSON on Customer": ("/api/method/frappe.desk.doctype.dashboard_chart.dashboard_chart.get",
													{"chart": json.dumps({"document_type": "Customer", "type": "Line",
																		  "filters_json": "[]"})}),
		"not allowlisted, names mail (refused)": ("/api/method/frappe.desk.doctype.dashboard_chart.dashboard_chart.get",
												  {"chart": json.dumps({"document_type": "Communication"})}),
		"not allowlisted, 1 MB JSON argument": ("/api/method/frappe.desk.query_report.run", {"filters": big}),
	}
	print(f"mail guard, {args.rounds} rounds per case (microseconds per request):")
	for label, (path, form) in cases.items():
		env = EnvironBuilder(path=path, method="POST", data=form).get_environ()
		frappe.local.request = Request(env)
		frappe.local.form_dict = frappe._dict(form)
		times = []
		for _ in range(args.rounds):
			start = time.perf_counter()
			try:
				guard.check_request()
			except frappe.PermissionError:
				frappe.local.message_log = []
			times.append((time.perf_counter() - start) * 1e6)
		times.sort()
		print(f"  {label:45s} median {statistics.median(times):8.0f}   p95 {times[int(len(times) * 0.95)]:8.0f}")
	frappe.destroy()


if __name__ == "__main__":
	main()
