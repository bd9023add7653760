"""An Outlook thread in the Smart Inbox page and the Outlook Account form, in headless Chromium (Debian's
chromium driven by Playwright), as the dispatcher who owns the mailbox: the row and the thread name their
source "Outlook" beside the Gmail ones, the body is shown only in the sandboxed reader, opening the unread
thread marks it read at Graph (an Outlook Modify job), and the form is the mailbox's card (state, health,
Connection, Sync now). Fails on an error dialog, a failed /api call or a console error; screenshots in
.atlas/artifacts/browser/."""

from __future__ import annotations

from email.message import EmailMessage

import pytest

from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.realsite.conftest import TEST_PASSWORD, ensure_user, run_worker
from tests.realsite.outlook_fixtures import OutlookAccounts, graph  # noqa: F401 - the fixture

USER = "atlas-olk-page@atlas-test.example"


@pytest.fixture(scope="module")
def mailbox(site, graph):
	frappe = site
	ensure_user(frappe, USER, ("Atlas Dispatcher", "Inbox User"))
	helper = OutlookAccounts(site, graph)
	address = helper.mailbox()
	msg = EmailMessage()
	msg["From"], msg["To"], msg["Subject"] = "Buyer <buyer@x.org>", address, "Outlook: 40 pallets, price please"
	msg["Date"], msg["Message-ID"] = "Mon, 07 Dec 2026 08:00:00 +0000", "<outlook-page-1@x.org>"
	msg.set_content("plain")
	msg.add_alternative("<p>Hello <b>team</b>, <img src=x onerror=alert(1)> we need 40 pallets.</p>", subtype="html")
	graph.mailbox(address).add(msg.as_bytes())
	account, _ = helper.connect(address, user=USER, name="Page outlook")
	assert helper.sync(account).status == "succeeded"
	thread = frappe.get_all("Inbox Thread", filters={"mailbox_type": "Outlook Account", "mailbox": account},
							fields=["name", "subject", "unread"])[0]
	assert thread.unread
	yield {"account": account, "address": address, "thread": thread, "server": graph}
	helper.cleanup()


def test_an_outlook_thread_in_the_page_and_the_mailbox_form(site, web, mailbox):
	from playwright.sync_api import sync_playwright

	frappe = site
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	thread = mailbox["thread"]
	errors: list[str] = []
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
			r = ctx.request.post(web + "/api/method/login", form={"usr": USER, "pwd": TEST_PASSWORD})
			assert r.ok, r.text()
			page = ctx.new_page()
			page.on("pageerror", lambda exc: errors.append(str(exc)))
			page.on("console", lambda m: errors.append("console: " + m.text)
					if m.type == "error" and "socket.io" not in m.text and "Failed to load resource" not in m.text else None)
			page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
					if r.status >= 400 and "socket.io" not in r.url else None)
			page.on("dialog", lambda d: (errors.append("dialog: " + d.message), d.dismiss()))
			page.set_default_timeout(60_000)

			def shot(name: str) -> None:
				page.wait_for_timeout(500)
				page.screenshot(path=str(ARTIFACTS / f"outlook-{name}.png"), full_page=False)

			page.goto(f"{web}/app/smart-inbox?view=all")
			page.wait_for_selector('.atlas-row .atlas-source[data-source="Outlook Account"]')
			shot("list")
			assert page.locator('.atlas-row .atlas-source[data-source="Outlook Account"]').first.inner_text() == "Outlook"
			page.goto(f"{web}/app/smart-inbox?view=all&thread={thread.name}")
			page.wait_for_selector(".atlas-thread-subject")
			page.wait_for_selector("iframe.atlas-reader")
			shot("thread")
			assert page.locator(".atlas-thread-subject").inner_text().strip() == "Outlook: 40 pallets, price please"
			assert page.locator('.atlas-thread-meta [data-field="source"]').inner_text() == "Outlook"
			reader = page.locator("iframe.atlas-reader").first
			assert reader.get_attribute("sandbox") == ""
			body = page.frame_locator("iframe.atlas-reader").first.locator("body")
			assert "we need 40 pallets" in body.inner_text() and body.locator("img[onerror]").count() == 0
			assert page.locator(".modal.show .msgprint, .modal.show.error").count() == 0
			# the Outlook Account form: the mailbox's card
			page.goto(f"{web}/app/outlook-account/{mailbox['account']}")
			page.wait_for_selector(".form-layout")
			page.wait_for_selector('.indicator:has-text("ACTIVE · healthy")')
			shot("form")
			assert page.locator('.btn:has-text("Sync now")').count() == 1
			assert page.locator('.btn:has-text("Reconnect Outlook")').count() == 1
			assert "Delegated" in page.locator('[data-fieldname="connection"]').first.inner_text()
			page.locator('.btn:has-text("Sync now")').first.click()
			page.wait_for_selector(".alert-message, .desk-alert", state="attached")
			shot("sync-now")
		finally:
			browser.close()
	assert not errors, errors
	# opening the unread thread marked it read in the desk and queued the write-back, which Graph now holds
	frappe.db.rollback()
	assert frappe.db.get_value("Inbox Thread", thread.name, "unread") == 0
	assert run_worker().returncode == 0
	box = mailbox["server"].mailbox(mailbox["address"])
	assert all(m.is_read for m in box.messages.values())
