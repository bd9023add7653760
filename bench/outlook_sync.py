"""Benchmark: initial sync of an Outlook mailbox of N messages into the real site through the local Graph
server (HTTPS; MSAL and ``requests`` on the site's side).

The corpus (../shared/corpus) is replicated to N messages with fresh Message-IDs (bench/initial_sync.py's
``replicate``), delivered to a Graph mailbox's Inbox, connected through MSAL's real sign-in and synced by one
real rq worker.

Graph allows 10,000 requests per 10 minutes per mailbox (16.7 requests/s); one ``$value`` per message makes
about 16.6 messages/s the ceiling for one mailbox. ``--throttle on`` (the default) has the local server
enforce that window and Graph's 4 concurrent requests (429 with Retry-After beyond either), and the site
paces itself at them: target >= 15 messages/s with no 429 left unhandled and no failed message.
``--throttle off`` measures the engine: no limit at the server, no pacing at the site: target >= 150
messages/s, <= 1.01 Graph requests per message counting the requests inside each ``$batch`` and the delta
pages.

    make bench-outlook                        # N = 10,000 unthrottled, then at Graph's limits
    scripts/run-in-bench.sh bench/outlook_sync.py --messages 2000 --throttle off
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("ATLAS_CORPUS", ROOT.parent / "shared" / "corpus"))


def main() -> int:
	parser = argparse.ArgumentParser()
	parser.add_argument("--messages", type=int, default=10_000)
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	parser.add_argument("--throttle", choices=("on", "off"), default="on",
						help="Graph's per-mailbox limits at the server, and the site's pacing at them")
	parser.add_argument("--keep", action="store_true", help="keep the synced data in the site")
	args = parser.parse_args()

	import frappe
	from frappe.installer import update_site_config

	sys.path.insert(0, str(ROOT))
	from bench.initial_sync import replicate, tree_rss
	from atlas_integrations.testing.graph import GraphTestServer
	from tests.realsite.outlook_fixtures import CLIENT_ID, CLIENT_SECRET, OutlookAccounts

	raws = [Path(p).read_bytes() for p in sorted(glob.glob(str(CORPUS / "**" / "*.eml"), recursive=True))]
	messages = replicate(raws, args.messages)
	server = GraphTestServer().start()
	server.add_client(CLIENT_ID, CLIENT_SECRET)
	server.throttle = args.throttle == "on"
	address = "bench-outlook@contoso-bench.example"
	box = server.mailbox(address)
	t, now = time.monotonic(), time.time()
	for i, raw in enumerate(messages):  # spread over the last 20 days, inside the 30-day window
		box.add(raw, "inbox", received=now - (len(messages) - i) * 20 * 86400 / len(messages))
	print(f"local Graph server {server.base}: {len(messages)} messages in {address}'s Inbox, loaded in "
		  f"{time.monotonic() - t:.1f} s; Graph's limits at the server: {args.throttle}")

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	config = {"atlas_microsoft_login_url": server.base, "atlas_graph_api_url": server.graph_url,
			  "atlas_microsoft_ca_bundle": server.ca_path,
			  # without Graph's limits the engine's own speed is measured: the site does not pace itself
			  "atlas_outlook_requests_per_10_minutes": None if args.throttle == "on" else "0"}
	previous = {k: frappe.conf.get(k) for k in config}
	for key, value in config.items():
		update_site_config(key, value if value is not None else "None")
	frappe.local.conf.update({k: v for k, v in config.items() if v is not None})
	settings = frappe.get_single("Atlas Settings")
	saved = (settings.pipeline_disabled, settings.body_storage_mode)
	settings.update({"microsoft_client_id": CLIENT_ID, "microsoft_client_secret": CLIENT_SECRET,
					 "microsoft_tenant": "common", "workspace_state": "Active", "body_storage_mode": "full",
					 "pipeline_disabled": 0})
	settings.save(ignore_permissions=True)
	frappe.db.commit()
	helper = OutlookAccounts(frappe, server)
	try:
		account = helper.create("bench outlook")
		from atlas_integrations.outlook import oauth

		query = helper.authorize(account, address)
		server.request_counts.clear()
		server.throttled_counts.clear()
		started = time.monotonic()
		started_wall = frappe.utils.now_datetime()
		oauth.complete(query)  # queues the initial sync
		frappe.db.commit()
		worker = subprocess.Popen([sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", args.site,
								   "worker", "--queue", "long", "--burst"],
								  stdout=open("../logs/atlas-bench-outlook-worker.log", "w"), stderr=subprocess.STDOUT)
		peak = 0
		while worker.poll() is None:
			peak = max(peak, tree_rss(worker.pid))
			time.sleep(0.2)
		elapsed = time.monotonic() - started
		frappe.db.rollback()
		job = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["*"], order_by="creation asc")[0]
		stored = frappe.db.count("Communication", {"atlas_mailbox": account})
		finished = (job.finished_at - started_wall).total_seconds() if job.finished_at else elapsed
		used = server.request_counts[address]
		print(f"Sync Job {job.status}: listed {job.listed}, created {job.created}, failed {job.failed} "
			  f"{job.last_error or ''}")
		print(f"messages stored        {stored}")
		print(f"end to end             {finished:.1f} s  ->  {stored / max(finished, 1e-9):.1f} messages/s")
		print(f"in the worker's run    {job.duration:.1f} s  ->  {stored / max(job.duration or 0, 1e-9):.1f} messages/s")
		print(f"Graph requests         {job.api_calls} sent by the site ({job.api_calls / max(1, stored):.3f} per "
			  f"message, the requests inside each $batch counted); the server served {used}")
		print(f"429 answered           {server.throttled_counts[address]} by the server; most requests in flight "
			  f"at once {server.max_in_flight[address]} (Graph allows 4)")
		print(f"run details            {job.details}")
		print(f"peak worker RSS        {peak / 2**20:.0f} MiB")
		return 0 if job.status == "succeeded" and stored == args.messages and not job.failed else 1
	finally:
		if not args.keep:
			helper.cleanup()
		for key, value in previous.items():
			update_site_config(key, value or "None")
		frappe.db.rollback()
		frappe.db.set_single_value("Atlas Settings", "pipeline_disabled", saved[0] or 0)
		frappe.db.commit()
		server.stop()


if __name__ == "__main__":
	sys.exit(main())
