"""What a person reads, on the real site in headless Chromium (Debian's chromium driven by Playwright): the
Smart Inbox page shows outcomes and match states as words ("Pending review", "Unknown sender"), never the
stored identifiers; a long mailbox address in the sidebar is fully visible (nothing overflows sideways);
the composer's From is the mailbox's address, or the send-as alias Gmail marks default. The desk's Inbox
Thread list, its filters and form show the same words. A Sync Job of a Gmail Account carries the mailbox's
address as its title (REST, the list, the form), and the patch fills it on older jobs. Screenshots are kept
in .atlas/artifacts/browser/."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, login, run_worker
from tests.realsite.mail import make_mail
from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

DISPATCHER = "atlas-words-dispatcher@atlas-test.example"
ADMIN = "atlas-words-admin@atlas-test.example"
IDENTIFIERS = ("pending_review", "unknown_sender")

#: every element of the page's sidebar whose content is wider than its box (a horizontal scroll bar or text
#: cut off), and where the mailbox's name sits
SIDEBAR_JS = """(account) => {
	const aside = document.querySelector('.atlas-views');
	const over = [aside, ...aside.querySelectorAll('*')]
		.filter((e) => e.clientWidth > 0 && e.scrollWidth > e.clientWidth)
		.map((e) => `${e.className}: ${e.scrollWidth} > ${e.clientWidth}`);
	const name = aside.querySelector(`[data-mailbox="${account}"] .atlas-view-name`);
	const box = aside.getBoundingClientRect(), r = name.getBoundingClientRect();
	return {over, text: name.innerText, inside: r.left >= box.left && r.right <= box.right,
			title: name.parentElement.getAttribute('title')};
}"""


@pytest.fixture(scope="module")
def words_box(site, google):
	"""A shared workspace mailbox with a long address, synced empty, then two new messages through the
	pipeline: one from a Contact of a Customer (no rule makes work: ``pending_review``) and one from a
	stranger (``unknown_sender``). Yields ``{"account", "address", "review", "stranger"}`` (thread names)."""
	frappe = site
	uid = uuid.uuid4().hex[:8]
	ensure_user(frappe, DISPATCHER, ("Atlas Dispatcher",))
	ensure_user(frappe, ADMIN, ("Atlas Admin",))
	customer = frappe.get_doc({"doctype": "Customer", "customer_name": f"Words Customer {uid}"}).insert(
		ignore_permissions=True).name
	known = f"buyer.{uid}@words-customer.example"
	contact = frappe.get_doc({"doctype": "Contact", "first_name": f"Buyer {uid}",
							  "email_ids": [{"email_id": known, "is_primary": 1}],
							  "links": [{"link_doctype": "Customer", "link_name": customer}]}).insert(
		ignore_permissions=True).name
	frappe.db.commit()
	helper = Accounts(frappe, google)
	address = f"shared-operations-mailbox-of-the-whole-workspace-{uid}@atlas-words-test.example"
	google.add_mailbox(address)
	try:
		account, _ = helper.connect(address, account_type="Shared workspace mailbox")
		proc = run_worker()  # the initial sync of the empty mailbox: what arrives next is new mail
		assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
		send = lambda raw: google.insert_message(address, raw, label_ids=["INBOX", "UNREAD"])  # noqa: E731
		send(make_mail(f"Buyer <{known}>", address, f"Delivery slots next week {uid}",
					   "Hello,\n\nwhich delivery slots do you have next week for our order?\n\nRegards", message_id=f"review-{uid}@w.example"))
		send(make_mail(f"Stranger <stranger.{uid}@nobody-knows.example>", address, f"Question from a stranger {uid}",
					   "Hi,\n\nwe have not met: could you call me back?\n", message_id=f"stranger-{uid}@w.example"))
		from atlas_integrations.gmail.sync import enqueue_sync

		enqueue_sync(account, trigger="manual")
		frappe.db.commit()
		proc = run_worker()
		assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
		frappe.db.rollback()
		threads = {t.outcome: t for t in frappe.get_all("Inbox Thread", filters={"mailbox": account},
														fields=["name", "outcome", "match_state"])}
		assert set(threads) == {"pending_review", "unknown_sender"}, (threads, frappe.get_all(
			"Sync Job", filters={"reference_name": account}, fields=["job_type", "status", "listed", "created",
																	 "last_error", "details"]))
		assert threads["unknown_sender"].match_state == "unknown_sender"
		yield {"account": account, "address": address, "review": threads["pending_review"].name,
			   "stranger": threads["unknown_sender"].name}
	finally:
		helper.cleanup()
		frappe.delete_doc("Contact", contact, ignore_permissions=True, force=True)
		frappe.delete_doc("Customer", customer, ignore_permissions=True, force=True)
		frappe.db.commit()


def _browser_page(p, web, user):
	browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
	ctx = browser.new_context(viewport={"width": 1500, "height": 1000})
	r = ctx.request.post(web + "/api/method/login", form={"usr": user, "pwd": TEST_PASSWORD})
	assert r.ok, r.text()
	page = ctx.new_page()
	errors: list[str] = []
	page.on("pageerror", lambda exc: errors.append(str(exc)))
	page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and "socket.io" not in r.url
			else None)
	page.set_default_timeout(60_000)
	return browser, page, errors


def _shot(page, name: str) -> None:
	page.wait_for_timeout(500)
	page.screenshot(path=str(ARTIFACTS / f"words-{name}.png"), full_page=False)


def _wait_for_from(page, address: str, name: str, errors: list[str]) -> None:
	"""Wait until the composer's From is ``address``; on a timeout a screenshot and what the page holds."""
	try:
		page.wait_for_function(
			"(a) => { const f = document.querySelector('[data-field=from]'); return f && f.value === a; }",
			arg=address, timeout=20_000)
	except Exception:
		_shot(page, f"{name}-failed")
		raise AssertionError((page.evaluate("() => document.querySelector('.atlas-composer')?.outerHTML"), errors))


