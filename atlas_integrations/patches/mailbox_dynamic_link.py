"""Mail rows name their mailbox in one Dynamic Link pair for every mailbox type (issue 18).

=================  ==========================================  ======================================
DocType            before (one Link column per type)           after (mailbox type + Dynamic Link)
=================  ==========================================  ======================================
Communication      ``atlas_gmail_account``, ``atlas_inbound_route``  ``atlas_mailbox_type``, ``atlas_mailbox``
Inbox Thread       ``gmail_account``, ``inbound_route``         ``mailbox_type``, ``mailbox``
Outgoing Mail      ``gmail_account``                           ``mailbox_type``, ``mailbox``
=================  ==========================================  ======================================

A ``[pre_model_sync]`` patch, after :mod:`neutral_mail_identity`. The Gmail column is renamed in place to the
mailbox column (its index with it) and the type column added and filled with ``Gmail Account`` where a
mailbox is named; an inbound route's rows then get ``Inbound Route`` and the route's name, and the route
column is dropped once every value has moved (checked, else the patch stops before dropping). The
Communication columns are custom fields: their Custom Field rows follow (renamed, or deleted for the route
column), and the type field is created by :func:`atlas_integrations.setup.install.make_custom_fields`.
Idempotent: a table already on the new columns is left alone.
"""

import frappe

from atlas_integrations.patches.neutral_mail_identity import _columns, rename_columns, rename_custom_fields

#: doctype -> (Gmail column, inbound route column or None, type column, mailbox column)
TABLES = {
	"Communication": ("atlas_gmail_account", "atlas_inbound_route", "atlas_mailbox_type", "atlas_mailbox"),
	"Inbox Thread": ("gmail_account", "inbound_route", "mailbox_type", "mailbox"),
	"Outgoing Mail": ("gmail_account", None, "mailbox_type", "mailbox"),
}


def execute():
	for doctype, (gmail, route, type_column, mailbox) in TABLES.items():
		move(doctype, gmail, route, type_column, mailbox)
	if frappe.db.exists("Custom Field", "Communication-atlas_mailbox"):
		frappe.db.set_value("Custom Field", "Communication-atlas_mailbox",
							{"fieldtype": "Dynamic Link", "options": "atlas_mailbox_type", "label": "Mailbox"},
							update_modified=False)
	from atlas_integrations.setup.install import make_custom_fields

	make_custom_fields()
	frappe.db.commit()


def move(doctype: str, gmail: str, route: str | None, type_column: str, mailbox: str) -> None:
	"""Move ``doctype``'s per-type columns into the (``type_column``, ``mailbox``) pair."""
	table = f"tab{doctype}"
	columns = _columns(table)
	if not columns:
		return  # the doctype sync creates the table with the new columns
	if gmail in columns:
		rename_columns(doctype, {gmail: mailbox})
		if doctype == "Communication":
			rename_custom_fields(doctype, {gmail: mailbox})
	if type_column not in _columns(table):
		frappe.db.sql_ddl(f"alter table `{table}` add column `{type_column}` varchar(140)")
	if mailbox not in _columns(table):
		frappe.db.sql_ddl(f"alter table `{table}` add column `{mailbox}` varchar(140)")
		frappe.db.sql_ddl(f"alter table `{table}` add index `{mailbox}` (`{mailbox}`)")
	frappe.db.sql(f"""update `{table}` set `{type_column}` = 'Gmail Account'
		where ifnull(`{mailbox}`, '') != '' and ifnull(`{type_column}`, '') = ''""")
	if route and route in _columns(table):
		frappe.db.sql(f"""update `{table}` set `{type_column}` = 'Inbound Route', `{mailbox}` = `{route}`
			where ifnull(`{route}`, '') != '' and ifnull(`{mailbox}`, '') = ''""")
		left = frappe.db.sql(f"""select count(*) from `{table}` where ifnull(`{route}`, '') != ''
			and not (`{type_column}` = 'Inbound Route' and `{mailbox}` = `{route}`)""")[0][0]
		if left:
			raise frappe.ValidationError(f"{doctype}: {left} rows name both a Gmail Account and an Inbound Route")
		frappe.db.sql_ddl(f"alter table `{table}` drop column `{route}`")
		if doctype == "Communication":
			frappe.db.sql("update `tabCustom Field` set insert_after = 'atlas_sender_as_written' "
						  "where dt = 'Communication' and insert_after = %s", route)
			frappe.db.delete("Custom Field", {"name": f"Communication-{route}"})
	frappe.cache.hdel("table_columns", table)
	frappe.clear_cache(doctype=doctype)
