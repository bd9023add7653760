"""The main job, end to end on real parts: sync a real mailbox into the real site and show the result.

Run by ``make demo`` (``scripts/demo.sh``) with the bench's Python from ``sites/``::

    python -m atlas_integrations.testing.demo --site atlas.localhost --corpus ../shared/corpus

It starts the local Google-compatible server on the corpus, the site's web server, configures Atlas
Settings and the endpoint keys, connects a Gmail Account through the real OAuth redirect flow over HTTP
(login, connect, Google consent, callback), runs the initial sync on a real rq worker and prints a summary.
"""

from __future__ import annotations

import argparse
import collections
import email
import email.policy
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CLIENT_ID = "atlas-demo.apps.googleusercontent.com"
CLIENT_SECRET = "atlas-demo-secret"


def _mailbox_owner(corpus: str) -> str:
	"""The corpus's most frequent sender: the demo mailbox belongs to them, so their mail is 'sent'."""
	counts = collections.Counter()
	for path in glob.glob(os.path.join(corpus, "**", "*.eml"), recursive=True):
		with open(path, "rb") as f:
			try:
				msg = email.message_from_binary_file(f, policy=email.policy.compat32)
				counts[email.utils.parseaddr(str(msg.get("From", "")))[1].lower()] += 1
			except Exception:
				continue
	counts.pop("", None)
	return counts.most_common(1)[0][0]


def main(argv: list[str] | None = None) -> int:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--site", default=os.environ.get("ATLAS_SITE", "atlas.localhost"))
	parser.add_argument("--corpus", required=True)
	parser.add_argument("--web-port", type=int, default=int(os.environ.get("ATLAS_WEB_PORT", "8000")))
	parser.add_argument("--gmail-port", type=int, default=int(os.environ.get("ATLAS_GMAIL_PORT", "8765")))
	parser.add_argument("--days", type=int, default=30, help="backfill window (days)")
	args = parser.parse_args(argv)

	import frappe
	import requests
	from frappe.installer import update_site_config

	from atlas_integrations.testing.gmail_server import GmailTestServer
	from atlas_integrations.testing.site_web import free_port, start_site_web

	corpus = str(Path(args.corpus).resolve())
	owner = _mailbox_owner(corpus)
	gmail = GmailTestServer(port=free_port(args.gmail_port)).start()
	gmail.register_client(CLIENT_ID, CLIENT_SECRET)
	gmail.add_mailbox(owner)
	loaded = gmail.load_eml_dir(owner, corpus, spread_days=min(25, args.days - 1), sent_from=[owner])
	print(f"Local Gmail server {gmail.url}: mailbox {owner} with {len(loaded)} messages from {corpus}")

	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	for key, value in {
		"atlas_gmail_api_url": gmail.url,
		"atlas_google_auth_url": gmail.url + "o/oauth2/auth",
		"atlas_google_token_url": gmail.url + "token",
		"atlas_google_revoke_url": gmail.url + "revoke",
	}.items():
		update_site_config(key, value)
	settings = frappe.get_single("Atlas Settings")
	settings.update({"google_client_id": CLIENT_ID, "google_client_secret": CLIENT_SECRET,
					 "workspace_state": "Active", "default_backfill_days": args.days})
	settings.save(ignore_permissions=True)
	name = frappe.db.get_value("Gmail Account", {"account_name": "Demo workspace mailbox"})
	if name:  # a previous demo: start from a clean mailbox
		from frappe.utils.password import remove_encrypted_password

		comms = frappe.get_all("Communication", filters={"atlas_gmail_account": name}, pluck="name")
		if comms:
			frappe.db.delete("File", {"attached_to_doctype": "Communication", "attached_to_name": ["in", comms]})
			frappe.db.delete("Communication", {"name": ["in", comms]})
		frappe.db.delete("Inbox Thread", {"gmail_account": name})
		frappe.db.delete("Sync Job", {"reference_name": name})
		remove_encrypted_password("Gmail Account", name, "refresh_token")
		frappe.db.set_value("Gmail Account", name, {"history_id": None, "status": "NOT CONNECTED",
													 "email_address": None, "sync_stage": "Not started"})
	else:
		name = frappe.get_doc({"doctype": "Gmail Account", "account_name": "Demo workspace mailbox",
							   "account_type": "Shared workspace mailbox", "user": "Administrator"}).insert(
			ignore_permissions=True).name
	frappe.db.commit()

	pid_file = Path("../logs/atlas-demo-web.pid")
	if pid_file.exists():  # the previous demo's web server: replace it
		try:
			os.killpg(int(pid_file.read_text()), 15)
			time.sleep(1)
		except (OSError, ValueError):
			pass
	site_url, web = start_site_web(args.site, port=args.web_port, log=open("../logs/atlas-demo-web.log", "a"),
								   new_session=True)
	pid_file.write_text(str(web.pid))
	try:
		http = requests.Session()
		admin_password = frappe.conf.get("admin_password") or "admin"
		r = http.post(site_url + "/api/method/login", data={"usr": "Administrator", "pwd": admin_password}, timeout=30)
		r.raise_for_status()
		r = http.post(site_url + "/api/method/atlas_integrations.api.gmail.connect", data={"account": name}, timeout=30)
		r.raise_for_status()
		auth_url = r.json()["message"]["authorization_url"]
		print(f"Consent URL from the site: {auth_url.split('?')[0]}?… (offline access, PKCE)")
		r = http.get(auth_url, timeout=60, allow_redirects=True)  # Google consent -> site callback -> desk
		hops = " -> ".join(h.headers.get("Location", "")[:70] for h in r.history)
		print(f"OAuth redirect flow: {hops}")
		frappe.db.rollback()
		account = frappe.get_doc("Gmail Account", name)
		if account.status != "SYNCING":
			raise SystemExit(f"connect failed: account status {account.status}; {r.status_code} {r.text[:300]}")
		print(f"Connected {account.email_address}; initial sync queued. Running a real rq worker…")

		started = time.monotonic()
		worker = subprocess.run(
			[sys.executable, "-m", "frappe.utils.bench_helper", "frappe", "--site", args.site, "worker",
			 "--queue", "long,default,short", "--burst"],
			capture_output=True, text=True, timeout=1800,
		)
		elapsed = time.monotonic() - started
		if worker.returncode != 0:
			print(worker.stdout[-2000:], worker.stderr[-2000:])
		frappe.db.rollback()
		return _summary(frappe, name, site_url, elapsed, gmail.stats(owner))
	finally:
		gmail.stop()
		if os.environ.get("ATLAS_DEMO_STOP_WEB") == "1":
			web.terminate()
			pid_file.unlink(missing_ok=True)
		else:
			print(f"The site's web server keeps running for the desk (pid {web.pid}); stop it with: kill {web.pid}")


