"""The one Microsoft Graph client: ``requests`` with the mailbox's token, Graph's per-mailbox limits kept on
our side, JSON batching and backoff.

Graph's Outlook limits (learn.microsoft.com/graph/throttling-limits, "Outlook service limits") are per app
and mailbox: **4 concurrent requests** and **10,000 requests per 10 minutes**, every request inside a
``$batch`` counted, and a ``$batch`` runs up to 4 of its requests at once. Every client of a mailbox, in every
worker (sync, write-back, send), takes a permit of one Redis semaphore (:class:`atlas_integrations.quota.
Permits`, a batch takes all 4) and its requests from one moving window (:class:`atlas_integrations.quota.
MovingWindow`) before sending, so the mailbox is paced at its limit instead of answered 429; a 429 that
comes anyway is retried after its ``Retry-After`` (seconds or an HTTP date), with jittered exponential backoff
when absent. Every request asks ``Prefer: IdType="ImmutableId"``, so a message keeps its id when it moves
between folders (learn.microsoft.com/graph/outlook-immutable-id).

Every failure leaves this module as one of :mod:`atlas_integrations.outlook.errors`.
"""

from __future__ import annotations

import base64
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator

from atlas_integrations.outlook.errors import AuthRevoked, OutlookError, Permanent, Temporary, classify, from_status

#: delegated permissions the app asks a user for (MSAL adds openid, profile and offline_access itself and
#: refuses them if passed)
SCOPES = ["Mail.ReadWrite", "Mail.Send", "User.Read"]
#: the application permissions of a shared mailbox come from the app registration (client credentials)
APP_SCOPES = ["https://graph.microsoft.com/.default"]
CONCURRENCY = 4  # concurrent requests per mailbox
WINDOW_REQUESTS, WINDOW_SECONDS = 10_000, 600  # requests per moving 10 minutes per mailbox
MAX_BATCH = 20  # requests in one $batch (learn.microsoft.com/graph/json-batching)
DELTA_PAGE = 200  # messages per delta page (Prefer: odata.maxpagesize)
HTTP_TIMEOUT = 30  # seconds per HTTP request
MAX_ATTEMPTS = 6
MAX_BACKOFF = 64.0  # seconds
IMMUTABLE_IDS = 'IdType="ImmutableId"'
#: the message properties the sync reads from delta pages (the body comes as MIME through $value)
MESSAGE_FIELDS = ("id,isDraft,isRead,categories,flag,parentFolderId,conversationId,receivedDateTime,"
				  "internetMessageId,bodyPreview")


def backoff_delay(attempt: int, retry_after: float | None = None) -> float:
	"""Seconds before retry number ``attempt`` (0-based): ``Retry-After`` when Graph sent one (at most
	600 s), else exponential backoff with full jitter (``uniform(0, 2**attempt)``, at most 64 s), as Graph's
	throttling guidance asks."""
	if retry_after is not None:
		return min(float(retry_after), 600.0) + random.uniform(0, 0.25)
	return random.uniform(0, min(MAX_BACKOFF, 2.0**attempt))


