"""A long initial sync shows its progress in the desk, in headless Chromium: the Gmail Account form's bar
moves as the realtime events arrive (Frappe's socket.io server behind a front door, as in production), the
Smart Inbox page shows a bar for the mailbox, a form opened mid-sync without any socket shows the current
figures from the Sync Job, and the bar ends at "done". Screenshots are kept."""

from __future__ import annotations

import time

from tests.conftest import BENCH
from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, start_worker
from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

OWNER = "atlas-progress-browser@atlas-test.example"
BAR_JS = """() => { const b = document.querySelector('.atlas-progress-area .atlas-progress');
	return b ? {done: +b.dataset.done, total: +b.dataset.total, status: b.dataset.status,
				text: b.querySelector('.atlas-progress-text').textContent,
				width: b.querySelector('.atlas-progress-bar').style.width} : null; }"""


def test_gmail_account_form_shows_a_moving_bar_during_a_slow_sync(site, google, web):
	from playwright.sync_api import sync_playwright

	from atlas_integrations.testing.realtime import FrontDoor, start_socketio

	frappe = site
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	ensure_user(frappe, OWNER, ("Atlas Dispatcher",))
	helper = Accounts(frappe, google)
	port, node = start_socketio(str(BENCH), log=open(BENCH / "logs" / "atlas-test-socketio.log", "a"))
	door = FrontDoor(web, port).start()
	worker = None
	try:
		account, email = helper.connect(user=OWNER, account_type="Personal")  # the initial sync is queued
		# Gmail answers each message 80 ms late: ~4 s a batch of 50, ~22 s for the 276 messages
		google.delay_response(r"/users/me/messages/[^/]+$", 0.08, count=10_000, method="GET")
		with sync_playwright() as p:
			browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
			try:
				ctx = browser.new_context(viewport={"width": 1400, "height": 900})
				assert ctx.request.post(door.url + "/api/method/login", form={"usr": OWNER, "pwd": TEST_PASSWORD}).ok
				page = ctx.new_page()
				page.set_default_timeout(60_000)
				console: list[str] = []
				page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
				page.goto(f"{door.url}/app/gmail-account/{account}")
				page.wait_for_selector(".form-layout")
				page.wait_for_function("frappe.realtime.socket && frappe.realtime.socket.connected", timeout=30_000)
				inbox = ctx.new_page()
				inbox.goto(f"{door.url}/app/smart-inbox?view=mine")
				inbox.wait_for_selector(".atlas-list")
				inbox.wait_for_function("frappe.realtime.socket && frappe.realtime.socket.connected", timeout=30_000)
				page.bring_to_front()
				page.evaluate("window.__atlas_same_page = true")

				worker = start_worker()
				seen, shot, restored, inbox_bar = [], False, None, None
				deadline = time.monotonic() + 180
				while time.monotonic() < deadline:
					bar = page.evaluate(BAR_JS)
					if bar and (not seen or bar != seen[-1]):
						seen.append(bar)
					if bar and bar["status"] == "succeeded":
						break
					if bar and bar["status"] == "processing" and bar["done"] and bar["total"] and bar["done"] < bar["total"]:
						if not shot and bar["done"] >= 100:
							page.screenshot(path=str(ARTIFACTS / "gmail-account-sync-progress.png"))
							shot = True
						if inbox_bar is None:
							inbox.wait_for_selector(".atlas-sync-progress .atlas-progress[data-status='processing']",
													timeout=15_000)
							inbox_bar = inbox.evaluate("""() => { const b = document.querySelector('.atlas-sync-progress .atlas-progress');
								return {job: b.dataset.syncJob, done: +b.dataset.done, total: +b.dataset.total,
										text: b.textContent.replace(/\\s+/g, ' ').trim()}; }""")
							inbox.wait_for_timeout(800)  # the bar's width transition (Bootstrap: 0.6 s)
							inbox.screenshot(path=str(ARTIFACTS / "smart-inbox-sync-progress.png"))
						if restored is None and bar["done"] >= 100:
							# the same form through the plain web server (no socket.io at all): the bar comes from
							# the Sync Job's stored figures alone
							plain = browser.new_context(viewport={"width": 1400, "height": 900})
							assert plain.request.post(web + "/api/method/login", form={"usr": OWNER, "pwd": TEST_PASSWORD}).ok
							other = plain.new_page()
							other.goto(f"{web}/app/gmail-account/{account}")
							other.wait_for_selector(".atlas-progress-area .atlas-progress", timeout=30_000)
							restored = other.evaluate(BAR_JS)
							plain.close()
					if worker.poll() is not None and not bar:
						break
					time.sleep(0.25)
				out, _ = worker.communicate(timeout=300)
				assert worker.returncode == 0, out[-2000:]
				assert seen, f"no bar appeared; console {console[-10:]}; front door {door.errors[-5:]}"
				dones = [b["done"] for b in seen if b["status"] == "processing" and b["done"]]
				assert len(set(dones)) >= 3 and dones == sorted(dones), seen  # it moved, forward only
				running = [b for b in seen if b["status"] == "processing" and b["total"] and 0 < b["done"] < b["total"]]
				assert running and all(b["width"] != "100%" for b in running), seen
				mid = running[len(running) // 2]
				assert f"{mid['done']} of {mid['total']} messages" in mid["text"].replace(",", "")
				assert "a minute" in mid["text"] and "left" in mid["text"], mid
				last = seen[-1]
				listed = frappe.db.get_value("Sync Job", {"reference_name": account, "job_type": "Gmail Sync"}, "listed")
				assert (last["status"], last["done"], last["total"], last["width"]) == ("succeeded", listed, listed, "100%"), seen
				assert "Done" in last["text"]
				assert page.evaluate("window.__atlas_same_page === true")  # moved by the events, no reload
				assert shot and inbox_bar and inbox_bar["done"] > 0 and str(inbox_bar["total"]) == str(mid["total"]), inbox_bar
				assert f"Syncing mail · {email}" in inbox_bar["text"], inbox_bar
				assert restored and restored["status"] == "processing" and 0 < restored["done"] <= restored["total"], restored
				page.wait_for_function("!document.querySelector('.atlas-progress-area .atlas-progress')", timeout=15_000)
				page.screenshot(path=str(ARTIFACTS / "gmail-account-sync-done.png"))
				# an admin's Sync Job list: the Progress column with the final figures, as text
				admin = browser.new_context(viewport={"width": 1400, "height": 900})
				password = frappe.conf.get("admin_password") or "admin"
				assert admin.request.post(web + "/api/method/login", form={"usr": "Administrator", "pwd": password}).ok
				jobs_page = admin.new_page()
				jobs_page.goto(f"{web}/app/sync-job?job_type=Gmail%20Sync&reference_name={account}")
				cell = jobs_page.wait_for_selector(".atlas-progress-cell", timeout=30_000)
				assert cell.text_content().replace(",", "").startswith(f"{listed}/{listed} · ") and "/min" in cell.text_content()
				tooltip = cell.get_attribute("title").replace(",", "")
				assert f"{listed} of {listed} messages" in tooltip and "a minute" in tooltip and "Done" in tooltip, tooltip
				jobs_page.screenshot(path=str(ARTIFACTS / "sync-job-list-progress.png"))
				print(f"\nbrowser: {len(seen)} bar states on the form: {[(b['done'], b['total'], b['status']) for b in seen]}; "
					  f"restored without a socket at {restored['done']}/{restored['total']}; Smart Inbox {inbox_bar}")
			finally:
				browser.close()
	finally:
		google.clear_faults()
		if worker is not None and worker.poll() is None:
			worker.wait(timeout=300)
		door.stop()
		node.terminate()
		node.wait(timeout=10)
		frappe.db.rollback()
		helper.cleanup()


def test_admin_forms_and_the_sync_job_list_show_a_running_jobs_stored_figures(site, web):
	"""Through the plain web server (no socket at all), as an admin: an Inbound Route being erased, a Xero
	Connection pushing existing invoices and the Sync Job itself show the figures their running Sync Job
	stored (done of total, the rate, the time left) as a bar; the Sync Job list as its Progress column."""
	import uuid

	from frappe.utils import add_to_date, now_datetime
	from playwright.sync_api import sync_playwright

	from atlas_integrations import jobs
	from atlas_integrations.progress import Progress

	frappe = site
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	route = frappe.get_doc({"doctype": "Inbound Route", "route_name": f"Progress route {uuid.uuid4().hex[:6]}",
							"inbound_address": f"progress-{uuid.uuid4().hex[:6]}@atlas-test.example",
							"signing_key": "progress-key"}).insert(ignore_permissions=True).name
	company = frappe.defaults.get_global_default("company")
	made_connection = not frappe.db.exists("Xero Connection", company)
	if made_connection:
		frappe.get_doc({"doctype": "Xero Connection", "company": company}).insert(ignore_permissions=True)
	# the form shows the Connection's open jobs oldest first: a pull another test module left pending would
	# come before this one (that module's Xero server is gone; nothing will run it)
	frappe.db.sql("""update `tabSync Job` set status = 'failed', last_error = 'left open by an earlier test'
		where reference_doctype = 'Xero Connection' and reference_name = %s and status in ('pending', 'processing')""",
				  company)
	running = {}
	for job_type, doctype, name, done, total, stage in (
			("Mailbox Erase", "Inbound Route", route, 120, 400, "Deleting messages"),
			("Xero Push Existing", "Xero Connection", company, 20, 55, "Pushing invoices to Xero")):
		job = jobs.create(job_type, doctype, name, payload={"company": company}, trigger="test").name
		assert jobs.claim(job)
		frappe.db.set_value("Sync Job", job, "started_at", add_to_date(now_datetime(), seconds=-60))  # a minute in
		Progress(job).update(done, total, stage=stage)
		running[doctype] = job
	frappe.db.commit()
	errors: list[str] = []
	try:
		with sync_playwright() as p:
			browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
			try:
				ctx = browser.new_context(viewport={"width": 1400, "height": 900})
				password = frappe.conf.get("admin_password") or "admin"
				assert ctx.request.post(web + "/api/method/login", form={"usr": "Administrator", "pwd": password}).ok
				page = ctx.new_page()
				page.set_default_timeout(60_000)
				page.on("pageerror", lambda e: errors.append(str(e)))
				expected = {
					f"/app/inbound-route/{route}": (120, 400, "Deleting synced data",
													"120 of 400 records · 120 a minute · about 2 min left"),
					f"/app/xero-connection/{company}": (20, 55, "Pushing existing invoices to Xero",
														"20 of 55 invoices · 20 a minute · about 2 min left"),
					f"/app/sync-job/{running['Inbound Route']}": (120, 400, "Deleting synced data",
																  "120 of 400 records · 120 a minute · about 2 min left"),
				}
				for path, (done, total, title, text) in expected.items():
					page.goto(web + path)
					page.wait_for_selector(".atlas-progress-area .atlas-progress", timeout=30_000)
					bar = page.evaluate(BAR_JS)
					assert (bar["done"], bar["total"], bar["status"]) == (done, total, "processing"), (path, bar)
					assert bar["width"] == f"{100 * done // total}%" and bar["text"] == text, (path, bar)
					assert page.locator(".atlas-progress-area .atlas-progress-title").first.text_content() == title
				page.screenshot(path=str(ARTIFACTS / "sync-job-form-progress.png"))
				page.goto(f"{web}/app/sync-job?job_type=Mailbox%20Erase&reference_name={route}")
				cell = page.wait_for_selector(".atlas-progress-cell", timeout=30_000)
				assert cell.text_content() == "120/400 · 120/min · 2 min left", cell.text_content()
				assert cell.get_attribute("title") == "120 of 400 records · 120 a minute · about 2 min left"
				assert not errors, errors
			finally:
				browser.close()
	finally:
		frappe.db.rollback()
		frappe.db.delete("Sync Job", {"name": ["in", list(running.values())]})
		frappe.delete_doc("Inbound Route", route, force=True, ignore_permissions=True)
		if made_connection:
			frappe.delete_doc("Xero Connection", company, force=True, ignore_permissions=True)
		frappe.db.commit()
