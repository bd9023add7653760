"""Benchmark: polling idle accounts. N connected accounts whose mailboxes have no changes are polled
by the scheduler hook (enqueue_due_accounts) and drained by ONE real rq worker.

Each idle poll must cost one Gmail API call (history.list) and little time in the site. Prints the
API calls per poll, the time a poll spends inside the worker (p50/p95 of Sync Job duration, seconds),
the scheduler hook's own time, and accounts polled per minute by one worker.

    scripts/run-in-bench.sh bench/idle_poll.py --accounts 1000
"""

from __future__ import annotations

import argparse
import os
import statistics
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
		t = time.monotonic()
		queued = enqueue_due_accounts()
		frappe.db.commit()
		hook = time.monotonic() - t
		assert set(names) <= set(queued), "not every idle account was due"
		started = time.monotonic()
		worker = subprocess.run([sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", args.site,
								 "worker", "--queue", "long", "--burst"], capture_output=True, text=True)
		elapsed = time.monotonic() - started
		frappe.db.rollback()
		jobs = frappe.get_all("Sync Job", filters={"reference_name": ["in", names]},
							  fields=["status", "api_calls", "duration", "sync_mode"])
		ok = [j for j in jobs if j.status == "succeeded"]
		durations = sorted(j.duration for j in ok)
		calls = server.stats()["api_calls"]
		print(f"polls                  {len(jobs)} ({len(ok)} succeeded, modes {sorted({j.sync_mode for j in jobs})})")
		print(f"Gmail API calls/poll   {calls / max(1, len(jobs)):.2f} (server counted {calls})")
		print(f"time in the worker     p50 {statistics.median(durations) * 1000:.0f} ms, "
			  f"p95 {durations[int(len(durations) * 0.95) - 1] * 1000:.0f} ms per poll")
		print(f"scheduler hook         {hook:.1f} s for {len(queued)} accounts")
		print(f"one worker             {elapsed:.1f} s -> {len(jobs) / elapsed * 60:.0f} accounts polled per minute")
		return 0 if len(ok) == len(names) else 1
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
