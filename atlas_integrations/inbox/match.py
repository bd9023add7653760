"""Matching: who wrote a message, and which records it belongs on.

Every email address of a **Contact** (all its Contact Email rows, with the Customer / Supplier / Lead
its Dynamic Links name), of a **Customer**, **Supplier** and **Lead** (``email_id``) and of an enabled
desk **User** is kept normalised (:func:`atlas_integrations.inbox.addresses.normalise`) in the indexed
Inbox Address doctype. A batch of messages is matched with one indexed lookup of all its participants
(:func:`lookup`), never a scan per message. The index follows the records through doc events
(:func:`on_record_change`) and can be rebuilt in bulk (:func:`rebuild_index`).

Precedence when several records match the sender, first wins (the thread records why):
1. a desk User -> ``internal``;
2. a Contact linked to a Customer, then to a Supplier, then to a Lead;
3. a Customer's, then a Supplier's, then a Lead's own email;
4. a Contact with no party link (contact only).
Two different parties at the deciding level -> ``ambiguous``; nothing -> ``unknown_sender``.
"""

from __future__ import annotations

from dataclasses import dataclass

import frappe
from frappe.utils import now_datetime

from atlas_integrations.inbox.addresses import normalise

DOCTYPE = "Inbox Address"
PARTY_TYPES = ("Customer", "Supplier", "Lead")
MATCHED, AMBIGUOUS, INTERNAL, UNKNOWN = "matched", "ambiguous", "internal", "unknown_sender"
#: (kind, party_type) -> rank; lower wins
_RANK = {("User", ""): 0, ("Contact", "Customer"): 1, ("Contact", "Supplier"): 2, ("Contact", "Lead"): 3,
		 ("Customer", "Customer"): 4, ("Supplier", "Supplier"): 5, ("Lead", "Lead"): 6, ("Contact", ""): 7}


@dataclass
class Match:
	"""The sender's match: ``state`` (matched / ambiguous / internal / unknown_sender), the party
	(``party_type``, ``party``), the ``contact``, and ``reason`` in words."""

	state: str = UNKNOWN
	party_type: str = ""
	party: str = ""
	contact: str = ""
	reason: str = ""


# -- the index -----------------------------------------------------------------------------------------------
def _rows_for(source_doctype: str | None = None, names: list[str] | None = None) -> list[tuple]:
	"""Index rows ``(address, kind, source_doctype, source_name, party_type, party, is_primary)`` read
	from the records (all of them, or ``names`` of ``source_doctype``)."""
	out: list[tuple] = []

	def want(dt):
		return source_doctype in (None, dt)

	def name_filter(column):
		if names is None:
			return "", {}
		return f" and {column} in %(names)s", {"names": names or [""]}

	if want("Contact"):
		cond, params = name_filter("ce.parent")
		emails = frappe.db.sql(f"""select ce.parent, ce.email_id, ce.is_primary from `tabContact Email` ce
			where ce.parenttype='Contact' and ifnull(ce.email_id, '') != ''{cond}""", params)
		cond, params = name_filter("dl.parent")
		links: dict[str, list[tuple[str, str]]] = {}
		for parent, dt, dn in frappe.db.sql(f"""select dl.parent, dl.link_doctype, dl.link_name
			from `tabDynamic Link` dl where dl.parenttype='Contact' and dl.link_doctype in %(types)s{cond}""",
											{"types": PARTY_TYPES, **params}):
			links.setdefault(parent, []).append((dt, dn))
		for contact, email_id, primary in emails:
			address = normalise(email_id)
			if not address:
				continue
			for dt, dn in links.get(contact) or [("", "")]:
				out.append((address, "Contact", "Contact", contact, dt, dn, primary))
	for dt in PARTY_TYPES:
		if want(dt):
			cond, params = name_filter("name")
			for name, email_id in frappe.db.sql(
					f"select name, email_id from `tab{dt}` where ifnull(email_id, '') != ''{cond}", params):
				address = normalise(email_id)
				if address:
					out.append((address, dt, dt, name, dt, name, 1))
	if want("User"):
		cond, params = name_filter("name")
		for name, email in frappe.db.sql(f"""select name, email from `tabUser` where enabled=1
			and user_type='System User' and name not in ('Guest', 'Administrator'){cond}""", params):
			address = normalise(email)
			if address:
				out.append((address, "User", "User", name, "", "", 1))
	return out


