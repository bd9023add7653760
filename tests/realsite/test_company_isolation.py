"""Companies without leaks: one shared mailbox serves two Companies; a user restricted to one Company by
Frappe User Permissions sees only that Company's threads and messages, over REST — for a shared Gmail
mailbox and a shared Outlook mailbox (application permissions) alike."""

from __future__ import annotations

import os
import uuid

import pytest

from tests.realsite.mail import make_mail
from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, login, run_worker
from tests.realsite.outlook_fixtures import OutlookAccounts, graph  # noqa: F401 - the fixture

RESTRICTED = "atlas-company-two@atlas-test.example"
SECOND = "Atlas Test Two Ltd"


def _company(frappe, name: str, abbr: str) -> str:
	if not frappe.db.exists("Company", name):
		frappe.get_doc({"doctype": "Company", "company_name": name, "abbr": abbr, "default_currency": "USD",
						"country": "United States"}).insert(ignore_permissions=True)
		frappe.db.commit()
	return name


def _mail(to: str, subject: str) -> bytes:
	return make_mail("Buyer <buyer@customer.example>", to, subject, f"{subject}: please call me back.")


def _restricted_to(frappe, company: str) -> None:
	"""The restricted dispatcher, limited to ``company`` by a Company User Permission."""
	# Super Email User lifts Frappe's own Communication list rule (only mail of the user's Email Accounts),
	# so what narrows the list here is Atlas's row-level rule alone
	ensure_user(frappe, RESTRICTED, ("Atlas Dispatcher", "Super Email User"))
	if not frappe.db.exists("User Permission", {"user": RESTRICTED, "allow": "Company", "for_value": company}):
		frappe.get_doc({"doctype": "User Permission", "user": RESTRICTED, "allow": "Company", "for_value": company,
						"apply_to_all_doctypes": 1}).insert(ignore_permissions=True)


@pytest.fixture(scope="module")
def two_companies(site, google):
	frappe = site
	first = frappe.defaults.get_global_default("company")
	second = _company(frappe, SECOND, "ATT2")
	_restricted_to(frappe, second)
	helper = Accounts(site, google)
	mailbox = helper.mailbox(load_corpus=False)
	alias = mailbox.replace("@", "+two@")
	rule = frappe.get_doc({"doctype": "Inbox Rule", "rule_name": f"Alias to second company {uuid.uuid4().hex[:6]}",
						   "recipient": alias, "set_company": second}).insert(ignore_permissions=True)
	frappe.db.set_value("User", RESTRICTED, "enabled", 1)
	frappe.db.commit()
	account, _ = helper.connect(mailbox, account_type="Shared workspace mailbox")
	run_worker()
	google.insert_message(mailbox, _mail(mailbox, "For the first company"), label_ids=["INBOX", "UNREAD"])
	google.insert_message(mailbox, _mail(alias, "For the second company"), label_ids=["INBOX", "UNREAD"])
	from atlas_integrations.gmail.sync import enqueue_sync

	frappe.db.rollback()
	enqueue_sync(account, trigger="manual")
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	threads = {t.subject: t for t in frappe.get_all("Inbox Thread", filters={"mailbox": account},
												   fields=["name", "subject", "company"])}
	yield {"first": first, "second": second, "threads": threads, "account": account}
	if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
		frappe.db.rollback()
		frappe.delete_doc("Inbox Rule", rule.name, ignore_permissions=True, force=True)
		frappe.db.commit()
		helper.cleanup()


def test_each_thread_gets_its_company(two_companies):
	t = two_companies["threads"]
	assert t["For the first company"].company == two_companies["first"]
	assert t["For the second company"].company == two_companies["second"]


