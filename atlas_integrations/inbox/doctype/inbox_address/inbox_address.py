# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class InboxAddress(Document):
	"""One normalised address of a Contact, Customer, Supplier, Lead or User (the matching index of :mod:`atlas_integrations.inbox.match`)."""
