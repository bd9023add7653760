# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

import frappe
from frappe import _
from frappe.model.document import Document

from atlas_integrations import messages
from atlas_integrations.inbox import inbound

#: written by the endpoints only (one SQL update per accepted message), never by a form save
ACTIVITY_FIELDS = ("last_received_at", "received_count", "rejected_count", "last_rejection")


class InboundRoute(Document):
	"""A managed inbound address. Receiving is :mod:`atlas_integrations.inbox.inbound`."""

	@property
	def endpoint_url(self) -> str:
		return inbound.endpoint_url(self.name, mailgun=False) if self.name else ""

	@property
	def mailgun_url(self) -> str:
		return inbound.endpoint_url(self.name, mailgun=True) if self.name else ""

	def onload(self) -> None:
		"""The form shows every refused request: the stored total plus those counted in Redis since the
		route's last accepted message (:func:`atlas_integrations.inbox.inbound.refusal_figures`)."""
		pending = inbound.refusal_figures(self.name)
		self.rejected_count = (self.rejected_count or 0) + pending["count"]
		if pending["last"]:
			self.last_rejection = pending["last"]
		self.set_onload("refused_pending", pending["count"])

	def validate(self) -> None:
		"""Normalise the address, keep the endpoints' activity figures as stored, and warn when the route's
		limit is above what the site reads of a request (site config ``max_file_size``)."""
		self.inbound_address = (self.inbound_address or "").strip().lower()
		if not self.is_new():  # a form loaded earlier must not write back (or double) the endpoints' figures
			stored = frappe.db.get_value(self.doctype, self.name, list(ACTIVITY_FIELDS), as_dict=True) or {}
			for field in ACTIVITY_FIELDS:
				self.set(field, stored.get(field))
		self._warn_over_site_limit()

	def _warn_over_site_limit(self) -> None:
		from atlas_integrations.setup.install import site_request_limit

		limit_mb = self.max_message_mb or 25
		site = site_request_limit()
		if limit_mb * inbound.MB + inbound.FORM_ALLOWANCE > site:
			frappe.msgprint(
				messages.text("This site reads requests of at most {0} MB (site config max_file_size): a message over "
							  "about {1} MB is refused by Frappe (HTTP 413) before this route sees it. Raise "
							  "max_file_size or lower the route's limit.", round(site / inbound.MB, 2),
							  round((site - inbound.FORM_ALLOWANCE) / inbound.MB, 2)),
				title=_("Inbound Route"), indicator="orange")
