# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class XeroGrant(Document):
	"""One Xero consent and its tokens (see :mod:`atlas_integrations.xero.oauth`)."""

	def __repr__(self) -> str:  # never the tokens
		return f"<XeroGrant {self.name} {self.status}>"
