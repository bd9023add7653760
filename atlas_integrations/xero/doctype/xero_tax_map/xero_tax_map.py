# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class XeroTaxMap(Document):
	"""A row of the Xero Connection's mapping (atlas_integrations/xero/settings.py reads it)."""
