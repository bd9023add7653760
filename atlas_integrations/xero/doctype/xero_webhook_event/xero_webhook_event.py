# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class XeroWebhookEvent(Document):
	"""One Xero webhook event, recorded once (atlas_integrations/xero/webhooks.py names it)."""
