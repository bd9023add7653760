"""Mail stays private through every endpoint of the site: the six ways in that REST refused but the rest of
the site did not, each tried over HTTP as a Sales User (no Atlas role) and as a dispatcher against another
user's personal mail (:mod:`tests.realsite.privacy`), and the Smart Inbox page never running script from
its URL (headless Chromium)."""

from __future__ import annotations

import json

import pytest

from tests.realsite.outlook_fixtures import graph  # noqa: F401 - the victim's Outlook mailbox
from tests.realsite.privacy import (  # noqa: F401 - fixtures
	ATTACHMENT_NAME, ATTACKERS, DISPATCHER, MARKERS, PREFIX, SALES, VICTIM, attackers, leaked, untouched, victim_mail)
from tests.realsite.conftest import TEST_PASSWORD, login

METHOD = "/api/method/"


def _call(session, web, method, *, get=False, **args):
	data = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in args.items()}
	if get:
		return session.get(web + METHOD + method, params=data, timeout=60)
	return session.post(web + METHOD + method, data=data, timeout=60)


def test_link_search_lists_no_mail_of_another_mailbox(site, web, victim_mail, attackers):
	mail = victim_mail
	aims = [
		("Communication", {"filter_fields": ["content", "recipients", "bcc", "subject"], "ignore_user_permissions": 1,
						   "filters": [["Communication", "name", "=", mail["comm"]]]}),
		("File", {"filter_fields": ["file_url", "file_name"], "ignore_user_permissions": 1,
				  "filters": [["File", "name", "=", mail["file"]]]}),
		("Inbox Thread", {"filter_fields": ["subject", "snippet"], "ignore_user_permissions": 1}),
		("Gmail Account", {"filter_fields": ["account_name", "email_address"], "ignore_user_permissions": 1}),
		("Outgoing Mail", {"filter_fields": ["subject", "raw"], "ignore_user_permissions": 1}),
	]
	for user, session in attackers.items():
		for doctype, args in aims:
			r = _call(session, web, "frappe.desk.search.search_widget", doctype=doctype, txt="", page_length=500, **args)
			assert not leaked(r.content), (user, doctype, r.status_code, leaked(r.content))
			names = {mail["comm"], mail["file"], mail["thread"], mail["account"], mail["outgoing"]}
			assert not any(n in r.text for n in names), (user, doctype, r.text[:300])
			r = _call(session, web, "frappe.desk.search.search_link", doctype=doctype, txt=PREFIX,
					  ignore_user_permissions=1, page_length=500)
			assert not leaked(r.content) and not any(n in r.text for n in names), (user, doctype, r.text[:300])
	# the rules narrow, they do not blind: the mailbox's owner finds their own thread and its attachment
	victim = login(web, VICTIM, TEST_PASSWORD)
	r = _call(victim, web, "frappe.desk.search.search_link", doctype="Inbox Thread", txt=PREFIX)
	assert r.status_code == 200 and mail["thread"] in r.text, r.text[:300]
	r = _call(victim, web, "frappe.desk.search.search_widget", doctype="File", txt="", filters=[["File", "name", "=", mail["file"]]],
			  filter_fields=["file_url"], as_dict=1)
	assert r.status_code == 200 and mail["file"] in r.text, r.text[:300]


def test_saving_or_cancelling_a_linked_document_answers_without_its_mail(site, web, victim_mail, attackers):
	frappe = site
	mail = victim_mail
	sales = attackers[SALES]
	customer = frappe.get_doc("Customer", mail["customer"]).as_dict()
	r = sales.post(web + METHOD + "frappe.desk.form.save.savedocs", data={"doc": json.dumps(customer, default=str),
																		   "action": "Save"}, timeout=60)
	assert r.status_code == 200, r.text[:500]
	assert not leaked(r.content), leaked(r.content)
	assert mail["comm"] not in [c["name"] for c in r.json()["docinfo"]["communications"]]
	r = _call(sales, web, "frappe.desk.form.save.cancel", doctype="Quotation", name=mail["quotation"][SALES])
	assert r.status_code == 200, r.text[:500]
	assert not leaked(r.content), leaked(r.content)
	frappe.db.rollback()
	assert frappe.db.get_value("Quotation", mail["quotation"][SALES], "docstatus") == 2
	# Administrator, who may read the mailbox, gets it on the same answer
	admin = login(web)
	customer = frappe.get_doc("Customer", mail["customer"]).as_dict()
	r = admin.post(web + METHOD + "frappe.desk.form.save.savedocs", data={"doc": json.dumps(customer, default=str),
																		   "action": "Save"}, timeout=60)
	assert mail["comm"] in [c["name"] for c in r.json()["docinfo"]["communications"]]


