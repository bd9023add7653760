"""Xero webhooks of :class:`XeroTestServer` (:class:`_WebhooksMixin`): every create / update of an invoice,
credit note or contact records an event (Xero's shape, xero-webhooks.yaml ``WebhookEvent``); the events
wait in a per-server queue until :meth:`_WebhooksMixin.deliver_webhooks` POSTs them, signed as Xero signs
(``x-xero-signature`` = base64 HMAC-SHA256 of the raw body with the webhook key), to the URL set by
:meth:`_WebhooksMixin.configure_webhook`; :meth:`_WebhooksMixin.post_webhook` posts exact bytes (replays,
bad signatures) and :meth:`_WebhooksMixin.intent_to_receive` checks a receiver as Xero's "intent to
receive" does. Deliveries use the standard library (``urllib.request``, no proxies) and never hold the
server's lock while they wait for the receiver."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import secrets
import string
import time
import urllib.error
import urllib.request

WEBHOOK_RESOURCE_BASE = "https://api.xero.com/api.xro/2.0"
EVENT_PATHS = {"INVOICE": "Invoices", "CREDITNOTE": "CreditNotes", "CONTACT": "Contacts"}
INTENT_SECONDS = 5  # Xero wants the intent-to-receive answers within 5 seconds
DELIVERY_TIMEOUT = 10.0  # seconds a delivery waits for the receiver (then it counts as failed)


def _entropy() -> str:
	"""Xero's ``entropy``: 20 random upper-case letters (``FXNGWLCCGVANWHKILRUB``)."""
	return "".join(secrets.choice(string.ascii_uppercase) for _ in range(20))


def _signature(key: str, body: bytes) -> str:
	return base64.b64encode(hmac.new(key.encode("utf-8"), body, hashlib.sha256).digest()).decode("ascii")


def _post(url: str, body: bytes, headers: dict, timeout: float) -> dict:
	"""POST without proxies: ``{"status", "body" (bytes), "seconds"}``; status 0 when no HTTP answer came
	(``body`` then says why)."""
	opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
	req = urllib.request.Request(url, data=body, headers=headers, method="POST")
	started = time.monotonic()
	try:
		with opener.open(req, timeout=timeout) as resp:
			status, data = resp.status, resp.read()
	except urllib.error.HTTPError as exc:
		try:
			data = exc.read()
		except Exception:
			data = b""
		status = exc.code
	except (urllib.error.URLError, OSError, ValueError) as exc:
		status, data = 0, f"{type(exc).__name__}: {exc}".encode()
	return {"status": status, "body": data, "seconds": time.monotonic() - started}


class _WebhooksMixin:
	"""Webhook events and deliveries (state: ``_webhook`` ``{"url", "key"}`` or None, ``_events`` pending
	``(sequence, event)`` pairs, ``_event_seq``, ``_delivery_lock``)."""

	# -- recording ------------------------------------------------------------------------------------
	def _event(self, tid: str, category: str, resource_id: str, kind: str, record: dict | None = None
			   ) -> None:
		"""Queue one event (call under ``self._lock``). CREDITNOTE events carry ``data`` {Type, Status}
		(``CreditNoteWebhookEvent``)."""
		ms = int(self.now() * 1000)
		event = {
			"resourceUrl": f"{WEBHOOK_RESOURCE_BASE}/{EVENT_PATHS[category]}/{resource_id}",
			"resourceId": resource_id,
			"eventDateUtc": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}",
			"eventType": kind,
			"eventCategory": category,
			"tenantId": tid,
			"tenantType": "ORGANISATION",
		}
		if category == "CREDITNOTE" and record is not None:
			event["data"] = {"Type": record.get("Type"), "Status": record.get("Status")}
		self._event_seq += 1
		self._events.append((self._event_seq, event))

	# -- controls -------------------------------------------------------------------------------------
	def configure_webhook(self, url: str, key: str) -> None:
		"""Deliver events to ``url``, signed with the webhook ``key`` (Xero's "Webhooks key" of the app).
		Events recorded before stay pending and go to the new URL."""
		with self._lock:
			self._webhook = {"url": str(url), "key": str(key)}

	def pending_events(self) -> list[dict]:
		"""Copies of the events not delivered yet, oldest first."""
		with self._lock:
			return [copy.deepcopy(e) for _, e in self._events]

	def post_webhook(self, body: bytes, signature: str | None = None) -> dict:
		"""POST exact ``body`` bytes to the webhook URL with ``Content-Type: application/json``;
		``signature=None`` signs it correctly, a string is sent as the ``x-xero-signature`` header as is.
		Returns ``{"status", "body" (bytes), "seconds"}`` (status 0: no HTTP answer).

		Raises:
			RuntimeError: no webhook configured.
		"""
		hook = self._hook()
		headers = {
			"Content-Type": "application/json",
			"x-xero-signature": _signature(hook["key"], body) if signature is None else signature,
		}
		return _post(hook["url"], bytes(body), headers, DELIVERY_TIMEOUT)

	def deliver_webhooks(self, max_per_payload: int = 20) -> list[dict]:
		"""POST the pending events, at most ``max_per_payload`` per payload (``{"events": [...],
		"firstEventSequence", "lastEventSequence", "entropy"}``), correctly signed, oldest first. A payload
		answered 2xx is delivered (its events leave the queue); at the first failure (another status, no
		answer) delivery stops and the rest stays pending, as Xero retries later.

		Returns:
			per POST ``{"status", "body", "seconds", "events"}`` (``events``: the events it carried).
		"""
		hook = self._hook()
		out = []
		with self._delivery_lock:  # one delivery run at a time: no event is sent twice by two runs
			with self._lock:
				pending = list(self._events)
			size = max(int(max_per_payload), 1)
			for start in range(0, len(pending), size):
				chunk = pending[start : start + size]
				events = [copy.deepcopy(e) for _, e in chunk]
				payload = {
					"events": events,
					"firstEventSequence": chunk[0][0],
					"lastEventSequence": chunk[-1][0],
					"entropy": _entropy(),
				}
				body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
				signature = _signature(hook["key"], body)
				headers = {"Content-Type": "application/json", "x-xero-signature": signature}
				result = dict(_post(hook["url"], body, headers, DELIVERY_TIMEOUT), events=events)
				out.append(result)
				if not 200 <= result["status"] < 300:
					break
				sent = {seq for seq, _ in chunk}
				with self._lock:
					self._events = [(seq, e) for seq, e in self._events if seq not in sent]
		return out

	def intent_to_receive(self) -> dict:
		"""Xero's check of a webhook URL: one correctly signed payload without events and one with a wrong
		signature; the receiver must answer the first 200 with an empty body and the second 401, each within
		5 seconds.

		Returns:
			``{"ok": bool, "good": {"status", "body", "seconds"}, "bad": {...}}``.
		"""
		body = json.dumps(
			{"events": [], "firstEventSequence": 0, "lastEventSequence": 0, "entropy": _entropy()},
			separators=(",", ":"),
		).encode("utf-8")
		good = self.post_webhook(body)
		bad = self.post_webhook(body, signature=_signature(secrets.token_urlsafe(32), body))
		ok = (
			good["status"] == 200
			and good["body"] == b""
			and bad["status"] == 401
			and good["seconds"] < INTENT_SECONDS
			and bad["seconds"] < INTENT_SECONDS
		)
		return {"ok": ok, "good": good, "bad": bad}

	def _hook(self) -> dict:
		with self._lock:
			if self._webhook is None:
				raise RuntimeError("no webhook configured: call configure_webhook(url, key) first")
			return dict(self._webhook)
