"""Sync Jobs made before ``reference_title`` existed get it: the list and the form show the mailbox's
address or the document's title instead of a hash (:func:`atlas_integrations.jobs.reference_title`)."""

import frappe


def execute():
	from atlas_integrations.jobs import reference_title

	references = frappe.db.sql(
		"""select distinct reference_doctype, reference_name from `tabSync Job`
		where ifnull(reference_title, '') = '' and ifnull(reference_name, '') != ''""", as_dict=True)
	for ref in references:
		title = reference_title(ref.reference_doctype, ref.reference_name)
		if title:
			frappe.db.sql(
				"""update `tabSync Job` set reference_title = %s where reference_doctype = %s
				and reference_name = %s and ifnull(reference_title, '') = ''""",
				(title, ref.reference_doctype, ref.reference_name))