def test_a_private_file_cannot_be_claimed_by_naming_it(site, web, victim_mail, attackers):
	frappe = site
	mail = victim_mail
	url, name = mail["file_url"], mail["file_url"].rsplit("/", 1)[1]
	public_bytes = b"public bytes of the attacker"
	for user, session in attackers.items():
		attempts = [
			("POST", "/api/resource/File", {"file_url": url, "is_private": 1}),
			("POST", "/api/resource/File", {"file_url": web + url, "is_private": 1, "file_name": "mine.bin"}),
			("POST", "/api/resource/File", {"file_name": name, "is_private": 1}),
			# content that duplicates another file keeps the URL the caller named (File.save_file)
			("POST", "/api/resource/File", {"file_url": url, "is_private": 1, "content": public_bytes.decode()}),
			("POST", "/api/method/upload_file", {"file_url": url, "is_private": 1}),
			("POST", "/api/method/frappe.client.insert", {"doc": json.dumps({"doctype": "File", "file_url": url,
																				 "is_private": 1})}),
		]
		for verb, path, body in attempts:
			r = session.request(verb, web + path, data=body if "method" in path else None,
								json=None if "method" in path else body, timeout=60)
			assert r.status_code in (403, 417), (user, path, body, r.status_code, r.text[:300])
		# re-pointing one's own file row is the same claim
		mine = session.post(web + "/api/resource/File", json={"file_name": f"own-{user}.txt", "is_private": 1,
															   "content": "my own words"}, timeout=60)
		assert mine.status_code == 200, mine.text[:300]
		r = session.put(web + f"/api/resource/File/{mine.json()['data']['name']}", json={"file_url": url}, timeout=60)
		assert r.status_code in (403, 417), (user, r.status_code, r.text[:300])
		download = session.get(web + url, timeout=60)
		assert download.status_code == 403 and not leaked(download.content), (user, download.status_code)
	# the same bytes uploaded by someone who has them make a file of their own, never the mail's URL
	content = open(frappe.get_site_path(url.lstrip("/")), "rb").read()
	r = attackers[SALES].post(web + "/api/method/upload_file", files={"file": ("copy.bin", content)},
							  data={"is_private": 1}, timeout=60)
	assert r.status_code == 200, r.text[:300]
	copy = r.json()["message"]
	assert copy["file_url"] != url and attackers[SALES].get(web + copy["file_url"], timeout=60).content == content
	frappe.db.delete("File", {"name": copy["name"]})
	frappe.db.commit()
	assert untouched(frappe, mail) == []
	# the mailbox's owner may still attach their own attachment elsewhere (they may read it)
	victim = login(web, VICTIM, TEST_PASSWORD)
	r = victim.post(web + "/api/resource/File", json={"file_url": url, "is_private": 1}, timeout=60)
	assert r.status_code == 200, r.text[:300]
	frappe.db.delete("File", {"name": r.json()["data"]["name"]})
	frappe.db.commit()


