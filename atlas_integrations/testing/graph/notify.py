"""Graph change notifications for mail, as the local server sends them: subscriptions (create with the
validation handshake on ``notificationUrl`` and ``lifecycleNotificationUrl``, renew, delete, expire), a
notification per message created / updated / deleted in the subscribed folder (``clientState`` echoed,
``resourceData.id`` the message id; the receiver must answer 2xx within 3 seconds, else it is retried), and
lifecycle events (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``) sent on request.

Reference: learn.microsoft.com/graph/change-notifications-delivery-webhooks (validation: a POST with
``validationToken`` in the query string, answered 200 ``text/plain`` with the token within 10 seconds),
/graph/change-notifications-lifecycle-events, /graph/api/resources/subscription (mail: at most 10,080
minutes).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

MAX_MINUTES = 10_080  # the longest a mail subscription may live
VALIDATION_TIMEOUT = 10  # seconds the receiver has to echo the validation token
NOTIFY_TIMEOUT = 3  # seconds the receiver has to accept a notification
RETRIES = 3  # deliveries of one notification before it is dropped

_RESOURCE = re.compile(r"^/?(?:me|users/([^/]+))/mailFolders\('?([^')/]+)'?\)/messages$", re.IGNORECASE)


#: no proxy from the environment: the receivers are on this machine
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _post(url: str, payload: bytes | None, content_type: str, timeout: float) -> tuple[int, bytes]:
	request = urllib.request.Request(url, data=payload if payload is not None else b"", method="POST",
									 headers={"Content-Type": content_type})
	try:
		with _OPENER.open(request, timeout=timeout) as answer:
			return answer.status, answer.read(10_000)
	except urllib.error.HTTPError as exc:
		return exc.code, b""
	except OSError:
		return 0, b""


class _NotifyMixin:
	"""Mixed into :class:`~atlas_integrations.testing.graph.server.GraphTestServer`."""

	def _init_notify(self) -> None:
		self.subscriptions: dict[str, dict] = {}
		self.deliveries: list[dict] = []  # every notification attempt: {"url", "status", "payload"}

	def _validate(self, url: str) -> bool:
		token = secrets.token_urlsafe(24)
		sep = "&" if "?" in url else "?"
		status, body = _post(f"{url}{sep}validationToken={urllib.parse.quote(token)}", None, "text/plain",
							 VALIDATION_TIMEOUT)
		return status == 200 and body.decode("utf-8", "replace") == token

	def _subscriptions(self, method: str, segments: list[str], data: dict, grant) -> tuple:
		from atlas_integrations.testing.graph.server import _json, graph_error

		now = datetime.now(timezone.utc)
		if method == "POST" and segments == ["subscriptions"]:
			match = _RESOURCE.match(str(data.get("resource") or ""))
			address = urllib.parse.unquote(match.group(1) or grant.user or "").lower() if match else ""
			if not match or address not in self.identity.users or grant.user not in (None, address):
				return graph_error(400, "InvalidRequest", "The resource is not a mail folder's messages.")
			box = self.mailbox(address)
			fid = box.folder_id(match.group(2))
			expires = self._expiry(data.get("expirationDateTime"), now)
			if fid is None or expires is None:
				return graph_error(400, "InvalidRequest", "Subscription expiration or folder is not valid.")
			for url in filter(None, [data.get("notificationUrl"), data.get("lifecycleNotificationUrl")]):
				if not self._validate(url):
					return graph_error(400, "ValidationError", "Subscription validation request failed. "
									   "Notification endpoint must respond with 200 OK to validation request.")
			sub = {"id": secrets.token_hex(16), "resource": data["resource"], "changeType": data.get("changeType", ""),
				   "notificationUrl": data.get("notificationUrl"), "clientState": data.get("clientState"),
				   "lifecycleNotificationUrl": data.get("lifecycleNotificationUrl"),
				   "expirationDateTime": expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z"),
				   "_address": address, "_folder": fid, "_client": grant.client_id, "_expires": expires}
			with self._lock:
				self.subscriptions[sub["id"]] = sub
			return _json(201, self._public(sub))
		if len(segments) == 2 and segments[0] == "subscriptions":
			sub = self.subscriptions.get(segments[1])
			if sub is None or sub["_client"] != grant.client_id:
				return graph_error(404, "ResourceNotFound", "The object was not found.")
			if method == "GET":
				return _json(200, self._public(sub))
			if method == "PATCH":
				expires = self._expiry(data.get("expirationDateTime"), now)
				if expires is None:
					return graph_error(400, "InvalidRequest", "Subscription expiration is not valid.")
				sub["expirationDateTime"] = expires.strftime("%Y-%m-%dT%H:%M:%S.0000000Z")
				sub["_expires"] = expires
				return _json(200, self._public(sub))
			if method == "DELETE":
				with self._lock:
					self.subscriptions.pop(sub["id"], None)
				return 204, [], b""
		return graph_error(400, "BadRequest", "Unsupported subscription request on the local Graph server.")

	@staticmethod
	def _expiry(value, now: datetime) -> datetime | None:
		try:
			expires = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
		except ValueError:
			return None
		if expires.tzinfo is None or expires <= now or expires > now + timedelta(minutes=MAX_MINUTES):
			return None
		return expires

	@staticmethod
	def _public(sub: dict) -> dict:
		return {k: v for k, v in sub.items() if not k.startswith("_")}

	def _notify_change(self, address: str, message_id: str, folders: tuple, change: str) -> None:
		"""Queue a notification to every live subscription on ``folders`` of ``address`` that asked for
		``change`` (created / updated / deleted)."""
		now = datetime.now(timezone.utc)
		for sub in list(self.subscriptions.values()):
			if (sub["_address"] == address and sub["_folder"] in folders and change in sub["changeType"].split(",")
					and sub["_expires"] > now):
				item = {"subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
						"changeType": change, "clientState": sub["clientState"], "tenantId": "local",
						"resource": f"Users/{self.identity.users[address]}/Messages/{message_id}",
						"resourceData": {"@odata.type": "#Microsoft.Graph.Message",
										 "@odata.id": f"Users/{self.identity.users[address]}/Messages/{message_id}",
										 "id": message_id}}
				self._send_async(sub["notificationUrl"], {"value": [item]})

	def lifecycle(self, subscription_id: str, event: str) -> None:
		"""Send a lifecycle event (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``) to the
		subscription's ``lifecycleNotificationUrl``; ``subscriptionRemoved`` also removes it."""
		sub = self.subscriptions[subscription_id]
		if event == "subscriptionRemoved":
			with self._lock:
				self.subscriptions.pop(subscription_id, None)
		self._send_async(sub["lifecycleNotificationUrl"], {"value": [{
			"subscriptionId": sub["id"], "subscriptionExpirationDateTime": sub["expirationDateTime"],
			"tenantId": "local", "clientState": sub["clientState"], "lifecycleEvent": event}]})

	def _send_async(self, url: str, payload: dict) -> None:
		def deliver():
			body = json.dumps(payload).encode()
			for attempt in range(RETRIES):
				status, _ = _post(url, body, "application/json", NOTIFY_TIMEOUT)
				with self._lock:
					self.deliveries.append({"url": url, "status": status, "payload": payload})
				if 200 <= status < 300:
					return
				time.sleep(0.2 * (attempt + 1))

		threading.Thread(target=deliver, daemon=True, name="graph-test-notify").start()