def test_dispatcher_reads_words_a_whole_mailbox_name_and_a_filled_from(site, web, google, words_box):
	from playwright.sync_api import sync_playwright

	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	account, address = words_box["account"], words_box["address"]
	alias = f"sales-{uuid.uuid4().hex[:6]}@atlas-words-test.example"
	with sync_playwright() as p:
		browser, page, errors = _browser_page(p, web, DISPATCHER)
		try:
			page.goto(f"{web}/app/smart-inbox?view=mailbox:{account}")
			page.wait_for_selector(f'.atlas-row[data-thread="{words_box["stranger"]}"]')
			page.wait_for_selector(f'.atlas-view[data-mailbox="{account}"]')
			_shot(page, "list")
			# the list: words, not identifiers
			rows = page.inner_text(".atlas-list")
			assert "Pending review" in rows and "Unknown sender" in rows, rows
			assert not [i for i in IDENTIFIERS if i in rows], rows
			review = page.locator(f'.atlas-row[data-thread="{words_box["review"]}"] [data-outcome]').inner_text()
			stranger = page.locator(f'.atlas-row[data-thread="{words_box["stranger"]}"] [data-outcome]').inner_text()
			assert (review.strip(), stranger.strip()) == ("Pending review", "Unknown sender")
			# the sidebar: the long address whole, inside the pane, nothing wider than its box
			side = page.evaluate(SIDEBAR_JS, account)
			assert side["text"].strip() == address and side["title"] == address, side
			assert side["inside"] and side["over"] == [], side
			assert not [i for i in IDENTIFIERS if i in page.inner_text(".atlas-views")]
			# the reader: outcome and match state in words
			page.click(f'.atlas-row[data-thread="{words_box["stranger"]}"]')
			page.wait_for_selector(".atlas-thread-state [data-outcome]")
			state = page.inner_text(".atlas-thread-state")
			assert "Unknown sender" in state and not [i for i in IDENTIFIERS if i in state], state
			_shot(page, "reader")
			# the composer's From: the mailbox's address
			page.click('[data-action="reply"]')
			_wait_for_from(page, address, "composer-from", errors)
			assert page.locator('[data-field="from"] option:checked').inner_text().strip() == address
			_shot(page, "composer-from")
			# Gmail marks a send-as alias as the default From: the next composer starts with it
			google.add_send_as(address, alias, display_name="Sales", default=True)
			page.click(".atlas-composer-actions .btn-default")  # Discard
			page.click('[data-action="reply"]')
			_wait_for_from(page, alias, "composer-default-alias", errors)
			options = page.locator('[data-field="from"] option').all_inner_texts()
			assert [o.strip() for o in options] == [address, alias], options
			_shot(page, "composer-default-alias")
		finally:
			browser.close()
	assert not errors, errors


