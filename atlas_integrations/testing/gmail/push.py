"""Gmail push notifications as Cloud Pub/Sub push requests: the OIDC signing key and certificate,
ID tokens, the push envelope, and the background delivery with retries after each change of a watched
mailbox (:class:`_PushMixin`). Signing needs ``cryptography`` (imported only then)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

from atlas_integrations.testing.gmail.common import _now_ms
from atlas_integrations.testing.gmail.mailbox import Mailbox, Message

#: HTTP statuses Pub/Sub counts as an acknowledgement of a push delivery (Pub/Sub "Push subscriptions").
PUSH_ACK_STATUSES = frozenset({102, 200, 201, 202, 204})
GOOGLE_ISSUER = "https://accounts.google.com"
PUSH_USER_AGENT = "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)"


# --------------------------------------------------------------------------------------------------
# Pub/Sub push: OIDC token signing
# --------------------------------------------------------------------------------------------------
def _b64url_nopad(data: bytes) -> str:
	return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _PushSigner:
	"""An RSA-2048 key with a self-signed X.509 certificate, as Google publishes its ID-token keys.

	``kid`` is the SHA-1 of the public key (40 hex digits, the shape of Google's key ids); ``cert_pem``
	is what ``/oauth2/v1/certs`` serves under ``kid``. Needs ``cryptography`` (imported here only).
	"""

	def __init__(self, common_name: str = "gmail-test-server.invalid"):
		from datetime import timedelta

		from cryptography import x509
		from cryptography.hazmat.primitives import hashes, serialization
		from cryptography.hazmat.primitives.asymmetric import rsa
		from cryptography.x509.oid import NameOID

		self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
		public_der = self._key.public_key().public_bytes(
			serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
		)
		self.kid = hashlib.sha1(public_der).hexdigest()
		name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
		now = datetime.now(timezone.utc)
		cert = (
			x509.CertificateBuilder()
			.subject_name(name)
			.issuer_name(name)
			.public_key(self._key.public_key())
			.serial_number(x509.random_serial_number())
			.not_valid_before(now - timedelta(days=1))
			.not_valid_after(now + timedelta(days=30))
			.sign(self._key, hashes.SHA256())
		)
		self.cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

	def sign(self, data: bytes) -> bytes:
		"""RSASSA-PKCS1-v1_5 with SHA-256 (JWS ``RS256``)."""
		from cryptography.hazmat.primitives import hashes
		from cryptography.hazmat.primitives.asymmetric import padding

		return self._key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def _http_post(url: str, body: bytes, headers: dict, timeout: float) -> tuple[int, str]:
	"""POST without proxies; ``(status, body text)``, status 0 when no HTTP answer came."""
	opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
	req = urllib.request.Request(url, data=body, headers=headers, method="POST")
	try:
		with opener.open(req, timeout=timeout) as resp:
			return resp.status, resp.read().decode("utf-8", "replace")
	except urllib.error.HTTPError as exc:
		try:
			text = exc.read().decode("utf-8", "replace")
		except Exception:
			text = ""
		return exc.code, text
	except (urllib.error.URLError, OSError, ValueError) as exc:
		return 0, f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------------------------------
# the server's push methods
# --------------------------------------------------------------------------------------------------
class _PushMixin:
	"""Pub/Sub push of :class:`GmailTestServer` (state: ``_push``, ``_push_pending``, ``_push_threads``,
	``_push_stop``, ``_push_cond``, ``_deliveries``, ``_signer``, ``_wrong_signer``, ``_signer_lock``).
	"""

	# -- Pub/Sub push ---------------------------------------------------------------------------------
	def configure_push(
		self,
		endpoint_url: str | None,
		mode: str = "oidc",
		audience: str | None = None,
		service_account: str | None = None,
		token: str | None = None,
		subscription: str = "projects/p/subscriptions/s",
		sign_with_wrong_key: bool = False,
		issuer: str = GOOGLE_ISSUER,
		max_attempts: int = 3,
		retry_delay: float = 0.2,
		timeout: float = 10.0,
	) -> None:
		"""Deliver a Pub/Sub push request to ``endpoint_url`` after each change of a watched mailbox.

		Args:
			endpoint_url: the push endpoint; None stops deliveries.
			mode: ``oidc`` (``Authorization: Bearer <RS256 JWT>``) or ``token`` (``?token=`` appended to
				the URL; Pub/Sub itself sets no custom header).
			audience: JWT ``aud``; None -> the endpoint URL (Pub/Sub's default).
			service_account: JWT ``email`` claim (the push subscription's service account).
			token: the shared token of ``token`` mode.
			subscription: the envelope's ``subscription``.
			sign_with_wrong_key: sign the JWT with a key the certs endpoint does not publish (under the
				published ``kid``), so verification must fail.
			issuer: JWT ``iss``.
			max_attempts: tries per delivery (bounded; Pub/Sub retries for days).
			retry_delay: seconds before the first retry, doubled after each.
			timeout: seconds per HTTP request.

		Raises:
			ValueError: unknown mode, or token mode without a token.
		"""
		if endpoint_url is None:
			with self._lock:
				self._push = None
			return
		if mode not in ("oidc", "token"):
			raise ValueError(f"unknown push mode {mode!r} (oidc | token)")
		if mode == "token" and not token:
			raise ValueError("token mode needs a token")
		if mode == "oidc":
			self._signing_key(wrong=sign_with_wrong_key)  # create the key now, not in the delivery thread
		with self._lock:
			self._push = {
				"endpoint": endpoint_url,
				"mode": mode,
				"audience": audience or endpoint_url,
				"service_account": service_account or "pubsub-push@test-project.iam.gserviceaccount.com",
				"token": token,
				"subscription": subscription,
				"wrong_key": bool(sign_with_wrong_key),
				"issuer": issuer,
				"max_attempts": max(1, int(max_attempts)),
				"retry_delay": max(0.0, float(retry_delay)),
				"timeout": float(timeout),
			}

	def watch_of(self, address: str) -> dict | None:
		"""The mailbox's watch (``{"topicName", "labelIds", "labelFilterBehavior", "expiration"}``,
		expiration in epoch ms) or None (never watched, stopped)."""
		with self._lock:
			w = self.mailbox(address).watch
			return dict(w, labelIds=list(w["labelIds"])) if w else None

	def expire_watch(self, address: str) -> None:
		"""Make the mailbox's watch expired (no more pushes until users.watch is called again)."""
		with self._lock:
			w = self.mailbox(address).watch
			if w:
				w["expiration"] = 0

	def push_deliveries(self, email: str | None = None) -> list[dict]:
		"""Finished push deliveries, oldest first: ``{"email", "historyId" (int), "status" (HTTP status of
		the last attempt; 0 when the connection failed), "attempts", "statuses" (every attempt's),
		"messageId", "response" (last response body, at most 2,000 characters)}``."""
		key = email.strip().lower() if email else None
		with self._push_cond:
			return [dict(d) for d in self._deliveries if key is None or d["email"].lower() == key]

	def clear_push_deliveries(self) -> None:
		with self._push_cond:
			self._deliveries.clear()

	def wait_for_pushes(self, n: int, timeout: float = 10.0, email: str | None = None) -> list[dict]:
		"""Wait until at least ``n`` deliveries (of ``email``, or of any mailbox) have finished.

		Returns:
			:meth:`push_deliveries` at that moment (fewer than ``n`` when ``timeout`` seconds passed).
		"""
		key = email.strip().lower() if email else None
		deadline = time.monotonic() + timeout

		def done():
			return sum(1 for d in self._deliveries if key is None or d["email"].lower() == key) >= n

		with self._push_cond:
			while not done():
				left = deadline - time.monotonic()
				if left <= 0:
					break
				self._push_cond.wait(left)
		return self.push_deliveries(email)

	def notify(self, address: str) -> bool:
		"""Queue a push for the mailbox now, as after a change (needs a live watch and configure_push).

		Returns:
			True when a delivery was queued or one already queued will carry it.
		"""
		with self._lock:
			return self._schedule_push(self.mailbox(address))

	def certs(self) -> dict:
		"""Google's ``oauth2/v1/certs`` document: ``{kid: X.509 certificate PEM}`` of the signing key."""
		signer = self._signing_key()
		return {signer.kid: signer.cert_pem}

	def oidc_token(
		self,
		audience: str,
		email: str = "pubsub-push@test-project.iam.gserviceaccount.com",
		wrong_key: bool = False,
		issuer: str = GOOGLE_ISSUER,
		lifetime: int = 3600,
		**claims,
	) -> str:
		"""A Google-style OIDC ID token as Pub/Sub sends it (RS256, ``kid`` of the published key).

		Claims: ``aud``, ``azp`` and ``sub`` (a numeric id derived from ``email``), ``email``,
		``email_verified`` true, ``iat`` now, ``exp`` now + ``lifetime`` s, ``iss``; ``claims`` override
		or add any. ``wrong_key`` signs with an unpublished key (still under the published ``kid``).
		"""
		signer = self._signing_key()
		key = self._signing_key(wrong=True) if wrong_key else signer
		now = int(time.time())
		sub = str(int(hashlib.sha256(email.lower().encode()).hexdigest()[:15], 16))
		payload = {
			"aud": audience,
			"azp": sub,
			"email": email,
			"email_verified": True,
			"exp": now + int(lifetime),
			"iat": now,
			"iss": issuer,
			"sub": sub,
		}
		payload.update(claims)
		header = {"alg": "RS256", "kid": signer.kid, "typ": "JWT"}
		signing_input = (
			_b64url_nopad(json.dumps(header, separators=(",", ":")).encode())
			+ "."
			+ _b64url_nopad(json.dumps(payload, separators=(",", ":")).encode())
		)
		return signing_input + "." + _b64url_nopad(key.sign(signing_input.encode("ascii")))

	@staticmethod
	def pubsub_envelope(
		email: str,
		history_id: int,
		subscription: str = "projects/p/subscriptions/s",
		message_id: str | None = None,
	) -> dict:
		"""The JSON body of a Pub/Sub push of a Gmail notification.

		``{"message": {"attributes": {}, "data": base64(JSON {"emailAddress", "historyId" (number)}),
		"messageId", "message_id", "publishTime", "publish_time"}, "subscription"}`` (Pub/Sub sends both
		the camelCase and snake_case keys; ``data`` is standard base64).
		"""
		data = json.dumps({"emailAddress": email, "historyId": int(history_id)}).encode("utf-8")
		message_id = message_id or str(secrets.randbelow(10**16))
		published = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
		return {
			"message": {
				"attributes": {},
				"data": base64.b64encode(data).decode("ascii"),
				"messageId": message_id,
				"message_id": message_id,
				"publishTime": published,
				"publish_time": published,
			},
			"subscription": subscription,
		}

	def _signing_key(self, wrong: bool = False) -> _PushSigner:
		with self._signer_lock:
			if self._signer is None:
				self._signer = _PushSigner()
			if wrong and self._wrong_signer is None:
				self._wrong_signer = _PushSigner("not-google.invalid")
			return self._wrong_signer if wrong else self._signer

	def _push_changed(self, mb: Mailbox, msgs: list[Message], fields: dict) -> None:
		"""After a history record (lock held): queue a push when the watch's label filter lets it through."""
		w = mb.watch
		if w is None or self._push is None:
			return
		if w["labelIds"]:
			wanted = set(w["labelIds"])
			touched = set()
			for m in msgs:
				touched.update(m.label_ids)
			for items in fields.values():
				for item in items if isinstance(items, list) else []:
					touched.update(item.get("labelIds") or [])
					touched.update((item.get("message") or {}).get("labelIds") or [])
			hit = bool(touched & wanted)
			if (w["labelFilterBehavior"] == "include") != hit:
				return
		self._schedule_push(mb)

	def _schedule_push(self, mb: Mailbox) -> bool:
		"""Start a delivery thread for the mailbox unless one is queued already (lock held)."""
		w = mb.watch
		if self._push is None or w is None or w["expiration"] <= _now_ms() or self._push_stop.is_set():
			return False
		key = mb.email.lower()
		if key in self._push_pending:
			return True
		self._push_pending.add(key)
		thread = threading.Thread(target=self._deliver, args=(key,), name=f"gmail-push:{key}", daemon=True)
		self._push_threads.add(thread)
		thread.start()
		return True

	def _deliver(self, key: str) -> None:
		try:
			with self._lock:
				self._push_pending.discard(key)
				mb, cfg = self._mailboxes.get(key), self._push
				if mb is None or cfg is None:
					return
				email, history_id = mb.email, mb.history_id
			url = cfg["endpoint"]
			if cfg["mode"] == "token":
				url += ("&" if urllib.parse.urlsplit(url).query else "?") + urllib.parse.urlencode(
					{"token": cfg["token"]}
				)
			envelope = self.pubsub_envelope(email, history_id, cfg["subscription"])
			body = json.dumps(envelope).encode("utf-8")
			record = {
				"email": email,
				"historyId": history_id,
				"status": None,
				"attempts": 0,
				"statuses": [],
				"messageId": envelope["message"]["messageId"],
				"response": "",
			}
			delay = cfg["retry_delay"]
			for attempt in range(cfg["max_attempts"]):
				if attempt and self._push_stop.wait(delay):
					break
				if attempt:
					delay *= 2
				headers = {"Content-Type": "application/json", "User-Agent": PUSH_USER_AGENT}
				if cfg["mode"] == "oidc":
					headers["Authorization"] = "Bearer " + self.oidc_token(
						cfg["audience"],
						cfg["service_account"],
						wrong_key=cfg["wrong_key"],
						issuer=cfg["issuer"],
					)
				status, text = _http_post(url, body, headers, cfg["timeout"])
				record["attempts"] += 1
				record["statuses"].append(status)
				record["status"] = status
				record["response"] = text[:2000]
				if status in PUSH_ACK_STATUSES:
					break
			with self._push_cond:
				self._deliveries.append(record)
				self._push_cond.notify_all()
		except Exception as exc:  # a delivery thread never dies loudly
			self._record_error(exc)
		finally:
			with self._lock:
				self._push_threads.discard(threading.current_thread())
