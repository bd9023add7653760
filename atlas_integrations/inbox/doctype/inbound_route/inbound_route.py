# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document

from atlas_integrations.inbox import inbound


class InboundRoute(Document):
	"""A managed inbound address. Receiving is :mod:`atlas_integrations.inbox.inbound`."""

	@property
	def endpoint_url(self) -> str:
		return inbound.endpoint_url(self.name, mailgun=False) if self.name else ""

	@property
	def mailgun_url(self) -> str:
		return inbound.endpoint_url(self.name, mailgun=True) if self.name else ""

	def validate(self) -> None:
		self.inbound_address = (self.inbound_address or "").strip().lower()
