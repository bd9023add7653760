"""The Smart Inbox pipeline: match -> triage -> route -> act -> record the outcome.

Provider-neutral: every source (Gmail accounts, the managed Inbound Route) stores its messages as
Communications of Inbox Threads and calls :func:`run` with the names it just committed, in the worker
(never in a web request or inside a user's save). Each stage is its own module:

* match — :mod:`.match` (one indexed lookup of every participant of the batch);
* triage — :mod:`.triage` (header signals, keywords, summary), then the optional :mod:`.llm` backend;
* route — :mod:`.rules` (Inbox Rules) and the outcome decision below;
* act — :mod:`.act` (timeline links, documents, assignment).

Exactly one outcome per inbound message (the operator guide's seven, in this order of decision):
``skipped`` (mailbox or workspace not active, ignored by a rule, automated mail, backfill),
``duplicate`` (the same Message-ID was stored first by another mailbox or route), ``linked`` (joins a
thread that has work, a References chain to such a thread, or names an existing document),
``created`` (a rule made a document), ``unknown_sender``, ``pending_review`` (with what is missing), and
``failed`` (processing raised; the scrubbed error is kept and "Process again" runs it anew). Outbound
messages are matched for the timelines but get no outcome.

Idempotent: a message that has an outcome is not processed again unless asked (``force``), documents are
created under a row lock of the thread and a thread never gets a second one, and timeline links are
written only when missing.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field

import frappe
from frappe.utils import cint, now_datetime

from atlas_integrations.inbox import act, match, rules, triage
from atlas_integrations.inbox import mailboxes as mailbox_registry
from atlas_integrations.inbox import text as mailtext
from atlas_integrations.inbox.addresses import addresses_in, exact_addresses, normalise
from atlas_integrations.inbox.mime import rfc_message_key

CREATED, LINKED, PENDING, UNKNOWN, DUPLICATE, SKIPPED, FAILED = (
	"created", "linked", "pending_review", "unknown_sender", "duplicate", "skipped", "failed")
OUTCOMES = (CREATED, LINKED, PENDING, UNKNOWN, DUPLICATE, SKIPPED, FAILED)
#: doctypes whose names in a subject or text link a message to them
NAMED_DOCTYPES = ("Sales Invoice", "Quotation", "Sales Order", "Task", "Issue", "Purchase Order",
				  "Delivery Note", "Project")
#: what a document name looks like (ERPNext naming series: ACC-SINV-2026-00001, TASK-2026-00003 ...).
#: Linear: it starts only at a word boundary before a capital, every repetition is bounded but ``\d{2,}``,
#: and each ``{1,10}`` run is followed by a ``-`` it cannot contain, so a start is split one way only
_DOC_NAME = re.compile(r"\b[A-Z][A-Z0-9]{1,9}(?:-[A-Z0-9]{1,10}){0,3}-\d{2,}(?:-\d+)?\b")
#: characters of a plain-text body the pipeline reads (triage reads the new text's first 5,000, document
#: names are looked for in the first 20,000)
TEXT_LIMIT = 20000
_PRIORITY_RANK = {p: i for i, p in enumerate(triage.PRIORITIES, 1)}
_FIELDS = ["name", "sent_or_received", "sender", "sender_full_name", "recipients", "cc", "bcc", "atlas_reply_to", "subject",
		   "text_content", "atlas_snippet", "atlas_message_key", "atlas_in_reply_to", "atlas_references",
		   "atlas_signal_headers", "atlas_tags", "atlas_backfill", "atlas_inbox_thread", "atlas_source",
		   "atlas_outcome", "atlas_outcome_reason", "communication_date", "creation", "atlas_deleted"]


@dataclass
class Result:
	"""What one run did: outcome by Communication name, documents created, seconds per stage."""

	outcomes: dict[str, str] = field(default_factory=dict)
	created: list[tuple[str, str]] = field(default_factory=list)
	links: int = 0
	seconds: dict[str, float] = field(default_factory=dict)
	savepoint: bool = False  # the message being decided has started writing (see _writing)


SAVEPOINT = "atlas_pipeline"


def _writing(result: Result) -> None:
	"""Mark the start of a message's writes (a document, an assignment) with a savepoint, so a failure
	undoes exactly that message's work. Most messages write nothing in ``_decide`` and need none."""
	if not result.savepoint:
		frappe.db.savepoint(SAVEPOINT)
		result.savepoint = True


