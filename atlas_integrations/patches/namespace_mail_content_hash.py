"""Mail attachments' File ``content_hash`` behind the ``atlas-mail:`` prefix (inbox/attachments.py), so that
Frappe's duplicate check never points a user's upload at a mail file. Idempotent: rows already prefixed
are left alone."""

import frappe


def execute():
	from atlas_integrations.inbox.attachments import MAIL_HASH_PREFIX
	from atlas_integrations.permissions import mail_file_sql

	frappe.db.sql(
		f"""update `tabFile` f set f.content_hash = concat(%(prefix)s, f.content_hash)
		where ifnull(f.content_hash, '') != '' and f.content_hash not like %(like)s and {mail_file_sql('f')}""",
		{"prefix": MAIL_HASH_PREFIX, "like": MAIL_HASH_PREFIX + "%"})
