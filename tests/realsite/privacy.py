"""Another user's personal mail, and the two users who must never read it, for the privacy tests.

The *victim* (an Atlas Dispatcher) has a personal Gmail mailbox with one message, synced for real: a
marker text in its body, subject and a recipient, an attachment whose bytes carry a marker, a send
(Outgoing Mail) in the same thread, and an assignment of the thread to the victim. The message is on the
timeline of a Customer, a Contact (which also links the Inbox Thread, as a Contact anyone may create can),
a Lead and a submitted Quotation per attacker. The attackers: a **Sales User** with no Atlas role (may
read and write Customers, Contacts, Leads and Quotations) and a **dispatcher** (Atlas Dispatcher).

Requests aim at the mail with :data:`PREFIX` (e.g. ``content like %<PREFIX>%``); what must never come back
are the full markers (:data:`MARKERS`), which no request carries, so an answer that merely echoes its
request is never mistaken for a leak.
"""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.realsite.conftest import TEST_PASSWORD, Accounts, ensure_user, login, run_worker
from tests.realsite.mail import make_mail
from tests.realsite.outlook_fixtures import OutlookAccounts

SALES = "atlas-priv-sales@atlas-test.example"
DISPATCHER = "atlas-priv-dispatcher@atlas-test.example"
VICTIM = "atlas-priv-victim@atlas-test.example"
ATTACKERS = (SALES, DISPATCHER)

TAG = uuid.uuid4().hex[:10]
#: what requests aim with (never a whole marker)
PREFIX = f"atlasmk{TAG}"
#: what must never come back: each appears in the victim's mail only
MARKERS = {
	"body": f"{PREFIX}-body-zz",
	"subject": f"{PREFIX}-subj-zz",
	"recipient": f"{PREFIX}-rcpt-zz",
	"attachment bytes": f"{PREFIX}-filebytes-zz",
	"mailbox name": f"{PREFIX}-acct-zz",
	"send": f"{PREFIX}-sent-zz",
	"outlook body": f"{PREFIX}-olkbody-zz",
	"outlook subject": f"{PREFIX}-olksubj-zz",
	"outlook mailbox name": f"{PREFIX}-olkacct-zz",
}
ATTACHMENT_NAME = f"{PREFIX}-invoice.bin"


def leaked(content: bytes | str) -> list[str]:
	"""The markers found in an answer's bytes (also inside a zip/xlsx and gzip answer)."""
	import gzip
	import io
	import zipfile

	data = content if isinstance(content, bytes) else content.encode()
	texts = [data]
	if data[:2] == b"PK":
		try:
			with zipfile.ZipFile(io.BytesIO(data)) as z:
				texts.extend(z.read(n) for n in z.namelist()[:50])
		except (zipfile.BadZipFile, OSError, KeyError):
			pass
	elif data[:2] == b"\x1f\x8b":
		try:
			texts.append(gzip.decompress(data))
		except OSError:
			pass
	found = []
	for kind, marker in MARKERS.items():
		needle = marker.encode()
		if any(needle in t or needle.upper() in t for t in texts):
			found.append(kind)
	return found


def _item(frappe) -> str:
	code = "Atlas Privacy Service"
	if not frappe.db.exists("Item", code):
		frappe.get_doc({"doctype": "Item", "item_code": code, "item_group": "Services", "stock_uom": "Nos",
						"is_stock_item": 0, "include_item_in_manufacturing": 0}).insert(ignore_permissions=True)
	return code


def _quotation(frappe, customer: str, company: str, owner: str) -> str:
	from frappe.utils import add_days, today

	doc = frappe.get_doc({"doctype": "Quotation", "quotation_to": "Customer", "party_name": customer,
						  "company": company, "transaction_date": today(), "valid_till": add_days(today(), 30),
						  "items": [{"item_code": _item(frappe), "qty": 1, "rate": 10}]})
	doc.insert(ignore_permissions=True)
	doc.submit()
	frappe.db.set_value("Quotation", doc.name, "owner", owner, update_modified=False)
	return doc.name


