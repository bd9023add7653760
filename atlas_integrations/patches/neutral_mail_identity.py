"""The mail's identity leaves its Gmail-named columns (issue 18): every mailbox type writes the same ones.

=================  =========================  ==============================
DocType            before                     after
=================  =========================  ==============================
Communication      ``atlas_gmail_message_id``  ``atlas_provider_message_id``
Communication      ``atlas_gmail_thread_id``   ``atlas_provider_thread_id``
Communication      ``atlas_gmail_key``         ``atlas_mailbox_key`` (unique)
Communication      ``atlas_label_ids``         ``atlas_tags``
Inbox Thread       ``gmail_thread_id``         ``provider_thread_id``
Inbox Thread       ``label_ids``               ``tags``
=================  =========================  ==============================

The inbound route's own unique ``atlas_route_key`` (route + SHA-256 of the raw message) becomes its
``atlas_mailbox_key``, the SHA-256 its ``atlas_provider_message_id``: one unique key for every mailbox type.
Its values are copied first, then its Custom Field row and column go (nothing reads them any more).

A ``[pre_model_sync]`` patch: the columns are renamed in place (``ALTER TABLE … RENAME COLUMN``, MariaDB
10.5+), so no row is copied and none can be lost, and the unique index on the key keeps guarding every write
(renamed with it). It runs before the doctypes sync so that Frappe finds the new columns already there
instead of adding empty ones beside the old; the Communication columns are custom fields, whose rows are
renamed too (a Custom Field left under its old name would add the old column back on the next
``updatedb``). Report, list and property settings that named an old field follow (Frappe's
``rename_field`` bookkeeping). Idempotent: a column already renamed is left alone; when both exist (a half
migration), the new one keeps its values and takes the old one's where it is empty.
"""

import frappe
from frappe.model.utils.rename_field import update_property_setters, update_reports, update_user_settings

COMMUNICATION = {
	"atlas_gmail_message_id": "atlas_provider_message_id",
	"atlas_gmail_thread_id": "atlas_provider_thread_id",
	"atlas_gmail_key": "atlas_mailbox_key",
	"atlas_label_ids": "atlas_tags",
}
#: layout-only custom fields (no column) renamed with them
COMMUNICATION_LAYOUT = {"atlas_gmail_section": "atlas_mailbox_section", "atlas_gmail_column": "atlas_mailbox_column"}
INBOX_THREAD = {"gmail_thread_id": "provider_thread_id", "label_ids": "tags"}


def execute():
	rename_columns("Communication", COMMUNICATION)
	rename_custom_fields("Communication", {**COMMUNICATION, **COMMUNICATION_LAYOUT})
	merge_route_keys()
	rename_columns("Inbox Thread", INBOX_THREAD)


def _columns(table: str) -> set[str]:
	"""The table's columns as the database has them now (not Frappe's cached list)."""
	return set(frappe.db.sql_list(
		"select column_name from information_schema.columns where table_schema = database() and table_name = %s",
		table))


def rename_columns(doctype: str, renamed: dict[str, str]) -> None:
	"""Rename ``doctype``'s columns ``old -> new`` in place, with an index named after the old column
	(``old`` or ``old_index``)."""
	table = f"tab{doctype}"
	if not _columns(table):
		return  # a site older than the table: the doctype sync creates it with the new columns
	for old, new in renamed.items():
		columns = _columns(table)
		if old not in columns:
			continue
		if new in columns:
			frappe.db.sql(f"update `{table}` set `{new}` = `{old}` where ifnull(`{new}`, '') = '' and ifnull(`{old}`, '') != ''")
		else:
			frappe.db.sql_ddl(f"alter table `{table}` rename column `{old}` to `{new}`")
			for suffix in ("", "_index"):  # a DocType field's index / a custom field's (Frappe's names)
				if frappe.db.has_index(table, old + suffix) and not frappe.db.has_index(table, new + suffix):
					frappe.db.sql_ddl(f"alter table `{table}` rename index `{old + suffix}` to `{new + suffix}`")
		update_reports(doctype, old, new)
		update_property_setters(doctype, old, new)
		update_user_settings(doctype, old, new)
	frappe.cache.hdel("table_columns", table)
	frappe.clear_cache(doctype=doctype)


def rename_custom_fields(doctype: str, renamed: dict[str, str]) -> None:
	"""Rename ``doctype``'s Custom Field rows ``old -> new`` (name, fieldname, and every ``insert_after``
	that pointed at the old name); a row already there under the new name wins and the old row goes."""
	for old, new in renamed.items():
		old_name, new_name = f"{doctype}-{old}", f"{doctype}-{new}"
		if not frappe.db.exists("Custom Field", old_name):
			continue
		if frappe.db.exists("Custom Field", new_name):
			frappe.db.delete("Custom Field", {"name": old_name})
		else:
			frappe.db.sql("update `tabCustom Field` set name = %s, fieldname = %s where name = %s",
						  (new_name, new, old_name))
		frappe.db.sql("update `tabCustom Field` set insert_after = %s where dt = %s and insert_after = %s",
					  (new, doctype, old))
	frappe.clear_cache(doctype=doctype)


def merge_route_keys() -> None:
	"""Copy each inbound route message's ``atlas_route_key`` into ``atlas_mailbox_key`` (and its SHA-256 into
	``atlas_provider_message_id``) where those are empty, then drop the old field and column."""
	columns = _columns("tabCommunication")
	if "atlas_route_key" not in columns or "atlas_mailbox_key" not in columns:
		return
	frappe.db.sql("""update tabCommunication set atlas_mailbox_key = atlas_route_key,
			atlas_provider_message_id = substring_index(atlas_route_key, ':', -1)
		where ifnull(atlas_route_key, '') != '' and ifnull(atlas_mailbox_key, '') = ''""")
	left = frappe.db.sql("""select count(*) from tabCommunication where ifnull(atlas_route_key, '') != ''
		and ifnull(atlas_mailbox_key, '') != atlas_route_key""")[0][0]
	if left:  # a key that could not move (it cannot: the key is unique and route keys never met Gmail's)
		raise frappe.ValidationError(f"{left} inbound route messages kept a different atlas_mailbox_key")
	frappe.db.sql("update `tabCustom Field` set insert_after = 'atlas_inbound_route' "
				  "where dt = 'Communication' and insert_after = 'atlas_route_key'")
	frappe.db.delete("Custom Field", {"name": "Communication-atlas_route_key"})
	frappe.db.sql_ddl("alter table tabCommunication drop column atlas_route_key")
	frappe.cache.hdel("table_columns", "tabCommunication")
	frappe.clear_cache(doctype="Communication")
