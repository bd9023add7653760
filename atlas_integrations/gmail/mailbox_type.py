"""Gmail's mailbox type, registered with the mailbox registry (:mod:`atlas_integrations.inbox.mailboxes`).

``hooks.py`` names :data:`MAILBOX_TYPES` in the ``atlas_mailbox_types`` hook; shared code (row rules, erase,
the pipeline, the Smart Inbox page's API) reads every app's registrations with
``frappe.get_hooks("atlas_mailbox_types")`` and knows nothing else about Gmail. Plain data (it imports
nothing); each entry is validated by :meth:`atlas_integrations.inbox.mailboxes.MailboxType.from_registration`
(keys and meaning documented there).
"""

from __future__ import annotations

MAILBOX_TYPES: list[dict] = [
	{
		"doctype": "Gmail Account",
		"label": "Gmail",
		"address_field": "email_address",
		"owner_field": "user",
		"kind_field": "account_type",  # Personal / Shared workspace mailbox
		"company_field": "company",
		"enabled_field": "enabled",
		"create_contacts_field": "create_contacts",
		"require_known_sender_field": None,  # unknown senders are always held for review
		# Gmail's ids on mail rows, written by the sync only
		"locked_fields": ["Inbox Thread.provider_thread_id", "Communication.atlas_mailbox_key",
						  "Communication.atlas_provider_message_id", "Communication.atlas_provider_thread_id"],
		# Gmail's entry points
		"hydrate_thread": "atlas_integrations.gmail.bodies.hydrate_thread",
		"send_reply": "atlas_integrations.gmail.send.reply",
		"send_new": "atlas_integrations.gmail.send.send_new",
		# the outbox's steps (atlas_integrations/inbox/outbox.py)
		"send_submit": "atlas_integrations.gmail.send.submit",
		"send_find": "atlas_integrations.gmail.send.find_sent",
		"send_store": "atlas_integrations.gmail.send.store_sent",
		"usable": "atlas_integrations.gmail.send.usable_mailbox",
		"send_as": "atlas_integrations.gmail.accounts.send_as",
		"modify_tags": "atlas_integrations.gmail.labels.modify_thread",
		"mark_read": "atlas_integrations.gmail.labels.mark_read",
		"errors": "atlas_integrations.gmail.errors.GmailError",
	},
]