def test_restricted_user_sees_only_their_companys_mail_over_rest(site, web, two_companies):
	frappe = site
	mine = two_companies["threads"]["For the second company"].name
	other = two_companies["threads"]["For the first company"].name
	comms = {r.atlas_inbox_thread: r.name for r in frappe.get_all(
		"Communication", filters={"atlas_inbox_thread": ["in", [mine, other]]}, fields=["name", "atlas_inbox_thread"])}
	http = login(web, RESTRICTED, TEST_PASSWORD)
	listed = http.get(f"{web}/api/resource/Inbox Thread", params={"filters": '[["mailbox", "=", "%s"]]'
																 % two_companies["account"], "limit_page_length": 100})
	assert listed.status_code == 200, listed.text[:300]
	assert {r["name"] for r in listed.json()["data"]} == {mine}
	assert http.get(f"{web}/api/resource/Inbox Thread/{mine}").status_code == 200
	assert http.get(f"{web}/api/resource/Inbox Thread/{other}").status_code == 403
	messages = http.get(f"{web}/api/resource/Communication", params={
		"filters": '[["atlas_mailbox", "=", "%s"]]' % two_companies["account"], "limit_page_length": 100})
	assert {r["name"] for r in messages.json()["data"]} == {comms[mine]}
	assert http.get(f"{web}/api/resource/Communication/{comms[other]}").status_code == 403
	form = http.get(f"{web}/api/method/frappe.desk.form.load.getdoc", params={"doctype": "Inbox Thread", "name": mine})
	assert {c["name"] for c in form.json()["docinfo"]["communications"]} == {comms[mine]}


def test_a_shared_outlook_mailbox_serving_two_companies_shows_each_user_their_companys_mail(site, web, graph):  # noqa: F811
	from atlas_integrations.outlook import oauth

	frappe = site
	second = _company(frappe, SECOND, "ATT2")
	_restricted_to(frappe, second)
	frappe.db.set_value("User", RESTRICTED, "enabled", 1)
	helper = OutlookAccounts(frappe, graph)
	address = helper.mailbox(load=0)
	alias = address.replace("@", "+two@")
	box = graph.mailbox(address)
	box.add(_mail(address, "Outlook for the first company"), "inbox")
	box.add(_mail(alias, "Outlook for the second company"), "inbox")
	rule = frappe.get_doc({"doctype": "Inbox Rule", "rule_name": f"Outlook alias to second {uuid.uuid4().hex[:6]}",
						   "recipient": alias, "set_company": second}).insert(ignore_permissions=True)
	try:
		account = helper.create("Company shared", account_type="Shared workspace mailbox", email=address)
		oauth.connect_shared(account)
		frappe.db.commit()
		job = helper.sync(account)
		assert job.status == "succeeded", job.last_error
		threads = {t.subject: t for t in frappe.get_all("Inbox Thread", filters={"mailbox": account},
													   fields=["name", "subject", "company"])}
		mine, other = threads["Outlook for the second company"], threads["Outlook for the first company"]
		assert (mine.company, other.company) == (second, frappe.defaults.get_global_default("company"))
		comms = {r.atlas_inbox_thread: r.name for r in frappe.get_all(
			"Communication", filters={"atlas_mailbox": account}, fields=["name", "atlas_inbox_thread"])}
		http = login(web, RESTRICTED, TEST_PASSWORD)
		listed = http.get(f"{web}/api/resource/Inbox Thread", params={
			"filters": '[["mailbox", "=", "%s"]]' % account, "limit_page_length": 100})
		assert listed.status_code == 200, listed.text[:300]
		assert {r["name"] for r in listed.json()["data"]} == {mine.name}
		assert http.get(f"{web}/api/resource/Inbox Thread/{other.name}").status_code == 403
		messages = http.get(f"{web}/api/resource/Communication", params={
			"filters": '[["atlas_mailbox", "=", "%s"]]' % account, "limit_page_length": 100})
		assert {r["name"] for r in messages.json()["data"]} == {comms[mine.name]}
		assert http.get(f"{web}/api/resource/Communication/{comms[other.name]}").status_code == 403
	finally:
		frappe.db.rollback()
		frappe.delete_doc("Inbox Rule", rule.name, ignore_permissions=True, force=True)
		frappe.db.commit()
		if os.environ.get("ATLAS_KEEP_TEST_DATA") != "1":
			helper.cleanup()
