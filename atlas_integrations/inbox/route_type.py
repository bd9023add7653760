"""The managed Inbound Route's mailbox type, registered with the mailbox registry
(:mod:`atlas_integrations.inbox.mailboxes`) like any provider's. Plain data (it imports nothing).

An inbound route is a workspace mailbox (readable with an Atlas role, no owner user) that receives only:
its messages arrive whole (nothing to fetch on open), and it cannot send, so it names no entry points.
"""

from __future__ import annotations

MAILBOX_TYPES: list[dict] = [
	{
		"doctype": "Inbound Route",
		"label": "Inbound route",
		"address_field": "inbound_address",
		"owner_field": None,  # every route belongs to the workspace
		"kind_field": None,  # ... and is a shared workspace mailbox
		"company_field": "company",
		"enabled_field": "enabled",
		"create_contacts_field": "create_contacts",
		"require_known_sender_field": "require_known_sender",
	},
]