def _clock(result: Result, stage: str, start: float) -> float:
	now = time.perf_counter()
	result.seconds[stage] = result.seconds.get(stage, 0.0) + now - start
	return now


def enabled() -> bool:
	"""Whether the pipeline runs after sync (Atlas Settings ``run_pipeline``, on unless turned off)."""
	value = frappe.db.get_single_value("Atlas Settings", "pipeline_disabled")
	return not cint(value)


def _mailboxes(threads: dict[str, frappe._dict]) -> dict[str, frappe._dict]:
	"""Mailbox facts per thread: ``active`` / ``why``, default ``company``, ``own`` addresses (the mailbox's
	address), ``mailbox`` (its name, for rules) and ``require_known_sender``. Read through the mailbox
	registry (:mod:`atlas_integrations.inbox.mailboxes`): the pipeline imports no provider."""
	out: dict[str, frappe._dict] = {}
	of = {name: mailbox_registry.of_thread_row(t) or None for name, t in threads.items()}
	rows = mailbox_registry.facts({m for m in of.values() if m})
	workspace = frappe.db.get_single_value("Atlas Settings", "workspace_state") or "Active"
	default_company = frappe.defaults.get_global_default("company") or ""
	for name, t in threads.items():
		mailbox = of[name]
		row = rows.get(mailbox) if mailbox else None
		facts = frappe._dict(active=True, why="", company=default_company, own=set(),
							 mailbox=mailbox[1] if mailbox else "", require_known_sender=True,
							 create_contacts=False)
		if row is None:
			facts.active, facts.why = False, "the message belongs to no mailbox"
		else:
			facts.own = {normalise(row.email)}
			facts.company = row.company or default_company
			facts.require_known_sender = bool(row.require_known_sender)
			facts.create_contacts = bool(row.create_contacts)
			if not row.enabled:
				label = mailbox_registry.get(mailbox[0]).label
				facts.active, facts.why = False, f"{label} mailbox {row.email} is disabled"
		if workspace == "Archived":
			facts.active, facts.why = False, "the workspace is archived"
		out[name] = facts
	return out


def _facts_text(row) -> tuple[str, str]:
	"""(subject, text) as exact text: the subject is stored as HTML text (inbox/text.py)."""
	subject = mailtext.plain(row.subject or "")
	body = row.text_content or mailtext.plain(row.atlas_snippet or "")
	return subject, body


def _doc_names(rows) -> dict[str, tuple[str, str]]:
	"""Existing documents named in subjects or texts: token -> (doctype, name). One query for the batch."""
	tokens = set()
	for row in rows:
		subject, body = _facts_text(row)
		tokens.update(_DOC_NAME.findall(subject))
		tokens.update(_DOC_NAME.findall(body[:20000]))
	doctypes = [d for d in NAMED_DOCTYPES if _doctype_exists(d)]
	if not tokens or not doctypes:
		return {}
	union = " union all ".join(f"select %(dt{i})s, name from `tab{d}` where name in %(t)s" for i, d in enumerate(doctypes))
	found: dict[str, tuple[str, str]] = {}
	for doctype, name in frappe.db.sql(union, {"t": list(tokens), **{f"dt{i}": d for i, d in enumerate(doctypes)}}):
		found.setdefault(name, (doctype, name))
	return found


def _doctype_exists(doctype: str) -> bool:
	return bool(frappe.db.exists("DocType", doctype, cache=True))


def _references(rows) -> dict[str, tuple[str, str]]:
	"""Message keys referenced by the batch (In-Reply-To, References) whose thread has a document:
	key -> (doctype, name)."""
	keys = set()
	for row in rows:
		keys.update(x for x in (row.atlas_references or "").split() if x)
		if row.atlas_in_reply_to:
			keys.add(rfc_message_key(mailtext.plain(row.atlas_in_reply_to)))
	keys.discard("")
	if not keys:
		return {}
	return {r.key: (r.reference_doctype, r.reference_name) for r in frappe.db.sql(
		"""select c.atlas_message_key as `key`, t.reference_doctype, t.reference_name
		from `tabCommunication` c join `tabInbox Thread` t on t.name = c.atlas_inbox_thread
		where c.atlas_message_key in %(k)s and ifnull(t.reference_name, '') != ''""",
		{"k": list(keys)}, as_dict=True)}


