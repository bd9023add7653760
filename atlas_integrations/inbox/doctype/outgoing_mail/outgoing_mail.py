# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class OutgoingMail(Document):
	"""One send through a mailbox, exactly once. Behaviour lives in the provider's send (Gmail: atlas_integrations/gmail/send.py)."""
