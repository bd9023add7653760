"""Writes of the Gmail sync into doctypes: a Communication per message, an Inbox Thread per Gmail thread,
private Files for attachments.

Messages are written a batch at a time with Frappe's ``bulk_insert`` (``INSERT IGNORE``) under the unique
``atlas_mailbox_key`` (account + Gmail message id): a replay or a concurrent run that already stored a
message makes its row a no-op instead of a second copy, and the batch learns which rows it really created
by reading back the names it generated. Document controllers are not run for these rows; what they would
do that matters here is done explicitly (HTML sanitized with nh3, every mail-derived text value kept by
the one convention of :mod:`atlas_integrations.inbox.text`, address fields validated with Frappe's email
validator).
"""

from __future__ import annotations

import base64
import html
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import frappe
from frappe.utils import convert_utc_to_system_timezone, now_datetime

from atlas_integrations.inbox import attachments
from atlas_integrations.gmail.filters import MailFilter
from atlas_integrations.inbox import writer
from atlas_integrations.inbox.mime import ParsedMessage, parse_message
from atlas_integrations.inbox.text import mail_text

FULL, SNIPPET_ONLY = "full", "snippet only"
#: the mailbox type (doctype) of the rows this writer stores: ``atlas_mailbox_type`` / ``mailbox_type``
MAILBOX_TYPE = "Gmail Account"


@dataclass
class StoreContext:
	"""What every write of one run needs. ``max_attachment_bytes`` is the attachment cap in bytes."""

	account: str
	storage_mode: str = FULL
	max_attachment_bytes: int = 10 * 1024 * 1024
	label_names: dict[str, str] = field(default_factory=dict)  # Gmail label id -> name
	mail_filter: "MailFilter | None" = None  # the account's import rules; None imports everything
	backfill: bool = False  # messages of an initial sync or resync window (the pipeline creates no work)


@dataclass
class BatchResult:
	"""What one batch did: ``created`` / ``already_present`` Gmail message ids, messages stored with a
	parse error, attachments stored as Files and recorded as not stored, Gmail threadIds touched."""

	created: list[str] = field(default_factory=list)
	created_names: list[str] = field(default_factory=list)  # their Communication names
	#: the rows created, as inserted (field -> value, with name, creation and atlas_inbox_thread): handed to
	#: the Smart Inbox pipeline in memory (:func:`atlas_integrations.inbox.pipeline.run`)
	created_rows: list[dict] = field(default_factory=list)
	already_present: list[str] = field(default_factory=list)
	skipped: dict[str, str] = field(default_factory=dict)  # Gmail message id -> why it was not imported
	failed: dict[str, str] = field(default_factory=dict)  # Gmail message id -> why its row was not stored
	parse_errors: int = 0
	attachments_stored: int = 0
	attachments_skipped: int = 0
	threads: set[str] = field(default_factory=set)
	seconds: dict[str, float] = field(default_factory=dict)  # time spent per stage


def message_key(account: str, message_id: str) -> str:
	"""The unique key of a message: ``"<account>:<Gmail message id>"``."""
	return f"{account}:{message_id}"


def thread_key(account: str, thread_id: str) -> str:
	"""The unique key of a thread: ``"<account>:<Gmail threadId>"``."""
	return f"{account}:{thread_id}"


def existing_message_ids(account: str, message_ids: list[str]) -> set[str]:
	"""The subset of ``message_ids`` already stored for ``account`` (one indexed query)."""
	if not message_ids:
		return set()
	keys = [message_key(account, m) for m in message_ids]
	return set(
		frappe.get_all("Communication", filters={"atlas_mailbox_key": ["in", keys]}, pluck="atlas_provider_message_id")
	)


def _stored_now(account: str, message_ids: list[str]) -> set[str]:
	"""The subset of ``message_ids`` whose unique key is stored for ``account``, as committed now (a
	locking read: it sees a row a concurrent run committed after this transaction's snapshot)."""
	if not message_ids:
		return set()
	keys = [message_key(account, m) for m in message_ids]
	return set(frappe.db.sql_list(
		"""select atlas_provider_message_id from `tabCommunication` where atlas_mailbox_key in %(keys)s
		lock in share mode""", {"keys": keys}))


def _system_time(dt_utc: datetime) -> datetime:
	"""Aware UTC -> naive datetime in the site's time zone (how Frappe stores Datetime)."""
	return convert_utc_to_system_timezone(dt_utc.replace(tzinfo=None)).replace(tzinfo=None)


