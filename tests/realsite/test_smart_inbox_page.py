"""The Smart Inbox desk page in headless Chromium (Debian's chromium driven by Playwright): a dispatcher
sees only the threads they may see, opens a corpus thread, replies with an attachment (the local Gmail
server then holds exactly one new message in that threadId with the right In-Reply-To and References),
assigns the thread, creates a Task from it and comes back to it with Open in Inbox. Screenshots are kept
in .atlas/artifacts/browser/. Also: the page's list API answers within the same row rules as REST."""

from __future__ import annotations

import uuid

from tests.realsite.conftest import TEST_PASSWORD, Accounts, login
from tests.realsite.mail import make_mail, msg_ids
from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.realsite.reply_fixtures import DISPATCHER, _gmail_thread, _thread, box  # noqa: F401 - the fixture

API = "/api/method/atlas_integrations.api.smart_inbox"


def test_list_api_follows_the_row_rules(site, web, google, box):  # noqa: F811
	frappe = site
	helper = Accounts(frappe, google)
	try:
		# the Administrator's personal mailbox: never in a dispatcher's views
		private, private_box = helper.connect(helper.mailbox(load_corpus=False))
		secret = f"Private {uuid.uuid4().hex[:6]}"
		google.insert_message(private_box, make_mail("boss@atlas-test.example", private_box, secret, "for my eyes"))
		from tests.realsite.conftest import run_worker

		run_worker()
		frappe.db.rollback()
		assert frappe.db.exists("Inbox Thread", {"mailbox": private})
		dispatcher = login(web, DISPATCHER, TEST_PASSWORD)
		seen = []
		for view in ("all", "shared", "mine", "unassigned", f"mailbox:{private}"):
			r = dispatcher.get(f"{web}{API}.list_threads", params={"view": view, "page_length": 100})
			assert r.status_code == 200, r.text[:300]
			seen.extend(t["name"] for t in r.json()["message"]["threads"])
		private_threads = set(frappe.get_all("Inbox Thread", filters={"mailbox": private}, pluck="name"))
		assert seen and not private_threads & set(seen)
		r = dispatcher.get(f"{web}{API}.list_threads", params={"view": "all", "search": secret})
		assert r.json()["message"]["threads"] == []
		admin = login(web)
		r = admin.get(f"{web}{API}.list_threads", params={"view": "all", "search": secret})
		assert [t["name"] for t in r.json()["message"]["threads"]] == list(private_threads)
		# pages: no overlap, newest first
		first = dispatcher.get(f"{web}{API}.list_threads", params={"view": "shared", "page_length": 20}).json()["message"]
		second = dispatcher.get(f"{web}{API}.list_threads", params={"view": "shared", "start": 20, "page_length": 20}).json()["message"]
		assert first["more"] and not {t["name"] for t in first["threads"]} & {t["name"] for t in second["threads"]}
		times = [t["last_message_at"] for t in first["threads"] + second["threads"]]
		assert times == sorted(times, reverse=True)
		counts = dispatcher.get(f"{web}{API}.views").json()["message"]["counts"]
		# the shared view is every registered type's shared mailboxes (Gmail, Outlook, inbound routes)
		from atlas_integrations.inbox import mailboxes

		shared = mailboxes.shared()
		assert shared
		assert counts["shared"] == frappe.db.count("Inbox Thread", {"mailbox": ["in", [name for _t, name in shared]]})
	finally:
		helper.cleanup()


