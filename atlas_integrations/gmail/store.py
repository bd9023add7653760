"""Writes of the Gmail sync into doctypes: Gmail messages as the one writer's envelopes (labelIds as tags
and flags), label and deletion changes on stored messages, replies linked to their parents.

The rows themselves are written by :func:`atlas_integrations.inbox.writer.write_batch` (one ``INSERT
IGNORE`` per batch under the unique ``atlas_mailbox_key`` = account + Gmail message id, so a replay or a
concurrent run never stores a second copy), as for every other mail source.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone

import frappe

from atlas_integrations.gmail.filters import MailFilter
from atlas_integrations.inbox import writer
from atlas_integrations.inbox.mime import ParsedMessage

FULL, SNIPPET_ONLY = writer.FULL, writer.SNIPPET_ONLY
#: the mailbox type (doctype) of the rows this writer stores: ``atlas_mailbox_type`` / ``mailbox_type``
MAILBOX_TYPE = "Gmail Account"
BatchResult = writer.BatchResult


@dataclass
class StoreContext:
	"""What every write of one run needs. ``max_attachment_bytes`` is the attachment cap in bytes."""

	account: str
	storage_mode: str = FULL
	max_attachment_bytes: int = 10 * 1024 * 1024
	label_names: dict[str, str] = field(default_factory=dict)  # Gmail label id -> name
	mail_filter: "MailFilter | None" = None  # the account's import rules; None imports everything
	backfill: bool = False  # messages of an initial sync or resync window (the pipeline creates no work)

	def write_context(self) -> writer.WriteContext:
		"""The neutral writer's context for this account."""
		rules = self.mail_filter
		accept = None
		if rules and rules.needs_message:
			def accept(env: writer.Envelope, parsed: ParsedMessage | None) -> str | None:
				return rules.skip_reason(env.tags, parsed)
		return writer.WriteContext(
			mailbox_type=MAILBOX_TYPE, mailbox=self.account, source="Gmail", storage_mode=self.storage_mode,
			max_attachment_bytes=self.max_attachment_bytes, tag_names=self.label_names, accept=accept,
			backfill=self.backfill)


def message_key(account: str, message_id: str) -> str:
	"""The unique key of a message: ``"<account>:<Gmail message id>"``."""
	return writer.message_key(account, message_id)


def existing_message_ids(account: str, message_ids: list[str]) -> set[str]:
	"""The subset of ``message_ids`` already stored for ``account`` (one indexed query)."""
	if not message_ids:
		return set()
	keys = [message_key(account, m) for m in message_ids]
	return set(
		frappe.get_all("Communication", filters={"atlas_mailbox_key": ["in", keys]}, pluck="atlas_provider_message_id")
	)


def internal_date(gmail_message: dict) -> datetime:
	"""Gmail ``internalDate`` (epoch ms, string) as aware UTC; now when absent."""
	ms = gmail_message.get("internalDate")
	if ms:
		return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)
	return datetime.now(timezone.utc)


#: what a Gmail labelId looks like (system ids such as ``INBOX``, user ids such as ``Label_12``)
_LABEL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


def safe_label_ids(label_ids: list[str] | None) -> list[str]:
	"""Gmail labelIds as stored: only id-shaped values (a provider answer is hostile input too)."""
	return [x for x in (label_ids or []) if isinstance(x, str) and _LABEL_ID.match(x)]


def envelope(gmail_message: dict) -> writer.Envelope:
	"""The writer's envelope of a Gmail message (``format=raw`` resource): labelIds become tags and the
	read / sent / draft / spam / trash flags (UNREAD, SENT, DRAFT, SPAM, TRASH), Gmail's HTML-escaped
	snippet plain text."""
	mid = gmail_message["id"]
	labels = safe_label_ids(gmail_message.get("labelIds"))
	return writer.Envelope(
		provider_message_id=mid,
		provider_thread_id=gmail_message.get("threadId") or mid,
		raw=base64.urlsafe_b64decode((gmail_message.get("raw") or "").encode() + b"==="),
		received=internal_date(gmail_message),
		tags=labels, read="UNREAD" not in labels, sent="SENT" in labels, draft="DRAFT" in labels,
		spam="SPAM" in labels, trash="TRASH" in labels,
		snippet=html.unescape(gmail_message.get("snippet") or ""),
		values={"atlas_processed_pending": 1},  # until the processing label is applied in Gmail (labels.py)
	)