@pytest.fixture(scope="module")
def victim_mail(site, google, graph):
	"""The victim's synced personal mail and what it is linked to; the attackers' users.

	Yields ``{"account", "thread", "comm", "file", "file_url", "outgoing", "link", "customer", "contact",
	"lead", "quotation": {attacker: name}, "company", "outlook_account", "outlook_thread", "outlook_comm"}``
	(the victim's personal Outlook mailbox too, one marked message in it)."""
	frappe = site
	ensure_user(frappe, SALES, ("Sales User",))
	ensure_user(frappe, DISPATCHER, ("Atlas Dispatcher",))
	ensure_user(frappe, VICTIM, ("Atlas Dispatcher",))
	helper = Accounts(frappe, google)
	address = helper.mailbox(load_corpus=False)
	raw = make_mail(f"Partner <partner-{TAG}@partner.example>", f"{MARKERS['recipient']}@victim-partner.example",
					f"Contract {MARKERS['subject']}", f"Dear team,\n\nthe code is {MARKERS['body']}.\n",
					attachments=[(ATTACHMENT_NAME, b"%PDF-1.4\n% " + MARKERS["attachment bytes"].encode() + b"\n")])
	google.insert_message(address, raw)
	account, _ = helper.connect(address, user=VICTIM, account_type="Personal")
	outlook = OutlookAccounts(frappe, graph)
	outlook_address = outlook.mailbox(load=0)
	graph.mailbox(outlook_address).add(make_mail(
		f"Partner <partner-{TAG}@partner.example>", outlook_address, f"Order {MARKERS['outlook subject']}",
		f"Hello,\n\nthe order code is {MARKERS['outlook body']}.\n"), "inbox")
	outlook_account, _ = outlook.connect(outlook_address, user=VICTIM, name=MARKERS["outlook mailbox name"])
	proc = run_worker()  # both mailboxes' initial syncs
	assert proc.returncode == 0, proc.stdout + proc.stderr
	frappe.db.rollback()
	frappe.db.set_value("Gmail Account", account, "account_name", MARKERS["mailbox name"])
	comm = frappe.get_all("Communication", filters={"atlas_mailbox": account},
						  fields=["name", "atlas_inbox_thread"])
	assert len(comm) == 1, comm
	comm, thread = comm[0].name, comm[0].atlas_inbox_thread
	(outlook_comm,) = frappe.get_all("Communication", filters={"atlas_mailbox": outlook_account},
									 fields=["name", "atlas_inbox_thread"])
	file = frappe.get_all("File", filters={"attached_to_doctype": "Communication", "attached_to_name": comm},
						  fields=["name", "file_url"])
	assert len(file) == 1 and file[0].file_url.startswith("/private/files/"), file
	company = frappe.defaults.get_global_default("company")
	customer = frappe.get_doc({"doctype": "Customer", "customer_name": f"Privacy Customer {TAG}",
							   "customer_type": "Company"}).insert(ignore_permissions=True).name
	contact = frappe.get_doc({"doctype": "Contact", "first_name": f"Privacy {TAG}",
							  "links": [{"link_doctype": "Customer", "link_name": customer},
										{"link_doctype": "Inbox Thread", "link_name": thread}]}
							 ).insert(ignore_permissions=True).name
	frappe.db.set_value("Contact", contact, "owner", SALES, update_modified=False)
	lead = frappe.get_doc({"doctype": "Lead", "lead_name": f"Privacy Lead {TAG}", "company_name": "Privacy Co"}
						  ).insert(ignore_permissions=True).name
	quotations = {user: _quotation(frappe, customer, company, user) for user in ATTACKERS}
	from atlas_integrations.inbox.act import add_timeline_links

	add_timeline_links({comm: {("Customer", customer), ("Contact", contact), ("Lead", lead),
							   *(("Quotation", q) for q in quotations.values())}})
	link = frappe.db.get_value("Communication Link", {"parent": comm, "link_doctype": "Customer"}, "name")
	outgoing = frappe.get_doc({"doctype": "Outgoing Mail", "status": "Sent", "user": VICTIM, "inbox_thread": thread,
							   "mailbox_type": "Gmail Account", "mailbox": account, "subject": f"Re: {MARKERS['send']}",
							   "to_addresses": f"partner-{TAG}@partner.example", "request_key": uuid.uuid4().hex,
							   "raw": f"Subject: Re: {MARKERS['send']}\r\n\r\n{MARKERS['send']}\r\n"})
	outgoing.flags.ignore_permissions = True
	outgoing.insert()
	frappe.get_doc({"doctype": "ToDo", "allocated_to": VICTIM, "reference_type": "Inbox Thread",
					"reference_name": thread, "description": "the victim's own work"}).insert(ignore_permissions=True)
	frappe.db.commit()
	yield {"account": account, "thread": thread, "comm": comm, "file": file[0].name, "file_url": file[0].file_url,
		   "outgoing": outgoing.name, "link": link, "customer": customer, "contact": contact, "lead": lead,
		   "quotation": quotations, "company": company, "mailbox": address, "outlook_account": outlook_account,
		   "outlook_thread": outlook_comm.atlas_inbox_thread, "outlook_comm": outlook_comm.name}
	if os.environ.get("ATLAS_KEEP_TEST_DATA") == "1":
		return
	frappe.db.rollback()
	frappe.set_user("Administrator")
	for name in quotations.values():
		doc = frappe.get_doc("Quotation", name)
		if doc.docstatus == 1:
			doc.cancel()
		frappe.delete_doc("Quotation", name, force=True, ignore_permissions=True)
	frappe.db.delete("Outgoing Mail", {"mailbox": account})
	frappe.db.delete("ToDo", {"reference_type": "Inbox Thread", "reference_name": thread})
	frappe.db.delete("Document Follow", {"ref_docname": ["in", [thread, comm, account]]})
	for doctype, name in (("Contact", contact), ("Customer", customer), ("Lead", lead)):
		frappe.delete_doc(doctype, name, force=True, ignore_permissions=True)
	frappe.db.commit()
	helper.cleanup()
	outlook.cleanup()