def test_dispatcher_works_a_thread_in_the_page(site, web, box):  # noqa: F811
	from playwright.sync_api import sync_playwright

	frappe = site
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	server, mailbox = box["server"], box["mailbox"]
	thread = _thread(frappe, box["account"])
	before = _gmail_thread(server, mailbox, thread.provider_thread_id)
	parent = max(before, key=lambda p: int(p[0]["internalDate"]))[1]
	attachment = ARTIFACTS / "reply-attachment.txt"
	attachment.write_text("Price list: 40 pallets at 12.50")
	errors: list[str] = []
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
			r = ctx.request.post(web + "/api/method/login", form={"usr": DISPATCHER, "pwd": TEST_PASSWORD})
			assert r.ok, r.text()
			page = ctx.new_page()
			page.on("pageerror", lambda exc: errors.append(str(exc)))
			# the plain web server has no socket.io (the live-update test starts one): its polling errors aside,
			# every console error and every failed request is a defect
			page.on("console", lambda m: errors.append("console: " + m.text)
					if m.type == "error" and "socket.io" not in m.text and "Failed to load resource" not in m.text else None)
			page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
					if r.status >= 400 and "socket.io" not in r.url else None)
			page.set_default_timeout(60_000)

			def shot(name: str) -> None:
				page.wait_for_timeout(500)
				page.screenshot(path=str(ARTIFACTS / f"smart-inbox-{name}.png"), full_page=False)

			page.goto(f"{web}/app/smart-inbox?view=shared")
			page.wait_for_selector(".atlas-row")
			shot("list")
			assert page.locator(".atlas-view.active").inner_text().startswith("Shared")
			# each row says which source its mail came through (the mailbox type's label)
			sources = page.locator(".atlas-row .atlas-source")
			assert sources.count() == page.locator(".atlas-row").count()
			assert page.locator('.atlas-row .atlas-source[data-source="Gmail Account"]').first.inner_text() == "Gmail"
			# keyboard: j moves the selection, Enter opens
			page.locator(".atlas-inbox").focus()
			page.keyboard.press("j")
			assert page.locator(".atlas-row.selected").count() == 1
			# open the thread through the page's own route (as Open in Inbox does)
			page.goto(f"{web}/app/smart-inbox?view=shared&thread={thread.name}")
			try:
				page.wait_for_selector(".atlas-thread-subject", timeout=20_000)
			except Exception:
				shot("thread-not-open")
				raise AssertionError(errors)
			page.wait_for_selector("iframe.atlas-reader")
			shot("thread")
			from atlas_integrations.inbox.text import plain

			assert page.locator(".atlas-thread-subject").inner_text().strip() == plain(thread.subject).strip()
			assert page.locator('.atlas-thread-meta [data-field="source"]').inner_text() == "Gmail"
			assert page.locator("iframe.atlas-reader").first.get_attribute("sandbox") == ""
			# reply with an attachment
			page.click('[data-action="reply"]')
			page.wait_for_selector('[data-field="body"]')
			page.fill('[data-field="to"]', "customer@atlas-test.example")
			page.fill('[data-field="body"]', "Thanks: our price list is attached.")
			page.click('[data-action="attach"]')
			page.wait_for_selector(".modal:visible .file-upload-area, .modal:visible input[type=file]", state="attached")
			page.set_input_files(".modal input[type=file]", str(attachment))
			page.wait_for_timeout(500)
			page.locator(".modal:visible .btn-modal-primary, .modal:visible .btn-primary").first.click()
			page.wait_for_selector(".atlas-composer-files .indicator-pill")
			shot("composer")
			page.click('[data-action="send"]')
			page.wait_for_selector(".atlas-composer", state="detached")
			shot("sent")
			after = _gmail_thread(server, mailbox, thread.provider_thread_id)
			new = [m for m in after if m[0]["id"] not in {b[0]["id"] for b in before}]
			assert len(new) == 1
			msg = new[0][1]
			assert msg_ids(msg["In-Reply-To"]) == msg_ids(parent["Message-ID"])
			assert msg_ids(msg["References"])[-1:] == msg_ids(parent["Message-ID"])
			assert [a.get_filename() for a in msg.iter_attachments()] == ["reply-attachment.txt"]
			# assign the thread (Frappe's assign dialog) to the dispatcher
			page.click('[data-action="assign"]')
			try:
				page.wait_for_selector(".modal:visible", timeout=15_000)
			except Exception:
				shot("assign-not-open")
				raise AssertionError(errors)
			page.wait_for_function("window.cur_dialog && cur_dialog.display")
			page.evaluate(f"cur_dialog.set_value('assign_to', ['{DISPATCHER}'])")
			page.wait_for_timeout(300)
			page.locator(".modal:visible .btn-modal-primary").first.click()
			page.wait_for_timeout(1500)
			frappe.db.rollback()
			assert DISPATCHER in (frappe.db.get_value("Inbox Thread", thread.name, "_assign") or "")
			# create a Task from it
			page.click('[data-action="create"]')
			page.wait_for_selector(".modal:visible")
			page.wait_for_function("window.cur_dialog && cur_dialog.display && cur_dialog.fields_dict.doctype")
			page.evaluate("cur_dialog.set_value('doctype', 'Task')")
			page.locator(".modal:visible .btn-modal-primary").first.click()
			page.wait_for_timeout(2000)
			frappe.db.rollback()
			task = frappe.db.get_value("Inbox Thread", thread.name, ["reference_doctype", "reference_name"], as_dict=True)
			assert task.reference_doctype == "Task" and task.reference_name, task
			shot("task-created")
			# and back from the Task with Open in Inbox
			page.goto(f"{web}/app/task/{task.reference_name}")
			page.wait_for_selector("button:has-text('Open in Inbox')")
			shot("task-form")
			page.click("button:has-text('Open in Inbox')")
			page.wait_for_url(f"**/app/smart-inbox?thread={thread.name}*")
			page.wait_for_selector(".atlas-thread-subject")
			assert page.locator(".atlas-thread-subject").inner_text().strip() == plain(thread.subject).strip()
			assert page.locator('.atlas-thread-meta [data-field="source"]').inner_text() == "Gmail"
			shot("open-in-inbox")
		finally:
			browser.close()
	assert not errors, errors


def test_workspace_shows_cards_chart_and_opens_the_page(site, web, box):  # noqa: F811
	from playwright.sync_api import sync_playwright

	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	errors: list[str] = []
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1500, "height": 1100})
			assert ctx.request.post(web + "/api/method/login", form={"usr": DISPATCHER, "pwd": TEST_PASSWORD}).ok
			page = ctx.new_page()
			page.on("pageerror", lambda exc: errors.append(str(exc)))
			page.set_default_timeout(60_000)
			page.goto(f"{web}/app/atlas-inbox")
			try:
				page.wait_for_selector(".widget.number-widget-box", timeout=20_000)
			except Exception:
				page.screenshot(path=str(ARTIFACTS / "atlas-inbox-workspace-failed.png"), full_page=True)
				raise
			page.wait_for_selector(".widget.dashboard-widget-box .chart-container, .widget.dashboard-widget-box svg")
			page.wait_for_timeout(1500)
			page.screenshot(path=str(ARTIFACTS / "atlas-inbox-workspace.png"), full_page=True)
			text = page.inner_text(".layout-main-section").lower()  # card titles are upper-cased by CSS
			for label in ("Pending review", "Unknown senders", "Unhealthy mailboxes", "Unread threads",
						  "Inbound threads per day by category"):
				assert label.lower() in text, label
			assert "Atlas Inbox" in page.inner_text(".desk-sidebar")
			page.click(".shortcut-widget-box:has-text('Smart Inbox')")
			page.wait_for_url("**/app/smart-inbox*")
			page.wait_for_selector(".atlas-view")
		finally:
			browser.close()
	assert not errors, errors
