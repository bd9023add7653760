"""What every mail source writes, in one place: envelopes (a provider's ids, the raw RFC 822 bytes, its
flags and tags) in; Communications, private Files and Inbox Threads out; the rows it built handed back for
the Smart Inbox pipeline in memory.

Gmail's sync (``gmail/store.py``), the inbound route (``inbox/inbound.py``) and every later provider hand
their messages to :func:`write_batch`. Messages are written a batch at a time with Frappe's ``bulk_insert``
(``INSERT IGNORE``) under the unique ``atlas_mailbox_key`` (mailbox + provider message id): a replay or a
concurrent run that already stored a message makes its row a no-op instead of a second copy, and the batch
learns which rows it really created by reading back the names it generated. Document controllers are not
run for these rows; what they would do that matters here is done explicitly: every mail-derived text value
goes through the one convention of :mod:`atlas_integrations.inbox.text`, the body is sanitized with nh3
(:func:`atlas_integrations.inbox.html.sanitize`), addresses are validated with Frappe's email validator.
"""

from __future__ import annotations

import html
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import frappe
from frappe.utils import convert_utc_to_system_timezone, now_datetime

from atlas_integrations.inbox import attachments
from atlas_integrations.inbox.html import sanitize, text_to_html
from atlas_integrations.inbox.mime import ParsedMessage, format_address, parse_message, rfc_message_key, snippet_of
from atlas_integrations.inbox.text import mail_text, plain, sender_values

DATA_LENGTH = 140  # varchar length of Frappe Data fields
REFERENCES_LENGTH = 10_000  # characters of ``atlas_references`` kept
PARTICIPANTS = 50  # addresses an Inbox Thread lists


def addresses(pairs: list[tuple[str, str]]) -> str:
	"""Addresses for Communication ``recipients``/``cc``/``bcc``/``atlas_reply_to`` (Code fields: the exact
	text, which Frappe escapes wherever it shows a Code value), comma separated."""
	return ", ".join(format_address(p) for p in pairs)


def message_values(parsed: ParsedMessage, communication_date: datetime, full: bool = True,
				   snippet: str | None = None) -> dict:
	"""The Communication values of a parsed message, the same for every source.

	Args:
		parsed: :func:`atlas_integrations.inbox.mime.parse_message`'s result.
		communication_date: when the message happened, naive in the site's time zone (as Frappe stores a
			Datetime); the source decides (Date header, or when the provider received it).
		full: store the body (``content`` sanitized HTML, ``text_content``); False keeps only the snippet
			(Atlas Settings "snippet only").
		snippet: the provider's snippet as plain text; None makes one from the body.

	Returns:
		``{field: value}`` for subject, sender (:func:`sender_values`), recipients, cc, bcc,
		communication_date, message_id, content, text_content, and the Smart Inbox pipeline's inputs
		(``atlas_snippet``, ``atlas_in_reply_to``, ``atlas_reply_to``, ``atlas_references`` (normalised
		Message-IDs, space separated, References then In-Reply-To, each once), ``atlas_signal_headers``,
		``atlas_message_key``, ``atlas_body_stored``, ``atlas_parse_error``, ``has_attachment`` 0 until the
		attachments are stored).
	"""
	snippet = snippet or snippet_of(parsed.text)
	references = dict.fromkeys(k for k in (rfc_message_key(x) for x in [*parsed.references, parsed.in_reply_to]) if k)
	return {
		"subject": mail_text(parsed.subject) or "(no subject)",
		# sender, sender_full_name, atlas_sender_as_written (an address Frappe refuses, as written)
		**sender_values(parsed.sender, DATA_LENGTH),
		"recipients": addresses(parsed.to) or None,
		"cc": addresses(parsed.cc) or None,
		"bcc": addresses(parsed.bcc) or None,
		"communication_date": communication_date,
		"message_id": mail_text(parsed.message_id[:900]),
		"content": ((sanitize(parsed.html) if parsed.html else text_to_html(parsed.text)) if full
					else html.escape(snippet)),
		"text_content": parsed.text if full else None,
		"atlas_snippet": mail_text(snippet),
		"atlas_in_reply_to": mail_text(parsed.in_reply_to),
		"atlas_reply_to": addresses(parsed.reply_to) or None,
		"atlas_references": " ".join(references)[:REFERENCES_LENGTH] or None,
		"atlas_signal_headers": json.dumps(parsed.signal_headers, sort_keys=True),
		"atlas_message_key": rfc_message_key(parsed.message_id) or None,
		"atlas_body_stored": 1 if full else 0,
		"atlas_parse_error": mail_text(parsed.parse_error),
		"has_attachment": 0,
	}


