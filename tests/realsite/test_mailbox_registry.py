"""The mailbox registry (hook ``atlas_mailbox_types``, atlas_integrations/inbox/mailboxes.py) on the real site:
Gmail and the inbound route are registered types like any other; malformed registrations are clear errors;
and a new mailbox type needs nothing but its registration for the row rules, the page's API, the pipeline's
mailbox facts, readers and erase to cover it: mail rows name their mailbox in the same Dynamic Link pair for
every type (shown with a third type made here: a custom DocType, and no column anywhere else)."""

from __future__ import annotations

import uuid

import pytest

from tests.realsite.conftest import ensure_user

OWNER = "atlas-registry-owner@atlas-test.example"  # Atlas Dispatcher with a personal mailbox of the new type
COLLEAGUE = "atlas-registry-colleague@atlas-test.example"  # another Atlas Dispatcher
OUTSIDER = "atlas-registry-outsider@atlas-test.example"  # a Sales User: no Atlas role
TYPE = "Atlas Test Mailbox"


def test_gmail_outlook_and_the_inbound_route_are_registered_types(site):
	from atlas_integrations.inbox import mailboxes

	frappe = site
	assert "atlas_integrations.gmail.mailbox_type.MAILBOX_TYPES" in frappe.get_hooks("atlas_mailbox_types")
	types = mailboxes.types()
	assert set(types) == {"Gmail Account", "Outlook Account", "Inbound Route"}
	gmail, outlook, route = types["Gmail Account"], types["Outlook Account"], types["Inbound Route"]
	assert (gmail.owner_field, gmail.kind_field, gmail.sends) == ("user", "account_type", True)
	assert (outlook.owner_field, outlook.kind_field, outlook.label) == ("user", "account_type", "Outlook")
	assert (route.owner_field, route.kind_field, route.sends, route.send_reply) == (None, None, False, None)
	queries, hooks = frappe.get_hooks("permission_query_conditions"), frappe.get_hooks("has_permission")
	for t in types.values():  # a type with owners has the row rules of a mailbox doctype
		if t.owner_field:
			assert "atlas_integrations.permissions.mailbox_query" in queries.get(t.doctype, []), t.doctype
			assert "atlas_integrations.permissions.mailbox_has_permission" in hooks.get(t.doctype, []), t.doctype
	for doctype, column_of in (("Inbox Thread", "thread"), ("Communication", "communication"),
							   ("Outgoing Mail", "outgoing")):  # one Dynamic Link pair per mail doctype, every type
		type_column, name_column = mailboxes.COLUMNS[column_of]
		meta = frappe.get_meta(doctype)
		assert meta.get_field(type_column).options == "DocType", doctype
		assert (meta.get_field(name_column).fieldtype, meta.get_field(name_column).options) == ("Dynamic Link", type_column)
	for t in types.values():
		for path in filter(None, (getattr(t, e) for e in mailboxes.ENTRY_POINTS)):
			assert callable(frappe.get_attr(path)), path


@pytest.mark.parametrize("entry, words", [
	({"doctype": "X"}, "missing keys ['label']"),
	({"doctype": "X", "label": "X", "colour": "red"}, "unknown keys ['colour']"),
	({"doctype": "X", "label": "X", "communication_field": "c"}, "unknown keys ['communication_field']"),
	({"doctype": "X", "label": "X", "address_field": "c; drop table x"}, "must be a column name"),
	({"doctype": "X", "label": "X", "send_reply": "not a path"}, "must be a dotted path"),
	({"doctype": "X", "label": "X", "locked_fields": ["nodot"]}, "locked_fields entries"),
	({"doctype": "X", "label": "X", "send_submit": "a.b"},
	 "a type that sends needs all three outbox steps; missing send_find, send_store"),
	("Gmail Account", "is not a dict"),
])
def test_a_malformed_registration_is_a_clear_error(site, entry, words):
	from atlas_integrations.inbox import mailboxes

	with pytest.raises(mailboxes.InvalidMailboxType) as raised:
		mailboxes.MailboxType.from_registration(entry, source="tests")
	assert words in str(raised.value) and "(registered in tests)" in str(raised.value)


def test_a_doctype_registered_twice_and_an_unknown_doctype_are_clear_errors(site):
	from atlas_integrations.inbox import mailboxes

	frappe = site
	gmail = "atlas_integrations.gmail.mailbox_type.MAILBOX_TYPES"
	with pytest.raises(mailboxes.InvalidMailboxType, match="registered twice"):
		mailboxes.load([gmail, gmail])
	with pytest.raises(mailboxes.UnknownMailboxType, match="not a registered mailbox type"):
		mailboxes.get("Customer")
	assert not mailboxes.is_mailbox_doctype("Customer")
	assert frappe.db.exists("DocType", "Customer")


