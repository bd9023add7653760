"""Fixtures and helpers of the tests that reply from the Smart Inbox: a shared mailbox with mail from a customer, its threads, and what the local Gmail server holds of a thread."""

from __future__ import annotations

import base64
import email
import email.policy

import pytest

from tests.realsite.conftest import Accounts, ensure_user, run_worker

DISPATCHER = "atlas-reply-dispatcher@atlas-test.example"


@pytest.fixture(scope="module")
def box(site, google):
	"""A shared workspace mailbox with the corpus, synced."""
	frappe = site
	helper = Accounts(frappe, google)
	account, mailbox = helper.connect(account_type="Shared workspace mailbox")
	proc = run_worker()
	assert proc.returncode == 0, proc.stdout[-2000:]
	frappe.db.rollback()
	ensure_user(frappe, DISPATCHER, ("Atlas Dispatcher", "Projects User"))  # Projects User: creates Tasks from mail
	ensure_user(frappe, OUTSIDER, ("Employee",))
	frappe.db.commit()
	yield {"account": account, "mailbox": mailbox, "server": google}
	frappe.db.rollback()
	frappe.db.delete("Outgoing Mail", {"mailbox": account})
	frappe.db.commit()
	helper.cleanup()


def _thread(frappe, account: str) -> dict:
	"""A thread whose latest message was received (what a reply answers)."""
	rows = frappe.db.sql(
		"""select t.name, t.provider_thread_id, t.subject from `tabInbox Thread` t where t.mailbox=%s
		and exists (select 1 from `tabCommunication` c where c.atlas_inbox_thread=t.name and c.sent_or_received='Received')
		and not exists (select 1 from `tabOutgoing Mail` o where o.inbox_thread=t.name)
		order by t.message_count desc, t.name limit 1""", account, as_dict=True)
	assert rows, "the corpus gives threads with received mail"
	return rows[0]


def _gmail_thread(server, mailbox: str, thread_id: str) -> list:
	out = []
	for m in server.dump_messages(mailbox):
		if m["threadId"] == thread_id:
			raw = base64.urlsafe_b64decode(m["raw"] + "=" * (-len(m["raw"]) % 4))
			out.append((m, email.message_from_bytes(raw, policy=email.policy.default)))
	return out




OUTSIDER = "atlas-reply-outsider@atlas-test.example"
