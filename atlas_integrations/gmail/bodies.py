"""Bodies on demand: when a thread is opened, messages stored without their body (storage mode
``snippet only``, or not yet fetched) are fetched from Gmail, sanitized (nh3) and stored. Gmail's
``hydrate_thread`` entry point of the mailbox registry; the reader itself is :mod:`atlas_integrations.inbox.reader`."""

from __future__ import annotations

import base64

import frappe

from atlas_integrations.gmail import accounts
from atlas_integrations.inbox.html import sanitize, text_to_html
from atlas_integrations.inbox.mime import parse_message


def hydrate_thread(thread: str) -> int:
	"""Fetch and store the bodies of the thread's messages that have none (one Gmail batch per 50).

	Args:
		thread: Inbox Thread name (the caller has checked read permission).

	Returns:
		The number of messages whose body was stored now (0 when all were there).

	Raises:
		AuthRevoked, Temporary, Permanent: from the Gmail client (nothing is stored then).
	"""
	doc = frappe.get_doc("Inbox Thread", thread)
	rows = frappe.get_all(
		"Communication",
		filters={"atlas_inbox_thread": thread, "atlas_body_stored": 0, "atlas_deleted": 0},
		fields=["name", "atlas_provider_message_id"],
	)
	if not rows:
		return 0
	client = accounts.client_for(doc.mailbox)
	messages, _failures = client.get_messages([r.atlas_provider_message_id for r in rows], fmt="raw")
	stored = 0
	for row in rows:
		gm = messages.get(row.atlas_provider_message_id)
		if not gm:
			continue
		parsed = parse_message(base64.urlsafe_b64decode((gm.get("raw") or "").encode() + b"==="))
		frappe.db.set_value(
			"Communication",
			row.name,
			{
				"content": sanitize(parsed.html) if parsed.html else text_to_html(parsed.text),
				"text_content": parsed.text,
				"atlas_body_stored": 1,
			},
			update_modified=False,
		)
		stored += 1
	if client.credentials.token:
		accounts.save_access_token(doc.mailbox, client.credentials.token, client.credentials.expiry)
	return stored