def test_desk_inbox_thread_list_filters_and_form_show_words(site, web, words_box):
	from playwright.sync_api import sync_playwright

	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	with sync_playwright() as p:
		browser, page, errors = _browser_page(p, web, DISPATCHER)
		try:
			page.goto(f"{web}/app/inbox-thread?mailbox={words_box['account']}")
			page.wait_for_selector(f'a[data-name="{words_box["stranger"]}"]')
			page.wait_for_selector(f'a[data-name="{words_box["review"]}"]')
			_shot(page, "desk-list")
			rows = page.inner_text(".frappe-list .result")
			assert "Pending review" in rows and "Unknown sender" in rows, rows
			assert not [i for i in IDENTIFIERS if i in rows], rows
			# the standard filters offer the words and filter on the stored values
			labels = page.evaluate("""() => Object.fromEntries(['outcome', 'match_state'].map((f) => [f,
				[...document.querySelectorAll(`.standard-filter-section [data-fieldname="${f}"] select option`)]
					.map((o) => [o.value, o.textContent.trim()])]))""")
			assert ["pending_review", "Pending review"] in labels["outcome"], labels
			assert ["unknown_sender", "Unknown sender"] in labels["match_state"], labels
			page.select_option('.standard-filter-section [data-fieldname="outcome"] select', "unknown_sender")
			page.wait_for_function("(n) => !document.querySelector(`.frappe-list a[data-name=\"${n}\"]`)",
								   arg=words_box["review"])
			assert page.locator(f'a[data-name="{words_box["stranger"]}"]').count() == 1
			# the form: the read-only Select shows the word
			page.goto(f"{web}/app/inbox-thread/{words_box['stranger']}")
			page.wait_for_selector('.frappe-control[data-fieldname="outcome"] .control-value')
			page.wait_for_timeout(500)
			assert page.inner_text('.frappe-control[data-fieldname="outcome"] .control-value').strip() == "Unknown sender"
			assert page.inner_text('.frappe-control[data-fieldname="match_state"] .control-value').strip() == "Unknown sender"
			_shot(page, "desk-form")
		finally:
			browser.close()
	assert not errors, errors


def test_sync_job_of_a_mailbox_is_titled_by_its_address(site, web, words_box):
	from playwright.sync_api import sync_playwright

	frappe = site
	account, address = words_box["account"], words_box["address"]
	assert frappe.get_meta("Sync Job").title_field == "reference_title"
	jobs = frappe.get_all("Sync Job", filters={"reference_doctype": "Gmail Account", "reference_name": account},
						  fields=["name", "reference_title"], order_by="creation asc")
	assert jobs and {j.reference_title for j in jobs} == {address}, jobs
	# over REST, as an Atlas Admin (who may read Sync Jobs)
	http = login(web, ADMIN, TEST_PASSWORD)
	r = http.get(f"{web}/api/resource/Sync Job", params={
		"filters": json.dumps([["reference_name", "=", account]]), "fields": json.dumps(["name", "reference_title"])})
	assert r.status_code == 200, r.text[:300]
	assert {row["reference_title"] for row in r.json()["data"]} == {address}
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	with sync_playwright() as p:
		browser, page, errors = _browser_page(p, web, ADMIN)
		try:
			page.goto(f"{web}/app/sync-job?reference_name={account}")
			page.wait_for_selector(f'a[data-name="{jobs[0].name}"]')
			_shot(page, "sync-job-list")
			rows = page.inner_text(".frappe-list .result")
			assert address in rows and account not in rows, rows
			assert "Succeeded" in rows and "Initial" in rows and "Incremental" in rows, rows  # status and mode in words
			assert page.locator(f'a[data-name="{jobs[0].name}"]').first.inner_text().strip() == address
			page.goto(f"{web}/app/sync-job/{jobs[0].name}")
			page.wait_for_selector(".page-title .title-text")
			page.wait_for_function("(a) => document.querySelector('.page-title .title-text').innerText.trim() === a",
								   arg=address)
			_shot(page, "sync-job-form")
		finally:
			browser.close()
	assert not errors, errors


def test_the_patch_titles_jobs_made_before_the_field(site, words_box):
	from atlas_integrations.patches import fill_sync_job_titles

	frappe = site
	account, address = words_box["account"], words_box["address"]
	frappe.db.sql("update `tabSync Job` set reference_title = null where reference_name = %s", account)
	frappe.db.commit()
	try:
		fill_sync_job_titles.execute()
		frappe.db.commit()
		titles = frappe.get_all("Sync Job", filters={"reference_name": account}, pluck="reference_title")
		assert titles and set(titles) == {address}, titles
	finally:  # never leave the rows untitled, whatever happened
		frappe.db.sql("update `tabSync Job` set reference_title = %s where reference_name = %s", (address, account))
		frappe.db.commit()