def unreadable_content(raw_headers: str) -> str:
	"""``content`` of a message that could not be read: its raw headers (at most 20,000 characters),
	escaped, in a ``<pre>``."""
	return "<pre>" + html.escape(raw_headers[:20000]) + "</pre>"


def thread_values(rows: list) -> dict:
	"""An Inbox Thread's aggregates from its messages, oldest first (rows with ``subject``, ``sender``,
	``atlas_sender_as_written``, ``recipients``, ``cc``, ``communication_date``, ``atlas_snippet``; at least
	one).

	Returns:
		``{"subject" (the first message's), "participants" (every address once, in order of appearance, at
		most :data:`PARTICIPANTS`), "first_message_at", "last_message_at", "message_count", "snippet" (the
		last message's)}``. The source adds unread state and tags.
	"""
	people: dict[str, None] = {}
	for row in rows:
		# recipients/cc are Code fields (exact text); participants is Small Text: kept as HTML text
		for value in (row.sender or plain(row.atlas_sender_as_written), row.recipients, row.cc):
			for part in (value or "").split(","):
				part = part.strip()
				if part:
					people.setdefault(part, None)
	return {
		"subject": (rows[0].subject or "(no subject)")[:1000],
		"participants": mail_text(", ".join(list(people)[:PARTICIPANTS])),
		"first_message_at": rows[0].communication_date,
		"last_message_at": rows[-1].communication_date,
		"message_count": len(rows),
		"snippet": rows[-1].atlas_snippet,
	}


# ---------------------------------------------------------------------------------------------------------
# The bulk writer every source uses: envelopes in, Communications + Files + Inbox Threads out, the rows it
# built handed back for the pipeline.
# ---------------------------------------------------------------------------------------------------------

FULL, SNIPPET_ONLY = "full", "snippet only"
#: the latest a Date header may be after the provider received the message (seconds) before it is ignored
DATE_AHEAD_LIMIT = 86_400


@dataclass
class Envelope:
	"""One message as a source hands it to :func:`write_batch`: the provider's ids, the exact RFC 822 bytes
	and the provider's facts about it. Provider-neutral: Gmail's labelIds, Outlook's categories and folders
	become ``tags`` and flags.

	``received`` is when the provider received the message (aware UTC). Flags are the provider's: read,
	sent by the mailbox, draft (never imported), spam, trash. ``provider_thread_id`` None threads
	the message by its References / In-Reply-To within the mailbox (a source with no thread ids, such as
	the inbound route). ``parsed`` is given when the source already parsed ``raw``. ``values`` are
	Communication values only this source sets (applied last).
	"""

	provider_message_id: str
	raw: bytes
	received: datetime
	provider_thread_id: str | None = None
	tags: list[str] = field(default_factory=list)
	read: bool = False
	sent: bool = False
	draft: bool = False  # not imported: a draft that is sent arrives as its own sent message
	spam: bool = False
	trash: bool = False
	snippet: str | None = None  # the provider's snippet, plain text
	parsed: ParsedMessage | None = None
	values: dict = field(default_factory=dict)