def _first_copies(rows, threads: dict[str, frappe._dict]) -> dict[str, frappe._dict]:
	"""For each message key of the batch, the first stored copy of that message in *another* mailbox
	(the accepted one), if any: Communication name -> that copy (name, thread)."""
	keys = {r.atlas_message_key for r in rows if r.atlas_message_key}
	if not keys:
		return {}
	copies: dict[str, list] = {}
	for c in frappe.db.sql(
			f"""select c.name, c.creation, c.atlas_message_key as `key`, c.atlas_inbox_thread as thread,
			{mailbox_registry.mailbox_type_sql("t", "thread")} as mailbox_type,
			{mailbox_registry.mailbox_sql("t", "thread")} as mailbox, c.atlas_outcome as outcome
			from `tabCommunication` c join `tabInbox Thread` t on t.name = c.atlas_inbox_thread
			where c.atlas_message_key in %(k)s and c.sent_or_received = 'Received'
			order by c.creation, c.name""", {"k": list(keys)}, as_dict=True):
		copies.setdefault(c.key, []).append(c)
	out = {}
	for row in rows:
		mine = mailbox_registry.of_thread_row(threads[row.atlas_inbox_thread]) or (None, None)
		for c in copies.get(row.atlas_message_key, []):
			if c.name == row.name or (c.creation, c.name) > (row.creation, row.name):
				break
			if (c.mailbox_type, c.mailbox) != mine and c.outcome not in (SKIPPED, DUPLICATE, FAILED):
				out[row.name] = c
				break
	return out


def run(names: list[str], force: bool = False, rows: list[dict] | None = None) -> Result:
	"""Process stored Communications through the pipeline and commit.

	Args:
		names: Communication names (any; outbound ones are only matched for timelines, deleted ones and
			rows outside a thread are ignored).
		force: process messages that already have an outcome again ("Process again"); a thread's
			existing document is kept and only linked.
		rows: the writer's rows of ``names`` as it inserted them in this transaction's predecessor (field ->
			value, each with ``name``, ``creation`` and ``atlas_inbox_thread``): used instead of reading
			them back. None reads them from the database ("Match again", "Process again", a reply's copy).

	Returns:
		A :class:`Result`.
	"""
	result = Result()
	if not names:
		return result
	clock = time.perf_counter()
	rows = _rows_in_memory(names, rows) if rows is not None else _read_rows(names)
	rows = [r for r in rows if r.atlas_inbox_thread and not r.atlas_deleted]
	inbound = [r for r in rows if r.sent_or_received == "Received" and (force or not r.atlas_outcome)]
	threads = {t.name: t for t in frappe.db.sql(
		f"""select name, {", ".join(mailbox_registry.thread_columns())}, reference_doctype, reference_name, company,
		party_type, party, category, priority from `tabInbox Thread` where name in %(n)s""",
		{"n": list({r.atlas_inbox_thread for r in rows}) or [""]}, as_dict=True)}
	mailboxes = _mailboxes(threads)
	# a thread's category and summary come from its first triaged inbound message; later ones may raise priority
	# -- match: every participant of the batch in one lookup
	participants: dict[str, list[str]] = {}
	for r in rows:
		own = mailboxes[r.atlas_inbox_thread].own
		people = addresses_in(", ".join(filter(None, [r.sender, r.atlas_reply_to, r.recipients, r.cc, r.bcc])))
		participants[r.name] = [a for a in people if a not in own]
	index = match.lookup({a for people in participants.values() for a in people})
	clock = _clock(result, "match", clock)
	targets: dict[str, set] = {}
	for r in rows:
		targets[r.name] = set().union(*(match.timeline_targets(index.get(a)) for a in participants[r.name])) \
			if participants[r.name] else set()
	# -- context for linking
	named = _doc_names(inbound)
	referenced = _references(inbound)
	first_copies = _first_copies(inbound, threads)
	all_rules = frappe.get_all("Inbox Rule", fields=["*"], filters={"enabled": 1})
	backend = _llm_settings()
	clock = _clock(result, "context", clock)
	thread_updates: dict[str, dict] = {}
	records: dict[str, tuple[str, str]] = {}
	for r in inbound:
		result.savepoint = False
		try:
			outcome, why, update = _decide(r, threads[r.atlas_inbox_thread], mailboxes[r.atlas_inbox_thread],
										   index, named, referenced, first_copies, all_rules, targets, result,
										   backend)
		except Exception as exc:  # never lose the message: undo its half-done work, record why, keep going
			if result.savepoint:
				frappe.db.rollback(save_point=SAVEPOINT)
			outcome, why, update = FAILED, _scrubbed(exc), {}
			frappe.log_error(title="Smart Inbox pipeline", message=frappe.get_traceback())
		records[r.name] = (outcome, why)
		result.outcomes[r.name] = outcome
		values = thread_updates.setdefault(r.atlas_inbox_thread, {})
		if threads[r.atlas_inbox_thread].category or values.get("category"):
			for key in ("category", "summary", "signals"):
				update.pop(key, None)
			if _PRIORITY_RANK.get(update.get("priority"), 0) <= _PRIORITY_RANK.get(
					values.get("priority") or threads[r.atlas_inbox_thread].priority, 0):
				update.pop("priority", None)
		values.update({**update, "outcome": outcome, "outcome_reason": why})
	clock = _clock(result, "decide", clock)
	result.links += act.add_timeline_links(targets)
	_record(records)
	_update_threads(thread_updates)
	clock = _clock(result, "record", clock)
	frappe.db.commit()
	if act.apply_assignment_rules([t for t, v in thread_updates.items() if v.get("outcome") in (CREATED, PENDING, UNKNOWN)]):
		frappe.db.commit()
	_clock(result, "assign", clock)
	return result


