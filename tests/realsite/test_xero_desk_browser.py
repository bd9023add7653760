"""The Xero state of a Quotation in a real browser (headless Chromium, the site's own web server): the form's
indicator and the list pill show Xero's and Gmail's words (stored as HTML text, like mail) as literal text;
a payload in a failure reason never runs. Screenshots: .atlas/artifacts/browser/quotation-xero-*.png."""

from __future__ import annotations

import uuid

from tests.realsite.conftest import ensure_user, TEST_PASSWORD
from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, LIVE_PAYLOAD_JS

USER = "atlas-xero-desk@atlas-test.example"
ITEM = "ATLAS-DESK-SVC"
REASON = 'Recipient: Gmail refused <img src="x" onerror="window.__atlas_canary=1"> for Tom & "Jerry" <tom@x.example>'


def test_quotation_xero_state_is_text_in_the_form_and_the_list(site, web):
	from playwright.sync_api import sync_playwright

	from atlas_integrations.inbox.text import mail_text

	frappe = site
	ensure_user(frappe, USER, ("Atlas Admin", "Sales User", "Sales Manager"))
	if not frappe.db.exists("Item", ITEM):
		frappe.get_doc({"doctype": "Item", "item_code": ITEM, "item_name": "Desk service", "is_stock_item": 0,
						"item_group": "All Item Groups", "stock_uom": "Nos"}).insert(ignore_permissions=True)
	customer = f"Desk Customer {uuid.uuid4().hex[:6]}"
	frappe.get_doc({"doctype": "Customer", "customer_name": customer}).insert(ignore_permissions=True)
	doc = frappe.get_doc({"doctype": "Quotation", "quotation_to": "Customer", "party_name": customer,
						  "company": frappe.defaults.get_global_default("company"),
						  "transaction_date": frappe.utils.today(), "valid_till": frappe.utils.add_days(frappe.utils.today(), 5),
						  "items": [{"item_code": ITEM, "qty": 1, "rate": 10}]}).insert(ignore_permissions=True)
	frappe.db.set_value("Quotation", doc.name, {"atlas_xero_status": "Xero send failed", "atlas_xero_error": mail_text(REASON),
												"atlas_xero_quote_status": "DRAFT"}, update_modified=False)
	frappe.db.commit()
	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	try:
		with sync_playwright() as p:
			browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
			try:
				ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
				ctx.add_init_script("for (const f of ['alert','confirm','prompt']) window[f] = () => { window.__atlas_canary = 'dialog'; };")
				assert ctx.request.post(web + "/api/method/login", form={"usr": USER, "pwd": TEST_PASSWORD}).ok
				page = ctx.new_page()
				page.set_default_timeout(60_000)
				page.goto(f"{web}/app/quotation/{doc.name}")
				comment = page.wait_for_selector(".form-message-container .form-message:has-text('Xero send failed')")
				page.wait_for_timeout(800)
				page.screenshot(path=str(ARTIFACTS / "quotation-xero-form.png"), full_page=True)
				assert page.evaluate(LIVE_PAYLOAD_JS) == {"canary": None, "live": 0, "scripts": 0}
				shown = comment.inner_text()
				assert shown == f"Xero send failed (Xero quote DRAFT): {REASON}", shown
				assert "&lt;" not in shown and "&amp;" not in shown  # exact text, never escaped twice

				page.goto(f"{web}/app/quotation?name={doc.name}")
				pill = page.wait_for_selector(".list-row-container .indicator-pill:has-text('Xero send failed')")
				page.wait_for_timeout(500)
				page.screenshot(path=str(ARTIFACTS / "quotation-xero-list.png"), full_page=True)
				assert "red" in (pill.get_attribute("class") or "")
				assert page.evaluate(LIVE_PAYLOAD_JS) == {"canary": None, "live": 0, "scripts": 0}
			finally:
				browser.close()
	finally:
		frappe.db.rollback()
		frappe.delete_doc("Quotation", doc.name, ignore_permissions=True, force=True)
		frappe.db.commit()
