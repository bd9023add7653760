"""Outlook's mailbox type, registered with the mailbox registry (:mod:`atlas_integrations.inbox.mailboxes`)
through the ``atlas_mailbox_types`` hook. Plain data (it imports nothing); each entry is validated by
:meth:`atlas_integrations.inbox.mailboxes.MailboxType.from_registration` (keys and meaning documented there).

Replies and quote emails go through the outbox with Outlook's four steps (:mod:`atlas_integrations.outlook.
send`: a draft made and committed, then sent, exactly once).
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
		# Outlook's entry points: replies and quote emails (a draft made, committed, then sent: outlook/send.py)
		"send_reply": "atlas_integrations.outlook.send.reply",
		"send_new": "atlas_integrations.outlook.send.send_new",
		# the outbox's steps (atlas_integrations/inbox/outbox.py)
		"send_prepare": "atlas_integrations.outlook.send.prepare",
		"send_submit": "atlas_integrations.outlook.send.submit",
		"send_find": "atlas_integrations.outlook.send.find_sent",
		"send_store": "atlas_integrations.outlook.send.store_sent",
		"usable": "atlas_integrations.outlook.send.usable_mailbox",
		"send_as": "atlas_integrations.outlook.send.send_as",
		# desk changes written back to Graph (Outlook Modify jobs)
		"modify_tags": "atlas_integrations.outlook.state.modify_thread",
		"mark_read": "atlas_integrations.outlook.state.mark_read",
		"errors": "atlas_integrations.outlook.errors.OutlookError",
	},
]