def _read_rows(names: list[str]) -> list:
	"""The pipeline's fields of stored Communications ``names``, oldest first (``text_content`` cut to
	:data:`TEXT_LIMIT` characters)."""
	columns = ", ".join(f"substring(`{f}`, 1, {TEXT_LIMIT}) as `{f}`" if f == "text_content" else f"`{f}`"
						for f in _FIELDS)
	return frappe.db.sql(f"""select {columns} from `tabCommunication` where name in %(n)s
		order by communication_date asc, creation asc""", {"n": list(names)}, as_dict=True)


def _rows_in_memory(names: list[str], rows: list[dict]) -> list:
	""":func:`_read_rows`'s result made from the writer's rows instead of the database: the same fields (an
	absent one as its column's default), ``text_content`` cut alike, only ``names``, in the same order."""
	wanted = set(names)
	meta = frappe.get_meta("Communication")
	# a column the writer left out holds its default: 0 for Check and Int columns, else null
	unwritten = {f: 0 if (meta.get_field(f) and meta.get_field(f).fieldtype in ("Check", "Int")) else None
				 for f in _FIELDS}
	out = []
	for row in rows:
		if row.get("name") not in wanted:
			continue
		values = frappe._dict({f: row.get(f, unwritten[f]) for f in _FIELDS})
		if values.text_content:
			values.text_content = values.text_content[:TEXT_LIMIT]
		out.append(values)
	out.sort(key=lambda r: (r.communication_date, r.creation))
	return out


def _scrubbed(exc: Exception) -> str:
	from atlas_integrations.redact import scrub

	return scrub(f"{type(exc).__name__}: {exc}")[:1000]


def _llm_settings() -> dict | None:
	"""The LLM backend's :func:`atlas_integrations.inbox.llm.refine` arguments from Atlas Settings, or None
	(offline classifier only)."""
	from atlas_integrations.inbox import llm

	settings = frappe.get_cached_doc("Atlas Settings")
	if not (settings.llm_base_url and settings.llm_model):
		return None
	values = {"llm_base_url": settings.llm_base_url, "llm_model": settings.llm_model,
			  "llm_timeout_seconds": settings.llm_timeout_seconds,
			  "llm_api_key": settings.get_password("llm_api_key", raise_exception=False) or ""}
	return llm.settings_from(values)


