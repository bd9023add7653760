"""Gmail push notifications: ``users.watch`` on a Cloud Pub/Sub topic, and the Pub/Sub push endpoint's work.

Flow (Gmail "Push notifications" guide: https://developers.google.com/gmail/api/guides/push):

1. :func:`ensure_watch` calls ``users.watch`` for an account with the topic from Atlas Settings
   (``pubsub_topic``, ``projects/<project>/topics/<topic>``). No label filter: every mailbox change
   (new, sent and deleted mail, label changes) notifies. A watch lasts 7 days; :func:`renew_watches`
   (daily scheduler hook) renews every watch that expires within :data:`RENEW_WITHIN`.
2. Gmail publishes ``{"emailAddress", "historyId"}`` to the topic; the push subscription POSTs it to
   ``/api/method/atlas_integrations.api.push.gmail`` (:mod:`atlas_integrations.api.push`).
3. The endpoint calls :func:`verify_push` (OIDC JWT, or shared token) on the raw request, then
   :func:`handle_push`, which queues the account's sync (deduplicated: one open Sync Job per account)
   and answers at once. The sync run does the fetching; polling stays as the fallback.

Pub/Sub push authentication: https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions
(``Authorization: Bearer <Google-signed OIDC ID token>``, ``aud`` = the configured audience, ``email`` =
the subscription's service account, ``iss`` = accounts.google.com).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import threading
import time
import traceback
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import frappe
from frappe.utils import get_datetime, now_datetime
from frappe.utils.data import convert_utc_to_system_timezone
from frappe.utils.password import get_decrypted_password

from atlas_integrations import jobs
from atlas_integrations.endpoints import get_endpoint
from atlas_integrations.gmail import accounts
from atlas_integrations.gmail.errors import AuthRevoked
from atlas_integrations.redact import scrub
from atlas_integrations.settings import get_settings, sync_allowed

OIDC, SHARED_TOKEN = "OIDC token", "Shared token"
#: ``iss`` values of Google-signed ID tokens (google.oauth2.id_token._GOOGLE_ISSUERS).
GOOGLE_ISSUERS = frozenset({"accounts.google.com", "https://accounts.google.com"})
#: renew a watch that expires within this; the daily renewal then has a full day of margin (Google:
#: "call watch at least every 7 days", recommends once a day).
RENEW_WITHIN = timedelta(days=2)
#: Gmail Account statuses whose mailbox is watched and whose pushes queue a sync.
PUSH_STATUSES = (accounts.ACTIVE, accounts.SYNCING)
CERTS_TIMEOUT = 10  # seconds to fetch Google's public certificates
CERTS_MAX_AGE = 3600  # seconds a fetched certificate set is reused at most


class InvalidPush(frappe.ValidationError):
	"""The push body is not a Pub/Sub envelope carrying a Gmail notification (HTTP 400)."""

	http_status_code = 400


class PushUnavailable(Exception):
	"""Verification could not run (Google's certificates unreachable): HTTP 503, Pub/Sub retries."""

	http_status_code = 503


# -- watch ----------------------------------------------------------------------------------------------
def pubsub_topic() -> str:
	"""The configured topic (``projects/<project>/topics/<topic>``), or "" (push off: polling only)."""
	return (get_settings().pubsub_topic or "").strip()


def expiration_to_datetime(expiration_ms) -> datetime:
	"""Gmail's watch ``expiration`` (epoch milliseconds, a string or number) as a naive datetime in the
	system time zone (how Frappe stores Datetime fields)."""
	utc = datetime.fromtimestamp(int(expiration_ms) / 1000, tz=timezone.utc)
	return convert_utc_to_system_timezone(utc).replace(tzinfo=None)


def ensure_watch(account: str, client=None, force: bool = False) -> dict | None:
	"""Watch ``account``'s mailbox on the configured topic unless a watch lasting over
	:data:`RENEW_WITHIN` is already recorded.

	Calls ``users.watch`` (100 quota units) with ``{"topicName": topic}`` and no ``labelIds``, so every
	change notifies; stores the answer's expiration in the account's ``watch_expiration``. Does not
	commit (the caller does).

	Args:
		account: Gmail Account name.
		client: a :class:`~atlas_integrations.gmail.client.GmailClient` of the account (e.g. the sync
			run's); None builds one from the stored tokens (a refreshed access token is kept).
		force: watch even when the recorded watch is still fresh.

	Returns:
		Gmail's answer ``{"historyId": str, "expiration": str (epoch ms)}`` when ``users.watch`` was
		called; None when no topic is configured or the recorded watch is still fresh.

	Raises:
		AuthRevoked, Temporary, Permanent (e.g. 400 bad topic name, 403 Gmail may not publish to the
		topic): as classified by the client; the caller decides (mark unauthorized, log).
		frappe.ValidationError: Gmail not configured or the account holds no refresh token.
	"""
	topic = pubsub_topic()
	if not topic:
		return None
	if not force:
		expires = frappe.db.get_value(accounts.DOCTYPE, account, "watch_expiration")
		if expires and get_datetime(expires) > now_datetime() + RENEW_WITHIN:
			return None
	own_client = client is None
	if own_client:
		client = accounts.client_for(account)
	answer = client.execute(client.service.users().watch(userId="me", body={"topicName": topic}), "users.watch")
	answer = answer or {}
	if answer.get("expiration"):
		frappe.db.set_value(accounts.DOCTYPE, account, "watch_expiration",
							expiration_to_datetime(answer["expiration"]), update_modified=False)
	if own_client and client.credentials.token:
		accounts.save_access_token(account, client.credentials.token, client.credentials.expiry)
	return answer


def stop_watch(account: str, client=None) -> None:
	"""``users.stop`` for the account's mailbox and clear ``watch_expiration`` (e.g. before disconnecting).

	Raises:
		As :func:`ensure_watch`.
	"""
	if client is None:
		client = accounts.client_for(account)
	client.execute(client.service.users().stop(userId="me"), "users.stop")
	frappe.db.set_value(accounts.DOCTYPE, account, "watch_expiration", None, update_modified=False)


def renew_watches(only: list[str] | None = None) -> list[str]:
	"""Daily scheduler hook: :func:`ensure_watch` for every enabled ACTIVE/SYNCING account (or for
	those of ``only``, Gmail Account names, that are enabled and ACTIVE/SYNCING).

	One account's failure does not stop the others: a refused authorization marks that account
	UNAUTHORIZED (as a sync run does); any other error goes to the Error Log, scrubbed of the account's
	secrets. Commits per account. Nothing happens without a topic or while the workspace is Archived.
	Each account is renewed as its owner user (Gmail Account ``user``, else Administrator), the rest as
	Administrator; the caller's session user is restored afterwards.

	Returns:
		Names of the accounts whose watch was (re)created.
	"""
	with jobs.run_as(jobs.FALLBACK_USER):
		if not pubsub_topic() or not sync_allowed():
			return []
		filters = {"enabled": 1, "status": ["in", PUSH_STATUSES]}
		if only is not None:
			filters["name"] = ["in", list(only) or [""]]
		names = frappe.get_all(accounts.DOCTYPE, filters=filters, pluck="name", order_by="name asc")
		renewed = []
		for name in names:
			with jobs.run_as(accounts.run_as_user(name)):
				if _renew_one(name):
					renewed.append(name)
		return renewed


def _renew_one(name: str) -> bool:
	"""One account of :func:`renew_watches`; True when its watch was (re)created. Commits."""
	try:
		renewed = ensure_watch(name) is not None
		frappe.db.commit()
		return renewed
	except AuthRevoked as exc:
		frappe.db.rollback()
		accounts.mark_unauthorized(
			name, f"Gmail refused the stored authorization ({exc.reason or exc.status}); reconnect the account"
		)
		frappe.db.commit()
	except Exception:
		frappe.db.rollback()
		frappe.log_error(
			title=f"Gmail watch renewal failed for {name}",
			message=scrub(traceback.format_exc(), accounts.secrets_of(name)),
			reference_doctype=accounts.DOCTYPE,
			reference_name=name,
		)
		frappe.db.commit()
	return False


# -- verification ---------------------------------------------------------------------------------------
def verify_push(headers: Mapping, query: Mapping) -> None:
	"""Decide whether a push request comes from our Pub/Sub subscription; return quietly when it does.

	Atlas Settings ``push_auth_mode``:

	* ``OIDC token``: ``Authorization: Bearer <JWT>`` must be a Google-signed ID token (RS256, checked
	  against the certificates at site config ``atlas_google_certs_url``, default
	  https://www.googleapis.com/oauth2/v1/certs) that is unexpired, has ``aud`` = ``push_audience``,
	  ``iss`` accounts.google.com, ``email`` = ``push_service_account`` and ``email_verified`` true.
	* ``Shared token``: query parameter ``token`` equal to ``push_shared_token`` (constant-time compare).
	  The token travels in the URL (Pub/Sub sets no custom headers), so proxies' access logs see it:
	  prefer OIDC.

	Args:
		headers: request headers (``Authorization`` looked up case-insensitively).
		query: query-string parameters.

	Raises:
		frappe.AuthenticationError: (401) credentials missing, malformed, badly signed or expired.
		frappe.PermissionError: (403) valid credentials of someone else (wrong issuer, service account,
			token), or push authentication not configured.
		PushUnavailable: (503) Google's certificates could not be fetched.
	"""
	settings = get_settings()
	mode = settings.push_auth_mode or ""
	if mode == SHARED_TOKEN:
		expected = get_decrypted_password("Atlas Settings", "Atlas Settings", "push_shared_token",
										  raise_exception=False)
		if not expected:
			raise frappe.PermissionError("Gmail push is not configured")
		given = query.get("token") if query else None
		if not given:
			raise frappe.AuthenticationError("Push token missing")
		if not hmac.compare_digest(str(given).encode("utf-8"), expected.encode("utf-8")):
			raise frappe.PermissionError("Push token refused")
		return
	if mode != OIDC:
		raise frappe.PermissionError("Gmail push is not configured")
	audience = (settings.push_audience or "").strip()
	service_account = (settings.push_service_account or "").strip().lower()
	if not audience or not service_account:
		raise frappe.PermissionError("Gmail push is not configured")
	kind, _, bearer = (_header(headers, "Authorization") or "").strip().partition(" ")
	bearer = bearer.strip()
	if kind.lower() != "bearer" or not bearer:
		raise frappe.AuthenticationError("Bearer token missing")
	claims = _verified_claims(bearer, audience)
	if claims.get("iss") not in GOOGLE_ISSUERS:
		raise frappe.PermissionError("Push token not issued by Google")
	if str(claims.get("email") or "").lower() != service_account:
		raise frappe.PermissionError("Push token of another service account")
	if claims.get("email_verified") not in (True, "true"):
		raise frappe.PermissionError("Push token email not verified")


def _header(headers: Mapping, name: str) -> str | None:
	if not headers:
		return None
	value = headers.get(name)
	if value is None:
		lowered = name.lower()
		value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
	return value


def _verified_claims(bearer: str, audience: str) -> dict:
	"""Signature, expiry and audience checked by google-auth; never echoes the token in an error."""
	from google.auth import exceptions as gauth
	from google.oauth2 import id_token

	failure = None
	try:
		return dict(id_token.verify_token(bearer, _certs_request, audience=audience,
										  certs_url=get_endpoint("atlas_google_certs_url")))
	except gauth.TransportError:
		failure = "unavailable"
	except (ValueError, gauth.GoogleAuthError):  # bad signature, unknown key, expired, wrong audience
		failure = "invalid"
	if failure == "unavailable":  # raised here, outside the except block: no chained traceback
		raise PushUnavailable("Google certificates could not be fetched; try again")
	raise frappe.AuthenticationError("Push token invalid")


# Google's certificate set, reused for its Cache-Control max-age (capped), as google-auth's docs advise.
_certs_cache: dict[str, tuple[float, int, bytes]] = {}
_certs_lock = threading.Lock()


class _CertsResponse:
	"""The small part of ``google.auth.transport.Response`` that ``id_token._fetch_certs`` reads."""

	def __init__(self, status: int, data: bytes):
		self.status = status
		self.data = data
		self.headers = {}


def _certs_request(url, method="GET", body=None, headers=None, timeout=None, **kwargs):
	"""A ``google.auth.transport.Request`` that caches successful GETs (the certificate set) per URL."""
	from google.auth.transport.requests import Request

	now = time.monotonic()
	if method == "GET":
		with _certs_lock:
			hit = _certs_cache.get(url)
		if hit and hit[0] > now:
			return _CertsResponse(hit[1], hit[2])
	response = Request()(url, method=method, body=body, headers=headers, timeout=timeout or CERTS_TIMEOUT, **kwargs)
	if method == "GET" and response.status == 200:
		max_age = _max_age(response.headers.get("Cache-Control") or response.headers.get("cache-control"))
		if max_age:
			with _certs_lock:
				_certs_cache[url] = (now + min(max_age, CERTS_MAX_AGE), response.status, response.data)
	return response


def _max_age(cache_control: str | None) -> int:
	for part in (cache_control or "").split(","):
		key, _, value = part.strip().partition("=")
		if key.lower() == "max-age" and value.strip().isdigit():
			return int(value.strip())
	return 0


# -- the notification ----------------------------------------------------------------------------------------
def parse_envelope(body: bytes) -> tuple[str, int]:
	"""The Gmail notification inside a Pub/Sub push body.

	Args:
		body: raw request body: ``{"message": {"data": base64(JSON {"emailAddress", "historyId"}),
			"messageId", "publishTime", ...}, "subscription"}``.

	Returns:
		``(emailAddress, historyId)``.

	Raises:
		InvalidPush: (400) not JSON, not that shape, ``data`` not base64 JSON, or fields missing.
	"""
	try:
		envelope = json.loads(body or b"")
	except (ValueError, UnicodeDecodeError):
		raise InvalidPush("Push body is not JSON") from None
	message = envelope.get("message") if isinstance(envelope, dict) else None
	data = message.get("data") if isinstance(message, dict) else None
	if not isinstance(data, str) or not data:
		raise InvalidPush("Push body has no message.data")
	try:
		padded = data.strip() + "=" * (-len(data.strip()) % 4)
		decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
		notification = json.loads(decoded)
	except (binascii.Error, ValueError, UnicodeDecodeError):
		raise InvalidPush("Push message.data is not base64-encoded JSON") from None
	if not isinstance(notification, dict):
		raise InvalidPush("Push message.data is not a Gmail notification")
	address = notification.get("emailAddress")
	history_id = notification.get("historyId")
	if not isinstance(address, str) or "@" not in address:
		raise InvalidPush("Push notification has no emailAddress")
	if isinstance(history_id, bool) or not str(history_id).isdigit():
		raise InvalidPush("Push notification has no numeric historyId")
	return address.strip(), int(history_id)


def handle_push(body: bytes) -> dict:
	"""Queue an incremental sync for each account of the notified mailbox (after :func:`verify_push`).

	Accounts: enabled, status ACTIVE or SYNCING, ``email_address`` equal to the notification's
	(case-insensitive). Each gets :func:`atlas_integrations.gmail.sync.enqueue_sync` with trigger
	``push`` (deduplicated: an open Sync Job absorbs the push), unless its cursor (stored historyId) is
	already at or past the notification's historyId: everything up to it is stored, so a late or
	redelivered push costs no run. An address of no such account is accepted and ignored, so Pub/Sub
	does not retry it forever. Does not commit.

	Returns:
		``{"accounts": [account names queued or already queued], "up_to_date": [account names whose
		cursor already covers the notification], "historyId": int}``.

	Raises:
		InvalidPush: (400) see :func:`parse_envelope`.
	"""
	from frappe.query_builder.functions import Lower

	from atlas_integrations.gmail.sync import enqueue_sync

	address, history_id = parse_envelope(body)
	if not sync_allowed():
		return {"accounts": [], "historyId": history_id}
	table = frappe.qb.DocType(accounts.DOCTYPE)
	rows = (
		frappe.qb.from_(table)
		.select(table.name, table.history_id)
		.where(Lower(table.email_address) == address.lower())
		.where(table.enabled == 1)
		.where(table.status.isin(PUSH_STATUSES))
		.orderby(table.name)
	).run()
	queued, up_to_date = [], []
	for name, cursor in rows:
		if str(cursor or "").isdigit() and int(cursor) >= history_id:
			up_to_date.append(name)
			continue
		enqueue_sync(name, trigger="push")
		queued.append(name)
	return {"accounts": queued, "up_to_date": up_to_date, "historyId": history_id}


__all__ = [
	"InvalidPush",
	"PushUnavailable",
	"ensure_watch",
	"handle_push",
	"parse_envelope",
	"renew_watches",
	"stop_watch",
	"verify_push",
]
