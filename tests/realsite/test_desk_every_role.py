"""No error for anyone, anywhere a user lands: every Atlas page as every role, in headless Chromium.

As Administrator, an Atlas Owner, an Atlas Admin and an Atlas Dispatcher: the Atlas Inbox workspace, the
Smart Inbox page with a thread open, and the list and a form of every Atlas doctype (and of Communication,
where mail is read too). A page fails on any error dialog, any ``/api`` answer of 5xx or an unexpected 4xx,
or any console error. Where a role has no access, the page must be Frappe's "Not permitted" (a Sales User
tries every one of them) and nothing worse. Frappe's realtime server runs behind the same front door as in
production, so socket.io answers too. Screenshots in ``.atlas/artifacts/browser/roles/``.
"""

from __future__ import annotations

import uuid

import pytest

from tests.conftest import BENCH
from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, run_worker
from tests.realsite.mail import make_mail
from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

OWNER = "atlas-roles-owner@atlas-test.example"
ADMIN = "atlas-roles-admin@atlas-test.example"
DISPATCHER = "atlas-roles-dispatcher@atlas-test.example"
SALES = "atlas-roles-sales@atlas-test.example"
ROLES = {"Administrator": None, OWNER: ("Atlas Owner",), ADMIN: ("Atlas Admin",), DISPATCHER: ("Atlas Dispatcher",),
		 SALES: ("Sales User",)}
#: every doctype of the app a person opens (child tables have no list or form), and Communication
DOCTYPES = ("Sync Job", "Gmail Account", "Outgoing Mail", "Inbound Route", "Inbox Address", "Inbox Rule", "Inbox Thread",
			"Xero Connection", "Xero Grant", "Xero Webhook Event", "Communication")
SINGLES = ("Atlas Settings",)
#: failed requests a page makes on purpose: none, but socket.io's long-polling may be cut when a page is left
IGNORED = ("/socket.io/",)


@pytest.fixture(scope="module")
def desk(site, google):
	"""Rows of every Atlas doctype to open, the users, and the realtime server behind a front door."""
	frappe = site
	from atlas_integrations.testing.realtime import start_socketio

	for user, roles in ROLES.items():
		if roles:
			ensure_user(frappe, user, roles)
	helper = Accounts(frappe, google)
	shared, shared_box = helper.connect(helper.mailbox(load_corpus=False), account_type="Shared workspace mailbox")
	personal, personal_box = helper.connect(helper.mailbox(load_corpus=False), user=DISPATCHER, account_type="Personal")
	for box in (shared_box, personal_box):
		google.insert_message(box, make_mail("Buyer <buyer@roles.example>", box, f"Roles check {uuid.uuid4().hex[:6]}",
											 "Please quote 20 pallets.", attachments=[("spec.txt", b"20 pallets")]))
	assert run_worker().returncode == 0
	frappe.db.rollback()
	thread = frappe.db.get_value("Inbox Thread", {"mailbox": shared}, "name")
	route = frappe.get_doc({"doctype": "Inbound Route", "route_name": f"Roles route {uuid.uuid4().hex[:6]}",
							"inbound_address": f"roles-{uuid.uuid4().hex[:6]}@atlas-test.example",
							"signing_key": "roles-key"}).insert(ignore_permissions=True).name
	rule = frappe.get_doc({"doctype": "Inbox Rule", "rule_name": f"Roles rule {uuid.uuid4().hex[:6]}",
						   "subject_contains": "pallets", "set_priority": "High"}).insert(ignore_permissions=True).name
	outgoing = frappe.get_doc({"doctype": "Outgoing Mail", "status": "Failed", "user": "Administrator",
							   "inbox_thread": thread, "mailbox_type": "Gmail Account", "mailbox": shared,
							   "subject": "Re: roles check",
							   "to_addresses": "buyer@roles.example", "request_key": uuid.uuid4().hex,
							   "error": "Gmail refused the message (roles check)"})
	outgoing.flags.ignore_permissions = True
	outgoing.insert()
	grant = frappe.get_doc({"doctype": "Xero Grant", "auth_event_id": uuid.uuid4().hex, "status": "revoked",
							"scopes": "accounting.transactions offline_access"}).insert(ignore_permissions=True).name
	company = frappe.defaults.get_global_default("company")
	made_connection = not frappe.db.exists("Xero Connection", company)
	if made_connection:
		frappe.get_doc({"doctype": "Xero Connection", "company": company}).insert(ignore_permissions=True)
	frappe.db.commit()
	port, node = start_socketio(str(BENCH), log=open(BENCH / "logs" / "atlas-test-socketio.log", "a"))
	yield {"shared": shared, "personal": personal, "thread": thread, "route": route, "rule": rule, "company": company,
		   "socketio_port": port}
	node.terminate()
	node.wait(timeout=10)
	frappe.db.rollback()
	frappe.delete_doc("Inbound Route", route, force=True, ignore_permissions=True)
	frappe.db.delete("Outgoing Mail", {"name": outgoing.name})
	frappe.db.delete("Xero Grant", {"name": grant})
	frappe.delete_doc("Inbox Rule", rule, force=True, ignore_permissions=True)
	if made_connection:
		frappe.delete_doc("Xero Connection", company, force=True, ignore_permissions=True)
	frappe.db.commit()
	helper.cleanup()


