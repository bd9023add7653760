"""The demo's desk is live: checked in headless Chromium against the running demo (``make demo-check``; CI
runs it after ``make demo`` on a fresh site).

As Administrator on the desk's front door (web server + Frappe's realtime server): the Smart Inbox page
opens and its socket connects; ``make demo-mail``'s delivery (Gmail pushes it, the resident worker syncs)
shows up on the open page without a reload; a reply sent from the page arrives at the local Gmail server;
"Sync now" on the Gmail Account form queues a sync that the resident worker runs. Fails on an error
dialog, a failed ``/api`` call or a console error. Screenshots in ``.atlas/artifacts/demo/``.

    python -m atlas_integrations.testing.demo_check --site demo.localhost --state .atlas/demo
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import json
import os
import sys
import time
import uuid
from pathlib import Path

CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
				 "--disable-component-update", "--disable-sync"]


def main(argv=None) -> int:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--site", default=os.environ.get("ATLAS_DEMO_SITE", "demo.localhost"))
	parser.add_argument("--state", required=True)
	parser.add_argument("--corpus", required=True)
	parser.add_argument("--gmail-url", required=True)
	parser.add_argument("--artifacts", default=str(Path(__file__).resolve().parents[2] / ".atlas" / "artifacts" / "demo"))
	args = parser.parse_args(argv)

	import frappe
	from playwright.sync_api import sync_playwright

	from atlas_integrations.testing.demo import deliver_one
	from atlas_integrations.testing.remote import RemoteGmail

	state = json.loads((Path(args.state) / "state.json").read_text())
	desk, account, owner = state["desk_url"], state["account"], state["owner"]
	gmail = RemoteGmail(args.gmail_url)
	frappe.init(site=args.site, sites_path=".")
	frappe.connect()
	shots = Path(args.artifacts)
	shots.mkdir(parents=True, exist_ok=True)
	errors: list[str] = []
	checks: list[str] = []
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
			assert ctx.request.post(desk + "/api/method/login", form={"usr": "Administrator", "pwd": "admin"}).ok
			page = ctx.new_page()
			page.set_default_timeout(60_000)
			page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
			page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
			page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "/api/" in r.url else None)

			# 1. the Smart Inbox page, live: a new message arrives on the open page
			page.goto(f"{desk}/app/smart-inbox?view=shared")
			page.wait_for_selector(".atlas-row")
			page.wait_for_function("frappe.realtime.socket && frappe.realtime.socket.connected", timeout=30_000)
			page.evaluate("window.__atlas_same_page = true")
			started = time.monotonic()
			args.mail = True
			if deliver_one(frappe, gmail, args.corpus, args) != 0:
				raise SystemExit("demo-mail: the message was not stored")
			thread = frappe.db.sql("""select name, subject from `tabInbox Thread` where mailbox=%s
				order by creation desc limit 1""", account, as_dict=True)[0]
			page.wait_for_selector(f".atlas-row[data-thread='{thread.name}']", timeout=60_000)
			assert page.evaluate("window.__atlas_same_page === true"), "the page reloaded"
			checks.append(f"a new message appeared on the open Smart Inbox page {time.monotonic() - started:.1f} s after "
						  f"delivery, without a reload")
			page.screenshot(path=str(shots / "demo-live-mail.png"))

			# 2. a reply from the page arrives at the local Gmail server
			page.goto(f"{desk}/app/smart-inbox?view=shared&thread={thread.name}")
			page.wait_for_selector(".atlas-thread-subject")
			page.click('[data-action="reply"]')
			page.wait_for_selector('[data-field="body"]')
			page.fill('[data-field="to"]', "buyer@demo-pallets.example")
			marker = f"Demo check reply {uuid.uuid4().hex[:8]}"
			page.fill('[data-field="body"]', marker)
			page.click('[data-action="send"]')
			page.wait_for_selector(".atlas-composer", state="detached")
			arrived = [m for m in gmail.dump_messages(owner)
					   if marker.encode() in base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4))]
			assert len(arrived) == 1, f"the reply is at the Gmail server {len(arrived)} times"
			msg = email.message_from_bytes(base64.urlsafe_b64decode(arrived[0]["raw"] + "=" * (-len(arrived[0]["raw"]) % 4)),
										   policy=email.policy.default)
			checks.append(f"a reply sent from the page arrived at the local Gmail server once ({msg['Subject']})")
			page.screenshot(path=str(shots / "demo-reply.png"))

			# 3. Sync now on the mailbox form: the resident worker runs it
			page.goto(f"{desk}/app/gmail-account/{account}")
			page.wait_for_selector("button:has-text('Sync now')")
			with page.expect_response(lambda r: "gmail.sync_now" in r.url) as answer:
				page.click("button:has-text('Sync now')")
			name = answer.value.json()["message"]["sync_job"]  # a new run, or the one already open
			deadline = time.monotonic() + 120
			status = None
			while time.monotonic() < deadline and status != "succeeded":
				frappe.db.rollback()
				status = frappe.db.get_value("Sync Job", name, "status")
				time.sleep(0.5)
			assert status == "succeeded", f"Sync now: Sync Job {name} is {status}"
			checks.append(f"Sync now on the mailbox form queued Sync Job {name}, which the resident worker ran")
			page.screenshot(path=str(shots / "demo-sync-now.png"))
		finally:
			browser.close()
	for line in checks:
		print("  ok ", line)
	if errors:
		print("Errors in the browser:\n  " + "\n  ".join(errors[:20]))
		return 1
	print(f"The live desk works (screenshots in {shots})")
	return 0


if __name__ == "__main__":
	sys.exit(main())
