# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class OutgoingMail(Document):
	"""One send through Gmail, exactly once. Behaviour lives in atlas_integrations/gmail/send.py."""