@dataclass
class WriteContext:
	"""The mailbox a batch is written to and how. ``max_attachment_bytes`` is the attachment cap in bytes;
	``tag_names`` names the tags (Gmail label id -> label name) for the thread's ``labels``; ``accept``
	returns why a parsed message is not imported (a mailbox's import rules), or None."""

	mailbox_type: str
	mailbox: str
	source: str  # Communication ``atlas_source``: "Gmail", "Inbound Route", …
	storage_mode: str = FULL
	max_attachment_bytes: int = 10 * 1024 * 1024
	tag_names: dict[str, str] = field(default_factory=dict)
	accept: Callable[[Envelope, ParsedMessage | None], str | None] | None = None
	backfill: bool = False  # messages of an initial sync or resync window (the pipeline creates no work)


@dataclass
class BatchResult:
	"""What one batch did, by provider message id: ``created`` / ``already_present`` / ``skipped`` (why) /
	``failed`` (why), messages stored with a parse error, attachments stored as Files and recorded as not
	stored, the provider thread ids and Inbox Threads touched, seconds per stage."""

	created: list[str] = field(default_factory=list)
	created_names: list[str] = field(default_factory=list)  # their Communication names
	#: the rows created, as inserted (field -> value, with name, creation and atlas_inbox_thread): handed to
	#: the Smart Inbox pipeline in memory (:func:`atlas_integrations.inbox.pipeline.run`)
	created_rows: list[dict] = field(default_factory=list)
	already_present: list[str] = field(default_factory=list)
	skipped: dict[str, str] = field(default_factory=dict)
	failed: dict[str, str] = field(default_factory=dict)
	parse_errors: int = 0
	attachments_stored: int = 0
	attachments_skipped: int = 0
	threads: set[str] = field(default_factory=set)  # provider thread ids
	thread_names: set[str] = field(default_factory=set)  # Inbox Thread names
	seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Row:
	envelope: Envelope
	values: dict
	parsed: ParsedMessage | None
	thread: str = ""  # Inbox Thread name


def message_key(mailbox: str, provider_message_id: str) -> str:
	"""The unique key of a message (Communication ``atlas_mailbox_key``): ``"<mailbox>:<provider id>"``."""
	return f"{mailbox}:{provider_message_id}"


def thread_key(mailbox: str, provider_thread_id: str) -> str:
	"""The unique key of a provider thread (Inbox Thread ``thread_key``): ``"<mailbox>:<thread id>"``."""
	return f"{mailbox}:{provider_thread_id}"


def system_time(dt_utc: datetime) -> datetime:
	"""Aware UTC -> naive datetime in the site's time zone (how Frappe stores a Datetime)."""
	return convert_utc_to_system_timezone(dt_utc.replace(tzinfo=None)).replace(tzinfo=None)


def message_time(header_date: datetime | None, received: datetime) -> datetime:
	"""When a message happened (aware UTC): its Date header, unless missing or impossible (before 1971, or
	more than :data:`DATE_AHEAD_LIMIT` seconds after the provider received it), then ``received``."""
	if header_date is None or header_date.year < 1971 or (header_date - received).total_seconds() > DATE_AHEAD_LIMIT:
		return received
	return header_date


def build_row(ctx: WriteContext, env: Envelope) -> _Row:
	"""The Communication values of one envelope. Never raises: a message that cannot be read is kept with
	its raw headers and its error."""
	tid = env.provider_thread_id
	base = {
		"communication_type": "Communication",
		"communication_medium": "Email",
		"sent_or_received": "Sent" if env.sent else "Received",
		"status": "Linked",
		"seen": 1 if env.read else 0,
		"email_status": "Spam" if env.spam else ("Trash" if env.trash else "Open"),
		"reference_doctype": "Inbox Thread",
		"atlas_mailbox_type": ctx.mailbox_type,
		"atlas_mailbox": ctx.mailbox,
		"atlas_provider_message_id": env.provider_message_id,
		"atlas_provider_thread_id": tid,
		"atlas_mailbox_key": message_key(ctx.mailbox, env.provider_message_id),
		"atlas_tags": ",".join(env.tags),
		"atlas_source": ctx.source,
		"atlas_backfill": 1 if ctx.backfill else 0,
	}
	parsed = env.parsed
	try:
		parsed = parsed or parse_message(env.raw)
		when = message_time(parsed.date, env.received)
		base.update(message_values(parsed, system_time(when), full=ctx.storage_mode == FULL,
								   snippet=env.snippet or None))
	except Exception as exc:  # keep the message with what could be read and the error
		headers = parsed.raw_headers if parsed else ""
		base.update({
			"subject": mail_text(parsed.subject if parsed and parsed.subject else "(unreadable message)"),
			"communication_date": system_time(env.received),
			"content": unreadable_content(headers),
			"atlas_snippet": mail_text(env.snippet or ""),
			"atlas_parse_error": mail_text(f"could not read the message: {type(exc).__name__}: {exc}"[:2000]),
		})
		parsed = None
	base.update(env.values)
	return _Row(env, base, parsed)


