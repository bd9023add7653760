# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class OutgoingMail(Document):
	"""One send through a mailbox, exactly once. The state machine lives in atlas_integrations/inbox/outbox.py; the provider's steps in its send module."""
