# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class InboxRule(Document):
	"""A condition on incoming mail and its actions. Evaluated by :mod:`atlas_integrations.inbox.rules`."""