def _decide(r, thread, mailbox, index, named, referenced, first_copies, all_rules, targets, result, backend=None):
	"""One inbound message: returns ``(outcome, why, thread values)``; may create a document."""
	subject, body = _facts_text(r)
	sender = normalise(r.sender) or (addresses_in(r.atlas_reply_to)[:1] or [""])[0]
	m = match.resolve(sender, index.get(sender))
	headers = json.loads(r.atlas_signal_headers or "{}")
	provider_categories = [x for x in (r.atlas_tags or "").split(",") if x.startswith("CATEGORY_")]
	t = triage.classify(subject, body, headers, sender, provider_categories)
	if m.state == match.UNKNOWN and sender and mailbox.create_contacts and mailbox.active and not t.kind \
			and not r.atlas_backfill:  # the mailbox says so: new mail from a person nobody knows
		_writing(result)
		m = _create_contact(sender, mailtext.plain(r.sender_full_name or ""), index)
	if backend and not r.atlas_backfill:  # history is triaged offline: no API cost for 30 days of mail
		from atlas_integrations.inbox import llm

		# only what the mailbox stores: no body at all when it keeps snippets only
		t = llm.refine(t, subject=subject, text=r.text_content if r.text_content else None, sender=sender, **backend)
	recipients = exact_addresses(", ".join(filter(None, [r.recipients, r.cc, headers.get("delivered-to", ""),
													  headers.get("x-original-to", "")])))
	facts = rules.Facts(mailbox=mailbox.mailbox, sender=sender, recipients=recipients, subject=subject,
						text=triage.new_text(body), category=t.category, party_type=m.party_type, party=m.party,
						backfill=bool(r.atlas_backfill))
	decision = rules.evaluate(all_rules, facts)
	if decision.category:
		t.category, t.confidence = decision.category, 1.0
		t.signals.append(f"rule {decision.rules[0]} -> {decision.category}")
	if decision.priority:
		t.priority = decision.priority
	update = {
		"category": t.category, "priority": t.priority, "summary": mailtext.mail_text(t.summary, 1000),
		"signals": mailtext.mail_text("\n".join(t.signals)[:2000]), "sender_address": sender[:140],
		"match_state": m.state, "match_reason": mailtext.mail_text(m.reason),
		"company": decision.company or thread.company or mailbox.company or None,
	}
	if m.state in (match.MATCHED,) or not thread.party:
		update.update(party_type=m.party_type or None, party=m.party or None, contact=m.contact or None)
	rule_note = f" (rules: {', '.join(decision.rules)})" if decision.rules else ""
	# -- route: the outcome, in the order of the module docstring
	if not mailbox.active:
		return SKIPPED, mailbox.why, update
	if decision.ignore:
		return SKIPPED, f"ignored by rule {decision.ignored_by}", update
	copy = first_copies.get(r.name)
	if copy:
		first = frappe.db.get_value("Inbox Thread", copy.thread, ["reference_doctype", "reference_name"], as_dict=True)
		if first and first.reference_name:
			update.update(reference_doctype=first.reference_doctype, reference_name=first.reference_name)
		return DUPLICATE, f"the same message was accepted first in thread {copy.thread}", update
	if r.atlas_outcome in (CREATED, LINKED) and thread.reference_name:
		# processed again: it still created, or joined, the thread's document; the record stays as it was
		return r.atlas_outcome, mailtext.plain(
			r.atlas_outcome_reason or f"{thread.reference_doctype} {thread.reference_name}"), update
	link = None
	if thread.reference_name:
		link = (thread.reference_doctype, thread.reference_name, "the thread already has this document")
	if not link:
		for key in [*(r.atlas_references or "").split(), rfc_message_key(mailtext.plain(r.atlas_in_reply_to or ""))]:
			if key in referenced:
				dt, dn = referenced[key]
				link = (dt, dn, "it replies to a message of a thread with this document")
				break
	if not link:
		for token in _DOC_NAME.findall(subject) + _DOC_NAME.findall(body[:20000]):
			if token in named:
				dt, dn = named[token]
				link = (dt, dn, "it names this document")
				break
	if link:
		dt, dn, how = link
		targets[r.name].add((dt, dn))
		if not thread.reference_name:
			update.update(reference_doctype=dt, reference_name=dn)
			thread.reference_doctype, thread.reference_name = dt, dn
		return LINKED, f"{dt} {dn}: {how}", update
	if r.atlas_backfill and not (decision.create_document and decision.create_on_backfill):
		return SKIPPED, "backfill", update
	if t.kind and not decision.create_document:
		return SKIPPED, f"{t.kind} mail ({'; '.join(t.signals[:2])})", update
	if decision.create_document:
		missing = []
		if decision.create_document != "ToDo" and m.state not in (match.MATCHED, match.INTERNAL):
			missing.append("a party (no or several matching records)" if m.state != match.UNKNOWN
						   else "a known sender")
		if decision.create_needs_category and not decision.category and t.confidence < triage.CONFIDENCE_THRESHOLD:
			missing.append(f"a confident category ({t.confidence:.2f} < {triage.CONFIDENCE_THRESHOLD})")
		if missing:
			return PENDING, f"{decision.create_document} not created: needs {', '.join(missing)}{rule_note}", update
		_writing(result)
		values = act.build_values(decision.create_document, thread, subject=subject, summary=t.summary,
								  body=triage.new_text(body), priority=t.priority, party_type=m.party_type,
								  party=m.party, contact=m.contact, sender=r.sender or sender,
								  company=update["company"] or "")
		dt, dn, created = act.create_for_thread(thread.name, decision.create_document, values,
												assign_to=decision.assign_to)
		thread.reference_doctype, thread.reference_name = dt, dn
		update.update(reference_doctype=dt, reference_name=dn)
		targets[r.name].add((dt, dn))
		if created:
			result.created.append((dt, dn))
			return CREATED, f"{dt} {dn} created{rule_note}", update
		return LINKED, f"{dt} {dn}: the thread already has this document", update
	if decision.assign_to:
		_writing(result)
		act.assign("Inbox Thread", thread.name, decision.assign_to, mailtext.mail_text(subject) or "")
	if m.state == match.UNKNOWN and mailbox.require_known_sender:
		return UNKNOWN, m.reason, update
	if m.state == match.UNKNOWN:
		return PENDING, f"needs a party: {m.reason}", update
	if m.state == match.AMBIGUOUS:
		return PENDING, f"needs a party: {m.reason}", update
	if t.confidence < triage.CONFIDENCE_THRESHOLD:
		return PENDING, f"low confidence: {t.category} ({t.confidence:.2f} < {triage.CONFIDENCE_THRESHOLD})", update
	return PENDING, f"{t.category}: no rule creates work for it; choose an action", update