def internal_date(gmail_message: dict) -> datetime:
	"""Gmail ``internalDate`` (epoch ms, string) as aware UTC; now when absent."""
	ms = gmail_message.get("internalDate")
	if ms:
		return datetime.fromtimestamp(int(ms) / 1000, tz=timezone.utc)
	return datetime.now(timezone.utc)


def message_time(header_date: datetime | None, received: datetime) -> datetime:
	"""When a message happened (aware UTC): its Date header, unless missing or impossible (before 1971,
	or more than a day after Gmail received it), then Gmail's ``internalDate``."""
	if header_date is None or header_date.year < 1971 or (header_date - received).total_seconds() > 86_400:
		return received
	return header_date


#: what a Gmail labelId looks like (system ids such as ``INBOX``, user ids such as ``Label_12``)
_LABEL_ID = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")


def safe_label_ids(label_ids: list[str] | None) -> list[str]:
	"""Gmail labelIds as stored: only id-shaped values (a provider answer is hostile input too)."""
	return [x for x in (label_ids or []) if isinstance(x, str) and _LABEL_ID.match(x)]


def _decode_raw(gmail_message: dict) -> bytes:
	return base64.urlsafe_b64decode((gmail_message.get("raw") or "").encode() + b"===")


@dataclass
class _Row:
	gmail_id: str
	thread_id: str
	values: dict
	parsed: ParsedMessage | None


def build_row(ctx: StoreContext, gmail_message: dict) -> _Row:
	"""The Communication values for one Gmail message (``format=raw`` resource). Never raises: a message
	that cannot be read is described by its raw headers and its error."""
	mid = gmail_message["id"]
	thread_id = gmail_message.get("threadId") or mid
	labels = safe_label_ids(gmail_message.get("labelIds"))
	snippet = html.unescape(gmail_message.get("snippet") or "")  # Gmail's snippet is HTML-escaped text
	base = {
		"communication_type": "Communication",
		"communication_medium": "Email",
		"sent_or_received": "Sent" if "SENT" in labels else "Received",
		"status": "Linked",
		"seen": 0 if "UNREAD" in labels else 1,
		"email_status": "Spam" if "SPAM" in labels else ("Trash" if "TRASH" in labels else "Open"),
		"reference_doctype": "Inbox Thread",
		"atlas_mailbox_type": MAILBOX_TYPE,
		"atlas_mailbox": ctx.account,
		"atlas_provider_message_id": mid,
		"atlas_provider_thread_id": thread_id,
		"atlas_mailbox_key": message_key(ctx.account, mid),
		"atlas_tags": ",".join(labels),
		"atlas_processed_pending": 1,  # until the processing label is applied in Gmail (labels.py)
		"atlas_source": "Gmail",
		"atlas_backfill": 1 if ctx.backfill else 0,
	}
	parsed = None
	try:
		parsed = parse_message(_decode_raw(gmail_message))
		when = message_time(parsed.date, internal_date(gmail_message))
		base.update(writer.message_values(parsed, _system_time(when), full=ctx.storage_mode == FULL,
										  snippet=snippet or None))
	except Exception as exc:  # keep the message with what could be read and the error
		headers = parsed.raw_headers if parsed else ""
		base.update(
			{
				"subject": mail_text(parsed.subject if parsed and parsed.subject else "(unreadable message)"),
				"communication_date": _system_time(internal_date(gmail_message)),
				"content": writer.unreadable_content(headers),
				"atlas_snippet": mail_text(snippet),
				"atlas_parse_error": mail_text(f"could not read the message: {type(exc).__name__}: {exc}"[:2000]),
			}
		)
		parsed = None
	return _Row(mid, thread_id, base, parsed)