def _insert(rows: list[tuple], now=None) -> None:
	if not rows:
		return
	now, user = now or now_datetime(), frappe.session.user or "Administrator"
	frappe.db.bulk_insert(
		DOCTYPE,
		["name", "creation", "modified", "owner", "modified_by", "address", "kind", "source_doctype",
		 "source_name", "party_type", "party", "is_primary"],
		[(frappe.generate_hash(length=12), now, now, user, user, *r) for r in rows],
		chunk_size=5000,
	)


#: index rows written (and committed) per step of a rebuild
REBUILD_CHUNK = 5000


def rebuild_index(progress=None, chunk: int = REBUILD_CHUNK) -> int:
	"""Rebuild the whole matching index from Contacts, Customers, Suppliers, Leads and Users (bulk SQL
	reads and inserts). Returns the number of index rows.

	The new rows are written ``chunk`` at a time, each chunk committed, then the rows older than the
	rebuild are deleted (commits): matching never meets an empty index meanwhile (an address may be
	found twice while both generations are there, which resolves the same: see :func:`resolve`).

	Args:
		progress: an :class:`atlas_integrations.progress.Progress` of the rebuild's Sync Job, or None.
			Reported: "Reading records" (0 of the rows read), then the rows written of that total after
			each chunk, in that chunk's transaction.
		chunk: rows per insert and commit (>= 1).
	"""
	started = now_datetime()
	if progress is not None:
		progress.update(0, None, stage="Reading records")
		frappe.db.commit()
	rows = _rows_for()
	chunk = max(1, int(chunk))
	for start in range(0, len(rows), chunk):
		_insert(rows[start:start + chunk], now=started)
		if progress is not None:
			progress.update(min(start + chunk, len(rows)), len(rows), stage="Writing the index")
		frappe.db.commit()
	# the earlier generation (rows written before this rebuild started; a doc event's row written since is newer)
	frappe.db.sql(f"delete from `tab{DOCTYPE}` where creation < %s", started)
	frappe.db.commit()
	return len(rows)


def request_rebuild(trigger: str = "desk", chunk: int | None = None) -> str:
	"""Queue a rebuild of the matching index as a "Match Index Rebuild" Sync Job (one at a time: an open
	one is returned instead). ``chunk``: index rows written per commit (and progress report), default
	:data:`REBUILD_CHUNK`; kept in the payload. Returns the Sync Job name; does not commit (dispatched
	after commit)."""
	from atlas_integrations import jobs
	from atlas_integrations.inbox.jobs import MATCH_INDEX_REBUILD, MATCH_INDEX_REFERENCE

	existing = jobs.open_job(MATCH_INDEX_REBUILD, *MATCH_INDEX_REFERENCE)
	if existing:
		return existing
	payload = {"requested_by": frappe.session.user, **({"chunk": max(1, int(chunk))} if chunk else {})}
	job = jobs.create(MATCH_INDEX_REBUILD, *MATCH_INDEX_REFERENCE, payload=payload, trigger=trigger)
	jobs.dispatch(MATCH_INDEX_REBUILD, job.name, MATCH_INDEX_REFERENCE[1])
	return job.name


def run_rebuild_job(sync_job: str) -> None:
	"""rq entry point of the Match Index Rebuild job type (as Administrator): :func:`rebuild_index` with
	its progress reported to the admins; the job's ``created`` count is the index rows written."""
	from atlas_integrations.progress import run_tracked

	def work(progress, payload: dict) -> tuple[dict, str]:
		rows = rebuild_index(progress=progress, chunk=int(payload.get("chunk") or REBUILD_CHUNK))
		return {"created": rows}, f"index rows {rows}"

	run_tracked(sync_job, work)


