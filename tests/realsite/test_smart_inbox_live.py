"""The Smart Inbox page updates live when the sync stores new mail: Frappe's realtime server (node
socketio.js) runs as in production, behind a front door that routes /socket.io/ to it (nginx's job), and
the open page shows the new thread without a reload."""

from __future__ import annotations

import email.utils
import uuid

from tests.conftest import BENCH
from tests.realsite.conftest import TEST_PASSWORD, login, run_worker
from tests.realsite.mail import make_mail
from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.realsite.reply_fixtures import DISPATCHER, box  # noqa: F401 - the fixture


def test_page_shows_new_mail_without_reload(site, web, box):  # noqa: F811
	from playwright.sync_api import sync_playwright

	from atlas_integrations.testing.realtime import FrontDoor, start_socketio

	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	port, node = start_socketio(str(BENCH), log=open(BENCH / "logs" / "atlas-test-socketio.log", "a"))
	door = FrontDoor(web, port).start()
	subject = f"Live delivery {uuid.uuid4().hex[:6]}"
	try:
		with sync_playwright() as p:
			browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
			try:
				ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
				assert ctx.request.post(door.url + "/api/method/login", form={"usr": DISPATCHER, "pwd": TEST_PASSWORD}).ok
				page = ctx.new_page()
				page.set_default_timeout(60_000)
				console: list[str] = []
				page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
				# the mailbox's own view: what other tests left in the shared view cannot push the new row off the
				# first page (a fixed Date once sorted it below 50 other threads of that date: never shown)
				page.goto(f"{door.url}/app/smart-inbox?view=mailbox:{box['account']}")
				page.wait_for_selector(".atlas-row")
				try:
					page.wait_for_function("frappe.realtime.socket && frappe.realtime.socket.connected", timeout=30_000)
				except Exception:
					raise AssertionError(f"socket.io did not connect: {console[-10:]}") from None
				# as behind nginx, the client upgrades to a websocket through the front door (no console error)
				page.wait_for_function("frappe.realtime.socket.io.engine.transport.name === 'websocket'", timeout=30_000)
				# the page's own subscription is what refreshes it; this one only records that the event came
				page.evaluate("""() => { window.__atlas_same_page = true; window.__atlas_events = [];
					frappe.realtime.on("atlas_inbox_update", (m) => window.__atlas_events.push(m)); }""")
				assert page.locator(f".atlas-row:has-text('{subject}')").count() == 0
				# new mail in the shared mailbox; the sync stores it (a real rq worker)
				box["server"].insert_message(box["mailbox"], make_mail("walkin@customer.example", box["mailbox"], subject,
																		"Can you deliver tomorrow?",
																		date=email.utils.formatdate(usegmt=True)))
				admin = login(web)
				r = admin.post(f"{web}/api/method/atlas_integrations.api.gmail.sync_now", data={"account": box["account"]})
				assert r.status_code == 200, r.text[:300]
				proc = run_worker()
				assert proc.returncode == 0, proc.stdout[-1000:]
				try:  # the worker has published the event: the socket delivers it
					page.wait_for_function(f"window.__atlas_events.some((m) => m.mailbox === {box['account']!r})",
										   timeout=30_000)
				except Exception:
					log = (BENCH / "logs" / "atlas-test-socketio.log").read_text(errors="replace")[-1500:]
					raise AssertionError(f"no atlas_inbox_update reached the page; console {console[-10:]}; front door "
										 f"{door.errors[-5:]}; socketio.js log {log}") from None
				page.wait_for_selector(f".atlas-row:has-text('{subject}')", timeout=30_000)
				assert not [c for c in console if c.startswith("error:")], console
				assert page.evaluate("window.__atlas_same_page === true")  # no reload: the realtime event did it
				page.screenshot(path=str(ARTIFACTS / "smart-inbox-live-update.png"))
			finally:
				browser.close()
	finally:
		door.stop()
		node.terminate()
		node.wait(timeout=10)