def _update_threads(updates: dict[str, dict]) -> None:
	"""Write the threads' new values: one ``insert ... on duplicate key update`` per set of columns
	(every thread exists: nothing is inserted)."""
	now = now_datetime()
	groups: dict[tuple, list] = {}
	for thread, values in updates.items():
		values = {**values, "modified": now}
		columns = tuple(sorted(values))
		groups.setdefault(columns, []).append([thread, *[values[c] for c in columns]])
	for columns, rows in groups.items():
		names = ", ".join(f"`{c}`" for c in ("name", *columns))
		placeholders = ", ".join(["(" + ", ".join(["%s"] * (len(columns) + 1)) + ")"] * len(rows))
		assignments = ", ".join(f"`{c}`=values(`{c}`)" for c in columns)
		frappe.db.sql(f"insert into `tabInbox Thread` ({names}) values {placeholders} "
					  f"on duplicate key update {assignments}", [v for row in rows for v in row])


def _create_contact(address: str, display_name: str, index: dict) -> match.Match:
	"""A Contact (no party link) for an unknown sender, indexed at once (its doc event also re-matches
	other threads of that address after the commit). Returns the sender's new match."""
	local = address.partition("@")[0]
	first, _, last = (display_name or local).strip().partition(" ")
	# names are Data fields the desk shows as HTML (and the Contact's name is made of them): HTML text, once
	contact = frappe.get_doc({"doctype": "Contact", "first_name": mailtext.mail_text(first or local, 140),
							  "last_name": mailtext.mail_text(last, 140),
							  "email_ids": [{"email_id": address, "is_primary": 1}]})
	contact.flags.ignore_permissions = True
	contact.insert()
	index[address] = match.lookup({address}).get(address, [])
	return match.Match(match.MATCHED, contact=contact.name,
					   reason=f"{address}: Contact {contact.name} created for this unknown sender (no party linked)")