def write_batch(ctx: StoreContext, gmail_messages: list[dict]) -> BatchResult:
	"""Store a batch of Gmail messages (``format=raw`` resources) in the current transaction, through the
	one writer (:func:`atlas_integrations.inbox.writer.write_batch`).

	Returns:
		A :class:`BatchResult` by Gmail message id. Messages the account's import rules refuse on their
		labels are ``skipped`` before they are read; the rest (drafts skipped too) as the writer says.
	"""
	skipped, envelopes = {}, []
	for gm in gmail_messages:
		labels = gm.get("labelIds") or []
		reason = ctx.mail_filter.skip_by_labels(labels) if ctx.mail_filter and "DRAFT" not in labels else None
		if reason:
			skipped[gm["id"]] = reason
		else:
			envelopes.append(envelope(gm))
	result = writer.write_batch(ctx.write_context(), envelopes) if envelopes else BatchResult()
	result.skipped = {**skipped, **result.skipped}
	return result


def refresh_threads(account: str, thread_ids: set[str] | list[str], label_names: dict[str, str]) -> None:
	"""Recompute the aggregates of the account's threads with these Gmail threadIds from their stored
	messages (:func:`atlas_integrations.inbox.writer.refresh_threads`; labels named by ``label_names``)."""
	if not thread_ids:
		return
	names = frappe.get_all("Inbox Thread", filters={"thread_key": ["in", [writer.thread_key(account, t) for t in thread_ids]]},
						   pluck="name")
	writer.refresh_threads(StoreContext(account=account, label_names=label_names).write_context(), names)


def mark_deleted(account: str, message_ids: list[str]) -> set[str]:
	"""Flag stored messages deleted in Gmail (kept, hidden from their thread). Returns their threadIds."""
	if not message_ids:
		return set()
	keys = [message_key(account, m) for m in message_ids]
	rows = frappe.get_all("Communication", filters={"atlas_mailbox_key": ["in", keys]},
						  fields=["name", "atlas_provider_thread_id"])
	if rows:
		frappe.db.set_value("Communication", {"name": ["in", [r.name for r in rows]]}, "atlas_deleted", 1,
							update_modified=True)
	return {r.atlas_provider_thread_id for r in rows}


def update_labels(account: str, labels_by_message: dict[str, list[str]]) -> set[str]:
	"""Set the current Gmail labelIds (and read state) of stored messages, except those with a desk
	change still pending (see :mod:`atlas_integrations.gmail.labels`). Returns their threadIds."""
	if not labels_by_message:
		return set()
	keys = {message_key(account, m): m for m in labels_by_message}
	rows = frappe.get_all("Communication", filters={"atlas_mailbox_key": ["in", list(keys)]},
						  fields=["name", "atlas_mailbox_key", "atlas_provider_thread_id", "atlas_tags",
								  "atlas_labels_pending"])
	for row in rows:
		if row.atlas_labels_pending:  # a desk change not yet written to Gmail: older history must not undo it
			continue
		labels = safe_label_ids(labels_by_message[keys[row.atlas_mailbox_key]])
		value = ",".join(labels)
		if value != (row.atlas_tags or ""):
			frappe.db.set_value("Communication", row.name, {"atlas_tags": value,
															 "seen": 0 if "UNREAD" in labels else 1})
	return {r.atlas_provider_thread_id for r in rows}


def link_replies(account: str) -> int:
	"""Point ``in_reply_to`` of the account's Communications at their parent Communication, where the
	parent (by RFC 822 Message-ID) is stored. Returns the number of rows linked."""
	frappe.db.sql(
		"""update `tabCommunication` child
		join `tabCommunication` parent
			on parent.atlas_mailbox = child.atlas_mailbox and parent.atlas_mailbox_type = child.atlas_mailbox_type
			and parent.message_id = child.atlas_in_reply_to
		set child.in_reply_to = parent.name
		where child.atlas_mailbox = %s and child.atlas_mailbox_type = %s and child.atlas_in_reply_to is not null
			and child.in_reply_to is null and parent.name != child.name""",
		(account, MAILBOX_TYPE),
	)
	return frappe.db._cursor.rowcount