def _row(frappe, doctype: str, user: str, desk: dict) -> str | None:
	"""A row of ``doctype`` the user may open (the fixture's where it has one)."""
	preferred = {"Gmail Account": desk["shared"], "Inbox Thread": desk["thread"], "Inbound Route": desk["route"],
				 "Inbox Rule": desk["rule"], "Xero Connection": desk["company"]}
	frappe.set_user(user)
	try:
		if doctype in preferred and frappe.has_permission(doctype, "read", doc=preferred[doctype]):
			return preferred[doctype]
		filters = {"atlas_mailbox": desk["shared"]} if doctype == "Communication" else {}
		rows = frappe.get_list(doctype, filters=filters, pluck="name", limit_page_length=1, order_by="creation desc")
		return rows[0] if rows else None
	finally:
		frappe.set_user("Administrator")


@pytest.mark.parametrize("user", list(ROLES))
def test_every_atlas_page_opens_without_an_error(site, web, desk, user):
	from playwright.sync_api import sync_playwright

	from atlas_integrations.testing.realtime import FrontDoor

	frappe = site
	shots = ARTIFACTS / "roles"
	shots.mkdir(parents=True, exist_ok=True)
	slug = user.split("@")[0]
	door = FrontDoor(web, desk["socketio_port"], site=frappe.local.site).start()
	visits, problems = [], []
	frappe.set_user(user)
	readable = {dt: bool(frappe.has_permission(dt, "read")) for dt in (*DOCTYPES, *SINGLES)}
	frappe.set_user("Administrator")
	atlas = user != SALES
	pages = []
	if atlas:
		pages += [("workspace", "/app/atlas-inbox", ".workspace-main-section, .layout-main-section", True),
				  ("smart inbox", f"/app/smart-inbox?view=shared&thread={desk['thread']}", ".atlas-thread-subject", True)]
	for doctype in (*DOCTYPES, *SINGLES):
		route = doctype.lower().replace(" ", "-")
		if doctype in SINGLES:
			pages.append((doctype, f"/app/{route}", ".form-layout", readable[doctype]))
			continue
		pages.append((f"{doctype} list", f"/app/{route}", ".frappe-list", readable[doctype]))
		name = _row(frappe, doctype, user, desk) if readable[doctype] else None
		if name:
			pages.append((f"{doctype} form", f"/app/{route}/{name}", ".form-layout", True))
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
			password = "admin" if user == "Administrator" else TEST_PASSWORD
			assert ctx.request.post(door.url + "/api/method/login", form={"usr": user, "pwd": password}).ok
			page = ctx.new_page()
			page.set_default_timeout(30_000)
			current = {"label": "", "allowed": True}

			def failed_response(r):
				if "/api/" not in r.url or any(x in r.url for x in IGNORED) or r.status < 400:
					return
				if r.status == 403 and not current["allowed"]:
					return  # the "Not permitted" the page expected
				problems.append(f"{current['label']}: {r.status} {r.url[:160]}")

			page.on("response", failed_response)
			page.on("console", lambda m: problems.append(f"{current['label']}: console: {m.text[:200]}")
					if m.type == "error" and "socket.io" not in m.text and not (
						not current["allowed"] and "403" in m.text) else None)
			page.on("pageerror", lambda exc: problems.append(f"{current['label']}: page error: {exc}"))
			for label, path, ready, allowed in pages:
				current.update(label=label, allowed=allowed)
				page.goto(door.url + path)
				if allowed:
					try:
						page.wait_for_selector(ready, timeout=30_000)
					except Exception:
						problems.append(f"{label}: {ready} did not show")
				else:
					try:
						page.wait_for_selector("text=You are not permitted to view this page", timeout=30_000)
					except Exception:
						problems.append(f"{label}: no 'Not permitted' page for a user without access")
				page.wait_for_timeout(700)
				dialog = page.locator(".modal.show .modal-body:visible, .msgprint:visible")
				if dialog.count():
					problems.append(f"{label}: error dialog: {dialog.first.inner_text()[:200]}")
				shot = f"{slug}-{label.replace(' ', '-').lower()}.png"
				page.screenshot(path=str(shots / shot))
				visits.append(label)
		finally:
			browser.close()
			door.stop()
	print(f"{user}: {len(visits)} pages, {sum(1 for *_, a in pages if not a)} refused as expected")
	assert not problems, "\n".join(problems)
	assert (user == SALES) or "smart inbox" in visits

