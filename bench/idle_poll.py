"""Benchmark: polling idle accounts. N connected accounts whose mailboxes have no changes are polled
by the scheduler hook (enqueue_due_accounts -> poll sweep jobs) and drained by ONE real rq worker.

Each idle poll must cost one Gmail API call (history.list), create no Sync Job and take little time in
the site. Prints API calls per poll, the scheduler hook's time, and accounts polled per minute (and ms
per account) by one worker.

    scripts/run-in-bench.sh bench/idle_poll.py --accounts 1000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID, CLIENT_SECRET = "atlas-bench.apps.googleusercontent.com", "atlas-bench-secret"


def main() -> int:
	parser = argparse.ArgumentParser()
	parser.add_argument("--accounts", type=int, default=1000)
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	args = parser.parse_args()

	import frappe
	from frappe.installer import update_site_config
	from frappe.utils.password import set_encrypted_password

	sys.path.insert(0, str(ROOT))
	from atlas_integrations.gmail.client import SCOPES
	from atlas_integrations.gmail.sync import enqueue_due_accounts
	from atlas_integrations.testing.gmail_server import GmailTestServer

	server = GmailTestServer().start()
	server.register_client(CLIENT_ID, CLIENT_SECRET)
	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	frappe.set_user("Administrator")
	keys = ("atlas_gmail_api_url", "atlas_google_auth_url", "atlas_google_token_url", "atlas_google_revoke_url")
	previous = {k: frappe.conf.get(k) for k in keys}
	urls = dict(zip(keys, (server.url, server.url + "o/oauth2/auth", server.url + "token", server.url + "revoke")))
	for key, value in urls.items():
		update_site_config(key, value)
	frappe.local.conf.update(urls)
	settings = frappe.get_single("Atlas Settings")
	settings.update({"google_client_id": CLIENT_ID, "google_client_secret": CLIENT_SECRET, "workspace_state": "Active",
					 "poll_interval_minutes": 1})
	settings.save(ignore_permissions=True)
	# only the benchmark's accounts are due
	others = frappe.get_all("Gmail Account", filters={"enabled": 1}, pluck="name")
	frappe.db.set_value("Gmail Account", {"name": ["in", others or [""]]}, "enabled", 0)

	names = []
	t = time.monotonic()
	expiry = datetime.utcnow() + timedelta(hours=1)
	for i in range(args.accounts):
		mailbox = f"idle-{i}@atlas-bench.example"
		server.add_mailbox(mailbox)
		server.insert_message(mailbox, f"From: a@example.org\r\nSubject: {i}\r\n\r\nx\r\n".encode())
		tokens = server.issue_tokens(mailbox, client_id=CLIENT_ID, scopes=SCOPES)
		doc = frappe.get_doc({"doctype": "Gmail Account", "account_name": mailbox, "user": "Administrator",
							  "account_type": "Shared workspace mailbox", "email_address": mailbox, "enabled": 1,
							  "status": "ACTIVE", "health": "healthy", "sync_stage": "Incremental",
							  "history_id": str(server.mailbox(mailbox).history_id)}).insert(ignore_permissions=True)
		set_encrypted_password("Gmail Account", doc.name, tokens["refresh_token"], "refresh_token")
		set_encrypted_password("Gmail Account", doc.name, tokens["access_token"], "access_token")
		frappe.db.set_value("Gmail Account", doc.name, "access_token_expires_at", expiry)
		names.append(doc.name)
	frappe.db.commit()
	print(f"{args.accounts} idle connected accounts set up in {time.monotonic() - t:.1f} s")
	try:
		server.reset_stats()
		marker = frappe.utils.now_datetime()
		t = time.monotonic()
		queued = enqueue_due_accounts()
		hook = time.monotonic() - t
		assert set(names) <= set(queued), "not every idle account was due"
		started = time.monotonic()
		subprocess.run([sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", args.site,
						"worker", "--queue", "long", "--burst"], capture_output=True, text=True)
		elapsed = time.monotonic() - started
		frappe.db.rollback()
		polled = frappe.db.count("Gmail Account", {"name": ["in", names], "last_processed_at": [">=", marker]})
		jobs = frappe.db.count("Sync Job", {"reference_name": ["in", names]})
		calls = server.stats()["api_calls"]
		print(f"accounts polled        {polled} of {len(names)}; Sync Jobs created {jobs} (idle polls create none)")
		print(f"Gmail API calls/poll   {calls / max(1, polled):.2f} (server counted {calls})")
		print(f"scheduler hook         {hook * 1000:.0f} ms for {len(queued)} accounts "
			  f"({-(-len(queued) // 200)} sweep jobs of up to 200)")
		print(f"one worker             {elapsed:.1f} s incl. start-up -> {polled / elapsed * 60:.0f} accounts polled per "
			  f"minute ({elapsed / max(1, polled) * 1000:.0f} ms per account)")
		return 0 if polled == len(names) and jobs == 0 else 1
	finally:
		frappe.db.rollback()
		frappe.db.delete("Sync Job", {"reference_name": ["in", names]})
		frappe.db.delete("__Auth", {"doctype": "Gmail Account", "name": ["in", names]})
		frappe.db.delete("Gmail Account", {"name": ["in", names]})
		frappe.db.set_value("Gmail Account", {"name": ["in", others or [""]]}, "enabled", 1)
		frappe.db.commit()
		for key, value in previous.items():
			update_site_config(key, value or "None")
		server.stop()


if __name__ == "__main__":
	sys.exit(main())