@pytest.fixture(scope="module")
def attackers(web, victim_mail):
	"""Logged-in ``requests`` sessions: ``{SALES: session, DISPATCHER: session}``."""
	return {user: login(web, user, TEST_PASSWORD) for user in ATTACKERS}


def untouched(frappe, mail: dict) -> list[str]:
	"""What of the victim's mail changed or went away (empty when all is as the fixture left it)."""
	problems = []
	frappe.db.rollback()
	row = frappe.db.get_value("Communication", mail["comm"], ["content", "subject", "atlas_mailbox",
																"reference_name", "atlas_inbox_thread"], as_dict=True)
	if not row or MARKERS["body"] not in (row.content or "") or row.atlas_mailbox != mail["account"] \
			or row.reference_name != mail["thread"]:
		problems.append(f"message changed: {row}")
	if frappe.db.get_value("Inbox Thread", mail["thread"], "mailbox") != mail["account"]:
		problems.append("thread re-homed or gone")
	if frappe.db.get_value("Gmail Account", mail["account"], "user") != VICTIM:
		problems.append("mailbox re-homed or gone")
	if frappe.db.get_value("File", mail["file"], "attached_to_name") != mail["comm"]:
		problems.append("attachment row changed or gone")
	owners = frappe.get_all("File", filters={"file_url": mail["file_url"]}, pluck="owner")
	if any(owner in ATTACKERS for owner in owners):
		problems.append(f"a File row of an attacker points at the attachment: {owners}")
	if not frappe.db.exists("Outgoing Mail", mail["outgoing"]):
		problems.append("send gone")
	outlook = frappe.db.get_value("Communication", mail["outlook_comm"], ["content", "atlas_mailbox"], as_dict=True)
	if not outlook or MARKERS["outlook body"] not in (outlook.content or "") or outlook.atlas_mailbox != mail["outlook_account"]:
		problems.append("Outlook message changed or gone")
	if frappe.db.get_value("Outlook Account", mail["outlook_account"], "user") != VICTIM:
		problems.append("Outlook mailbox re-homed or gone")
	return problems


def as_json(value) -> str:
	return json.dumps(value, default=str)
