"""Outgoing Mail's provider ids get provider-neutral columns (issue 18): ``gmail_message_id`` →
``provider_message_id`` and ``gmail_thread_id`` → ``provider_thread_id``. The old columns stay in the table
(Frappe never drops a column), so the copy is lossless and can run again: only rows whose new column is empty
get the old value. Report and list settings that named the old fields are renamed too (Frappe's
``rename_field`` bookkeeping, without its unconditional copy)."""

import frappe
from frappe.model.utils.rename_field import update_property_setters, update_reports, update_user_settings

DOCTYPE = "Outgoing Mail"
RENAMED = {"gmail_message_id": "provider_message_id", "gmail_thread_id": "provider_thread_id"}


def execute():
	for old, new in RENAMED.items():
		if not frappe.db.has_column(DOCTYPE, old) or not frappe.db.has_column(DOCTYPE, new):
			continue
		frappe.db.sql(f"""update `tab{DOCTYPE}` set `{new}` = `{old}`
			where ifnull(`{new}`, '') = '' and ifnull(`{old}`, '') != ''""")
		update_reports(DOCTYPE, old, new)
		update_property_setters(DOCTYPE, old, new)
		update_user_settings(DOCTYPE, old, new)