def ensure_threads(ctx: WriteContext, subjects: dict[str, str]) -> tuple[dict[str, str], set[str]]:
	"""Inbox Thread names for the given provider thread ids, creating the missing ones (concurrency-safe).

	Args:
		subjects: provider thread id -> subject to give a new thread (stored text).

	Returns:
		``(provider thread id -> Inbox Thread name, names this call created)``. A thread this call created
		has no message but the batch's until the transaction commits.
	"""
	if not subjects:
		return {}, set()
	keys = {thread_key(ctx.mailbox, tid): tid for tid in subjects}

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
	missing = {tid: frappe.generate_hash(length=10) for tid in subjects if tid not in found}
	if not missing:
		return found, set()
	now, user = now_datetime(), frappe.session.user
	insert_rows(  # INSERT IGNORE: a concurrent run created it a moment ago: keep theirs
		"Inbox Thread",
		["name", "creation", "modified", "owner", "modified_by", "mailbox_type", "mailbox", "provider_thread_id",
		 "thread_key", "subject", "message_count", "unread"],
		[[name, now, now, user, user, ctx.mailbox_type, ctx.mailbox, tid, thread_key(ctx.mailbox, tid),
		  (subjects[tid] or "(no subject)")[:1000], 0, 0] for tid, name in missing.items()],
	)
	found = lookup(current=True)
	return found, {name for tid, name in missing.items() if found.get(tid) == name}


def _thread_by_references(ctx: WriteContext, row: _Row) -> tuple[str, bool]:
	"""The Inbox Thread of a message without a provider thread id: the thread of a message it replies to
	(References / In-Reply-To, same mailbox), else a new one. Returns ``(name, created)``."""
	parsed = row.parsed
	refs = [k for k in (rfc_message_key(x) for x in ([parsed.in_reply_to, *parsed.references] if parsed else [])) if k]
	if refs:
		found = frappe.db.sql("""select atlas_inbox_thread from `tabCommunication` where atlas_mailbox=%s
			and atlas_mailbox_type=%s and atlas_message_key in %s and ifnull(atlas_inbox_thread, '') != ''
			order by creation limit 1""", (ctx.mailbox, ctx.mailbox_type, refs))
		if found:
			return found[0][0], False
	name = frappe.generate_hash(length=10)
	key = (parsed and rfc_message_key(parsed.message_id)) or row.envelope.provider_message_id
	now, user = now_datetime(), frappe.session.user
	insert_rows("Inbox Thread", ["name", "creation", "modified", "owner", "modified_by", "mailbox_type", "mailbox",
								 "thread_key", "subject", "message_count", "unread"],
				[[name, now, now, user, user, ctx.mailbox_type, ctx.mailbox, f"rfc:{ctx.mailbox}:{key}"[:140],
				  (row.values.get("subject") or "(no subject)")[:1000], 0, 1]], ignore_duplicates=False)
	return name, True


