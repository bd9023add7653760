"""A mailbox's synced data can be erased by an admin: a queued Mailbox Erase Sync Job after a typed
confirmation; threads, messages, attachments, pipeline records, the mail sent through the mailbox (raw
MIME included) and the notifications about them go; documents created from mail, Contacts and Customers
stay without their timeline links to the erased mail, and the dialog and the answer say so. Over HTTP."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

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
	task = contact = None
	try:
		from frappe.desk.doctype.notification_log.notification_log import make_notification_logs

		from atlas_integrations.inbox import send_limit
		from atlas_integrations.notify import notify_admins

		send_limit.reset("Administrator")
		run_worker()
		frappe.db.rollback()
		threads = frappe.get_all("Inbox Thread", filters={"mailbox": account}, pluck="name", order_by="name")
		assert len(threads) == 3
		admin = login(web)
		made = admin.post(f"{web}/api/method/atlas_integrations.api.inbox.create_work",
						  data={"thread": threads[0], "doctype": "Task"}).json()["message"]
		task = made["name"]
		# mail sent through the mailbox: a reply (Sent) and a send Gmail refused (Failed, raw MIME kept)
		reply_url = f"{web}/api/method/atlas_integrations.api.smart_inbox.send_reply"
		sent = admin.post(reply_url, data={"thread": threads[1], "to": "customer@erase.example", "body": "On it.",
										   "client_key": uuid.uuid4().hex})
		assert sent.status_code == 200 and sent.json()["message"]["status"] == "Sent", sent.text[:300]
		google.inject_fault(r"/messages/send", 400, reason="failedPrecondition", method="POST")
		refused = admin.post(reply_url, data={"thread": threads[2], "to": "customer@erase.example",
											  "body": "Lost.", "client_key": uuid.uuid4().hex})
		assert refused.status_code == 417, refused.text[:300]
		frappe.db.rollback()
		outgoing = frappe.get_all("Outgoing Mail", filters={"mailbox": account}, fields=["name", "status", "raw"])
		assert sorted(o.status for o in outgoing) == ["Failed", "Sent"]
		assert [o for o in outgoing if o.status == "Failed"][0].raw  # the raw message of the unfinished send
		comms = frappe.get_all("Communication", filters={"atlas_mailbox": account}, pluck="name")
		files = frappe.get_all("File", filters={"attached_to_doctype": "Communication",
												"attached_to_name": ["in", comms]}, fields=["name", "file_url"])
		assert (len(comms), len(files)) == (4, 3)  # 3 received (with attachments) and the reply
		# notifications about the mailbox, a thread, a message and a send (desk bell)
		notify_admins("Mailbox needs attention", "Gmail Account", account)
		for doctype, name in (("Inbox Thread", threads[0]), ("Communication", comms[0]),
							  ("Outgoing Mail", outgoing[0].name)):
			make_notification_logs({"type": "Alert", "subject": "About the mail", "document_type": doctype,
									"document_name": name}, [DISPATCHER])
		about = [["Gmail Account", [account]], ["Inbox Thread", threads], ["Communication", comms],
				 ["Outgoing Mail", [o.name for o in outgoing]]]
		contact = frappe.get_doc({"doctype": "Contact", "first_name": f"Erase Customer {uuid.uuid4().hex[:6]}",
								  "email_ids": [{"email_id": "customer@erase.example", "is_primary": 1}]}
								 ).insert(ignore_permissions=True).name
		frappe.db.commit()
		run_worker()  # what the new Contact queued (matching) runs before the erase
		frappe.db.rollback()

		def notifications():
			return sum(frappe.db.count("Notification Log", {"document_type": dt, "document_name": ["in", names]})
					   for dt, names in about)

		assert notifications() >= 4
		# a File row outside mail that points at an attachment's file (a claim made before such rows were
		# refused, kept on an existing site): erasing goes through it to the bytes
		claim = frappe.get_doc({"doctype": "File", "file_name": "claimed.bin", "content": b"claim", "is_private": 1})
		claim.flags.ignore_permissions = True
		claim.insert()
		os.remove(frappe.get_site_path(claim.file_url.lstrip("/")))  # as such a row was: the mail's URL, no file of its own
		frappe.db.set_value("File", claim.name, {"owner": DISPATCHER, "file_url": files[0].file_url}, update_modified=False)
		frappe.db.commit()
		url = f"{web}/api/method/atlas_integrations.api.inbox.erase_mailbox_data"
		dispatcher = login(web, DISPATCHER, TEST_PASSWORD)
		assert dispatcher.post(url, data={"doctype": "Gmail Account", "name": account, "confirm": mailbox}).status_code == 403
		wrong = admin.post(url, data={"doctype": "Gmail Account", "name": account, "confirm": "not-the-address"})
		assert wrong.status_code == 417 and "Type the mailbox address" in wrong.text
		ok = admin.post(url, data={"doctype": "Gmail Account", "name": account, "confirm": mailbox.upper()})
		assert ok.status_code == 200, ok.text[:300]
		answer = ok.json()["message"]
		job = answer["sync_job"]
		# the answer says what goes and what stays, in the words the dialog used before the admin confirmed
		assert "Outgoing Mail, with its raw message" in answer["erases"] and "notifications" in answer["erases"]
		for kept in ("ToDo, Task, Issue", "Contacts", "Customers", "mailbox record"):
			assert kept in answer["keeps"]
		dialog = (Path(__file__).resolve().parents[2] / "atlas_integrations" / "public" / "js" / "atlas_erase.js").read_text()
		assert answer["erases"] in dialog and answer["keeps"] in dialog
		proc = run_worker()
		assert proc.returncode == 0, proc.stdout + proc.stderr
		frappe.db.rollback()
		done = frappe.get_doc("Sync Job", job)
		assert (done.job_type, done.status) == ("Mailbox Erase", "succeeded"), done.last_error
		assert "threads 3, messages 4, files 3" in done.details and "sent 2" in done.details, done.details
		assert frappe.db.count("Inbox Thread", {"mailbox": account}) == 0
		assert frappe.db.count("Outgoing Mail", {"mailbox": account}) == 0  # raw MIME included
		assert frappe.db.count("Outgoing Mail", {"inbox_thread": ["in", threads]}) == 0
		assert notifications() == 0
		assert frappe.db.count("Communication", {"name": ["in", comms]}) == 0
		assert frappe.db.count("File", {"name": ["in", [f.name for f in files]]}) == 0
		for f in files:
			assert not frappe.db.exists("File", {"file_url": f.file_url})
			assert not Path(frappe.get_site_path(f.file_url.lstrip("/"))).exists(), f.file_url  # the bytes too
		assert not frappe.db.exists("File", claim.name)
		assert frappe.db.exists("Contact", contact)  # Contacts stay
		assert frappe.db.exists("Task", task)  # the work stays ...
		assert frappe.db.count("Communication Link", {"link_doctype": "Task", "link_name": task}) == 0  # ... unlinked
		assert frappe.db.exists("Gmail Account", account)  # the mailbox itself stays (disconnecting is separate)
	finally:
		google.clear_faults()
		frappe.db.rollback()
		if task:
			frappe.db.delete("ToDo", {"reference_type": "Task", "reference_name": task})
			frappe.db.delete("Task", {"name": task})
		if contact:
			frappe.delete_doc("Contact", contact, ignore_permissions=True, force=True)
		frappe.db.delete("Notification Log", {"subject": ["in", ["Mailbox needs attention", "About the mail"]]})
		frappe.db.commit()
		helper.cleanup()