def _record(records: dict[str, tuple[str, str]]) -> None:
	"""Write the outcomes in one statement (every row exists: the insert only updates)."""
	if not records:
		return
	values = [(name, outcome, mailtext.mail_text(why, 1000)) for name, (outcome, why) in records.items()]
	frappe.db.sql(
		f"""insert into `tabCommunication` (name, atlas_outcome, atlas_outcome_reason)
		values {", ".join(["(%s, %s, %s)"] * len(values))}
		on duplicate key update atlas_outcome=values(atlas_outcome), atlas_outcome_reason=values(atlas_outcome_reason)""",
		[v for row in values for v in row])


def mark_failed(names: list[str], exc: Exception) -> None:
	"""Record ``failed`` (with the scrubbed error) on inbound messages among ``names`` that have no
	outcome, after the pipeline itself could not run; commits."""
	why = _scrubbed(exc)
	rows = frappe.get_all("Communication", filters={"name": ["in", names or [""]], "sent_or_received": "Received",
													"atlas_outcome": ["is", "not set"]}, pluck="name")
	_record({n: (FAILED, why) for n in rows})
	frappe.db.commit()


def create_from_thread(thread, doctype: str, assign_to: str = "") -> dict:
	"""An operator's "Create ToDo/Task/Issue" on a thread (see ``api.inbox.create_work``): the document
	pre-filled from the thread's first inbound message, linked both ways, optionally assigned; the latest
	inbound message's outcome becomes ``created``. A thread that already has a document keeps it and its
	outcomes.

	Returns:
		``{"doctype", "name", "created"}``.
	"""
	msgs = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread.name, "atlas_deleted": 0},
						  fields=["name", "sent_or_received", "subject", "text_content", "atlas_snippet", "sender"],
						  order_by="communication_date asc, creation asc")
	inbound = [m for m in msgs if m.sent_or_received == "Received"] or msgs
	first = inbound[0] if inbound else frappe._dict()
	subject, body = _facts_text(first) if first else (mailtext.plain(thread.subject or ""), "")
	values = act.build_values(doctype, thread, subject=subject, summary=mailtext.plain(thread.summary or ""),
							  body=triage.new_text(body), priority=thread.priority or "Normal",
							  party_type=thread.party_type or "", party=thread.party or "",
							  contact=thread.contact or "", sender=first.get("sender") or "",
							  company=thread.company or "")
	dt, dn, created = act.create_for_thread(thread.name, doctype, values, assign_to=assign_to,
											message_names=[m.name for m in msgs])
	if created:  # a repeated request (double click, retry) changes nothing
		why = f"{dt} {dn} created by {frappe.session.user}"
		if inbound:
			_record({inbound[-1].name: (CREATED, why)})
		frappe.db.set_value("Inbox Thread", thread.name, {"outcome": CREATED, "outcome_reason": mailtext.mail_text(why)},
							update_modified=True)
	return {"doctype": dt, "name": dn, "created": created}


# -- entry points for the desk and for doc events --------------------------------------------------------------
def run_threads(thread_names: list[str], force: bool = True) -> Result:
	"""Process every message of the given threads again (the "Process again" action)."""
	names = frappe.get_all("Communication", filters={"atlas_inbox_thread": ["in", thread_names or [""]]}, pluck="name")
	return run(names, force=force)


def rematch_addresses(addresses: list[str]) -> int:
	"""Match again the threads whose sender was unknown or ambiguous at one of ``addresses`` (after a
	Contact or Lead gained an email or a link). Returns the number of threads processed."""
	threads = frappe.get_all("Inbox Thread", filters={"sender_address": ["in", addresses or [""]],
													  "match_state": ["in", [match.UNKNOWN, match.AMBIGUOUS]]},
							 pluck="name")
	if threads:
		run_threads(threads, force=True)
	return len(threads)
