"""ERPNext Customers as Xero Contacts: found again before any is created (by ContactNumber, name or email,
one look-up per :data:`LOOKUP_CHUNK` customers), created in one batch with an Idempotency-Key, and updated
when a synced Customer's name, email, address or tax id changes (a "Xero Contact" Sync Job).

A Customer's stored ContactID counts only for the tenant it came from (``atlas_xero_tenant_id``).
"""

from __future__ import annotations

import hashlib

import frappe

from atlas_integrations import jobs
from atlas_integrations.xero import ledger, mappers
from atlas_integrations.xero.errors import validation_messages
from atlas_integrations.xero.jobs import XERO_CONTACT

LOOKUP_CHUNK = 15  # customers per ``where`` look-up (Xero's URL stays short)
CONTACT_FIELDS = ("customer_name", "email_id", "tax_id", "customer_primary_address")


def on_customer_update(doc, method=None) -> None:
	"""Customer ``on_update``: a Customer already in Xero whose name, email, primary address or tax id
	changed queues a "Xero Contact" job for each connected Company."""
	if not doc.get("atlas_xero_contact_id"):
		return
	before = doc.get_doc_before_save()
	if before is not None and all(before.get(f) == doc.get(f) for f in CONTACT_FIELDS):
		return
	for company in ledger.connected_companies():
		ledger.queue(doc.name, company, "contact", XERO_CONTACT, "Customer")


def _customers(names: list[str]) -> dict:
	docs = {c.name: c for c in frappe.get_all("Customer", filters={"name": ["in", names]},
											  fields=["name", "customer_name", "tax_id", "email_id", "atlas_xero_contact_id",
													  "atlas_xero_tenant_id", "customer_primary_address"])}
	addresses = {a.name: a for a in frappe.get_all(
		"Address", filters={"name": ["in", [d.customer_primary_address for d in docs.values() if d.customer_primary_address]]},
		fields=["name", "address_line1", "address_line2", "city", "state", "pincode", "country"])} if docs else {}
	for doc in docs.values():
		doc.address = addresses.get(doc.customer_primary_address)
	return docs


def quote(value: str) -> str:
	"""``value`` made safe inside a double-quoted Xero ``where`` string (quotes and backslashes dropped,
	at most 255 characters)."""
	return str(value or "").replace('"', "").replace("\\", "")[:255]


def _find_contacts(session, docs: dict) -> dict[str, str]:
	"""Existing Xero Contacts of Customers without a stored id: by ContactNumber, then name, then email;
	one ``GET /Contacts?where=...`` per :data:`LOOKUP_CHUNK` customers."""
	found: dict[str, str] = {}
	names = list(docs)
	for start in range(0, len(names), LOOKUP_CHUNK):
		chunk = [docs[n] for n in names[start:start + LOOKUP_CHUNK]]
		terms = []
		for doc in chunk:
			terms.append(f'ContactNumber=="{quote(doc.name[:50])}"')
			terms.append(f'Name=="{quote(doc.customer_name or doc.name)}"')
			if doc.email_id:
				terms.append(f'EmailAddress=="{quote(doc.email_id)}"')
		contacts = session.call("get_contacts", where=" OR ".join(terms), include_archived=False).contacts or []
		for key in ("number", "name", "email"):
			for doc in chunk:
				if doc.name in found:
					continue
				for c in contacts:
					value = {"number": (c.contact_number, doc.name[:50]), "name": (c.name, doc.customer_name or doc.name),
							 "email": (c.email_address, doc.email_id)}[key]
					if value[0] and value[1] and str(value[0]).strip().lower() == str(value[1]).strip().lower():
						found[doc.name] = str(c.contact_id)
						break
	return found


def contact_ids(session, customers: list[str]) -> dict[str, str]:
	"""Xero ContactIDs of ERPNext Customers (``{customer: ContactID}``): stored, else found in Xero, else
	created (one batch). A Customer Xero refused is missing from the answer. Commits."""
	from xero_python.accounting import Contacts

	docs = _customers(customers)
	# a stored id counts only for the organisation it came from (a Customer may be invoiced by Companies
	# connected to different organisations, or the Company reconnected to another one)
	found = {c: d.atlas_xero_contact_id for c, d in docs.items()
			 if d.atlas_xero_contact_id and (d.atlas_xero_tenant_id or session.tenant_id) == session.tenant_id}
	unknown = {c: d for c, d in docs.items() if c not in found}
	if unknown:
		found.update(_find_contacts(session, unknown))
	missing = [c for c in customers if c not in found and c in docs]
	if missing:
		payload = Contacts(contacts=[mappers.to_model("Contact", mappers.contact(docs[c], docs[c].email_id,
																				 address=docs[c].address))
									 for c in missing])
		key = "contacts-" + hashlib.sha256(",".join(sorted(missing)).encode()).hexdigest()[:40]
		created = session.call("create_contacts", payload, summarize_errors=False, idempotency_key=key)
		for customer, contact in zip(missing, created.contacts or []):
			if contact.contact_id and not contact.has_validation_errors:
				found[customer] = str(contact.contact_id)
	for customer, contact_id in found.items():
		if (docs[customer].atlas_xero_contact_id, docs[customer].atlas_xero_tenant_id) != (contact_id, session.tenant_id):
			frappe.db.set_value("Customer", customer, {"atlas_xero_contact_id": contact_id,
													   "atlas_xero_tenant_id": session.tenant_id}, update_modified=False)
	frappe.db.commit()
	return found


def update_contacts(session, company: str, rows: dict) -> None:
	"""The drain's handler of "Xero Contact" jobs (``rows``: job name → Sync Job row): the changed Customers'
	Xero Contacts updated in one ``POST /Contacts`` (by ContactID); a Customer not in Xero yet has nothing to
	update (its contact is created with its first invoice)."""
	from xero_python.accounting import Contacts

	docs = _customers([r.reference_name for r in rows.values()])
	order, payload = [], []
	for job, row in rows.items():
		doc = docs.get(row.reference_name)
		if not doc or not doc.atlas_xero_contact_id or (doc.atlas_xero_tenant_id or session.tenant_id) != session.tenant_id:
			jobs.finish(job, jobs.SUCCEEDED, details="not in Xero yet: the contact is created with its first invoice")
			continue
		order.append(job)
		payload.append(mappers.to_model("Contact", mappers.contact(doc, doc.email_id, contact_id=doc.atlas_xero_contact_id,
																   address=doc.address)))
	if not payload:
		return
	key = "contact-updates-" + hashlib.sha256(",".join(order).encode()).hexdigest()[:40]
	result = session.call("update_or_create_contacts", Contacts(contacts=payload), summarize_errors=False,
						  idempotency_key=key)
	for job, answer in zip(order, result.contacts or []):
		if answer.has_validation_errors or getattr(answer, "validation_errors", None):
			jobs.finish(job, jobs.FAILED, error=f"Xero refused the contact: {validation_messages(answer) or 'validation error'}")
		else:
			jobs.finish(job, jobs.SUCCEEDED, details=f"Xero Contact {answer.contact_id} updated",
						result_ids=[str(answer.contact_id)])
