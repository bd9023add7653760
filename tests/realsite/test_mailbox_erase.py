"""A mailbox's synced data can be erased by an admin: a queued Mailbox Erase Sync Job after a typed
confirmation; threads, messages, attachments and pipeline records go, documents created from mail stay
without their timeline links to the erased mail. Over HTTP."""

from __future__ import annotations

import uuid

from tests.realsite.mail import make_mail
from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, login, run_worker

DISPATCHER = "atlas-erase-dispatcher@atlas-test.example"


def _mail(to: str, n: int) -> bytes:
	return make_mail("Customer <customer@erase.example>", to, f"Please repair unit {n}", f"Unit {n} is broken.",
					 attachments=[(f"unit-{n}.bin", f"photo {n} {uuid.uuid4().hex}".encode())])


def test_admin_erases_a_mailboxs_data_and_the_work_stays(site, google, web):
	frappe = site
	ensure_user(frappe, DISPATCHER, ("Atlas Dispatcher",))
	helper = Accounts(site, google)
	mailbox = helper.mailbox(load_corpus=False)
	for n in range(3):
		google.insert_message(mailbox, _mail(mailbox, n))
	account, _ = helper.connect(mailbox, account_type="Shared workspace mailbox")
	task = None
	try:
		run_worker()
		frappe.db.rollback()
		threads = frappe.get_all("Inbox Thread", filters={"gmail_account": account}, pluck="name")
		comms = frappe.get_all("Communication", filters={"atlas_gmail_account": account}, pluck="name")
		files = frappe.get_all("File", filters={"attached_to_doctype": "Communication",
												"attached_to_name": ["in", comms]}, fields=["name", "file_url"])
		assert (len(threads), len(comms), len(files)) == (3, 3, 3)
		admin = login(web)
		made = admin.post(f"{web}/api/method/atlas_integrations.api.inbox.create_work",
						  data={"thread": threads[0], "doctype": "Task"}).json()["message"]
		task = made["name"]
		url = f"{web}/api/method/atlas_integrations.api.inbox.erase_mailbox_data"
		dispatcher = login(web, DISPATCHER, TEST_PASSWORD)
		assert dispatcher.post(url, data={"doctype": "Gmail Account", "name": account, "confirm": mailbox}).status_code == 403
		wrong = admin.post(url, data={"doctype": "Gmail Account", "name": account, "confirm": "not-the-address"})
		assert wrong.status_code == 417 and "Type the mailbox address" in wrong.text
		ok = admin.post(url, data={"doctype": "Gmail Account", "name": account, "confirm": mailbox.upper()})
		assert ok.status_code == 200, ok.text[:300]
		job = ok.json()["message"]["sync_job"]
		proc = run_worker()
		assert proc.returncode == 0, proc.stdout + proc.stderr
		frappe.db.rollback()
		done = frappe.get_doc("Sync Job", job)
		assert (done.job_type, done.status) == ("Mailbox Erase", "succeeded"), done.last_error
		assert "threads 3, messages 3, files 3" in done.details
		assert frappe.db.count("Inbox Thread", {"gmail_account": account}) == 0
		assert frappe.db.count("Communication", {"name": ["in", comms]}) == 0
		assert frappe.db.count("File", {"name": ["in", [f.name for f in files]]}) == 0
		for f in files:
			assert not frappe.db.exists("File", {"file_url": f.file_url})
		assert frappe.db.exists("Task", task)  # the work stays ...
		assert frappe.db.count("Communication Link", {"link_doctype": "Task", "link_name": task}) == 0  # ... unlinked
		assert frappe.db.exists("Gmail Account", account)  # the mailbox itself stays (disconnecting is separate)
	finally:
		if task:
			frappe.db.delete("ToDo", {"reference_type": "Task", "reference_name": task})
			frappe.db.delete("Task", {"name": task})
			frappe.db.commit()
		helper.cleanup()
