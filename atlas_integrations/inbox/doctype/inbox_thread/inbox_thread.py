# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class InboxThread(Document):
	"""One Gmail thread of one account. Written by :mod:`atlas_integrations.gmail.store`; its messages are
	the Communications that reference it (they show in the form's timeline)."""
