"""Sync Jobs made before the indexed ``company`` field existed get it from their payload (Xero work names its
Company there), so the per-Company queue reads by the index instead of ``payload like '%"company": …%'``.
Idempotent: rows that have a Company, or whose payload names none, are left alone."""

import frappe


def execute():
	frappe.db.sql(
		"""update `tabSync Job` set company = json_unquote(json_extract(payload, '$.company'))
		where ifnull(company, '') = '' and json_valid(payload)
		and json_type(json_extract(payload, '$.company')) = 'STRING'""")
