"""Graph v1.0 mail as the app uses it: mail folders, per-folder message delta (pages by ``@odata.nextLink``,
rounds by ``@odata.deltaLink``, ``@removed`` items, 410 ``syncStateNotFound`` for a sync state the server
dropped), messages and their MIME (``$value``), and JSON ``$batch`` (at most 20 requests; non-JSON bodies
base64-encoded, as Graph answers them).

Ids are immutable only when the request says ``Prefer: IdType="ImmutableId"`` (else a message's id changes
when it moves, as Graph's default ids do); either id finds a message. Reference:
learn.microsoft.com/graph/delta-query-messages, /graph/json-batching, /graph/outlook-immutable-id.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import urllib.parse

from atlas_integrations.testing.gmail.common import _CaseDict
from atlas_integrations.testing.graph.mail import GraphMailbox, GraphMessage
from atlas_integrations.testing.graph.throttle import Throttled

_nothing = contextlib.nullcontext

MAX_BATCH = 20  # requests in one $batch
CONCURRENT_IN_BATCH = 4  # of a batch's requests Graph runs at once
DEFAULT_PAGE = 10  # messages in a delta page without Prefer: odata.maxpagesize
MAX_PAGE = 1000


def _prefers(headers, name: str) -> str | None:
	for part in (headers.get("Prefer") or "").split(","):
		key, _, value = part.strip().partition("=")
		if key.strip().lower() == name.lower():
			return value.strip().strip('"')
	return None


class _MailApiMixin:
	"""Mixed into :class:`~atlas_integrations.testing.graph.server.GraphTestServer`."""

	def mailbox(self, address: str) -> GraphMailbox:
		"""The mailbox of a user of the server (made on first use; the user is added too)."""
		address = address.lower()
		with self._lock:
			self.add_user(address)
			if address not in self.mailboxes:
				box = self.mailboxes[address] = GraphMailbox(address)
				box.listener = lambda mid, folders, kind: self._notify_change(address, mid, folders, kind)
			return self.mailboxes[address]

	def expire_delta_tokens(self, address: str) -> None:
		"""Drop the mailbox's sync state: every delta and skip token issued so far answers 410."""
		with self._lock:
			self.mailbox(address).generation += 1
			self._snapshots.clear()

	def _find(self, box: GraphMailbox, message_id: str) -> GraphMessage | None:
		msg = box.messages.get(message_id)
		return msg or next((m for m in box.messages.values() if m.mutable_id() == message_id), None)

	def _mail(self, method: str, segments: list[str], query: dict, headers, grant, body: bytes = b"") -> tuple:
		"""``/me/…`` or ``/users/{address}/…`` (``segments`` from ``me`` / ``users``): the grant's access,
		then the mailbox's limits (:mod:`~atlas_integrations.testing.graph.throttle`), then the answer."""
		from atlas_integrations.testing.graph.server import _json, graph_error

		if segments[0] == "me":
			if grant.user is None:
				return graph_error(400, "BadRequest", "/me request is only valid with delegated authentication flow.")
			address, rest = grant.user, segments[1:]
		else:
			address, rest = urllib.parse.unquote(segments[1]).lower(), segments[2:]
			if grant.user not in (None, address) or address not in self.identity.users:
				return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
		if not rest:
			return _json(200, self._user_resource(address))
		in_batch = getattr(self._batch_local, "address", None) == address  # the batch holds the slots
		try:
			if in_batch:
				self._count(address)
				return self._serve_mail(method, address, rest, query, headers, body)
			with self._slots(address):
				self._count(address)
				return self._serve_mail(method, address, rest, query, headers, body)
		except Throttled as exc:
			return graph_error(429, "ApplicationThrottled", exc.message, [("Retry-After", str(exc.retry_after))])

	def _serve_mail(self, method: str, address: str, rest: list[str], query: dict, headers, body: bytes) -> tuple:
		from atlas_integrations.testing.graph.server import _json, graph_error

		box = self.mailbox(address)
		immutable = (_prefers(headers, "IdType") or "").lower() == "immutableid"
		applied = [("Preference-Applied", 'IdType="ImmutableId"')] if immutable else []
		with self._lock:
			written = self._write(method, box, rest, query, body, immutable)
			if written is not None:
				return written
			if rest == ["mailFolders"] and method == "GET":
				return _json(200, {"value": list(box.folders.values())})
			if len(rest) == 2 and rest[0] == "mailFolders" and method == "GET":
				fid = box.folder_id(rest[1])
				return _json(200, box.folders[fid]) if fid else graph_error(
					404, "ErrorItemNotFound", "The specified object was not found in the store.")
			if len(rest) == 4 and rest[0] == "mailFolders" and rest[2:] == ["messages", "delta"] and method == "GET":
				fid = box.folder_id(rest[1])
				if not fid:
					return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
				return self._delta(box, fid, query, headers, immutable, applied)
			if len(rest) >= 2 and rest[0] == "messages" and method == "GET":
				msg = self._find(box, rest[1])
				if msg is None:
					return graph_error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
				if rest[2:] == ["$value"]:
					return 200, [("Content-Type", "text/plain")], msg.raw
				if len(rest) == 2:
					expand = "singlevalueextendedproperties" in (query.get("$expand") or "").lower()
					return _json(200, self._with_extended(msg, immutable) if expand else msg.resource(immutable), applied)
		return graph_error(400, "BadRequest", "Unsupported mail request on the local Graph server.")

	def _delta(self, box: GraphMailbox, fid: str, query: dict, headers, immutable: bool, applied: list) -> tuple:
		from atlas_integrations.testing.graph.server import _json, graph_error

		size = _prefers(headers, "odata.maxpagesize")
		size = max(1, min(int(size), MAX_PAGE)) if size and size.isdigit() else DEFAULT_PAGE
		base = f"{self.graph_url}/users/{urllib.parse.quote(box.address)}/mailFolders/{fid}/messages/delta"
		if "$skiptoken" in query:
			snap = self._snapshots.get(query["$skiptoken"])
			if not snap or snap["generation"] != box.generation or snap["folder"] != fid:
				return graph_error(410, "syncStateNotFound", "The sync state generation is not found.")
		else:
			since = None
			if "$deltatoken" in query:
				try:
					token = json.loads(base64.urlsafe_b64decode(query["$deltatoken"] + "==="))
				except ValueError:
					return graph_error(400, "BadRequest", "The delta token is malformed.")
				if token.get("g") != box.generation or token.get("f") != fid:
					return graph_error(410, "syncStateNotFound", "The sync state generation is not found.")
				since = int(token["s"])
			if since is None:
				ids = [m.id for m in sorted(box.messages.values(), key=lambda m: m.received) if m.folder == fid]
			else:
				ids = list(dict.fromkeys(c.message for c in box.changes if c.seq > since and fid in c.folders))
			snap = {"folder": fid, "ids": ids, "offset": 0, "seq": box.last_seq, "generation": box.generation}
		page, rest = snap["ids"][snap["offset"]:snap["offset"] + size], snap["offset"] + size
		items = []
		for mid in page:
			msg = box.messages.get(mid)
			if msg is not None and msg.folder == fid:
				items.append({"@odata.type": "#microsoft.graph.message", **msg.resource(immutable)})
			else:
				gone = msg.mutable_id() if msg and not immutable else mid
				items.append({"@odata.type": "#microsoft.graph.message", "id": gone, "@removed": {"reason": "deleted"}})
		answer = {"@odata.context": f"{self.graph_url}/$metadata#Collection(message)", "value": items}
		if rest < len(snap["ids"]):
			token = secrets.token_urlsafe(16)
			self._snapshots[token] = dict(snap, offset=rest)
			answer["@odata.nextLink"] = f"{base}?$skiptoken={token}"
		else:
			token = base64.urlsafe_b64encode(json.dumps({"f": fid, "s": snap["seq"], "g": snap["generation"]}).encode())
			answer["@odata.deltaLink"] = f"{base}?$deltatoken={token.decode().rstrip('=')}"
		pref = [("Preference-Applied", f"odata.maxpagesize={size}")] if _prefers(headers, "odata.maxpagesize") else []
		return _json(200, answer, applied + pref)

	def _batch(self, body: bytes, headers) -> tuple:
		"""JSON batching: each request answered as if sent alone (with the batch's Authorization)."""
		from atlas_integrations.testing.graph.server import _json, graph_error

		try:
			requests_ = json.loads(body or b"{}")["requests"]
			assert isinstance(requests_, list) and all(isinstance(r, dict) for r in requests_)
		except (ValueError, KeyError, AssertionError, TypeError):
			return graph_error(400, "BadRequest", "Invalid batch payload format.")
		if len(requests_) > MAX_BATCH:
			return graph_error(400, "BadRequest", f"Batch request can have at most {MAX_BATCH} requests.")
		# Graph runs up to 4 of a batch's requests at once: the batch holds that many of its mailbox's slots
		grant = self.grant_for(headers.get("Authorization"))
		first = str(requests_[0].get("url") or "") if requests_ else ""
		match = re.match(r"^/*users/([^/?]+)", first)
		address = urllib.parse.unquote(match.group(1)).lower() if match else (grant.user if grant else None)
		try:
			with self._slots(address, min(CONCURRENT_IN_BATCH, len(requests_))) if address else _nothing():
				self._batch_local.address = address
				return _json(200, {"responses": self._batch_answers(requests_, headers)})
		except Throttled as exc:  # the batch could not start: each of its requests is answered 429
			return _json(200, {"responses": [
				{"id": r.get("id"), "status": 429, "headers": {"Retry-After": str(exc.retry_after)},
				 "body": json.loads(graph_error(429, "ApplicationThrottled", exc.message)[2])} for r in requests_]})
		finally:
			self._batch_local.address = None

	def _batch_answers(self, requests_: list, headers) -> list[dict]:
		responses = []
		for req in requests_:
			inner = {"Authorization": headers.get("Authorization") or ""}
			inner.update({k: v for k, v in (req.get("headers") or {}).items()})
			url = "/v1.0/" + re.sub(r"^/+", "", str(req.get("url") or ""))
			status, hdrs, payload = self.handle_http(str(req.get("method") or "GET"), url,
													 _CaseDict(inner.items()), json.dumps(req["body"]).encode()
													 if req.get("body") is not None else b"")
			ctype = dict(hdrs).get("Content-Type", "")
			out = {"id": req.get("id"), "status": status, "headers": dict(hdrs)}
			if payload:
				out["body"] = json.loads(payload) if ctype.startswith("application/json") else base64.b64encode(payload).decode()
			responses.append(out)
		return responses
