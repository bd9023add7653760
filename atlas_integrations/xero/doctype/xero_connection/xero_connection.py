# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

import frappe
from frappe.model.document import Document

from atlas_integrations import messages
from atlas_integrations.inbox import mailboxes

NOT_A_SENDING_TYPE = "{0} is not a kind of mailbox that can send quotes"
NOT_SHARED = "Quotes are sent from a shared workspace mailbox: {0} is a personal mailbox"
OTHER_COMPANY = "The mailbox {0} belongs to Company {1}, not {2}"


class XeroConnection(Document):
	"""One Xero organisation (tenant) per Company; behaviour in ``atlas_integrations/xero/``. The form checks
	"Send Quotes From" (a Dynamic Link over every registered mailbox type that can send)."""

	def onload(self):
		# the mailbox types "Send Quotes Through" offers, and the filter that keeps their shared mailboxes
		self.set_onload("quote_mailbox_types", {
			t.doctype: ({t.kind_field: mailboxes.SHARED} if t.kind_field else {}) for t in mailboxes.sending_types()})

	def validate(self):
		self.validate_quote_mailbox()

	def validate_quote_mailbox(self):
		""""Send Quotes From" names a shared workspace mailbox, of this Company or of none, of a registered
		mailbox type that can send (:func:`atlas_integrations.inbox.mailboxes.sending_types`); the type alone,
		without a mailbox, is cleared.

		Raises:
			frappe.ValidationError: :data:`NOT_A_SENDING_TYPE`, :data:`NOT_SHARED`, :data:`OTHER_COMPANY`.
		"""
		if not self.quote_mailbox:
			self.quote_mailbox_type = None
			return
		sending = {t.doctype: t for t in mailboxes.sending_types()}
		mailbox_type = sending.get(self.quote_mailbox_type)
		if not mailbox_type:
			messages.throw(NOT_A_SENDING_TYPE, self.quote_mailbox_type or "-", title="Xero")
		fields = [f for f in (mailbox_type.kind_field, mailbox_type.company_field) if f]
		row = frappe.db.get_value(mailbox_type.doctype, self.quote_mailbox, fields, as_dict=True)
		if not row:
			return  # Frappe's link validation names the missing mailbox
		if mailbox_type.kind_field and row.get(mailbox_type.kind_field) != mailboxes.SHARED:
			messages.throw(NOT_SHARED, self.quote_mailbox, title="Xero")
		company = row.get(mailbox_type.company_field) if mailbox_type.company_field else None
		if company and company != self.company:
			messages.throw(OTHER_COMPANY, self.quote_mailbox, company, self.company, title="Xero")