def reindex(source_doctype: str, names: list[str]) -> set[str]:
	"""Re-read the index rows of some records (after they changed or were deleted). Returns the
	addresses they have now."""
	if not names:
		return set()
	frappe.db.sql(f"delete from `tab{DOCTYPE}` where source_doctype=%s and source_name in %s",
				  (source_doctype, names))
	rows = _rows_for(source_doctype, names)
	_insert(rows)
	return {r[0] for r in rows}


def on_record_change(doc, method=None) -> None:
	"""Doc event (on_update / after_insert / on_trash) of Contact, Customer, Supplier, Lead and User:
	keep the index current, and enqueue matching again of the threads whose sender was unknown (or
	ambiguous) at one of the record's addresses, after the commit."""
	gone = method == "on_trash"
	addresses = reindex(doc.doctype, [doc.name]) if not gone else set()
	if gone:
		frappe.db.sql(f"delete from `tab{DOCTYPE}` where source_doctype=%s and source_name=%s",
					  (doc.doctype, doc.name))
	if addresses and frappe.db.exists("Inbox Thread", {"sender_address": ["in", list(addresses)],
													   "match_state": ["in", [UNKNOWN, AMBIGUOUS]]}):
		frappe.enqueue("atlas_integrations.inbox.pipeline.rematch_addresses", queue="short",
					   addresses=sorted(addresses), enqueue_after_commit=True)


# -- lookup and precedence -----------------------------------------------------------------------------------
def lookup(addresses: set[str] | list[str]) -> dict[str, list[frappe._dict]]:
	"""Index rows for normalised ``addresses`` (one indexed query). Returns address -> rows."""
	found: dict[str, list] = {}
	wanted = sorted({a for a in addresses if a})
	for start in range(0, len(wanted), 5000):
		for row in frappe.db.sql(
				f"""select address, kind, source_doctype, source_name, party_type, party, is_primary
				from `tab{DOCTYPE}` where address in %(a)s""", {"a": wanted[start:start + 5000]}, as_dict=True):
			found.setdefault(row.address, []).append(row)
	return found


def resolve(address: str, rows: list[frappe._dict] | None) -> Match:
	"""The :class:`Match` of one sender address from its index rows, by the module's precedence."""
	if not address:
		return Match(UNKNOWN, reason="no sender address")
	if not rows:
		return Match(UNKNOWN, reason=f"{address} matches no Contact, Customer, Supplier, Lead or User")
	ranked = sorted(rows, key=lambda r: (_RANK.get((r.kind, r.party_type or ""), 9), -(r.is_primary or 0),
										 r.source_name))
	best = _RANK.get((ranked[0].kind, ranked[0].party_type or ""), 9)
	top = [r for r in ranked if _RANK.get((r.kind, r.party_type or ""), 9) == best]
	first = top[0]
	if first.kind == "User":
		return Match(INTERNAL, reason=f"{address} is the desk user {first.source_name}")
	contacts = sorted({r.source_name for r in rows if r.kind == "Contact"})
	contact = first.source_name if first.kind == "Contact" else (contacts[0] if len(contacts) == 1 else "")
	parties = sorted({(r.party_type, r.party) for r in top if r.party})
	if len(parties) > 1:
		names = ", ".join(f"{pt} {p}" for pt, p in parties)
		return Match(AMBIGUOUS, contact=contact if len(contacts) == 1 else "",
					 reason=f"{address} matches several parties: {names}")
	if not parties:
		if len(contacts) > 1:
			return Match(AMBIGUOUS, reason=f"{address} matches several contacts: {', '.join(contacts)}")
		return Match(MATCHED, contact=contact, reason=f"{address} is Contact {contact} (no party linked)")
	party_type, party = parties[0]
	how = f"Contact {first.source_name} linked to {party_type}" if first.kind == "Contact" else f"{party_type}'s email"
	return Match(MATCHED, party_type, party, contact, f"{address}: {how} {party}")


def timeline_targets(rows: list[frappe._dict]) -> set[tuple[str, str]]:
	"""The records whose timelines a participant's mail belongs on: its Contacts and their parties, and
	parties by their own email (never Users)."""
	out = set()
	for r in rows or ():
		if r.kind == "User":
			continue
		out.add((r.source_doctype, r.source_name))
		if r.party:
			out.add((r.party_type, r.party))
	return out