def test_counts_and_charts_read_no_mail_text(site, web, victim_mail, attackers):

	def heatmap(needle):
		return {"name": f"atlas-probe-{needle[-4:]}", "chart_type": "Count", "type": "Heatmap",
				"document_type": "Communication", "based_on": "creation", "timespan": "Last Year",
				"time_interval": "Daily", "filters_json": json.dumps([["Communication", "content", "like", f"%{needle}%"]])}

	miss = "atlasmk" + "0" * (len(PREFIX) - 7)
	for user, session in attackers.items():
		answers = {}
		for needle in (PREFIX, miss):
			r = _call(session, web, "frappe.desk.doctype.dashboard_chart.dashboard_chart.get", chart=heatmap(needle),
					  no_cache=1)
			answers[needle] = (r.status_code, r.json().get("message"))
		assert answers[PREFIX] == answers[miss], (user, answers)
		for doctype, field in (("Inbox Thread", "subject"), ("Communication", "content")):
			answers = {}
			for needle in (PREFIX, miss):
				r = _call(session, web, "frappe.desk.listview.get_group_by_count", doctype=doctype, field="assigned_to",
						  current_filters=[[doctype, field, "like", f"%{needle}%"]])
				answers[needle] = (r.status_code, r.json().get("message"))
			assert answers[PREFIX] == answers[miss], (user, doctype, answers)
			# what REST counts for this user
			r = session.get(web + "/api/method/frappe.client.get_count", params={
				"doctype": doctype, "filters": json.dumps([[doctype, field, "like", f"%{PREFIX}%"]])}, timeout=60)
			assert r.status_code in (200, 403) and (r.status_code == 403 or r.json()["message"] == 0), r.text[:300]
	# the victim's own sidebar count still counts their own assignment
	victim = login(web, VICTIM, TEST_PASSWORD)
	r = _call(victim, web, "frappe.desk.listview.get_group_by_count", doctype="Inbox Thread", field="assigned_to",
			  current_filters=[["Inbox Thread", "subject", "like", f"%{PREFIX}%"]])
	assert r.status_code == 200 and r.json()["message"] == [{"name": VICTIM, "count": 1}], r.text[:300]


def test_last_interaction_of_a_contact_linked_to_a_thread_shows_no_mail(site, web, victim_mail, attackers):
	mail = victim_mail
	for user, session in attackers.items():
		for args in ({"contact": mail["contact"]}, {"lead": mail["lead"]}, {"contact": mail["contact"], "lead": mail["lead"]}):
			r = _call(session, web, "erpnext.crm.doctype.utils.get_last_interaction", **args)
			assert not leaked(r.content), (user, args, r.status_code, r.text[:300])
			assert r.status_code in (200, 403), (user, args, r.status_code, r.text[:300])
	r = _call(attackers[SALES], web, "erpnext.crm.doctype.utils.get_last_interaction", contact=mail["contact"])
	assert r.status_code == 200 and r.json()["message"]["last_communication"] is None, r.text[:300]
	# linking a Contact to someone else's thread is refused, and a link made by someone who may (the fixture's,
	# made by Administrator) carries the thread's name, never its subject, to every reader of the Contact
	for user, session in attackers.items():
		r = session.post(web + "/api/resource/Contact", json={"first_name": f"Linker {user[:12]}", "links": [
			{"link_doctype": "Inbox Thread", "link_name": mail["thread"]}]}, timeout=60)
		assert r.status_code in (403, 417) and not leaked(r.content), (user, r.status_code, r.text[:300])
	r = attackers[SALES].get(web + f"/api/resource/Contact/{mail['contact']}", timeout=60)
	assert r.status_code == 200 and not leaked(r.content), r.text[:500]


@pytest.mark.parametrize("param", ["view", "thread"])
def test_smart_inbox_page_shows_url_parameters_as_text(site, web, victim_mail, param):
	"""An admin following a link with script in ``view`` or ``thread``: the page says what was wrong, as
	text; nothing runs (headless Chromium)."""
	from playwright.sync_api import sync_playwright

	from tests.realsite.browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

	ARTIFACTS.mkdir(parents=True, exist_ok=True)
	payload = '<img src=x onerror="window.__atlas_xss=1">'
	# the page's API answers with the parameter as text
	admin = login(web)
	r = admin.get(web + METHOD + "atlas_integrations.api.smart_inbox.list_threads", params={"view": payload}, timeout=60)
	assert r.status_code in (403, 417, 404) and "<img" not in r.text, r.text[:300]
	with sync_playwright() as p:
		browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
		try:
			ctx = browser.new_context(viewport={"width": 1400, "height": 900})
			assert ctx.request.post(web + "/api/method/login", form={"usr": "Administrator", "pwd": "admin"}).ok
			page = ctx.new_page()
			page.goto(f"{web}/app/smart-inbox?{param}={payload}")
			page.wait_for_selector(".atlas-inbox", timeout=60_000)
			page.wait_for_timeout(2500)
			page.screenshot(path=str(ARTIFACTS / f"privacy-reflected-{param}.png"))
			assert page.evaluate("window.__atlas_xss") is None
			assert page.locator(".modal img[src='x'], .msgprint img, .alert img[src='x']").count() == 0
		finally:
			browser.close()



