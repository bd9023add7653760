# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class XeroBankAccountMap(Document):
	"""A row of the Xero Connection's payment mapping (atlas_integrations/xero/payments.py reads it)."""
