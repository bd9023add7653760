"""Dynamic Link rows (a Contact's or Address's links) to mail keep the row's name, not the mail's title (a
thread's subject was copied into every linking Contact: atlas_integrations/overrides.py)."""

import frappe


def execute():
	from atlas_integrations.guard import guarded_doctypes

	frappe.db.sql("""update `tabDynamic Link` set link_title = link_name
		where link_doctype in %(guarded)s and ifnull(link_title, '') != link_name""",
				  {"guarded": list(guarded_doctypes())})