def ensure_threads(account: str, subjects: dict[str, str]) -> dict[str, str]:
	"""Inbox Thread names for the given Gmail threadIds, creating the missing ones (concurrency-safe).

	Args:
		subjects: Gmail threadId -> subject to give a new thread.

	Returns:
		Gmail threadId -> Inbox Thread name.
	"""
	if not subjects:
		return {}
	keys = {thread_key(account, tid): tid for tid in subjects}

	def lookup(current: bool = False) -> dict[str, str]:
		# a locking read sees rows other transactions committed after our snapshot was taken
		rows = frappe.db.sql(
			f"""select name, thread_key from `tabInbox Thread` where thread_key in %(keys)s
			{"for update" if current else ""}""",
			{"keys": list(keys)},
			as_dict=True,
		)
		return {keys[r.thread_key]: r.name for r in rows}

	found = lookup()
	missing = [tid for tid in subjects if tid not in found]
	if missing:
		now, user = now_datetime(), frappe.session.user
		frappe.db.bulk_insert(
			"Inbox Thread",
			["name", "creation", "modified", "owner", "modified_by", "mailbox_type", "mailbox", "provider_thread_id",
			 "thread_key", "subject", "message_count", "unread"],
			[(frappe.generate_hash(length=10), now, now, user, user, MAILBOX_TYPE, account, tid, thread_key(account, tid),
			  (subjects[tid] or "(no subject)")[:1000], 0, 0) for tid in missing],  # subjects are stored text
			ignore_duplicates=True,  # a concurrent run created it a moment ago: keep theirs
		)
		found = lookup(current=True)
	return found


def write_batch(ctx: StoreContext, gmail_messages: list[dict]) -> BatchResult:
	"""Store a batch of Gmail messages (``format=raw`` resources) in the current transaction.

	Returns:
		A :class:`BatchResult`. Messages already stored (by an earlier or a concurrent run: their unique
		``atlas_mailbox_key`` exists) are reported as ``already_present`` and left untouched; drafts (label
		DRAFT) are ``skipped``; a row the ``INSERT IGNORE`` dropped although its key does not exist (a
		data error, a name collision) is reported in ``failed``, never as already present.
	"""
	result = BatchResult()
	if not gmail_messages:
		return result
	clock = time.perf_counter()
	rows = []
	for gm in gmail_messages:
		labels = gm.get("labelIds") or []
		reason = "draft" if "DRAFT" in labels else None  # a sent draft arrives as its own SENT message
		reason = reason or (ctx.mail_filter.skip_by_labels(labels) if ctx.mail_filter else None)
		if reason:
			result.skipped[gm["id"]] = reason
			continue
		row = build_row(ctx, gm)
		if ctx.mail_filter and ctx.mail_filter.needs_message:
			reason = ctx.mail_filter.skip_reason(labels, row.parsed)
			if reason:
				result.skipped[gm["id"]] = reason
				continue
		rows.append(row)
	result.seconds["parse"] = time.perf_counter() - clock
	if not rows:
		return result
	clock = time.perf_counter()
	threads = ensure_threads(ctx.account, {r.thread_id: r.values.get("subject") or "" for r in reversed(rows)})
	now, user = now_datetime(), frappe.session.user
	fields = ["name", "creation", "modified", "owner", "modified_by", "docstatus", "idx",
			  "reference_name", "atlas_inbox_thread"]
	value_fields = sorted({k for r in rows for k in r.values})
	names = {}
	values = []
	for r in rows:
		name = frappe.generate_hash(length=10)
		names[name] = r
		thread = threads[r.thread_id]
		values.append([name, now, now, user, user, 0, 0, thread, thread] + [r.values.get(f) for f in value_fields])
	frappe.db.bulk_insert("Communication", fields + value_fields, values, ignore_duplicates=True)
	# created = a row under the name we generated *and* our key (a name collision kept another row)
	created = {r.name for r in frappe.get_all("Communication", filters={"name": ["in", list(names)]},
											  fields=["name", "atlas_mailbox_key"])
			   if r.atlas_mailbox_key == names[r.name].values["atlas_mailbox_key"]}
	not_created = [r.gmail_id for name, r in names.items() if name not in created]
	present = _stored_now(ctx.account, not_created)
	result.seconds["insert"] = time.perf_counter() - clock
	clock = time.perf_counter()
	with_attachments = []
	for name, r in names.items():
		result.threads.add(r.thread_id)
		if name not in created:
			if r.gmail_id in present:  # a replay: its attachments were stored with it
				result.already_present.append(r.gmail_id)
			else:  # dropped by INSERT IGNORE for another reason: a failure, not a duplicate
				result.failed[r.gmail_id] = "the database did not store the message (row dropped by INSERT IGNORE)"
			continue
		result.created.append(r.gmail_id)
		result.created_names.append(name)
		result.created_rows.append({**r.values, "name": name, "creation": now, "atlas_inbox_thread": threads[r.thread_id]})
		if r.values.get("atlas_parse_error"):
			result.parse_errors += 1
		if r.parsed and r.parsed.attachments:
			with_attachments.append((name, r.parsed))
	result.attachments_stored, result.attachments_skipped = store_attachments(ctx, with_attachments)
	result.seconds["attachments"] = time.perf_counter() - clock
	clock = time.perf_counter()
	refresh_threads(ctx.account, result.threads, ctx.label_names)
	result.seconds["threads"] = time.perf_counter() - clock
	return result


