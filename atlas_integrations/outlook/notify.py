"""Microsoft Graph change notifications for Outlook mailboxes (learn.microsoft.com/graph/change-notifications-
delivery-webhooks, /graph/change-notifications-lifecycle-events).

A subscription per followed folder of a mailbox (``created,updated,deleted`` on
``{me|users/{address}}/mailFolders('{folder}')/messages``), made with its ``lifecycleNotificationUrl`` (it
cannot be added later) and a ``clientState`` that is the mailbox's secret (Password field
``notification_secret``). Subscriptions live at most 10,080 minutes; they are renewed once half their
lifetime is gone (after each sync run, and hourly). Polling every minute stays the fallback.

The two guest endpoints (:mod:`atlas_integrations.api.outlook`) answer the ``validationToken`` handshake at
once as ``text/plain``; for a delivery they cap its size before reading it, drop a replay (the same body
within 10 minutes), check each item's ``clientState`` against its mailbox's secret with
:func:`hmac.compare_digest`, and queue the mailbox's sync (deduplicated per mailbox): well under Graph's 3 s.
Lifecycle events: ``reauthorizationRequired`` renews the subscription, ``subscriptionRemoved`` forgets it
(the next run makes a new one and its delta round catches up), ``missed`` queues a sync.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from datetime import datetime, timedelta, timezone

import frappe
from frappe.utils import get_url
from frappe.utils.password import get_decrypted_password, set_encrypted_password

from atlas_integrations.outlook import accounts
from atlas_integrations.outlook.errors import OutlookError, Permanent

NOTIFY_METHOD = "atlas_integrations.api.outlook.notifications"
LIFECYCLE_METHOD = "atlas_integrations.api.outlook.lifecycle"
#: minutes a subscription is asked to live (Graph's longest for mail is 10,080)
LIFETIME_MINUTES = 10_000
MAX_BODY = 1024 * 1024  # bytes of a delivery read at most
REPLAY_SECONDS = 600
#: what a Graph subscription id looks like (a GUID; hex and dashes), checked before it is looked up
_SUBSCRIPTION_ID = re.compile(r"^[0-9A-Za-z-]{8,64}$")


class Refused(Exception):
	"""A delivery that is not accepted: ``status`` is the HTTP status to answer (no body says why)."""

	def __init__(self, status: int):
		super().__init__(status)
		self.status = status


def enabled() -> bool:
	"""True when Atlas Settings turns change notifications on (the site must be reachable by Microsoft)."""
	return bool(frappe.db.get_single_value("Atlas Settings", "microsoft_change_notifications"))


def notification_url() -> str:
	"""The ``notificationUrl`` of every subscription (this site's guest endpoint)."""
	return get_url(f"/api/method/{NOTIFY_METHOD}")


def lifecycle_url() -> str:
	"""The ``lifecycleNotificationUrl`` of every subscription."""
	return get_url(f"/api/method/{LIFECYCLE_METHOD}")


def client_state(account: str) -> str:
	"""The mailbox's ``clientState`` secret (made and kept in its Password field on first use)."""
	value = get_decrypted_password(accounts.DOCTYPE, account, "notification_secret", raise_exception=False)
	if not value:
		value = secrets.token_urlsafe(48)[:64]
		set_encrypted_password(accounts.DOCTYPE, account, value, "notification_secret")
		frappe.db.set_value(accounts.DOCTYPE, account, "notification_secret", "*" * 8, update_modified=False)
	return value


def _stored(account: str) -> dict:
	try:
		value = json.loads(frappe.db.get_value(accounts.DOCTYPE, account, "subscriptions") or "{}")
	except ValueError:
		value = {}
	return value if isinstance(value, dict) else {}


def _save(account: str, subs: dict) -> None:
	frappe.db.set_value(accounts.DOCTYPE, account, "subscriptions", json.dumps(subs, sort_keys=True) if subs else None,
						update_modified=False)


def _expiry(minutes: int = LIFETIME_MINUTES) -> str:
	return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.0000000Z")


def _due(sub: dict, now: datetime) -> bool:
	"""True when half of the subscription's lifetime is gone (or its expiry is unreadable). Graph writes
	``expirationDateTime`` as UTC with seven fractional digits; the seconds are enough here."""
	try:
		expires = datetime.strptime(str(sub["expires"])[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
	except (KeyError, ValueError):
		return True
	return expires - now < timedelta(minutes=int(sub.get("minutes") or LIFETIME_MINUTES) / 2)


def ensure_subscriptions(account: str, client) -> dict[str, str]:
	"""Keep a live subscription on every followed folder of ``account``: made when missing, renewed once half
	its lifetime is gone, remade when Graph no longer knows it (404); subscriptions on folders no longer
	followed are deleted. In the current transaction (the caller commits). Nothing when notifications are
	off.

	Returns:
		folder -> ``"created"`` | ``"renewed"`` | ``"kept"`` | ``"deleted"``.

	Raises:
		OutlookError: Graph refused (the handshake failed, the token was refused, ...).
	"""
	if not enabled():
		return {}
	row = frappe.db.get_value(accounts.DOCTYPE, account, ["account_type", "email_address", "folders"], as_dict=True)
	subs, out, now = _stored(account), {}, datetime.now(timezone.utc)
	folders = accounts.folders_of(row.folders)
	for folder in [f for f in subs if f not in folders]:
		try:
			client.request("DELETE", f"{client.base_url}/subscriptions/{subs[folder]['id']}", "subscriptions.delete")
		except Permanent:
			pass
		subs.pop(folder)
		out[folder] = "deleted"
	for folder in folders:
		sub = subs.get(folder)
		if sub and not _due(sub, now):
			out[folder] = "kept"
			continue
		if sub:
			try:
				answer = client.request("PATCH", f"{client.base_url}/subscriptions/{sub['id']}", "subscriptions.renew",
										json={"expirationDateTime": _expiry()}).json()
				subs[folder] = {"id": answer["id"], "expires": answer["expirationDateTime"], "minutes": LIFETIME_MINUTES}
				out[folder] = "renewed"
				continue
			except Permanent as exc:
				if exc.status != 404:
					raise
		resource = f"{accounts.mailbox_path(row.account_type, row.email_address)}/mailFolders('{folder}')/messages"
		answer = client.request("POST", f"{client.base_url}/subscriptions", "subscriptions.create", json={
			"changeType": "created,updated,deleted", "notificationUrl": notification_url(),
			"lifecycleNotificationUrl": lifecycle_url(), "resource": resource, "expirationDateTime": _expiry(),
			"clientState": client_state(account)}).json()
		subs[folder] = {"id": answer["id"], "expires": answer["expirationDateTime"], "minutes": LIFETIME_MINUTES}
		out[folder] = "created"
	_save(account, subs)
	return out


def renew_all() -> dict[str, str]:
	"""Scheduler hook (hourly): renew the subscriptions of every connected mailbox that has one due
	(:func:`ensure_subscriptions`); one mailbox's failure never stops the others. Returns mailbox ->
	``"ok"`` | the error's kind."""
	if not enabled():
		return {}
	out = {}
	rows = frappe.get_all(accounts.DOCTYPE, filters={"enabled": 1, "status": ["in", [accounts.SYNCING, accounts.ACTIVE]],
													 "subscriptions": ["is", "set"]}, pluck="name")
	for account in rows:
		try:
			ensure_subscriptions(account, accounts.client_for(account))
			frappe.db.commit()
			out[account] = "ok"
		except OutlookError as exc:
			frappe.db.rollback()
			out[account] = type(exc).__name__
	return out


def _account_of(subscription_id: str) -> str | None:
	if not isinstance(subscription_id, str) or not _SUBSCRIPTION_ID.match(subscription_id):
		return None
	for name, subs in frappe.get_all(accounts.DOCTYPE, filters={"subscriptions": ["like", f"%{subscription_id}%"]},
									 fields=["name", "subscriptions"], as_list=True):
		try:
			if any(s.get("id") == subscription_id for s in json.loads(subs or "{}").values()):
				return name
		except (ValueError, AttributeError):
			continue
	return None


def _items(raw: bytes, content_length: int | None) -> list[dict]:
	"""The ``value`` items of a delivery, after the size cap and the replay check.

	Raises:
		Refused: 413 too large, 400 not a delivery, 202 a replay (accepted, nothing done).
	"""
	if (content_length or 0) > MAX_BODY or len(raw) > MAX_BODY:
		raise Refused(413)
	try:
		body = json.loads(raw or b"{}")
	except (ValueError, UnicodeDecodeError):
		raise Refused(400) from None
	items = body.get("value") if isinstance(body, dict) else None
	if not isinstance(items, list) or not items or len(items) > 1000:
		raise Refused(400)
	key = frappe.cache.make_key("atlas:outlook-delivery:" + hashlib.sha256(raw).hexdigest())
	if not frappe.cache.set(key, 1, nx=True, ex=REPLAY_SECONDS):
		raise Refused(202)
	return [i for i in items if isinstance(i, dict)]


def _verified(item: dict) -> str | None:
	"""The mailbox of a delivery item whose ``clientState`` is that mailbox's secret, else None."""
	account = _account_of(item.get("subscriptionId"))
	if not account:
		return None
	expected = get_decrypted_password(accounts.DOCTYPE, account, "notification_secret", raise_exception=False) or ""
	given = item.get("clientState")
	if not expected or not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
		return None
	return account


def receive(raw: bytes, content_length: int | None = None) -> tuple[int, int]:
	"""A change-notification delivery: queue a sync of every mailbox it verifiably concerns.

	Returns:
		``(HTTP status, mailboxes queued)``: 202 accepted (items that do not verify are dropped; Graph
		must not retry them), 400 / 413 refused.
	"""
	from atlas_integrations.outlook.sync import enqueue_sync

	try:
		items = _items(raw, content_length)
	except Refused as exc:
		return exc.status, 0
	queued = {a for a in (_verified(i) for i in items) if a}
	for account in sorted(queued):
		enqueue_sync(account, trigger="notification")
	frappe.db.commit()
	return 202, len(queued)


def receive_lifecycle(raw: bytes, content_length: int | None = None) -> tuple[int, int]:
	"""A lifecycle delivery: ``reauthorizationRequired`` queues a renewal, ``subscriptionRemoved`` forgets the
	subscription and queues a sync (which makes a new one), ``missed`` queues a sync.

	Returns:
		``(HTTP status, events acted on)``, as :func:`receive`.
	"""
	from atlas_integrations.outlook.sync import enqueue_sync

	try:
		items = _items(raw, content_length)
	except Refused as exc:
		return exc.status, 0
	acted = 0
	for item in items:
		account = _verified(item)
		event = item.get("lifecycleEvent")
		if not account or event not in ("reauthorizationRequired", "subscriptionRemoved", "missed"):
			continue
		acted += 1
		if event == "reauthorizationRequired":
			frappe.enqueue("atlas_integrations.outlook.notify.reauthorize", queue="short", account=account,
						   job_id=f"atlas::outlook-reauthorize::{account}", deduplicate=True, enqueue_after_commit=True)
			continue
		if event == "subscriptionRemoved":
			subs = _stored(account)
			_save(account, {f: s for f, s in subs.items() if s.get("id") != item.get("subscriptionId")})
		enqueue_sync(account, trigger="notification")
	frappe.db.commit()
	return 202, acted


def reauthorize(account: str) -> dict[str, str]:
	"""rq job: renew every subscription of ``account`` now (Graph asked to reauthorize them)."""
	subs = _stored(account)
	for sub in subs.values():
		sub["expires"] = _expiry(0)  # due now
	_save(account, subs)
	result = ensure_subscriptions(account, accounts.client_for(account))
	frappe.db.commit()
	return result