# -- a third mailbox type ---------------------------------------------------------------------------------
def _make_type(frappe) -> None:
	"""A custom mailbox DocType (idempotent); nothing else: mail rows name it in their Dynamic Link pair."""
	if not frappe.db.exists("DocType", TYPE):
		frappe.get_doc({
			"doctype": "DocType", "name": TYPE, "module": "Inbox", "custom": 1, "autoname": "hash",
			"fields": [
				{"fieldname": "email_address", "fieldtype": "Data", "label": "Email Address"},
				{"fieldname": "user", "fieldtype": "Link", "options": "User", "label": "User"},
				{"fieldname": "account_type", "fieldtype": "Select", "label": "Account Type",
				 "options": "Personal\nShared workspace mailbox"},
				{"fieldname": "company", "fieldtype": "Link", "options": "Company", "label": "Company"},
				{"fieldname": "enabled", "fieldtype": "Check", "label": "Enabled", "default": "1"},
				{"fieldname": "create_contacts", "fieldtype": "Check", "label": "Create Contacts"},
			],
			"permissions": [{"role": "System Manager", "read": 1, "write": 1, "create": 1, "delete": 1},
							{"role": "Atlas Dispatcher", "read": 1}],
		}).insert(ignore_permissions=True)
	frappe.db.commit()


def _registration() -> dict:
	return {"doctype": TYPE, "label": "Test provider", "address_field": "email_address", "owner_field": "user",
			"kind_field": "account_type"}


@pytest.fixture
def third_type(site):
	"""The registry with a third type registered (in this process), its mailboxes, threads and messages."""
	from atlas_integrations.inbox import mailboxes

	frappe = site
	for user, roles in ((OWNER, ("Atlas Dispatcher",)), (COLLEAGUE, ("Atlas Dispatcher",)), (OUTSIDER, ("Sales User",))):
		ensure_user(frappe, user, roles)
	_make_type(frappe)
	frappe.local.atlas_mailbox_types = mailboxes.load([*frappe.get_hooks(mailboxes.HOOK), [_registration()]])
	tag = uuid.uuid4().hex[:8]
	made = {"tag": tag}
	for key, user, kind in (("personal", OWNER, "Personal"), ("shared", "Administrator", "Shared workspace mailbox")):
		made[key] = frappe.get_doc({"doctype": TYPE, "email_address": f"{key}-{tag}@registry.example", "user": user,
									"account_type": kind, "enabled": 1}).insert(ignore_permissions=True).name
		thread = frappe.get_doc({"doctype": "Inbox Thread", "subject": f"{key} thread {tag}", "mailbox_type": TYPE,
								 "mailbox": made[key],
								 "thread_key": f"registry-{key}-{tag}"}).insert(ignore_permissions=True)
		made[f"{key}_thread"] = thread.name
		made[f"{key}_message"] = frappe.get_doc({
			"doctype": "Communication", "communication_medium": "Email", "sent_or_received": "Received",
			"subject": f"{key} message {tag}", "content": "hello", "sender": f"ann-{tag}@customer.example",
			"recipients": f"{key}-{tag}@registry.example", "atlas_mailbox_type": TYPE, "atlas_mailbox": made[key],
			"atlas_inbox_thread": thread.name,
			"reference_doctype": "Inbox Thread", "reference_name": thread.name,
		}).insert(ignore_permissions=True).name
	frappe.db.commit()
	try:
		yield made
	finally:
		frappe.set_user("Administrator")
		frappe.db.rollback()
		for key in ("personal", "shared"):
			frappe.db.delete("Communication", {"atlas_mailbox_type": TYPE, "atlas_mailbox": made[key]})
			frappe.db.delete("Inbox Thread", {"mailbox_type": TYPE, "mailbox": made[key]})
			frappe.db.delete(TYPE, {"name": made[key]})
		frappe.db.commit()
		frappe.local.atlas_mailbox_types = None


def _visible(frappe, user: str, doctype: str, names: list[str]) -> set[str]:
	"""What ``user`` lists of ``names``; nothing when their roles may not read ``doctype`` at all."""
	frappe.set_user(user)
	try:
		return set(frappe.get_list(doctype, filters={"name": ["in", names]}, pluck="name"))
	except frappe.PermissionError:
		assert not frappe.has_permission(doctype, "read", user=user)
		return set()
	finally:
		frappe.set_user("Administrator")