class GraphClient:
	"""Graph v1.0 for one mailbox.

	Args:
		base_url: Graph's root with the version, e.g. ``https://graph.microsoft.com/v1.0``.
		mailbox_path: ``"me"`` (delegated) or ``"users/<address>"`` (application permissions).
		token: ``fn(force: bool) -> str``: the mailbox's access token (``force`` after a 401: a new one).
		session: the ``requests.Session`` to send with.
		permits: the mailbox's shared semaphore (:class:`~atlas_integrations.quota.Permits`) or None.
		window: the mailbox's moving 10-minute window (:class:`~atlas_integrations.quota.MovingWindow`) or None.
		timeout: seconds per HTTP request; max_attempts: tries per request on :class:`Temporary`;
		sleep: the sleep function (seconds).

	Attributes:
		api_calls: Graph requests made, each request inside a ``$batch`` counted (as Graph counts them).
		http_calls: HTTP requests sent (a ``$batch`` is one).
		throttled: 429 answers received (a batch's inner ones included).
	"""

	def __init__(self, base_url: str, mailbox_path: str, token: Callable[[bool], str], session, permits=None,
				 window=None, timeout: float = HTTP_TIMEOUT, max_attempts: int = MAX_ATTEMPTS,
				 sleep: Callable[[float], None] = time.sleep):
		self.base_url = base_url.rstrip("/")
		self.mailbox_path = mailbox_path.strip("/")
		self.token, self.session = token, session
		self.permits, self.window = permits, window
		self.timeout, self.max_attempts, self.sleep = timeout, max_attempts, sleep
		self.api_calls = self.http_calls = self.throttled = 0

	def __repr__(self) -> str:
		return f"GraphClient({self.base_url!r}, {self.mailbox_path!r})"

	# -- plumbing -----------------------------------------------------------------------------------------
	def url(self, path: str) -> str:
		"""The absolute URL of ``path`` under the mailbox (``messages/…``) or of a link Graph gave (as is)."""
		if path.startswith("https://") or path.startswith("http://"):
			return path
		return f"{self.base_url}/{self.mailbox_path}/{path.lstrip('/')}"

	def _headers(self, force: bool, extra: dict | None = None) -> dict:
		return {"Authorization": f"Bearer {self.token(force)}", "Prefer": IMMUTABLE_IDS, **(extra or {})}

	def _send(self, method: str, url: str, requests_counted: int, slots: int, **kwargs):
		"""One HTTP request holding ``slots`` permits and ``requests_counted`` of the window."""
		if self.window is not None:
			self.window.take(requests_counted)
		token = self.permits.acquire(slots) if self.permits is not None else None
		try:
			self.http_calls += 1
			self.api_calls += requests_counted
			return self.session.request(method, url, timeout=self.timeout, **kwargs)
		finally:
			if token is not None:
				self.permits.release(token)

	def request(self, method: str, path: str, context: str, params: dict | None = None, json=None,
				headers: dict | None = None, retry: bool = True):
		"""One Graph request with backoff on :class:`Temporary` answers and one token renewal on 401.

		Args:
			method, path: HTTP method and a path under the mailbox (or an absolute link Graph gave).
			context: what is done (e.g. ``"messages.delta"``), in error messages.
			params, json, headers: as ``requests`` takes them.
			retry: False to try once (a send: a retry after a lost answer could send twice).

		Returns:
			The ``requests.Response`` (2xx).

		Raises:
			AuthRevoked, CursorExpired, Permanent, Temporary (after ``max_attempts``, or at once when not
			``retry``).
		"""
		force = False
		attempts = self.max_attempts if retry else 1
		for attempt in range(attempts):
			try:
				response = self._send(method, self.url(path), 1, 1, params=params, json=json,
									  headers=self._headers(force, headers))
			except OutlookError:
				raise
			except Exception as exc:
				err = classify(exc, context)
			else:
				if response.status_code < 300:
					return response
				err = from_status(response.status_code, response.content[:65536], response.headers, context)
				if response.status_code == 429:
					self.throttled += 1
				if isinstance(err, AuthRevoked) and not force:  # the access token may have just expired
					force = True
					continue
			if isinstance(err, Temporary) and attempt + 1 < attempts:
				self.sleep(backoff_delay(attempt, err.retry_after))
				continue
			raise err
		raise AssertionError("unreachable")  # pragma: no cover

	def get_json(self, path: str, context: str, params: dict | None = None, headers: dict | None = None) -> dict:
		"""GET ``path`` and decode its JSON body (see :meth:`request`)."""
		return self.request("GET", path, context, params=params, headers=headers).json()

	# -- reads --------------------------------------------------------------------------------------------
	def me(self) -> dict:
		"""The mailbox's user (``/me`` or ``/users/{address}``): ``{"id", "mail", "userPrincipalName", …}``."""
		return self.get_json("", "user")

	def folder(self, name_or_id: str) -> dict:
		"""A mail folder by well-known name (``inbox``, ``sentitems``, ``deleteditems``, ``archive``,
		``junkemail``, ``drafts``) or id: ``{"id", "displayName", …}``.

		Raises:
			Permanent: 404 when the mailbox has no such folder.
		"""
		return self.get_json(f"mailFolders/{urllib.parse.quote(name_or_id, safe='')}", "mailFolders.get")

	def delta_pages(self, folder_id: str, link: str | None = None, page_size: int = DELTA_PAGE) -> Iterator[dict]:
		"""A delta round of one folder's messages (learn.microsoft.com/graph/delta-query-messages): pages
		as Graph answers them, from ``link`` (a kept ``@odata.nextLink`` or ``@odata.deltaLink``) or from the
		start (every message of the folder). The last page carries ``@odata.deltaLink``.

		Raises:
			CursorExpired: the link answered 410 (``syncStateNotFound``): start again without a link.
		"""
		headers = {"Prefer": f"{IMMUTABLE_IDS}, odata.maxpagesize={int(page_size)}"}
		if link:
			url, params = link, None
		else:
			url = f"mailFolders/{urllib.parse.quote(folder_id, safe='')}/messages/delta"
			params = {"$select": MESSAGE_FIELDS}
		while True:
			page = self.get_json(url, "messages.delta", params=params, headers=headers)
			yield page
			url, params = page.get("@odata.nextLink"), None
			if not url:
				return

	# -- $batch -------------------------------------------------------------------------------------------
	def batch(self, parts: list[dict], context: str) -> dict[str, tuple[int, dict, object]]:
		"""One JSON ``$batch`` of at most 20 requests (``{"id", "method", "url" (relative to the mailbox),
		"headers"?, "body"?}``), holding all 4 of the mailbox's permits (Graph runs up to 4 of them at once).

		Returns:
			``{id: (status, headers, body)}``; a body Graph base64-encoded (not JSON) stays a str.

		Raises:
			AuthRevoked, Permanent, Temporary: the batch itself failed (after retries).
		"""
		if not 0 < len(parts) <= MAX_BATCH:
			raise ValueError(f"a $batch holds 1..{MAX_BATCH} requests")
		payload = {"requests": [{**p, "url": f"/{self.mailbox_path}/{p['url'].lstrip('/')}",
								  "headers": {"Prefer": IMMUTABLE_IDS, **(p.get("headers") or {})}} for p in parts]}
		force = False
		for attempt in range(self.max_attempts):
			try:
				response = self._send("POST", f"{self.base_url}/$batch", len(parts), min(CONCURRENCY, len(parts)),
									  json=payload, headers=self._headers(force, {"Content-Type": "application/json"}))
			except Exception as exc:
				err = classify(exc, context)
			else:
				if response.status_code < 300:
					answers = {}
					for item in (response.json() or {}).get("responses") or []:
						if isinstance(item, dict) and item.get("id") is not None:
							answers[str(item["id"])] = (int(item.get("status") or 0), item.get("headers") or {},
														item.get("body"))
					return answers
				err = from_status(response.status_code, response.content[:65536], response.headers, context)
				if response.status_code == 429:
					self.throttled += 1
				if isinstance(err, AuthRevoked) and not force:
					force = True
					continue
			if isinstance(err, Temporary) and attempt + 1 < self.max_attempts:
				self.sleep(backoff_delay(attempt, err.retry_after))
				continue
			raise err
		raise AssertionError("unreachable")  # pragma: no cover

	def batch_each(self, parts: dict[str, dict], context: str) -> tuple[dict[str, tuple[int, dict, object]],
																			dict[str, OutlookError]]:
		"""Many requests (``{id: request}``, see :meth:`batch`) in ``$batch`` calls of 20; an inner request
		answered 429 / 5xx is retried on its own in a later batch (after its Retry-After), up to
		``max_attempts`` times.

		Returns:
			``(answers, failures)``: ``{id: (status, headers, body)}`` of the requests Graph answered below
			400, and the final error of the others.

		Raises:
			AuthRevoked: the token was refused (nothing more can be done with it).
		"""
		answers: dict[str, tuple[int, dict, object]] = {}
		failures: dict[str, OutlookError] = {}
		pending = list(parts)
		for attempt in range(self.max_attempts):
			retry: dict[str, Temporary] = {}
			for start in range(0, len(pending), MAX_BATCH):
				chunk = pending[start:start + MAX_BATCH]
				try:
					got = self.batch([{**parts[i], "id": i} for i in chunk], context)
				except Temporary as exc:
					retry.update({i: exc for i in chunk})
					continue
				for i in chunk:
					status, headers, body = got.get(i, (0, {}, None))
					if 0 < status < 400:
						answers[i] = (status, headers, body)
						continue
					err = from_status(status, body, headers, context) if status else Temporary(
						f"{context}: no answer in the batch", 0, None)
					if status == 429:
						self.throttled += 1
					if isinstance(err, AuthRevoked):
						raise err
					if isinstance(err, Temporary):
						retry[i] = err
					else:
						failures[i] = err
			if not retry:
				return answers, failures
			if attempt + 1 >= self.max_attempts:
				failures.update(retry)
				return answers, failures
			waits = [e.retry_after for e in retry.values() if e.retry_after is not None]
			self.sleep(backoff_delay(attempt, max(waits) if waits else None))
			pending = list(retry)
		return answers, failures

	def get_mime(self, ids: list[str]) -> tuple[dict[str, bytes], dict[str, OutlookError]]:
		"""The RFC 822 bytes of messages (``GET /messages/{id}/$value``) through ``$batch``.

		Returns:
			``(raw bytes by id, error by id)``; a 404 is a message deleted since it was listed.
		"""
		parts = {mid: {"method": "GET", "url": f"messages/{urllib.parse.quote(mid, safe='')}/$value"}
				 for mid in dict.fromkeys(ids)}
		answers, failures = self.batch_each(parts, "messages.$value")
		raws: dict[str, bytes] = {}
		for mid, (_status, _headers, body) in answers.items():
			if isinstance(body, str):
				try:
					raws[mid] = base64.b64decode(body, validate=False)
				except ValueError:
					failures[mid] = Permanent("messages.$value: the batch answer is not base64", 0, None)
			elif isinstance(body, dict):  # a JSON body where MIME was asked for: not a message
				failures[mid] = Permanent("messages.$value: no MIME content", 0, None)
			else:
				failures[mid] = Permanent("messages.$value: empty answer", 0, None)
		return raws, failures

	def get_messages(self, ids: list[str], select: str = MESSAGE_FIELDS) -> tuple[dict[str, dict], dict[str, OutlookError]]:
		"""Message resources by immutable id (``GET /messages/{id}?$select=…``) through ``$batch``.

		Returns:
			``(resource by id, error by id)``; a 404 means the message is gone from the mailbox.
		"""
		query = urllib.parse.urlencode({"$select": select})
		parts = {mid: {"method": "GET", "url": f"messages/{urllib.parse.quote(mid, safe='')}?{query}"}
				 for mid in dict.fromkeys(ids)}
		answers, failures = self.batch_each(parts, "messages.get")
		return {mid: body for mid, (_s, _h, body) in answers.items() if isinstance(body, dict)}, failures

	# -- the outbox's writes ------------------------------------------------------------------------------
	# A draft is made, completed, committed by the caller, then sent; none of these is retried after a lost
	# answer (``retry=False``): a second createReply would make a second draft, a second /send could send
	# twice. A Temporary leaves here at once and the caller looks before trying again.
	def create_reply(self, parent_id: str, message: dict) -> dict:
		"""``POST /messages/{parent}/createReply``: a reply draft (Graph sets ``In-Reply-To``, ``References``,
		``conversationId``) with ``message``'s properties (learn.microsoft.com/graph/api/message-createreply).
		Returns the draft resource (``id`` immutable, ``internetMessageId``, ``conversationId``).

		Raises:
			Permanent (404: the message replied to is gone), AuthRevoked, Temporary.
		"""
		path = f"messages/{urllib.parse.quote(parent_id, safe='')}/createReply"
		return self.request("POST", path, "message.createReply", json={"message": message}, retry=False).json()

	def create_draft(self, message: dict) -> dict:
		"""``POST /messages``: a new draft in Drafts with ``message``'s properties. Returns the resource."""
		return self.request("POST", "messages", "message.create", json=message, retry=False).json()

	def update_message(self, message_id: str, fields: dict) -> dict:
		"""``PATCH /messages/{id}`` (idempotent: retried). Returns the resource."""
		return self.request("PATCH", f"messages/{urllib.parse.quote(message_id, safe='')}", "message.update",
							json=fields).json()

	def add_attachment(self, message_id: str, name: str, content_type: str, data: bytes) -> None:
		"""``POST /messages/{id}/attachments`` of a ``#microsoft.graph.fileAttachment`` (at most 3 MB: Graph's
		limit for one attachment in one request; larger ones need an upload session)."""
		body = {"@odata.type": "#microsoft.graph.fileAttachment", "name": name, "contentType": content_type,
				"contentBytes": base64.b64encode(data).decode()}
		self.request("POST", f"messages/{urllib.parse.quote(message_id, safe='')}/attachments",
					 "message.attachments.add", json=body, retry=False)

	def delete_message(self, message_id: str) -> None:
		"""``DELETE /messages/{id}`` (an unfinished draft); a message already gone is fine."""
		try:
			self.request("DELETE", f"messages/{urllib.parse.quote(message_id, safe='')}", "message.delete", retry=False)
		except Permanent as exc:
			if exc.status != 404:
				raise

	def send_draft(self, message_id: str) -> None:
		"""``POST /messages/{id}/send`` (202; Graph moves the message to Sent Items afterwards,
		learn.microsoft.com/graph/api/message-send). Tried once.

		Raises:
			Temporary (no answer: it may have been sent), Permanent (not a draft any more, gone), AuthRevoked.
		"""
		self.request("POST", f"messages/{urllib.parse.quote(message_id, safe='')}/send", "message.send", retry=False)

	def get_message(self, message_id: str, select: str) -> dict | None:
		"""One message resource (``$select``), None when the mailbox no longer holds it (404)."""
		try:
			return self.get_json(f"messages/{urllib.parse.quote(message_id, safe='')}", "message.get",
								 params={"$select": select})
		except Permanent as exc:
			if exc.status == 404:
				return None
			raise

	def find_by_property(self, property_id: str, value: str, select: str = "id,isDraft,internetMessageId,parentFolderId,conversationId") -> list[dict]:
		"""The mailbox's messages (every folder) whose single-value extended property ``property_id`` is
		``value`` (``$filter=singleValueExtendedProperties/any(ep: ep/id eq … and ep/value eq …)``,
		learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get). At most 10."""
		quote = lambda text: text.replace("'", "''")  # noqa: E731 - OData string literal
		flt = (f"singleValueExtendedProperties/any(ep: ep/id eq '{quote(property_id)}' and "
			   f"ep/value eq '{quote(value)}')")
		answer = self.get_json("messages", "messages.find", params={"$filter": flt, "$select": select, "$top": 10})
		return [m for m in answer.get("value") or [] if isinstance(m, dict) and m.get("id")]
