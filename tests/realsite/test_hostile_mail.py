"""Mail is untrusted input: hostile messages are stored by one convention and stay inert everywhere.

Real site, real sync on a real rq worker, HTTP through the site's own web server. The browser half is
in test_hostile_mail_browser.py.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.realsite import hostile
from tests.realsite.conftest import Accounts, ensure_user, login, run_worker, TEST_PASSWORD
from tests.realsite.browser import (  # noqa: F401 - fixtures and helpers
	ARTIFACTS,
	CHROMIUM,
	CHROMIUM_ARGS,
	LIVE_PAYLOAD_JS,
)

ADMIN_USER = "atlas-hostile-admin@atlas-test.example"


@pytest.fixture(scope="module")
def hostile_box(site, google):
	"""A connected Gmail Account whose mailbox holds the hostile messages, synced. Yields a dict with the
	account, mailbox address, Inbox Thread names, Communication names and the pixel server."""
	frappe = site
	pixel = hostile.PixelServer()
	helper = Accounts(site, google)
	ensure_user(frappe, ADMIN_USER, ("Atlas Admin",))
	email = helper.mailbox(load_corpus=False)
	label_id = google.add_label(email, hostile.LABEL_NAME)
	ids = [google.insert_message(email, raw, label_ids=["INBOX", "UNREAD", label_id])
		   for raw in hostile.hostile_messages(pixel.url, email)]
	account, _ = helper.connect(email, user=ADMIN_USER)
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	comms = frappe.get_all("Communication", filters={"atlas_mailbox": account},
						   fields=["name", "atlas_provider_message_id", "atlas_inbox_thread"], order_by="communication_date asc")
	assert len(comms) == 2, comms
	yield {"account": account, "email": email, "ids": ids, "label_id": label_id, "pixel": pixel,
		   "comms": [c.name for c in comms], "threads": sorted({c.atlas_inbox_thread for c in comms})}
	pixel.stop()
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		helper.cleanup()


def test_every_mail_text_value_is_stored_as_html_text_that_reads_exactly(site, hostile_box):
	from atlas_integrations.inbox.text import plain

	frappe = site
	first = frappe.get_doc("Communication", hostile_box["comms"][0])
	# HTML-rendered fields: no markup survives, and unescaping gives exactly the decoded header
	assert plain(first.subject) == hostile.SUBJECT
	assert plain(first.sender_full_name) == hostile.FROM_NAME
	for field in ("subject", "sender_full_name", "atlas_snippet", "message_id"):
		assert "<" not in (first.get(field) or ""), field
	# Code fields keep the exact text (Frappe's Code formatter escapes them)
	assert hostile.TO_NAME in first.recipients and hostile.CC_NAME in first.cc
	thread = frappe.get_doc("Inbox Thread", first.atlas_inbox_thread)
	for field in ("subject", "participants", "labels", "snippet"):
		assert "<" not in (thread.get(field) or "") and ">" not in (thread.get(field) or ""), field
	assert plain(thread.subject) == hostile.SUBJECT
	assert hostile.TO_NAME in plain(thread.participants) and hostile.CC_NAME in plain(thread.participants)
	assert hostile.LABEL_NAME in plain(thread.labels)
	# the HTML body: sanitized, the remote image disabled, no script, no javascript: link
	body = first.content
	assert "<script" not in body and "javascript:" not in body and "onclick" not in body
	assert hostile_box["pixel"].url not in body.replace('data-atlas-src="' + hostile_box["pixel"].url, "")
	assert f'data-atlas-src="{hostile_box["pixel"].url}"' in body


def test_attachment_names_are_safe_on_disk_and_readable_in_the_desk(site, hostile_box):
	from atlas_integrations.inbox.text import plain

	frappe = site
	files = frappe.get_all("File", filters={"attached_to_doctype": "Communication",
											"attached_to_name": hostile_box["comms"][0]},
						   fields=["file_name", "file_url", "atlas_original_name", "atlas_content_id"])
	originals = {plain(f.atlas_original_name): f for f in files}
	assert hostile.FILE_NAME in originals, files
	stored = originals[hostile.FILE_NAME]
	assert "<" not in stored.file_name and " " not in stored.file_name and stored.file_name.endswith(".html")
	assert "<" not in stored.file_url and "<" not in stored.atlas_original_name
	assert originals["logo.png"].atlas_content_id == "inline-logo@atlas"


def test_attachments_are_downloads_never_pages(site, hostile_box, web):
	frappe = site
	http = login(web, ADMIN_USER, TEST_PASSWORD)
	files = frappe.get_all("File", filters={"attached_to_doctype": "Communication",
											"attached_to_name": hostile_box["comms"][0]},
						   fields=["file_name", "file_url"])
	assert sorted(f.file_name.rsplit(".", 1)[1] for f in files) == ["html", "png", "txt"], files
	# the SVG posing as photo.jpg was refused by Frappe's image check: recorded, with the reason
	skipped = json.loads(frappe.db.get_value("Communication", hostile_box["comms"][0], "atlas_skipped_attachments"))
	assert [s["filename"] for s in skipped] == ["photo.jpg"] and skipped[0]["reason"]
	for f in files:
		r = http.get(web + f.file_url, timeout=30)
		assert r.status_code == 200, (f.file_url, r.status_code)
		assert r.headers.get("X-Content-Type-Options") == "nosniff"
		assert r.headers.get("Content-Disposition", "").startswith("attachment"), (f.file_name, r.headers)
		if f.file_name.endswith((".html", ".txt")):  # markup, whatever it is called: never served as a page
			assert not r.headers.get("Content-Type", "").startswith(("text/html", "image/svg")), r.headers
	# Frappe's own private files (not mail) keep Frappe's behaviour but gain nosniff; an HTML one is a download
	own = frappe.get_doc({"doctype": "File", "file_name": "notes.xhtml", "is_private": 1,
						  "content": b"<html><script>1</script></html>"}).insert(ignore_permissions=True)
	frappe.db.commit()
	try:
		admin = login(web)
		r = admin.get(web + own.file_url, timeout=30)
		assert r.status_code == 200
		assert r.headers.get("X-Content-Type-Options") == "nosniff"
		assert r.headers.get("Content-Disposition", "").startswith("attachment")
	finally:
		own.delete(ignore_permissions=True)
		frappe.db.commit()


def test_values_saved_later_through_the_orm_follow_the_same_convention(site, hostile_box, web):
	from atlas_integrations.inbox.text import mail_text, plain

	frappe = site
	http = login(web, ADMIN_USER, TEST_PASSWORD)
	thread = hostile_box["threads"][0]
	before = frappe.db.get_value("Inbox Thread", thread, "subject")
	new_subject = "Re-titled: <b>Bob</b> <bob@x.org>"
	r = http.put(f"{web}/api/resource/Inbox Thread/{thread}", json={"subject": new_subject}, timeout=30)
	assert r.status_code == 200, r.text
	frappe.db.rollback()
	stored = frappe.db.get_value("Inbox Thread", thread, "subject")
	assert stored == mail_text(new_subject) and plain(stored) == new_subject
	# saving again (nothing changed) never escapes twice
	r = http.put(f"{web}/api/resource/Inbox Thread/{thread}", json={"unread": 1}, timeout=30)
	assert r.status_code == 200, r.text
	frappe.db.rollback()
	assert frappe.db.get_value("Inbox Thread", thread, "subject") == stored
	frappe.db.set_value("Inbox Thread", thread, "subject", before)
	frappe.db.commit()


def test_the_reader_api_returns_exact_text_and_images_only_on_request(site, hostile_box, web):
	hostile_box["pixel"].hits = 0  # the browser test (any order) may have asked for the images already
	http = login(web, ADMIN_USER, TEST_PASSWORD)
	thread = frappe_thread_of(site, hostile_box["comms"][0])
	r = http.post(web + "/api/method/atlas_integrations.api.inbox.open_thread", data={"thread": thread}, timeout=30)
	assert r.status_code == 200, r.text
	first = r.json()["message"]["messages"][0]
	assert first["subject"] == hostile.SUBJECT and first["sender_full_name"] == hostile.FROM_NAME
	assert first["remote_images"] is True
	assert f' src="{hostile_box["pixel"].url}"' not in first["html"]
	assert 'src="data:image/png;base64,' in first["html"]  # the cid: image, from the stored attachment
	assert {a["file_name"] for a in first["attachments"]} >= {hostile.FILE_NAME, "logo.png"}
	r = http.post(web + "/api/method/atlas_integrations.api.inbox.open_thread",
				  data={"thread": thread, "show_images": 1}, timeout=30)
	assert f' src="{hostile_box["pixel"].url}"' in r.json()["message"]["messages"][0]["html"]
	assert hostile_box["pixel"].hits == 0  # the server never loads it; only a browser that is allowed to


def frappe_thread_of(frappe, communication: str) -> str:
	return frappe.db.get_value("Communication", communication, "atlas_inbox_thread")


def test_hostile_mail_stays_inert_in_a_real_browser(site, hostile_box, web):
	"""As an Atlas Admin in headless Chromium: the Inbox Thread list, each thread (reader, timeline,
	sidebar) and each Communication. No payload runs, no remote image loads, the literal text shows."""
	from playwright.sync_api import sync_playwright

	from atlas_integrations.inbox.text import plain

	frappe = site
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	pixel = hostile_box["pixel"]
	pixel.hits = 0
	dialogs: list[str] = []
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1440, "height": 1100})
			ctx.add_init_script("for (const f of ['alert','confirm','prompt']) window[f] = () => { window.__atlas_canary = 'dialog'; };")
			r = ctx.request.post(web + "/api/method/login", form={"usr": ADMIN_USER, "pwd": TEST_PASSWORD})
			assert r.ok, r.text()
			page = ctx.new_page()
			page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
			page.set_default_timeout(60_000)

			def inert(name: str) -> str:
				page.wait_for_timeout(800)  # let late renders (timeline, sidebar) settle
				page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
				state = page.evaluate(LIVE_PAYLOAD_JS)
				assert state == {"canary": None, "live": 0, "scripts": 0}, (name, state)
				assert not dialogs, (name, dialogs)
				text = page.inner_text("body")
				for entity in ("&lt;", "&gt;", "&amp;", "&quot;", "&#x27;"):  # exact text, never escaped twice
					assert entity not in text, (name, entity)
				return text

			page.goto(f"{web}/app/inbox-thread?mailbox={hostile_box['account']}")
			page.wait_for_selector(f'a[data-name="{hostile_box["threads"][0]}"]')
			inert("inbox-thread-list")
			titles = {page.locator(f'a[data-name="{t}"]').first.text_content().strip() for t in hostile_box["threads"]}
			assert hostile.SUBJECT in titles, titles  # exactly the decoded subject, not &lt; and not a tag

			for thread in hostile_box["threads"]:
				page.goto(f"{web}/app/inbox-thread/{thread}")
				page.wait_for_selector(".atlas-message")
				page.wait_for_selector(".timeline-item, .timeline-message-box")
				text = inert(f"inbox-thread-{thread}")
				doc = frappe.get_doc("Inbox Thread", thread)
				assert plain(doc.subject) in text
				assert hostile.LABEL_NAME in text  # the label name, as text, in the form
				if plain(doc.subject) == hostile.SUBJECT:
					assert hostile.TO_NAME in text and hostile.CC_NAME in text and hostile.FROM_NAME in text
					assert hostile.FILE_NAME in text  # the attachment's readable name in the reader
					assert page.locator(".atlas-show-images").count() == 1
			assert pixel.hits == 0, "a remote image loaded before the user asked for it"

			for comm in hostile_box["comms"]:
				page.goto(f"{web}/app/communication/{comm}")
				page.wait_for_selector(".form-sidebar")
				# the intro names the mailbox the mail came through, by its type's label
				page.wait_for_selector(f'.form-message:has-text("Mail from Gmail Account {hostile_box["account"]}")')
				text = inert(f"communication-{comm}")
				assert plain(frappe.db.get_value("Communication", comm, "subject")) in text
			assert pixel.hits == 0, "a remote image loaded from a Communication form"

			# the block is real: asking for images loads the remote one, and still nothing runs
			thread = frappe.db.get_value("Communication", hostile_box["comms"][0], "atlas_inbox_thread")
			page.goto(f"{web}/app/inbox-thread/{thread}")
			page.wait_for_selector(".atlas-show-images").click()
			page.wait_for_selector(".atlas-message iframe")
			page.wait_for_timeout(1500)
			inert("inbox-thread-images-shown")
			assert pixel.hits >= 1
		finally:
			browser.close()