def _summary(frappe, account: str, site_url: str, elapsed: float, stats: dict) -> int:
	jobs = frappe.get_all("Sync Job", filters={"reference_name": account}, fields=["*"], order_by="creation desc")
	job = jobs[0]
	comms = frappe.get_all("Communication", filters={"atlas_gmail_account": account},
						   fields=["name", "sent_or_received", "atlas_parse_error", "atlas_skipped_attachments"])
	names = [c.name for c in comms]
	files = frappe.db.count("File", {"attached_to_doctype": "Communication", "attached_to_name": ["in", names]}) if names else 0
	threads = frappe.get_all("Inbox Thread", filters={"gmail_account": account},
							 fields=["subject", "message_count", "labels"], order_by="message_count desc", limit=5)
	acc = frappe.get_doc("Gmail Account", account)
	print()
	print("=" * 72)
	print(f"Gmail Account   {acc.account_name} <{acc.email_address}>: {acc.status}, health {acc.health}")
	print(f"Inbox Threads   {frappe.db.count('Inbox Thread', {'gmail_account': account})}")
	print(f"Messages        {len(comms)} ({sum(c.sent_or_received == 'Received' for c in comms)} received, "
		  f"{sum(c.sent_or_received == 'Sent' for c in comms)} sent)")
	skipped = sum(len(json.loads(c.atlas_skipped_attachments or "[]")) for c in comms)
	print(f"Attachments     {files} stored as private Files, {skipped} recorded but not stored (over the size cap or refused by Frappe)")
	print(f"Parse errors    {sum(1 for c in comms if c.atlas_parse_error)} messages stored with their error")
	print(f"Sync Job        {job.name}: {job.status}; listed {job.listed}, created {job.created}, "
		  f"already present {job.already_present}, failed {job.failed}; Gmail API calls {job.api_calls} "
		  f"({job.api_calls / max(1, job.listed):.3f}/message, {stats.get('quota_units', 0)} quota units); "
		  f"{job.duration or 0:.1f} s in the worker, {elapsed:.1f} s wall")
	print("Largest threads:")
	for t in threads:
		print(f"  {t.message_count:3d}  {t.subject[:60]}  [{t.labels}]")
	print(f"See them in the desk: {site_url}/app/inbox-thread?gmail_account={account} (Administrator / admin)")
	print("=" * 72)
	return 0 if job.status == "succeeded" and len(comms) == job.listed else 1


if __name__ == "__main__":
	sys.exit(main())
