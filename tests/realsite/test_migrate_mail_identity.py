"""A site with synced mail, taken back to the schema before issue 18's neutral identity — Gmail-named id
columns (``atlas_gmail_key``, ``gmail_thread_id``, ``label_ids`` ...), one Link column per mailbox type
(``atlas_gmail_account`` / ``atlas_inbound_route``, ``gmail_account`` / ``inbound_route``) and the route's own
``atlas_route_key`` — migrates forward without losing a message, thread, label, outcome or send, and its
mailbox syncs on, incrementally and through a full resync, without a duplicate. The migration is the real
one: the ``[pre_model_sync]`` patches, then Frappe's doctype sync and the custom fields of
``after_migrate``, in ``bench migrate``'s order."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from tests.realsite.conftest import run_worker, sync_account

OLD_COMMUNICATION = ("atlas_gmail_message_id", "atlas_gmail_thread_id", "atlas_gmail_key", "atlas_label_ids",
					 "atlas_gmail_account")
NEW_COMMUNICATION = ("atlas_provider_message_id", "atlas_provider_thread_id", "atlas_mailbox_key", "atlas_tags",
					 "atlas_mailbox")
OLD_THREAD, NEW_THREAD = ("gmail_thread_id", "label_ids", "gmail_account"), ("provider_thread_id", "tags", "mailbox")
GONE = {"tabCommunication": ("atlas_inbound_route", "atlas_route_key"), "tabInbox Thread": ("inbound_route",),
		"tabOutgoing Mail": ("gmail_account",)}


def _raw(mailbox: str, n: str) -> bytes:
	return (f"From: Ann <ann-{n}@example.org>\r\nTo: {mailbox}\r\nSubject: migrate {n}\r\n"
			f"Message-ID: <{n}@example.org>\r\nDate: Thu, 19 Nov 2026 10:00:00 +0000\r\n\r\nbody {n}\r\n").encode()


def _columns(frappe, table):
	return set(frappe.db.sql_list("""select column_name from information_schema.columns
		where table_schema = database() and table_name = %s""", table))


def _mail(frappe, account, comm_cols, thread_cols):
	"""Every stored message and thread of ``account``, read by SQL with the given column names (so the same
	reading works on either schema), keyed by the provider ids."""
	mid, tid, key, tags, owner = comm_cols
	messages = {r[0]: r[1:] for r in frappe.db.sql(f"""select `{mid}`, name, `{tid}`, `{key}`, `{tags}`,
		atlas_outcome, atlas_inbox_thread, seen from tabCommunication where `{owner}` = %s""", account)}
	ttid, ttags, towner = thread_cols
	threads = {r[0]: r[1:] for r in frappe.db.sql(f"""select `{ttid}`, name, `{ttags}`, labels, outcome,
		message_count, unread from `tabInbox Thread` where `{towner}` = %s""", account)}
	return messages, threads


@pytest.fixture
def route(site):
	frappe = site
	doc = frappe.get_doc({"doctype": "Inbound Route", "route_name": f"Migrate {uuid.uuid4().hex[:6]}",
						  "inbound_address": f"in-{uuid.uuid4().hex[:6]}@atlas-test.example",
						  "signing_key": uuid.uuid4().hex}).insert(ignore_permissions=True)
	frappe.db.commit()
	yield doc.name
	frappe.db.rollback()
	frappe.db.delete("Communication", {"atlas_mailbox_type": "Inbound Route", "atlas_mailbox": doc.name})
	frappe.db.delete("Inbox Thread", {"mailbox_type": "Inbound Route", "mailbox": doc.name})
	frappe.delete_doc("Inbound Route", doc.name, ignore_permissions=True, force=True)
	frappe.db.commit()


def _route_rows(frappe, route):
	return frappe.db.sql("""select c.name, c.atlas_mailbox_key, c.atlas_provider_message_id, c.atlas_mailbox_type,
		t.name, t.mailbox_type from tabCommunication c join `tabInbox Thread` t on t.name = c.atlas_inbox_thread
		where c.atlas_mailbox = %s""", route)


def _back_to_the_old_schema(frappe):
	"""What a site installed before the renames has: the Gmail-named columns (the unique index named after
	the old key column) and their Custom Field rows, one Link column per mailbox type, and the inbound route's
	messages keyed in their own unique ``atlas_route_key``."""
	from frappe.custom.doctype.custom_field.custom_field import create_custom_field

	from atlas_integrations.patches import neutral_mail_identity as identity

	for fieldname, field in (("atlas_inbound_route", {"fieldtype": "Link", "options": "Inbound Route", "search_index": 1}),
							 ("atlas_route_key", {"fieldtype": "Data", "unique": 1})):
		create_custom_field("Communication", {"fieldname": fieldname, "label": fieldname, "read_only": 1,
											  "insert_after": "atlas_sender_as_written", **field})
	frappe.db.sql("""update tabCommunication set atlas_inbound_route = atlas_mailbox, atlas_route_key = atlas_mailbox_key,
		atlas_mailbox = null, atlas_mailbox_type = null, atlas_mailbox_key = null, atlas_provider_message_id = null
		where atlas_mailbox_type = 'Inbound Route'""")
	frappe.db.sql_ddl("alter table `tabInbox Thread` add column inbound_route varchar(140)")
	frappe.db.sql("""update `tabInbox Thread` set inbound_route = mailbox, mailbox = null, mailbox_type = null
		where mailbox_type = 'Inbound Route'""")
	frappe.db.delete("Custom Field", {"name": "Communication-atlas_mailbox_type"})
	for table, column in (("tabCommunication", "atlas_mailbox_type"), ("tabInbox Thread", "mailbox_type"),
						  ("tabOutgoing Mail", "mailbox_type")):
		frappe.db.sql_ddl(f"alter table `{table}` drop column `{column}`")
	identity.rename_columns("Communication", {"atlas_mailbox": "atlas_gmail_account"})
	identity.rename_custom_fields("Communication", {"atlas_mailbox": "atlas_gmail_account"})
	frappe.db.set_value("Custom Field", "Communication-atlas_gmail_account",
						{"fieldtype": "Link", "options": "Gmail Account"}, update_modified=False)
	identity.rename_columns("Inbox Thread", {"mailbox": "gmail_account"})
	identity.rename_columns("Outgoing Mail", {"mailbox": "gmail_account"})
	back = {new: old for old, new in identity.COMMUNICATION.items()}
	identity.rename_columns("Communication", back)
	identity.rename_custom_fields("Communication", {**back, **{n: o for o, n in identity.COMMUNICATION_LAYOUT.items()}})
	identity.rename_columns("Inbox Thread", {new: old for old, new in identity.INBOX_THREAD.items()})
	for old, new in (*identity.INBOX_THREAD.items(), ("gmail_account", "mailbox")):
		frappe.db.sql("update tabDocField set fieldname = %s where parent = 'Inbox Thread' and fieldname = %s",
					  (old, new))
	frappe.db.commit()
	for doctype in ("Communication", "Inbox Thread", "Outgoing Mail"):
		frappe.cache.hdel("table_columns", f"tab{doctype}")
		frappe.clear_cache(doctype=doctype)


def _migrate(frappe):
	"""The migration's steps in ``bench migrate``'s order."""
	from atlas_integrations.patches import mailbox_dynamic_link, neutral_mail_identity
	from atlas_integrations.setup.install import make_custom_fields

	neutral_mail_identity.execute()  # [pre_model_sync]
	mailbox_dynamic_link.execute()
	for doctype in ("Inbox Thread", "Outgoing Mail"):  # the model sync
		frappe.reload_doctype(doctype, force=True)
	frappe.db.updatedb("Communication")  # what any later sync of Communication does with its custom fields
	make_custom_fields()  # after_migrate
	frappe.db.commit()


def test_synced_mail_survives_the_identity_migration_and_syncs_on_without_duplicates(site, accounts, route):
	from atlas_integrations.inbox import inbound

	frappe = site
	server = accounts.server
	mailbox = accounts.mailbox(load_corpus=False)
	account, _ = accounts.connect(mailbox)
	run_worker()
	frappe.db.rollback()
	ids = [server.insert_message(mailbox, _raw(mailbox, f"m{n}"), label_ids=["INBOX", "UNREAD"] + (["STARRED"] * (n % 2)))
		   for n in range(6)]
	job = sync_account(frappe, account)
	assert (job.status, job.created) == ("succeeded", 6), job.last_error
	before = _mail(frappe, account, NEW_COMMUNICATION, NEW_THREAD)
	assert set(before[0]) == set(ids)
	assert all(m[4] for m in before[0].values()), "every message has its outcome before the migration"
	assert sum("STARRED" in (t[1] or "") for t in before[1].values()) == 3
	routed = b"From: Bo <bo@example.org>\r\nSubject: via the route\r\nMessage-ID: <r1@example.org>\r\n\r\nhi\r\n"
	assert inbound.store(inbound.route_for(route), routed)["status"] != "duplicate"
	sent = frappe.get_doc({"doctype": "Outgoing Mail", "status": "Sent", "user": "Administrator",
						   "mailbox_type": "Gmail Account", "mailbox": account, "subject": "Re: migrate",
						   "to_addresses": "ann@example.org", "request_key": uuid.uuid4().hex}).insert(ignore_permissions=True)
	frappe.db.commit()
	digest = hashlib.sha256(routed).hexdigest()
	route_rows = _route_rows(frappe, route)
	assert [r[1:4] for r in route_rows] == [(f"{route}:{digest}", digest, "Inbound Route")]

	try:
		_back_to_the_old_schema(frappe)
		comm = _columns(frappe, "tabCommunication")
		assert set(OLD_COMMUNICATION) <= comm and not set(NEW_COMMUNICATION) & comm
		assert frappe.db.exists("Custom Field", "Communication-atlas_gmail_key")
		assert _mail(frappe, account, OLD_COMMUNICATION, OLD_THREAD) == before
		assert frappe.db.sql("select atlas_route_key from tabCommunication where atlas_inbound_route = %s",
							 route) == ((f"{route}:{digest}",),)
		assert frappe.db.sql("select gmail_account from `tabOutgoing Mail` where name = %s", sent.name) == ((account,),)
		_migrate(frappe)
	finally:
		_migrate(frappe)  # whatever failed above, the site goes on with the new schema (idempotent)

	for table, gone in GONE.items():
		assert not set(gone) & _columns(frappe, table), (table, "moved into the Dynamic Link pair, then dropped")
	comm, thread = _columns(frappe, "tabCommunication"), _columns(frappe, "tabInbox Thread")
	assert set(NEW_COMMUNICATION) <= comm and not set(OLD_COMMUNICATION) & comm, "renamed, not added beside"
	assert set(NEW_THREAD) <= thread and not set(OLD_THREAD) & thread
	assert not frappe.db.exists("Custom Field", {"dt": "Communication", "fieldname": ["in", [*OLD_COMMUNICATION,
																							   *GONE["tabCommunication"]]]})
	assert frappe.db.get_value("Custom Field", "Communication-atlas_mailbox_key", "unique") == 1
	assert frappe.db.get_value("Custom Field", "Communication-atlas_mailbox", ["fieldtype", "options"]) == (
		"Dynamic Link", "atlas_mailbox_type")
	unique = frappe.db.sql("""select index_name from information_schema.statistics where table_schema = database()
		and table_name = 'tabCommunication' and column_name = 'atlas_mailbox_key' and non_unique = 0""")
	assert unique, "the unique index that makes every write idempotent moved with the column"
	assert _mail(frappe, account, NEW_COMMUNICATION, NEW_THREAD) == before, "every message, thread, label, outcome"
	assert frappe.db.count("Communication", {"atlas_mailbox": account, "atlas_mailbox_type": "Gmail Account"}) == 6
	assert frappe.db.count("Inbox Thread", {"mailbox": account, "mailbox_type": "Gmail Account"}) == len(before[1])
	assert _route_rows(frappe, route) == route_rows, "the route's rows: its key, its type, its thread"
	assert frappe.db.get_value("Outgoing Mail", sent.name, ["mailbox_type", "mailbox"]) == ("Gmail Account", account)
	assert inbound.store(inbound.route_for(route), routed)["status"] == "duplicate"  # a replay, found by that key

	# syncs on: history brings two new messages and a label change onto the renamed columns
	new = [server.insert_message(mailbox, _raw(mailbox, f"n{n}"), label_ids=["INBOX", "UNREAD"]) for n in range(2)]
	server.modify_message(mailbox, ids[0], add_label_ids=["STARRED"], remove_label_ids=["UNREAD"])
	job = sync_account(frappe, account)
	assert (job.status, job.created) == ("succeeded", 2), (job.status, job.details)
	messages, threads = _mail(frappe, account, NEW_COMMUNICATION, NEW_THREAD)
	assert set(messages) == set(ids) | set(new)
	assert "STARRED" in messages[ids[0]][3].split(",") and messages[ids[0]][6] == 1
	starred = [t for t in threads.values() if t[0] == messages[ids[0]][5]]
	assert "STARRED" in starred[0][1].split(",")

	# ... and a full resync that reconciles what is stored finds every message by its key: no duplicate
	frappe.db.set_value("Gmail Account", account, "history_id", "2")  # older than Gmail keeps: answered 404
	frappe.db.commit()
	server.expire_history(mailbox)
	job = sync_account(frappe, account)
	assert (job.status, job.sync_mode, job.created) == ("succeeded", "full resync", 0), job.last_error
	stored = frappe.get_all("Communication", filters={"atlas_mailbox": account}, pluck="atlas_provider_message_id")
	assert sorted(stored) == sorted(set(ids) | set(new))
	assert len(threads) == frappe.db.count("Inbox Thread", {"mailbox": account})
	frappe.db.delete("Outgoing Mail", {"name": sent.name})
	frappe.db.commit()
