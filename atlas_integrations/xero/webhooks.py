"""Xero's webhooks: verified over the raw body, recorded once, answered at once; the work is queued.

Xero POSTs ``{"events": [...], "firstEventSequence", "lastEventSequence", "entropy"}`` with
``x-xero-signature`` = base64(HMAC-SHA256(webhooks key, raw body)). Rules (Xero developer docs,
"Webhooks": signature, intent to receive):

* a bad or missing signature is answered **401** with an empty body, a good one **200** with an empty
  body, within 5 seconds (Xero's intent-to-receive sends both kinds and checks exactly this);
* Xero events carry no id: each is recorded once as a **Xero Webhook Event** named by the SHA-256 of
  tenantId + eventCategory + eventType + resourceId + eventDateUtc, so a replayed delivery (or a retried
  one) adds nothing and queues nothing new;
* INVOICE and CREDITNOTE events queue a pull of those documents (:func:`atlas_integrations.xero.payments.queue_pull`,
  which also reads the organisation's changed payments), CONTACT events a refresh of the Customer mapping;
* events of a tenant no Company is connected to are acknowledged and ignored (not stored).

Nothing here calls Xero: the Company's drain does, after commit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import frappe
from frappe.utils import now_datetime
from frappe.utils.password import get_decrypted_password

from atlas_integrations.xero import oauth, payments

DOCTYPE = "Xero Webhook Event"
CATEGORIES = {"INVOICE": "invoice_ids", "CREDITNOTE": "credit_note_ids", "CONTACT": "contact_ids"}


def webhook_key() -> str | None:
	"""The Xero webhooks signing key (Atlas Settings, a Password field), or None when not set."""
	return get_decrypted_password("Atlas Settings", "Atlas Settings", "xero_webhook_key", raise_exception=False) or None


def signature_ok(raw: bytes, signature: str | None, key: str | None) -> bool:
	"""True when ``signature`` is base64(HMAC-SHA256(key, raw)); constant-time compare."""
	if not key or not signature:
		return False
	expected = base64.b64encode(hmac.new(key.encode(), raw, hashlib.sha256).digest()).decode()
	return hmac.compare_digest(expected.encode(), signature.strip().encode())


def event_key(event: dict) -> str:
	"""The event's identity (Xero gives none): SHA-256 of its tenant, category, type, resource and date."""
	parts = [str(event.get(k) or "") for k in ("tenantId", "eventCategory", "eventType", "resourceId", "eventDateUtc")]
	return hashlib.sha256("\x00".join(parts).lower().encode()).hexdigest()


def receive(raw: bytes, signature: str | None) -> int:
	"""Handle one delivery; returns the HTTP status to answer (200 or 401; the body is always empty).
	Commits. Bad JSON under a good signature is answered 200 (Xero would redeliver it forever) and logged."""
	if not signature_ok(raw, signature, webhook_key()):
		return 401
	try:
		data = json.loads(raw.decode("utf-8") or "{}")
		events = [e for e in (data.get("events") or []) if isinstance(e, dict)]
	except (UnicodeDecodeError, ValueError, AttributeError):
		frappe.logger("atlas_integrations").warning("Xero webhook: a signed body that is not JSON was ignored")
		return 200
	if not events:  # intent to receive, or nothing to do
		return 200
	companies = dict(frappe.db.sql(f"""select lower(tenant_id), name from `tab{oauth.CONNECTION}`
		where status=%s and ifnull(tenant_id, '') != ''""", (oauth.CONNECTED,)))
	keys = {event_key(e): e for e in events if str(e.get("tenantId") or "").lower() in companies}
	if not keys:
		return 200
	seen = set(frappe.get_all(DOCTYPE, filters={"name": ["in", list(keys)]}, pluck="name"))
	work: dict[str, dict[str, set]] = {}
	fresh = []
	for key, event in keys.items():
		if key in seen:
			continue
		company = companies[str(event["tenantId"]).lower()]
		category = str(event.get("eventCategory") or "").upper()
		target = CATEGORIES.get(category)
		try:
			frappe.get_doc({"doctype": DOCTYPE, "name": key, "company": company, "tenant_id": str(event["tenantId"])[:140],
							"event_category": category[:40], "event_type": str(event.get("eventType") or "")[:40],
							"resource_id": str(event.get("resourceId") or "")[:140],
							"event_date_utc": str(event.get("eventDateUtc") or "")[:40], "received_at": now_datetime(),
							"status": "Queued" if target else "Ignored"}).db_insert()
		except frappe.DuplicateEntryError:  # the same event in a concurrent delivery
			continue
		if target and event.get("resourceId"):
			work.setdefault(company, {}).setdefault(target, set()).add(str(event["resourceId"]))
			fresh.append((company, key))
	for company, targets in work.items():
		job = payments.queue_pull(company, trigger="webhook", **{k: sorted(v) for k, v in targets.items()})
		names = [k for c, k in fresh if c == company]
		frappe.db.sql(f"update `tab{DOCTYPE}` set sync_job=%s where name in ({', '.join(['%s'] * len(names))})",
					  (job, *names))
	frappe.db.commit()
	return 200
