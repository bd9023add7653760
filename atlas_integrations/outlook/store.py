"""Writes of the Outlook sync into doctypes: Graph messages as the one writer's envelopes (folder, isRead,
flag and categories as tags and flags), state changes and deletions of stored messages.

The rows are written by :func:`atlas_integrations.inbox.writer.write_batch` (one ``INSERT IGNORE`` per batch
under the unique ``atlas_mailbox_key`` = account + immutable message id, so a replayed page or a concurrent
run never stores a second copy), as for every other mail source.
"""

from __future__ import annotations

from datetime import datetime, timezone

import frappe

from atlas_integrations.inbox import writer
from atlas_integrations.outlook.accounts import DOCTYPE, FOLDER_TAGS

MAILBOX_TYPE = DOCTYPE
#: a category as a tag: at most this many characters, no comma (tags are stored comma-separated)
CATEGORY_MAX = 100
#: categories kept per message
CATEGORIES_MAX = 25


def received_at(resource: dict) -> datetime:
	"""Graph ``receivedDateTime`` (ISO 8601, UTC) as aware UTC; now when absent or unreadable."""
	value = str(resource.get("receivedDateTime") or "")[:40]
	try:
		when = datetime.fromisoformat(value.replace("Z", "+00:00"))
	except ValueError:
		return datetime.now(timezone.utc)
	return when.astimezone(timezone.utc) if when.tzinfo else when.replace(tzinfo=timezone.utc)


def categories(resource: dict) -> list[str]:
	"""The message's Outlook categories as tags (provider text: commas dropped, each cut to 100 characters,
	at most 25)."""
	out = []
	values = resource.get("categories")
	for value in (values if isinstance(values, list) else [])[:CATEGORIES_MAX * 4]:  # a bound on provider input
		if isinstance(value, str):
			tag = " ".join(value.replace(",", " ").split())[:CATEGORY_MAX]
			if tag and tag.upper() not in ("INBOX", "SENT", "UNREAD", "STARRED", "TRASH", "SPAM", "DRAFT"):
				out.append(tag)
	return list(dict.fromkeys(out))[:CATEGORIES_MAX]


def tags_of(resource: dict, folder: str | None) -> list[str]:
	"""The desk's tags of a Graph message in ``folder`` (a well-known name, None for another folder): the
	folder's (INBOX, SENT, TRASH, SPAM; none in Archive), UNREAD, STARRED (flagged), then its categories."""
	tags = [FOLDER_TAGS.get(folder or "", "")]
	if not resource.get("isRead"):
		tags.append("UNREAD")
	if ((resource.get("flag") or {}).get("flagStatus") or "") == "flagged":
		tags.append("STARRED")
	return [t for t in tags if t] + categories(resource)


def envelope(resource: dict, raw: bytes, folder: str | None) -> writer.Envelope:
	"""The writer's envelope of a Graph message (delta resource + its ``$value`` MIME bytes) in ``folder``."""
	return writer.Envelope(
		provider_message_id=resource["id"], raw=raw, received=received_at(resource),
		provider_thread_id=str(resource.get("conversationId") or resource["id"])[:140],
		tags=tags_of(resource, folder), read=bool(resource.get("isRead")), sent=folder == "sentitems",
		draft=bool(resource.get("isDraft")), spam=folder == "junkemail", trash=folder == "deleteditems",
		snippet=str(resource.get("bodyPreview") or "")[:500] or None)


def existing(account: str, ids: list[str]) -> dict[str, frappe._dict]:
	"""The stored messages of ``account`` among Graph ids ``ids``: ``{id: {name, atlas_tags, seen,
	atlas_deleted, atlas_labels_pending, atlas_inbox_thread}}`` (one indexed query)."""
	if not ids:
		return {}
	rows = frappe.get_all("Communication",
						  filters={"atlas_mailbox_key": ["in", [writer.message_key(account, i) for i in ids]]},
						  fields=["name", "atlas_provider_message_id as id", "atlas_tags", "seen", "atlas_deleted",
								  "atlas_labels_pending", "atlas_inbox_thread"])
	return {r.id: r for r in rows}


def apply_state(stored: dict[str, frappe._dict], resources: dict[str, dict], folders: dict[str, str]) -> set[str]:
	"""Bring stored messages to Graph's state (folder, read, flag, categories); a message with a desk
	change not yet written back keeps the desk's state (older delta data never undoes it); a message seen
	again is no longer deleted. ``folders``: folder id -> well-known name. Returns the Inbox Threads touched."""
	touched = set()
	for mid, resource in resources.items():
		row = stored.get(mid)
		if row is None or row.atlas_labels_pending:
			continue
		tags = ",".join(tags_of(resource, folders.get(str(resource.get("parentFolderId") or ""))))
		seen = 1 if resource.get("isRead") else 0
		if tags != (row.atlas_tags or "") or seen != row.seen or row.atlas_deleted:
			frappe.db.set_value("Communication", row.name, {"atlas_tags": tags, "seen": seen, "atlas_deleted": 0})
			touched.add(row.atlas_inbox_thread)
	return touched


def mark_deleted(stored: dict[str, frappe._dict], ids: list[str]) -> set[str]:
	"""Flag stored messages deleted in the mailbox (kept, hidden from their thread). Returns the Inbox
	Threads touched."""
	rows = [stored[i] for i in ids if i in stored and not stored[i].atlas_deleted]
	if rows:
		frappe.db.set_value("Communication", {"name": ["in", [r.name for r in rows]]}, "atlas_deleted", 1,
							update_modified=True)
	return {r.atlas_inbox_thread for r in rows}


def refresh_threads(account: str, thread_names: set[str]) -> None:
	"""Recompute the aggregates of the account's Inbox Threads ``thread_names`` from their stored messages."""
	names = {t for t in thread_names if t}
	if names:
		writer.refresh_threads(write_context(account), names)


def write_context(account: str, storage_mode: str = writer.FULL, max_attachment_bytes: int = 10 * 1024 * 1024,
				  backfill: bool = False) -> writer.WriteContext:
	"""The writer's context for ``account`` (tags are their own names)."""
	return writer.WriteContext(mailbox_type=MAILBOX_TYPE, mailbox=account, source="Outlook",
							   storage_mode=storage_mode, max_attachment_bytes=max_attachment_bytes,
							   backfill=backfill)