def _stored_now(keys: list[str]) -> set[str]:
	"""The subset of ``keys`` (``atlas_mailbox_key``) stored as committed now (a locking read: it sees a row
	a concurrent run committed after this transaction's snapshot)."""
	if not keys:
		return set()
	return set(frappe.db.sql_list(
		"""select atlas_mailbox_key from `tabCommunication` where atlas_mailbox_key in %(keys)s
		lock in share mode""", {"keys": keys}))


def insert_rows(doctype: str, fields: list[str], rows: list[list], ignore_duplicates: bool = True) -> None:
	"""Insert ``rows`` (values in ``fields`` order) into ``doctype``'s table in one ``INSERT [IGNORE]``
	statement, the values passed as query parameters (the database driver escapes them).

	What ``frappe.db.bulk_insert`` does, without building every value through the query builder: for
	mail rows (40 columns) that building was half of the insert's time (``make bench-sync``).
	"""
	if not rows:
		return
	one = "(" + ", ".join(["%s"] * len(fields)) + ")"
	frappe.db.sql(
		f"""insert {"ignore " if ignore_duplicates else ""}into `tab{doctype}` ({", ".join(f"`{f}`" for f in fields)})
		values {", ".join([one] * len(rows))}""",
		[v for row in rows for v in row],
	)


def write_batch(ctx: WriteContext, envelopes: list[Envelope]) -> BatchResult:
	"""Store a batch of messages of one mailbox in the current transaction: parse, Communication rows (one
	``INSERT IGNORE`` under the unique ``atlas_mailbox_key``), attachments (one batch), thread aggregates
	(from memory for the threads the batch created, one read for the others, one write).

	Returns:
		A :class:`BatchResult`. A message already stored (by an earlier or a concurrent run: its key exists)
		is ``already_present`` and left untouched; a draft, or one ``ctx.accept`` refuses, is ``skipped``
		(why: ``"draft"``, or the reason ``accept`` gave); a row the
		``INSERT IGNORE`` dropped although its key does not exist (a data error, a name collision) is
		``failed``, never already present.
	"""
	result = BatchResult()
	clock = time.perf_counter()
	rows: list[_Row] = []
	for env in envelopes:
		if env.draft:
			result.skipped[env.provider_message_id] = "draft"
			continue
		row = build_row(ctx, env)
		reason = ctx.accept(env, row.parsed) if ctx.accept else None
		if reason:
			result.skipped[env.provider_message_id] = reason
			continue
		rows.append(row)
	result.seconds["parse"] = time.perf_counter() - clock
	if not rows:
		return result
	clock = time.perf_counter()
	threaded = [r for r in rows if r.envelope.provider_thread_id]
	names, new_threads = ensure_threads(
		ctx, {r.envelope.provider_thread_id: r.values.get("subject") or "" for r in reversed(threaded)})
	for r in threaded:
		r.thread = names[r.envelope.provider_thread_id]
	for r in rows:
		if not r.envelope.provider_thread_id:
			r.thread, created_thread = _thread_by_references(ctx, r)
			if created_thread:
				new_threads.add(r.thread)
	now, user = now_datetime(), frappe.session.user
	fields = ["name", "creation", "modified", "owner", "modified_by", "docstatus", "idx",
			  "reference_name", "atlas_inbox_thread"]
	value_fields = sorted({k for r in rows for k in r.values})
	by_name = {frappe.generate_hash(length=10): r for r in rows}
	insert_rows("Communication", fields + value_fields,
				[[name, now, now, user, user, 0, 0, r.thread, r.thread] + [r.values.get(f) for f in value_fields]
				 for name, r in by_name.items()])
	# created = a row under the name we generated *and* our key (a name collision kept another row)
	created = {name for name, key in frappe.db.sql(
		"select name, atlas_mailbox_key from `tabCommunication` where name in %(names)s", {"names": list(by_name)})
			   if key == by_name[name].values["atlas_mailbox_key"]}
	present = _stored_now([r.values["atlas_mailbox_key"] for name, r in by_name.items() if name not in created])
	result.seconds["insert"] = time.perf_counter() - clock
	clock = time.perf_counter()
	with_attachments = []
	for name, r in by_name.items():
		mid = r.envelope.provider_message_id
		if r.envelope.provider_thread_id:
			result.threads.add(r.envelope.provider_thread_id)
		result.thread_names.add(r.thread)
		if name not in created:
			if r.values["atlas_mailbox_key"] in present:  # a replay: its attachments were stored with it
				result.already_present.append(mid)
			else:  # dropped by INSERT IGNORE for another reason: a failure, not a duplicate
				result.failed[mid] = "the database did not store the message (row dropped by INSERT IGNORE)"
			continue
		result.created.append(mid)
		result.created_names.append(name)
		result.created_rows.append({**r.values, "name": name, "creation": now, "atlas_inbox_thread": r.thread})
		if r.values.get("atlas_parse_error"):
			result.parse_errors += 1
		if r.parsed and r.parsed.attachments:
			with_attachments.append((name, r.parsed.attachments))
	outcomes = attachments.store_batch(with_attachments, ctx.max_attachment_bytes)
	result.attachments_stored = sum(o.stored for o in outcomes.values())
	result.attachments_skipped = sum(len(o.skipped) for o in outcomes.values())
	result.seconds["attachments"] = time.perf_counter() - clock
	clock = time.perf_counter()
	in_memory = {}
	for row in result.created_rows:
		if row["atlas_inbox_thread"] in new_threads:
			in_memory.setdefault(row["atlas_inbox_thread"], []).append(frappe._dict(row))
	refresh_threads(ctx, result.thread_names - set(in_memory), known=in_memory)
	result.seconds["threads"] = time.perf_counter() - clock
	return result


