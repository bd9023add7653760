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


def _insert(rows: list[tuple]) -> None:
	if not rows:
		return
	now, user = now_datetime(), frappe.session.user or "Administrator"
	frappe.db.bulk_insert(
		DOCTYPE,
		["name", "creation", "modified", "owner", "modified_by", "address", "kind", "source_doctype",
		 "source_name", "party_type", "party", "is_primary"],
		[(frappe.generate_hash(length=12), now, now, user, user, *r) for r in rows],
		chunk_size=5000,
	)


def rebuild_index() -> int:
	"""Rebuild the whole matching index from Contacts, Customers, Suppliers, Leads and Users (bulk SQL
	reads and inserts). Returns the number of index rows."""
	rows = _rows_for()
	frappe.db.sql(f"delete from `tab{DOCTYPE}`")
	_insert(rows)
	return len(rows)


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
