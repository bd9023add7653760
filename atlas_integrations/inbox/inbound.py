"""The managed inbound route: raw RFC 822 messages posted to this site, verified, stored, enqueued.

Two ways in, both guest endpoints in :mod:`atlas_integrations.api.inbound`:

* **Signed raw message** — the body is the message; header ``X-Atlas-Signature: t=<unix>,v1=<hex>``
  where ``v1`` is HMAC-SHA256 (the route's signing key) of ``<t> + "." + <raw body>``. A ``t`` more than
  :data:`TOLERANCE` seconds away from now is refused (replay protection, as Stripe's scheme).
* **Mailgun** ``forward()`` to a URL ending in ``mime`` — form field ``body-mime`` holds the message.
  Mailgun signs ``timestamp + token`` (HMAC-SHA256 hex with the webhook signing key; it does not cover
  the body), so each token is accepted once and stale timestamps are refused (Mailgun docs, "Securing
  webhooks"). Mailgun retries every answer but 200 and 406 for hours: permanent refusals answer 406.
  A token is **claimed** (Redis ``SET NX``, :data:`CLAIM_TTL` seconds) while its message is being stored,
  so a concurrent replay of it is refused, and **recorded as used** only after the message is committed
  (:func:`token_used`); a store that fails releases the claim (:func:`release_token`), so Mailgun's retry
  of the same delivery is stored instead of being refused as a replay.

Order of the checks, cheapest first: the route, then the size (``Content-Length``, then the body's own
length: over the route's limit is **413** before any parsing or HMAC work), then the signature, then the
message. Frappe reads the whole request body before any app code runs, so what it reads is bounded by
the site config ``max_file_size`` (bytes; Frappe's default 25 MB), not by the route: see
:func:`atlas_integrations.setup.install.set_request_limit` and the README.

Every comparison is ``hmac.compare_digest``. A message is stored once per route (unique key: route +
SHA-256 of the raw bytes): a replayed delivery stores nothing new. An unreadable message is stored with
its error and the outcome ``failed``; nothing is dropped. Storing is one transaction; the pipeline runs
after the commit in a worker, as a defined user (never Guest).

A refused request writes nothing to the database: it is counted in Redis per route
(:func:`note_rejection`; unknown routes share one counter), the Inbound Route form shows the count with
the stored total (:func:`refusal_figures`), and the next accepted message of the route folds the count
into the route's *Requests Rejected* in its own update (:func:`store`).
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import time
import uuid

import frappe
import redis
from frappe.utils import convert_utc_to_system_timezone, get_url, now_datetime

from atlas_integrations.inbox import writer
from atlas_integrations.inbox.mime import parse_message
from atlas_integrations.inbox.pipeline import FAILED
from atlas_integrations.inbox.text import mail_text

DOCTYPE = "Inbound Route"
TOLERANCE = 300  # seconds a signature timestamp may differ from now
SIGNATURE_HEADER = "X-Atlas-Signature"
RAW_METHOD = "atlas_integrations.api.inbound.receive"
MAILGUN_METHOD = "atlas_integrations.api.inbound.mailgun_mime"
MB = 1024 * 1024
#: bytes a Mailgun ``forward()`` form may carry besides ``body-mime`` (``message-headers`` repeats every
#: header as JSON; recipient, sender, subject, timestamp, token, signature, multipart boundaries)
FORM_ALLOWANCE = 1 * MB
CLAIM_TTL = 120  # seconds a Mailgun token stays claimed by a request that is storing its message
REFUSED_KEY = "atlas:inbound-refused:"  # + route name, or UNKNOWN_ROUTE (one Redis hash each)
UNKNOWN_ROUTE = "\x00unknown-route"  # not a route name (Frappe names never hold NUL)


class Refused(Exception):
	"""A request that is not accepted. ``status`` is the HTTP status to answer; ``reason`` is safe to
	show (it never contains a key, a signature, request input or message content); ``route`` the
	existing Inbound Route it was meant for, when known."""

	def __init__(self, status: int, reason: str, route: str | None = None):
		super().__init__(reason)
		self.status, self.reason, self.route = status, reason, route


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
	"""Check a Mailgun webhook signature (HMAC-SHA256 hex of ``timestamp + token``) and its age. Whether
	the token was used before is :func:`claim_token`'s question (asked after this check passed).

	Args:
		timestamp, token, signature: Mailgun's form fields.
		key: the route's Mailgun webhook signing key.
		now: seconds since the epoch (default now).

	Raises:
		Refused: 401 for a missing/wrong signature or a stale timestamp (more than :data:`TOLERANCE`
			seconds from ``now``).
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