def test_a_new_type_gets_the_row_rules_readers_and_the_page_from_its_registration(site, third_type):
	from atlas_integrations.api import smart_inbox
	from atlas_integrations.permissions import can_read_mailbox, mailbox_readers, readable_communications

	frappe = site
	t = third_type
	threads, comms = [t["personal_thread"], t["shared_thread"]], [t["personal_message"], t["shared_message"]]
	# list rules (permission_query_conditions; for Communication Atlas's rule alone, since Frappe's own lists
	# a user's e-mail only to "Super Email User") and document rules (has_permission) agree, per user
	expected = {"Administrator": {0, 1}, OWNER: {0, 1}, COLLEAGUE: {1}, OUTSIDER: set()}
	for user, which in expected.items():
		assert _visible(frappe, user, "Inbox Thread", threads) == {threads[i] for i in which}, user
		assert readable_communications(comms, user) == {comms[i] for i in which}, user
		for i, (thread, comm) in enumerate(zip(threads, comms)):
			doc = frappe.get_doc("Inbox Thread", thread)
			assert bool(frappe.has_permission("Inbox Thread", "read", doc=doc, user=user)) == (i in which), (user, i)
			doc = frappe.get_doc("Communication", comm)
			assert bool(frappe.has_permission("Communication", "read", doc=doc, user=user)) == (i in which), (user, i)
	from atlas_integrations.guard import guarded_doctypes

	assert TYPE in guarded_doctypes()  # deny by default for RPC calls naming it, without an atlas_mail_doctypes entry
	assert can_read_mailbox((TYPE, t["personal"]), OWNER) and not can_read_mailbox((TYPE, t["personal"]), COLLEAGUE)
	assert not can_read_mailbox((TYPE, t["shared"]), OUTSIDER)
	readers = set(mailbox_readers((TYPE, t["shared"])))
	assert {OWNER, COLLEAGUE} <= readers and OUTSIDER not in readers
	assert OWNER in mailbox_readers((TYPE, t["personal"])) and COLLEAGUE not in mailbox_readers((TYPE, t["personal"]))
	# the Smart Inbox page's API: views, list rows with their source, and the mailbox list
	frappe.set_user(OWNER)
	try:
		mine = smart_inbox.list_threads(view="mine", page_length=100)["threads"]
		row = next(r for r in mine if r["name"] == t["personal_thread"])
		assert (row["mailbox_type"], row["mailbox"], row["source"]) == (TYPE, t["personal"], "Test provider")
		shared = {r["name"] for r in smart_inbox.list_threads(view="shared", page_length=100)["threads"]}
		assert t["shared_thread"] in shared and t["personal_thread"] not in shared
		by_mailbox = smart_inbox.list_threads(view=f"mailbox:{t['personal']}")["threads"]
		assert [r["name"] for r in by_mailbox] == [t["personal_thread"]]
		boxes = {(b["mailbox_type"], b["name"]) for b in smart_inbox.views()["mailboxes"]}
		assert {(TYPE, t["personal"]), (TYPE, t["shared"])} <= boxes
	finally:
		frappe.set_user("Administrator")
	frappe.set_user(COLLEAGUE)
	try:
		assert (TYPE, t["personal"]) not in {(b["mailbox_type"], b["name"]) for b in smart_inbox.views()["mailboxes"]}
	finally:
		frappe.set_user("Administrator")


def test_a_new_type_that_cannot_send_says_so_in_words(site, third_type):
	from atlas_integrations.api import smart_inbox
	from atlas_integrations.inbox import mailboxes

	frappe = site
	frappe.set_user(OWNER)
	try:
		with pytest.raises(mailboxes.NotSupported) as raised:
			smart_inbox.send_reply(third_type["personal_thread"], "ann@customer.example", "Hello", uuid.uuid4().hex)
		assert "this thread's mailbox (Test provider) cannot" in str(raised.value)
	finally:
		frappe.set_user("Administrator")
		frappe.db.rollback()


@pytest.mark.parametrize("mailbox_type", ["Customer", None])
def test_a_row_whose_mailbox_type_is_not_registered_or_missing_is_denied_to_everyone(site, third_type, mailbox_type):
	frappe = site
	admin = ensure_user(frappe, "atlas-registry-admin@atlas-test.example", ("Atlas Admin",))
	frappe.db.set_value("Inbox Thread", third_type["shared_thread"], "mailbox_type", mailbox_type, update_modified=False)
	frappe.db.commit()
	try:
		for user in ("Administrator", admin, OWNER):
			assert _visible(frappe, user, "Inbox Thread", [third_type["shared_thread"]]) == set(), user
		doc = frappe.get_doc("Inbox Thread", third_type["shared_thread"])
		for user in (admin, OWNER):  # (Frappe lets Administrator past every document rule)
			assert not frappe.has_permission("Inbox Thread", "read", doc=doc, user=user), user
	finally:
		frappe.db.set_value("Inbox Thread", third_type["shared_thread"], "mailbox_type", TYPE, update_modified=False)
		frappe.db.commit()
