"""Xero Connection "Send Quotes From" became a Dynamic Link (issue 18): it was a Link to Gmail Account, so a
connection that names a mailbox gets "Send Quotes Through" = Gmail Account. Idempotent (only rows with a
mailbox and no type)."""

import frappe


def execute():
	frappe.db.sql("""update `tabXero Connection` set quote_mailbox_type = 'Gmail Account'
		where ifnull(quote_mailbox, '') != '' and ifnull(quote_mailbox_type, '') = ''""")
