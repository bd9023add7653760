# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class OutlookAccount(Document):
	"""A connected Outlook / Microsoft 365 mailbox. Behaviour lives in :mod:`atlas_integrations.outlook.accounts`."""

	def validate(self):
		from atlas_integrations.outlook.accounts import validate_account
		from atlas_integrations.permissions import validate_mailbox_ownership

		validate_mailbox_ownership(self)  # against the stored row: no re-homing over REST
		validate_account(self)