def store_attachments(ctx: StoreContext, messages: list[tuple[str, ParsedMessage]]) -> tuple[int, int]:
	"""Save the attachments of newly created Communications, up to the size cap, as private Files on
	them; record the rest. One batch: see :func:`atlas_integrations.inbox.attachments.store_batch`
	(Frappe's File checks and semantics, rows bulk-inserted, same bytes stored once on disk).

	Args:
		messages: ``[(Communication name, parsed message)]``; Communications created in the current
			transaction (not a replayed message).

	Returns:
		``(stored, skipped)`` counts over all messages. Skipped ones (over ``ctx.max_attachment_bytes``,
		or refused by Frappe, e.g. an image that is not one) are listed as JSON ``[{"filename",
		"content_type", "size", "reason"}]`` (size in bytes) in the Communication's
		``atlas_skipped_attachments``; ``has_attachment`` is 1 when at least one was stored.
	"""
	outcomes = attachments.store_batch([(name, parsed.attachments) for name, parsed in messages],
									   ctx.max_attachment_bytes)
	return sum(o.stored for o in outcomes.values()), sum(len(o.skipped) for o in outcomes.values())


def refresh_threads(account: str, thread_ids: set[str] | list[str], label_names: dict[str, str]) -> None:
	"""Recompute the aggregates of the given threads from their stored messages (one read, one write).

	Sets subject (first message), participants, first/last message time, message count, Gmail labelIds
	(union) and label names, unread (any message UNREAD) and snippet (last message). Idempotent.
	"""
	if not thread_ids:
		return
	rows = frappe.get_all(
		"Communication",
		filters={"atlas_mailbox_type": MAILBOX_TYPE, "atlas_mailbox": account,
				 "atlas_provider_thread_id": ["in", list(thread_ids)]},
		fields=["atlas_inbox_thread as thread", "subject", "sender", "atlas_sender_as_written", "recipients", "cc",
				"communication_date", "atlas_tags", "atlas_snippet", "atlas_deleted"],
		order_by="communication_date asc, creation asc",
	)
	by_thread: dict[str, list] = {}
	for row in rows:
		by_thread.setdefault(row.thread, [])
		if not row.atlas_deleted:  # deleted in Gmail: kept, but no longer part of the thread's picture
			by_thread[row.thread].append(row)
	for thread, msgs in by_thread.items():
		if not msgs:
			frappe.db.set_value("Inbox Thread", thread, {"message_count": 0, "unread": 0, "tags": "",
														 "labels": ""}, update_modified=True)
	by_thread = {t: m for t, m in by_thread.items() if m}
	values = []
	now = now_datetime()
	for thread, msgs in by_thread.items():
		if not thread:
			continue
		label_ids: set[str] = set()
		for m in msgs:
			label_ids.update(x for x in (m.atlas_tags or "").split(",") if x)
		agg = writer.thread_values(msgs)
		values.append((
			thread,
			agg["subject"],
			agg["participants"],
			agg["first_message_at"],
			agg["last_message_at"],
			agg["message_count"],
			",".join(sorted(label_ids)),
			mail_text(", ".join(sorted(label_names.get(x, x) for x in label_ids))),
			1 if "UNREAD" in label_ids else 0,
			agg["snippet"],
			now,
		))
	if not values:
		return
	placeholders = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(values))
	# every row exists (ensure_threads): the insert never inserts, it updates all threads in one statement
	frappe.db.sql(
		f"""insert into `tabInbox Thread` (name, subject, participants, first_message_at, last_message_at,
			message_count, tags, labels, unread, snippet, modified)
		values {placeholders}
		on duplicate key update subject=values(subject), participants=values(participants),
			first_message_at=values(first_message_at), last_message_at=values(last_message_at),
			message_count=values(message_count), tags=values(tags), labels=values(labels),
			unread=values(unread), snippet=values(snippet), modified=values(modified)""",
		[v for row in values for v in row],
	)


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
