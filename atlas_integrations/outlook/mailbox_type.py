"""Outlook's mailbox type, registered with the mailbox registry (:mod:`atlas_integrations.inbox.mailboxes`)
through the ``atlas_mailbox_types`` hook. Plain data (it imports nothing); each entry is validated by
:meth:`atlas_integrations.inbox.mailboxes.MailboxType.from_registration` (keys and meaning documented there).

Sending is not registered yet: until it is, the Smart Inbox says in words that an Outlook mailbox cannot
send (:data:`atlas_integrations.inbox.mailboxes.CANNOT_SEND`).
"""

from __future__ import annotations

MAILBOX_TYPES: list[dict] = [
	{
		"doctype": "Outlook Account",
		"label": "Outlook",
		"address_field": "email_address",
		"owner_field": "user",
		"kind_field": "account_type",  # Personal / Shared workspace mailbox
		"company_field": "company",
		"enabled_field": "enabled",
		"create_contacts_field": "create_contacts",
		"require_known_sender_field": None,  # unknown senders are always held for review
		# Graph's ids on mail rows, written by the sync only
		"locked_fields": ["Inbox Thread.provider_thread_id", "Communication.atlas_mailbox_key",
						  "Communication.atlas_provider_message_id", "Communication.atlas_provider_thread_id"],
		# desk changes written back to Graph (Outlook Modify jobs)
		"modify_tags": "atlas_integrations.outlook.state.modify_thread",
		"mark_read": "atlas_integrations.outlook.state.mark_read",
		"errors": "atlas_integrations.outlook.errors.OutlookError",
	},
]