def _token_key(token: str) -> bytes:
	return frappe.cache.make_key(f"atlas:mailgun-token:{hashlib.sha256(token.encode()).hexdigest()}")


def claim_token(token: str) -> str:
	"""Claim a verified Mailgun token for the request that stores its message: ``SET NX`` with
	:data:`CLAIM_TTL` seconds (a request that dies leaves a claim that expires by itself).

	Returns:
		The claim's id (for :func:`token_used` / :func:`release_token`).

	Raises:
		Refused: 401 "Mailgun token already used (replay)" — the token is claimed by a request storing
			it right now, or was used for a stored message in the last 2 × :data:`TOLERANCE` seconds.
	"""
	claim = uuid.uuid4().hex
	if not frappe.cache.set(_token_key(token), f"claim:{claim}", ex=CLAIM_TTL, nx=True):
		raise Refused(401, "Mailgun token already used (replay)")
	return claim


def token_used(token: str) -> None:
	"""Record a token as used, for 2 × :data:`TOLERANCE` seconds (a stale timestamp is refused after
	that anyway). Called only after the message it carried is committed."""
	frappe.cache.set(_token_key(token), "used", ex=2 * TOLERANCE)


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def release_token(token: str | None, claim: str | None) -> None:
	"""Give up a claim whose message was not stored (refused or failed), so that Mailgun's retry of the
	same delivery is not taken for a replay. Only this claim is removed (compare-and-delete), never a
	later claim or a used mark. Nothing happens without a claim."""
	if token and claim:
		frappe.cache.register_script(_RELEASE)(keys=[_token_key(token)], args=[f"claim:{claim}"])


def route_for(name: str | None) -> frappe._dict:
	"""The enabled Inbound Route ``name``: ``name, enabled, max_message_mb, company`` and ``max_bytes``
	(its size limit in bytes; 25 MB when empty). One indexed read; the keys are not decrypted here
	(:func:`signing_key`: only a request that passed the size checks needs them).

	Raises:
		Refused: 404 for an unknown route, 406 for a disabled one (a permanent refusal).
	"""
	row = frappe.db.get_value(DOCTYPE, name, ["name", "enabled", "max_message_mb", "company"], as_dict=True) \
		if name and isinstance(name, str) else None
	if not row:
		raise Refused(404, "unknown inbound route")
	if not row.enabled:
		raise Refused(406, "the inbound route is disabled", route=row.name)
	row.max_bytes = int((row.max_message_mb or 25) * MB)
	return row


def signing_key(route: frappe._dict, mailgun: bool = False) -> str:
	"""The route's decrypted signing key (``mailgun``: its Mailgun webhook signing key); "" when unset."""
	from frappe.utils.password import get_decrypted_password

	field = "mailgun_signing_key" if mailgun else "signing_key"
	return get_decrypted_password(DOCTYPE, route.name, field, raise_exception=False) or ""


def check_size(route: frappe._dict, length: int | None, allowance: int = 0) -> None:
	"""Refuse a request whose size is over the route's limit, before anything reads or verifies it.

	Args:
		route: from :func:`route_for`.
		length: bytes (the ``Content-Length`` header, or the body's / message's own length); None or 0
			when unknown (nothing to check).
		allowance: bytes the request may carry besides the message (e.g. :data:`FORM_ALLOWANCE`).

	Raises:
		Refused: 413 "message of N bytes is over the route's limit of M bytes".
	"""
	if length and length > route.max_bytes + allowance:
		raise Refused(413, f"message of {int(length)} bytes is over the route's limit of {route.max_bytes} bytes")


# -- refused requests: counted in Redis, never a database write ---------------------------------------------
def _refused_key(route: str | None) -> bytes:
	return frappe.cache.make_key(REFUSED_KEY + (route or UNKNOWN_ROUTE))


def note_rejection(route: str | None, reason: str) -> None:
	"""Count one refused request in Redis (one ``MULTI``: ``HINCRBY count``, ``last`` reason, ``last_at``
	Unix seconds) on its route, or on the shared unknown-route counter when ``route`` is None (a route
	that does not exist: request input never becomes a Redis key). No database access.

	Args:
		route: the name of an existing Inbound Route, or None.
		reason: the refusal's safe reason (:class:`Refused`), stored as HTML text.
	"""
	key = _refused_key(route)
	pipe = frappe.cache.pipeline()
	pipe.hincrby(key, "count", 1)
	pipe.hset(key, mapping={"last": mail_text(reason)[:500], "last_at": int(time.time())})
	pipe.execute()


