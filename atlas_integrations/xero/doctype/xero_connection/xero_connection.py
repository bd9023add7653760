# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class XeroConnection(Document):
	"""One Xero organisation (tenant) per Company. Behaviour comes with the Xero issue."""