def refresh_threads(ctx: WriteContext, thread_names: set[str] | list[str],
					known: dict[str, list] | None = None) -> None:
	"""Recompute the aggregates of Inbox Threads (one read, one write; idempotent).

	Args:
		thread_names: threads whose messages are read from the database.
		known: Inbox Thread name -> all its messages (rows with the fields :func:`thread_values` reads and
			``atlas_tags``, ``seen``, ``creation``, ``name``), for threads whose messages the caller holds (a
			thread the batch created): not read again.

	Sets subject (first message), participants, first/last message time, message count, tags (union) and
	their names (``labels``), unread (any message not seen) and snippet (last message). A message deleted
	at the provider (``atlas_deleted``) is kept but is no longer part of its thread's picture.
	"""
	by_thread: dict[str, list] = {}
	if thread_names:
		rows = frappe.get_all(
			"Communication",
			filters={"atlas_inbox_thread": ["in", list(thread_names)]},
			fields=["atlas_inbox_thread as thread", "subject", "sender", "atlas_sender_as_written", "recipients",
					"cc", "communication_date", "atlas_tags", "atlas_snippet", "atlas_deleted", "seen"],
			order_by="communication_date asc, creation asc, name asc",
		)
		by_thread = {name: [] for name in thread_names}
		for row in rows:
			if not row.atlas_deleted:
				by_thread[row.thread].append(row)
	for name, msgs in (known or {}).items():
		# the read's order: a batch's rows share one creation time
		by_thread[name] = sorted(msgs, key=lambda m: (m.communication_date, m.creation, m.name))
	values = []
	now = now_datetime()
	for thread, msgs in by_thread.items():
		if not thread:
			continue
		if not msgs:
			frappe.db.set_value("Inbox Thread", thread, {"message_count": 0, "unread": 0, "tags": "", "labels": ""},
								update_modified=True)
			continue
		tags: set[str] = set()
		for m in msgs:
			tags.update(x for x in (m.atlas_tags or "").split(",") if x)
		agg = thread_values(msgs)
		values.append((thread, agg["subject"], agg["participants"], agg["first_message_at"], agg["last_message_at"],
					   agg["message_count"], ",".join(sorted(tags)),
					   mail_text(", ".join(sorted(ctx.tag_names.get(x, x) for x in tags))),
					   1 if any(not m.seen for m in msgs) else 0, agg["snippet"], now))
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