def refusal_figures(route: str | None) -> dict:
	"""The refused requests counted in Redis and not yet folded into the route's *Requests Rejected*:
	``{"count": int, "last": str | None (HTML text), "last_at": datetime | None (system time zone)}``.
	``route`` None: the unknown-route counter."""
	return _figures(redis.Redis.hgetall(frappe.cache, _refused_key(route)))  # raw hash (frappe's hgetall unpickles)


def _figures(raw: dict) -> dict:
	values = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
			  for k, v in (raw or {}).items()}
	last_at = None
	if values.get("last_at"):
		when = datetime.datetime.fromtimestamp(int(values["last_at"]), tz=datetime.timezone.utc)
		last_at = convert_utc_to_system_timezone(when.replace(tzinfo=None)).replace(tzinfo=None)
	return {"count": int(values.get("count") or 0), "last": values.get("last"), "last_at": last_at}


_TAKE_REFUSALS = """
local values = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return values
"""


def _fold_refusals(route: str) -> dict:
	"""Take (read and delete, atomically) the route's Redis refusal count for the caller's update of the
	route row; if that transaction rolls back, the count goes back to Redis. Returns :func:`_figures`."""
	key = _refused_key(route)
	flat = frappe.cache.register_script(_TAKE_REFUSALS)(keys=[key])
	values = dict(zip(flat[::2], flat[1::2]))
	taken = _figures(values)
	if taken["count"]:
		def give_back():
			pipe = frappe.cache.pipeline()
			pipe.hincrby(key, "count", taken["count"])
			for field in (b"last", b"last_at"):
				if values.get(field) is not None:
					pipe.hsetnx(key, field, values[field])
			pipe.execute()

		frappe.db.after_rollback.add(give_back)
	return taken


def store(route: frappe._dict, raw: bytes) -> dict:
	"""Store one raw message of ``route`` through the one writer (in the current transaction; the caller
	commits). It joins the thread of a message it replies to (References / In-Reply-To, same route).

	Args:
		route: from :func:`route_for`.
		raw: the exact RFC 822 bytes.

	Returns:
		``{"status": "accepted" | "duplicate", "communication": name}``.

	Raises:
		Refused: 406 when ``raw`` is empty; 413 over the route's size limit (bytes); 503 when the database
			did not store the row (nothing is kept: the sender retries).
	"""
	if not raw or not raw.strip():
		raise Refused(406, "empty message")
	check_size(route, len(raw))
	digest = hashlib.sha256(raw).hexdigest()  # the route's provider message id: a replay has the same one
	key = writer.message_key(route.name, digest)
	existing = frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "name")
	if existing:
		return {"status": "duplicate", "communication": existing}
	parsed = parse_message(raw)
	unreadable = not (parsed.sender[1] or parsed.message_id or parsed.subject) and bool(parsed.errors)
	values = {}
	if unreadable:
		values.update(content=writer.unreadable_content(parsed.raw_headers or raw[:2000].decode("utf-8", "replace")),
					  atlas_outcome=FAILED,
					  atlas_outcome_reason=mail_text(f"unreadable message: {parsed.parse_error}"[:1000]))
	ctx = writer.WriteContext(mailbox_type=DOCTYPE, mailbox=route.name, source="Inbound Route",
							  max_attachment_bytes=min(route.max_bytes, 25 * 1024 * 1024))
	result = writer.write_batch(ctx, [writer.Envelope(provider_message_id=digest, raw=raw, parsed=parsed,
													  received=datetime.datetime.now(datetime.timezone.utc), values=values)])
	if not result.created:  # a concurrent delivery of the same bytes won
		stored = frappe.db.get_value("Communication", {"atlas_mailbox_key": key}, "name")
		if not stored:  # the database dropped the row for another reason: the sender sends it again
			raise Refused(503, "the message was not stored; send it again", route.name)
		return {"status": "duplicate", "communication": stored}
	name = result.created_names[0]
	thread = result.created_rows[0]["atlas_inbox_thread"]
	if route.company and not frappe.db.get_value("Inbox Thread", thread, "company"):
		frappe.db.set_value("Inbox Thread", thread, "company", route.company, update_modified=False)
	refused = _fold_refusals(route.name)  # the refusals counted in Redis since the last accepted message
	frappe.db.sql(f"""update `tab{DOCTYPE}` set received_count = ifnull(received_count, 0) + 1,
		last_received_at = %s, rejected_count = ifnull(rejected_count, 0) + %s,
		last_rejection = coalesce(%s, last_rejection) where name = %s""",
				  (now_datetime(), refused["count"], refused["last"] or None, route.name))
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