def test_the_guard_holds_for_api_key_callers(site, web, victim_mail):
	"""The guard runs after Frappe's authentication (``auth_hooks``): a caller with an API key and secret
	is refused like a browser session."""
	import requests

	frappe = site
	from frappe.core.doctype.user.user import generate_keys

	secret = generate_keys(SALES)["api_secret"]
	key = frappe.db.get_value("User", SALES, "api_key")
	frappe.db.commit()
	headers = {"Authorization": f"token {key}:{secret}"}
	r = requests.get(web + METHOD + "frappe.auth.get_logged_user", headers=headers, timeout=60)
	assert r.status_code == 200 and r.json()["message"] == SALES, r.text[:300]
	r = requests.post(web + METHOD + "frappe.desk.search.search_widget", headers=headers, timeout=60, data={
		"doctype": "Communication", "txt": "", "filter_fields": json.dumps(["content"]), "ignore_user_permissions": 1,
		"filters": json.dumps([["Communication", "name", "=", victim_mail["comm"]]])})
	assert not leaked(r.content), r.text[:300]
	r = requests.post(web + METHOD + "frappe.desk.doctype.dashboard_chart.dashboard_chart.get", headers=headers, timeout=60,
					  data={"chart": json.dumps({"document_type": "Communication", "type": "Heatmap", "chart_type": "Count",
												 "based_on": "creation"}), "no_cache": 1})
	assert r.status_code == 403 and "This request names mail" in r.text, r.text[:300]


def test_only_readers_follow_mail(site, web, victim_mail, attackers):
	mail = victim_mail
	for user, session in attackers.items():
		for target in (user, VICTIM):
			r = _call(session, web, "frappe.desk.form.document_follow.follow_document", doctype="Inbox Thread",
					  doc_name=mail["thread"], user=target)
			assert r.status_code == 403, (user, target, r.status_code, r.text[:300])
	site.db.rollback()
	assert not site.db.exists("Document Follow", {"ref_docname": mail["thread"]})
	victim = login(web, VICTIM, TEST_PASSWORD)
	r = _call(victim, web, "frappe.desk.form.document_follow.follow_document", doctype="Inbox Thread",
			  doc_name=mail["thread"], user=VICTIM)
	assert r.status_code == 200, r.text[:300]


def test_new_mail_is_announced_to_the_mailboxs_readers_only(site, google, victim_mail):
	"""The Smart Inbox page's live event names the mailbox: it goes to the users who may read it (one room
	per user), never to every desk user."""
	import threading
	import time

	import redis

	from tests.realsite.conftest import run_worker
	from tests.realsite.mail import make_mail

	frappe = site
	mail = victim_mail
	client = redis.Redis.from_url(frappe.conf.redis_queue)
	pubsub = client.pubsub()
	pubsub.subscribe("events")
	rooms, done = [], threading.Event()

	def listen():
		while not done.is_set():
			item = pubsub.get_message(timeout=0.5)
			if item and item.get("type") == "message":
				event = json.loads(item["data"])
				if event.get("event") == "atlas_inbox_update" and event.get("message", {}).get("mailbox") == mail["account"]:
					rooms.append(event["room"])

	thread = threading.Thread(target=listen, daemon=True)
	thread.start()
	try:
		google.insert_message(mail["mailbox"], make_mail("partner@partner.example", mail["mailbox"], "one more", "hello"))
		from atlas_integrations.gmail import sync

		sync.enqueue_sync(mail["account"], trigger="test")
		frappe.db.commit()
		assert run_worker().returncode == 0
		deadline = time.monotonic() + 10
		while not rooms and time.monotonic() < deadline:
			time.sleep(0.2)
	finally:
		done.set()
		thread.join(timeout=5)
		pubsub.close()
	from atlas_integrations.permissions import mailbox_readers

	readers = mailbox_readers(("Gmail Account", mail["account"]))
	assert VICTIM in readers and not set(ATTACKERS) & set(readers)
	assert rooms and sorted(set(rooms)) == sorted(f"user:{u}" for u in readers), rooms
