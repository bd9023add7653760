"""The managed inbound route: raw RFC 822 messages posted to this site, verified, stored, enqueued.

Two ways in, both guest endpoints in :mod:`atlas_integrations.api.inbound`:

* **Signed raw message** — the body is the message; header ``X-Atlas-Signature: t=<unix>,v1=<hex>``
  where ``v1`` is HMAC-SHA256 (the route's signing key) of ``<t> + "." + <raw body>``. A ``t`` more than
  :data:`TOLERANCE` seconds away from now is refused (replay protection, as Stripe's scheme).
* **Mailgun** ``forward()`` to a URL ending in ``mime`` — form field ``body-mime`` holds the message.
  Mailgun signs ``timestamp + token`` (HMAC-SHA256 hex with the webhook signing key; it does not cover
  the body), so each token is accepted once and stale timestamps are refused (Mailgun docs, "Securing
  webhooks"). Mailgun retries every answer but 200 and 406 for hours: permanent refusals answer 406.

Every comparison is ``hmac.compare_digest``. A message is stored once per route (unique key: route +
SHA-256 of the raw bytes): a replayed delivery stores nothing new. An unreadable message is stored with
its error and the outcome ``failed``; nothing is dropped. Storing is one transaction; the pipeline runs
after the commit in a worker, as a defined user (never Guest).
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time

import frappe
from frappe.utils import convert_utc_to_system_timezone, get_url, now_datetime, validate_email_address

from atlas_integrations.inbox import attachments
from atlas_integrations.inbox.html import sanitize, text_to_html
from atlas_integrations.inbox.mime import format_address, parse_message, snippet_of
from atlas_integrations.inbox.pipeline import FAILED, rfc_message_key
from atlas_integrations.inbox.text import mail_text

DOCTYPE = "Inbound Route"
TOLERANCE = 300  # seconds a signature timestamp may differ from now
SIGNATURE_HEADER = "X-Atlas-Signature"
RAW_METHOD = "atlas_integrations.api.inbound.receive"
MAILGUN_METHOD = "atlas_integrations.api.inbound.mailgun_mime"
DATA_LENGTH = 140


class Refused(Exception):
	"""A request that is not accepted. ``status`` is the HTTP status to answer; ``reason`` is safe to
	show (it never contains a key, a signature or message content)."""

	def __init__(self, status: int, reason: str):
		super().__init__(reason)
		self.status, self.reason = status, reason


def endpoint_url(route: str, mailgun: bool = False) -> str:
	"""The URL a provider posts to for ``route`` (the Mailgun one ends in ``mime``, as Mailgun's
	``forward()`` requires to post the full message)."""
	from urllib.parse import quote

	return get_url(f"/api/method/{MAILGUN_METHOD if mailgun else RAW_METHOD}?route={quote(route)}")


def sign(key: str, body: bytes, timestamp: int | None = None) -> str:
	"""The ``X-Atlas-Signature`` value for ``body`` (what a sender computes): ``t=<unix>,v1=<hex>``."""
	t = int(time.time() if timestamp is None else timestamp)
	digest = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
	return f"t={t},v1={digest}"


def verify_signature(header: str | None, body: bytes, key: str, now: float | None = None) -> None:
	"""Check an ``X-Atlas-Signature`` over the raw ``body``.

	Raises:
		Refused: 401 when the header is missing or malformed, the timestamp is more than
			:data:`TOLERANCE` seconds from ``now`` (seconds since the epoch, default now), or no ``v1``
			matches (compared with ``hmac.compare_digest``).
	"""
	if not key:
		raise Refused(401, "the route has no signing key")
	parts: dict[str, list[str]] = {}
	for item in (header or "").split(","):
		name, _, value = item.strip().partition("=")
		if name and value:
			parts.setdefault(name, []).append(value)
	try:
		t = int(parts["t"][0])
	except (KeyError, ValueError, IndexError):
		raise Refused(401, "missing or malformed signature") from None
	if abs((time.time() if now is None else now) - t) > TOLERANCE:
		raise Refused(401, "signature timestamp outside the allowed window")
	expected = hmac.new(key.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
	if not any(hmac.compare_digest(expected, v) for v in parts.get("v1", [])):
		raise Refused(401, "signature does not match")


def verify_mailgun(timestamp: str | None, token: str | None, signature: str | None, key: str,
				   now: float | None = None) -> None:
	"""Check a Mailgun webhook signature (HMAC-SHA256 hex of ``timestamp + token``), its age, and that
	its token was not seen before (kept 2 × :data:`TOLERANCE` seconds in Redis; set-if-absent).

	Raises:
		Refused: 401 for a missing/wrong signature, a stale timestamp or a replayed token.
	"""
	if not key:
		raise Refused(401, "the route has no Mailgun signing key")
	if not (timestamp and token and signature):
		raise Refused(401, "missing Mailgun signature")
	try:
		age = abs((time.time() if now is None else now) - int(timestamp))
	except ValueError:
		raise Refused(401, "malformed Mailgun timestamp") from None
	if age > TOLERANCE:
		raise Refused(401, "stale Mailgun timestamp")
	expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
	if not hmac.compare_digest(expected, signature):
		raise Refused(401, "Mailgun signature does not match")
	cache_key = frappe.cache.make_key(f"atlas:mailgun-token:{hashlib.sha256(token.encode()).hexdigest()}")
	if not frappe.cache.set(cache_key, 1, ex=2 * TOLERANCE, nx=True):
		raise Refused(401, "Mailgun token already used (replay)")


def route_for(name: str | None) -> frappe._dict:
	"""The enabled Inbound Route ``name`` with its keys decrypted.

	Raises:
		Refused: 404 for an unknown route, 406 for a disabled one (a permanent refusal).
	"""
	row = frappe.db.get_value(DOCTYPE, name, ["name", "enabled", "max_message_mb", "company"], as_dict=True) \
		if name else None
	if not row:
		raise Refused(404, "unknown inbound route")
	if not row.enabled:
		raise Refused(406, "the inbound route is disabled")
	doc = frappe.get_doc(DOCTYPE, row.name)
	row.signing_key = doc.get_password("signing_key", raise_exception=False) or ""
	row.mailgun_signing_key = doc.get_password("mailgun_signing_key", raise_exception=False) or ""
	row.max_bytes = int((row.max_message_mb or 25) * 1024 * 1024)
	return row


def note_rejection(route: str | None, reason: str) -> None:
	"""Count a refused request on its route (if the route exists); commits."""
	if route and frappe.db.exists(DOCTYPE, route):
		frappe.db.sql(f"""update `tab{DOCTYPE}` set rejected_count = ifnull(rejected_count, 0) + 1,
			last_rejection = %s where name = %s""", (mail_text(reason)[:500], route))
		frappe.db.commit()


def _thread_for(route: str, parsed, key: str, subject: str) -> str:
	"""The Inbox Thread of a route message: the thread of a message it replies to (References /
	In-Reply-To, same route), else a new one."""
	refs = [rfc_message_key(x) for x in [parsed.in_reply_to, *parsed.references]] if parsed else []
	refs = [r for r in refs if r]
	if refs:
		found = frappe.db.sql("""select atlas_inbox_thread from `tabCommunication` where atlas_inbound_route=%s
			and atlas_message_key in %s and ifnull(atlas_inbox_thread, '') != '' order by creation limit 1""",
							  (route, refs))
		if found:
			return found[0][0]
	name = frappe.generate_hash(length=10)
	now, user = now_datetime(), frappe.session.user
	frappe.db.bulk_insert("Inbox Thread", ["name", "creation", "modified", "owner", "modified_by", "inbound_route",
										   "thread_key", "subject", "message_count", "unread"],
						  [(name, now, now, user, user, route, f"route:{route}:{key}"[:140], subject[:1000], 0, 1)])
	return name


def refresh_thread(thread: str) -> None:
	"""Recompute a route thread's aggregates from its messages (subject, participants, times, count,
	snippet, unread)."""
	rows = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread},
						  fields=["subject", "sender", "recipients", "cc", "communication_date", "atlas_snippet", "seen"],
						  order_by="communication_date asc, creation asc")
	if not rows:
		return
	people: dict[str, None] = {}
	for r in rows:
		for value in (r.sender, r.recipients, r.cc):
			for part in (value or "").split(","):
				if part.strip():
					people.setdefault(part.strip(), None)
	frappe.db.set_value("Inbox Thread", thread, {
		"subject": rows[0].subject, "participants": mail_text(", ".join(list(people)[:50])),
		"first_message_at": rows[0].communication_date, "last_message_at": rows[-1].communication_date,
		"message_count": len(rows), "snippet": rows[-1].atlas_snippet, "unread": int(any(not r.seen for r in rows)),
	}, update_modified=True)


def store(route: frappe._dict, raw: bytes) -> dict:
	"""Store one raw message of ``route`` (in the current transaction; the caller commits).

	Args:
		route: from :func:`route_for`.
		raw: the exact RFC 822 bytes.

	Returns:
		``{"status": "accepted" | "duplicate", "communication": name}``.

	Raises:
		Refused: 406 when ``raw`` is empty or over the route's size limit (bytes).
	"""
	if not raw or not raw.strip():
		raise Refused(406, "empty message")
	if len(raw) > route.max_bytes:
		raise Refused(406, f"message of {len(raw)} bytes is over the route's limit of {route.max_bytes} bytes")
	route_key = f"{route.name}:{hashlib.sha256(raw).hexdigest()}"
	existing = frappe.db.get_value("Communication", {"atlas_route_key": route_key}, "name")
	if existing:
		return {"status": "duplicate", "communication": existing}
	parsed = parse_message(raw)
	name_, addr = parsed.sender
	sender = addr if addr and validate_email_address(addr) else None
	subject = mail_text(parsed.subject) or "(no subject)"
	unreadable = not (addr or parsed.message_id or parsed.subject) and bool(parsed.errors)
	when = parsed.date.replace(tzinfo=None) if parsed.date else None
	values = {
		"communication_type": "Communication", "communication_medium": "Email", "sent_or_received": "Received",
		"status": "Linked", "seen": 0, "email_status": "Open", "reference_doctype": "Inbox Thread",
		"atlas_source": "Inbound Route", "atlas_inbound_route": route.name, "atlas_route_key": route_key,
		"subject": subject, "sender": sender,
		"sender_full_name": mail_text(name_ or (addr if not sender else None), DATA_LENGTH),
		"recipients": ", ".join(format_address(p) for p in parsed.to) or None,
		"cc": ", ".join(format_address(p) for p in parsed.cc) or None,
		"atlas_reply_to": ", ".join(format_address(p) for p in parsed.reply_to) or None,
		"communication_date": convert_utc_to_system_timezone(when).replace(tzinfo=None) if when else now_datetime(),
		"message_id": mail_text(parsed.message_id[:900]),
		"content": sanitize(parsed.html) if parsed.html else text_to_html(parsed.text),
		"text_content": parsed.text, "atlas_snippet": mail_text(snippet_of(parsed.text)),
		"atlas_in_reply_to": mail_text(parsed.in_reply_to), "atlas_body_stored": 1,
		"atlas_parse_error": mail_text(parsed.parse_error), "has_attachment": 0,
		"atlas_references": " ".join(dict.fromkeys(
			k for k in (rfc_message_key(x) for x in [*parsed.references, parsed.in_reply_to]) if k))[:10000] or None,
		"atlas_signal_headers": json.dumps(parsed.signal_headers, sort_keys=True),
		"atlas_message_key": rfc_message_key(parsed.message_id) or None,
	}
	if unreadable:
		values.update(content="<pre>" + html.escape(parsed.raw_headers[:20000] or raw[:2000].decode("utf-8", "replace"))
					  + "</pre>", atlas_outcome=FAILED,
					  atlas_outcome_reason=mail_text(f"unreadable message: {parsed.parse_error}"[:1000]))
	thread = _thread_for(route.name, parsed, rfc_message_key(parsed.message_id) or route_key.split(":")[-1], subject)
	name = frappe.generate_hash(length=10)
	now, user = now_datetime(), frappe.session.user
	fields = sorted(values)
	frappe.db.bulk_insert("Communication", ["name", "creation", "modified", "owner", "modified_by", "docstatus", "idx",
											"reference_name", "atlas_inbox_thread", *fields],
						  [[name, now, now, user, user, 0, 0, thread, thread, *[values[f] for f in fields]]],
						  ignore_duplicates=True)
	stored = frappe.db.get_value("Communication", {"atlas_route_key": route_key}, "name")
	if stored != name:  # a concurrent delivery of the same bytes won
		return {"status": "duplicate", "communication": stored}
	if parsed.attachments:
		attachments.store_batch([(name, parsed.attachments)], min(route.max_bytes, 25 * 1024 * 1024))
	refresh_thread(thread)
	if route.company and not frappe.db.get_value("Inbox Thread", thread, "company"):
		frappe.db.set_value("Inbox Thread", thread, "company", route.company, update_modified=False)
	frappe.db.sql(f"""update `tab{DOCTYPE}` set received_count = ifnull(received_count, 0) + 1,
		last_received_at = %s where name = %s""", (now, route.name))
	if not unreadable:
		frappe.enqueue("atlas_integrations.inbox.inbound.process", queue="short", names=[name],
					   enqueue_after_commit=True)
	return {"status": "accepted", "communication": name}


def process(names: list[str]) -> None:
	"""Worker job: the Smart Inbox pipeline on stored route messages, as a defined user (never Guest)."""
	from atlas_integrations import jobs
	from atlas_integrations.inbox import pipeline

	with jobs.run_as(None):
		pipeline.run(names)

