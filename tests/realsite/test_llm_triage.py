"""The pluggable LLM backend in the real pipeline: an OpenAI-compatible endpoint (the local fake in
testing/llm_server.py, over HTTP) fills category, priority and summary; on timeout the offline result
stands; a snippet-only mailbox never sends a body; backfill is triaged offline."""

from __future__ import annotations

import uuid

import pytest

from atlas_integrations.testing.llm_server import FakeLLM
from tests.realsite.mail import make_mail
from tests.realsite.conftest import Accounts, run_worker

KEY = "sk-test-" + uuid.uuid4().hex


def _mail(to: str, subject: str, body: str) -> bytes:
	return make_mail("Buyer <buyer@llm.example>", to, subject, body)


@pytest.fixture
def llm(site):
	frappe = site
	with FakeLLM(api_key=KEY) as fake:
		settings = frappe.get_single("Atlas Settings")
		settings.update({"llm_base_url": fake.url, "llm_model": "fake-model", "llm_api_key": KEY,
						 "llm_timeout_seconds": 2})
		settings.save(ignore_permissions=True)
		frappe.db.commit()
		try:
			yield fake
		finally:
			frappe.db.rollback()
			settings = frappe.get_single("Atlas Settings")
			settings.update({"llm_base_url": "", "llm_model": "", "llm_api_key": ""})
			settings.save(ignore_permissions=True)
			frappe.db.commit()


def _arrive(frappe, google, helper, subject, body, snippet_only=False):
	from atlas_integrations.gmail.sync import enqueue_sync

	mailbox = helper.mailbox(load_corpus=False)
	account, _ = helper.connect(mailbox, account_type="Shared workspace mailbox")
	run_worker()  # the (empty) initial sync: what arrives next is new mail
	google.insert_message(mailbox, _mail(mailbox, subject, body), label_ids=["INBOX", "UNREAD"])
	frappe.db.rollback()
	enqueue_sync(account, trigger="manual")
	frappe.db.commit()
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	return frappe.get_all("Inbox Thread", filters={"mailbox": account},
						  fields=["name", "category", "priority", "summary", "signals"])[0]


def test_llm_fills_category_priority_summary(site, google, llm):
	from atlas_integrations.inbox.text import plain

	frappe = site
	helper = Accounts(site, google)
	llm.set_reply({"category": "Support or complaint", "priority": "Urgent", "summary": "Boiler broke down",
				   "confidence": 0.9})
	try:
		t = _arrive(frappe, google, helper, "Our boiler", "It stopped working this morning.")
		assert (t.category, t.priority, plain(t.summary)) == ("Support or complaint", "Urgent", "Boiler broke down")
		assert "llm fake-model: Support or complaint, Urgent" in plain(t.signals)
		sent = llm.requests[-1]
		assert "It stopped working this morning." in sent["messages"][-1]["content"]
		assert KEY not in plain(t.signals)
	finally:
		helper.cleanup()


def test_llm_timeout_keeps_the_offline_result(site, google, llm):
	from atlas_integrations.inbox.text import plain

	frappe = site
	helper = Accounts(site, google)
	llm.set_delay(5)  # over the 2 s timeout of Atlas Settings
	try:
		t = _arrive(frappe, google, helper, "Quote for a new roof", "Please quote a new roof.")
		assert t.category == "Quote request"  # the offline classifier's answer
		assert "llm unavailable (timeout); offline result kept" in plain(t.signals)
	finally:
		helper.cleanup()


def test_snippet_only_mailbox_never_sends_a_body(site, google, llm, snippet_only):
	frappe = site
	helper = Accounts(site, google)
	try:
		_arrive(frappe, google, helper, "Invoice question", "SECRET-BODY-TEXT about invoice 5")
		assert llm.requests, "the backend was asked"
		assert all("SECRET-BODY-TEXT" not in str(r) for r in llm.requests)
	finally:
		helper.cleanup()
