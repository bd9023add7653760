"""Gmail v1 REST of the test server: the route table, scopes and quota units per method, the
dispatcher every direct call and batch part goes through (auth, faults, scopes, stats), message
rendering and the ``_api_*`` handlers (:class:`_GmailApiMixin`), and :class:`_Call`, one call as a
handler sees it."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import json
import re
import secrets
import time
import urllib.parse
from email.parser import BytesParser

from atlas_integrations.testing.gmail.common import (
	_JSON_CT,
	ApiError,
	_error_resp,
	_json_resp,
	_now_ms,
	google_error_body,
)
from atlas_integrations.testing.gmail.mailbox import Message
from atlas_integrations.testing.gmail.mime import b64_any_decode, b64url, parse_mail
from atlas_integrations.testing.gmail.oauth import (
	SCOPE_COMPOSE,
	SCOPE_FULL,
	SCOPE_INSERT,
	SCOPE_LABELS,
	SCOPE_METADATA,
	SCOPE_MODIFY,
	SCOPE_READONLY,
	SCOPE_SEND,
)
from atlas_integrations.testing.gmail.query import build_query

#: Gmail's accepted topic name form (users.watch answers 400 otherwise).
TOPIC_RE = re.compile(r"^projects/[^/\s]+/topics/[^/\s]+$")
WATCH_TTL_MS = 7 * 86400 * 1000  # a watch expires 7 days after users.watch


#: Gmail API quota units per method (Gmail "Usage limits" table).
QUOTA_UNITS = {
	"users.getProfile": 1,
	"users.watch": 100,
	"users.stop": 50,
	"labels.list": 1,
	"labels.get": 1,
	"labels.create": 5,
	"labels.delete": 5,
	"labels.patch": 5,
	"labels.update": 5,
	"messages.list": 5,
	"messages.get": 5,
	"messages.insert": 25,
	"messages.import": 25,
	"messages.send": 100,
	"messages.modify": 5,
	"messages.batchModify": 50,
	"messages.batchDelete": 50,
	"messages.delete": 10,
	"messages.trash": 5,
	"messages.untrash": 5,
	"messages.attachments.get": 5,
	"threads.list": 10,
	"threads.get": 10,
	"threads.modify": 10,
	"threads.trash": 10,
	"threads.untrash": 10,
	"threads.delete": 20,
	"history.list": 2,
	"settings.sendAs.list": 1,
}

_READ = {SCOPE_FULL, SCOPE_MODIFY, SCOPE_READONLY, SCOPE_METADATA}
_SCOPES_BY_METHOD = {
	"users.getProfile": _READ | {SCOPE_COMPOSE},
	"users.watch": _READ,
	"users.stop": _READ,
	"labels.list": _READ | {SCOPE_LABELS},
	"labels.get": _READ | {SCOPE_LABELS},
	"labels.create": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"labels.delete": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"labels.patch": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"labels.update": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_LABELS},
	"messages.list": _READ,
	"messages.get": _READ,
	"messages.attachments.get": _READ - {SCOPE_METADATA},
	"messages.insert": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_INSERT},
	"messages.import": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_INSERT},
	"messages.send": {SCOPE_FULL, SCOPE_MODIFY, SCOPE_COMPOSE, SCOPE_SEND},
	"messages.modify": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.batchModify": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.trash": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.untrash": {SCOPE_FULL, SCOPE_MODIFY},
	"messages.delete": {SCOPE_FULL},
	"messages.batchDelete": {SCOPE_FULL},
	"threads.list": _READ,
	"threads.get": _READ,
	"threads.modify": {SCOPE_FULL, SCOPE_MODIFY},
	"threads.trash": {SCOPE_FULL, SCOPE_MODIFY},
	"threads.untrash": {SCOPE_FULL, SCOPE_MODIFY},
	"threads.delete": {SCOPE_FULL},
	"history.list": _READ,
	"settings.sendAs.list": _READ,
}

# (HTTP method, path segments after users/{userId}/, Gmail method name). "{x}" captures a segment.
_ROUTES = (
	("GET", ("profile",), "users.getProfile"),
	("POST", ("watch",), "users.watch"),
	("POST", ("stop",), "users.stop"),
	("GET", ("labels",), "labels.list"),
	("POST", ("labels",), "labels.create"),
	("GET", ("labels", "{id}"), "labels.get"),
	("DELETE", ("labels", "{id}"), "labels.delete"),
	("PATCH", ("labels", "{id}"), "labels.patch"),
	("PUT", ("labels", "{id}"), "labels.update"),
	("GET", ("messages",), "messages.list"),
	("POST", ("messages",), "messages.insert"),
	("POST", ("messages", "import"), "messages.import"),
	("POST", ("messages", "send"), "messages.send"),
	("POST", ("messages", "batchModify"), "messages.batchModify"),
	("POST", ("messages", "batchDelete"), "messages.batchDelete"),
	("GET", ("messages", "{id}"), "messages.get"),
	("DELETE", ("messages", "{id}"), "messages.delete"),
	("POST", ("messages", "{id}", "modify"), "messages.modify"),
	("POST", ("messages", "{id}", "trash"), "messages.trash"),
	("POST", ("messages", "{id}", "untrash"), "messages.untrash"),
	("GET", ("messages", "{messageId}", "attachments", "{id}"), "messages.attachments.get"),
	("GET", ("threads",), "threads.list"),
	("GET", ("threads", "{id}"), "threads.get"),
	("DELETE", ("threads", "{id}"), "threads.delete"),
	("POST", ("threads", "{id}", "modify"), "threads.modify"),
	("POST", ("threads", "{id}", "trash"), "threads.trash"),
	("POST", ("threads", "{id}", "untrash"), "threads.untrash"),
	("GET", ("history",), "history.list"),
	("GET", ("settings", "sendAs"), "settings.sendAs.list"),
)
_UPLOAD_METHODS = {"messages.send", "messages.insert", "messages.import"}


class _GmailApiMixin:
	"""Gmail dispatch, rendering and handlers of :class:`GmailTestServer` (handlers run with the lock
	held and change mailboxes through :class:`_MailboxMixin`'s mutations).
	"""

	# -- Gmail dispatch (direct calls and batch parts) -------------------------------------------------
	def _dispatch_api(self, method, path, query, headers, body, ctx, in_batch=False) -> tuple:
		method = method.upper()
		m = re.match(r"^/(upload/|resumable/upload/)?gmail/v1/users/([^/]+)(?:/(.*))?$", path)
		if not m:
			return _json_resp(404, google_error_body(404, "Not Found"))
		upload = m.group(1)
		user = urllib.parse.unquote(m.group(2))
		rest = (m.group(3) or "").rstrip("/")
		segs = [urllib.parse.unquote(s) for s in rest.split("/")] if rest else []
		name, params = None, {}
		for r_method, pattern, r_name in _ROUTES:
			if r_method != method or len(pattern) != len(segs):
				continue
			captured = {}
			for pat, seg in zip(pattern, segs):
				if pat.startswith("{"):
					captured[pat[1:-1]] = seg
				elif pat != seg:
					break
			else:
				name, params = r_name, captured
				break
		if name is None or (upload and name not in _UPLOAD_METHODS):
			return _json_resp(
				404, google_error_body(404, f"The requested URL {path} was not found on this server.")
			)

		with self._lock:
			grant, tok = self._bearer(headers)
			email = grant["email"] if grant else (user.lower() if user.lower() in self._mailboxes else None)
			ctx.email = ctx.email or email
			st = self._st(email)
			st.api_calls += 1
			st.by_method[name] = st.by_method.get(name, 0) + 1
		fault = self._take_fault(method, path, query, email)
		if fault is not None:
			return self._fault_api_resp(fault)
		if grant is None or grant["revoked"] or tok is None or tok["expires"] < time.time():
			return _json_resp(
				401,
				google_error_body(
					401,
					"Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
					"other valid authentication credential. See "
					"https://developers.google.com/identity/sign-in/web/devconsole-project.",
					"authError",
				),
				[("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/", error="invalid_token"')],
			)
		if user.lower() not in ("me", grant["email"]):
			return _error_resp(ApiError(403, f"Delegation denied for {grant['email']}", "forbidden"))
		q = urllib.parse.parse_qs(query, keep_blank_values=True)
		scopes = set(grant["scope"].split())
		if self.enforce_scopes:
			allowed = _SCOPES_BY_METHOD.get(name, {SCOPE_FULL})
			if not (scopes & allowed):
				return _error_resp(
					ApiError(
						403, "Request had insufficient authentication scopes.", "insufficientPermissions"
					)
				)
			if scopes & allowed == {SCOPE_METADATA}:
				fmt = (q.get("format") or ["full"])[0].lower()
				if name in ("messages.get", "threads.get") and fmt in ("full", "raw"):
					return _error_resp(
						ApiError(403, f"Metadata scope doesn't allow format {fmt.upper()}", "forbidden")
					)
				if name in ("messages.list", "threads.list") and (q.get("q") or [""])[0]:
					return _error_resp(
						ApiError(403, "Metadata scope does not support 'q' parameter", "forbidden")
					)
		handler = getattr(self, "_api_" + name.replace(".", "_"))
		try:
			with self._lock:
				mb = self._mailboxes.get(grant["email"])
				if mb is None:
					mb = self.add_mailbox(grant["email"])
				self._charge_quota(grant["email"], QUOTA_UNITS.get(name, 0))
				self._st(email).quota_units += QUOTA_UNITS.get(name, 0)
				call = _Call(mb, method, params, q, headers, body, upload, query)
				result = handler(call)
		except ApiError as exc:
			return _error_resp(exc)
		late = self._take_delay(method, path)
		if late:
			time.sleep(late)  # applied already: the answer comes late
		if result is None:
			return 204, [("Content-Type", _JSON_CT)], b""
		if isinstance(result, tuple):
			return _json_resp(result[0], result[1])
		return _json_resp(200, result)

	# -- the per-user quota -----------------------------------------------------------------------------
	QUOTA_WINDOW = 60.0  # seconds: Google's moving minute

	def set_user_quota(self, units_per_minute: int | None) -> None:
		"""Enforce Google's per-user quota: at most ``units_per_minute`` quota units (:data:`QUOTA_UNITS`) per
		user in any moving minute (Gmail: 15,000); a call beyond it is answered 429 ``userRateLimitExceeded``,
		"User-rate limit exceeded.  Retry after <RFC 3339 time>", as Google answers (no Retry-After header),
		and costs nothing. Batch parts count one by one. None turns it off."""
		with self._lock:
			self.user_quota_per_minute = int(units_per_minute) if units_per_minute else None
			self._quota_windows.clear()

	def _charge_quota(self, user: str, units: int) -> None:
		"""Spend ``units`` of ``user``'s moving minute (under the server lock), or raise the 429."""
		limit = self.user_quota_per_minute
		if not limit or not units:
			return
		now = time.monotonic()
		window = [w for w in self._quota_windows.get(user, []) if w[0] > now - self.QUOTA_WINDOW]
		used = sum(u for _, u in window)
		if used + units > limit:
			self._quota_windows[user] = window
			freed, at = 0, now + self.QUOTA_WINDOW
			for spent_at, u in window:
				freed += u
				if used + units - freed <= limit:
					at = spent_at + self.QUOTA_WINDOW
					break
			self._st(user).quota_refused += 1
			retry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + (at - now)))
			raise ApiError(429, f"User-rate limit exceeded.  Retry after {retry}.000Z", "userRateLimitExceeded",
						   "usageLimits")
		window.append([now, units])
		self._quota_windows[user] = window

	# -- rendering --------------------------------------------------------------------------------------
	@staticmethod
	def _render_payload(node: dict, fmt: str, header_filter=None) -> dict:
		out = {"partId": node["partId"], "mimeType": node["mimeType"], "filename": node["filename"]}
		headers = node["headers"]
		if header_filter is not None:
			headers = [h for h in headers if h["name"].lower() in header_filter]
		out["headers"] = [dict(h) for h in headers]
		if fmt == "metadata":
			return out
		if "parts" in node:
			out["body"] = {"size": 0}
			out["parts"] = [_GmailApiMixin._render_payload(p, fmt) for p in node["parts"]]
		else:
			data = node.get("_data", b"")
			if node.get("_attachment_id"):
				out["body"] = {"attachmentId": node["_attachment_id"], "size": len(data)}
			elif data:
				out["body"] = {"size": len(data), "data": b64url(data)}
			else:
				out["body"] = {"size": 0}
		return out

	def _render_message(self, m: Message, fmt: str = "full", metadata_headers=None) -> dict:
		d = {"id": m.id, "threadId": m.thread_id}
		if m.label_ids:
			d["labelIds"] = list(m.label_ids)
		d["snippet"] = m.parsed.snippet
		if fmt == "raw":
			d["raw"] = b64url(m.raw)
		elif fmt in ("full", "metadata"):
			filt = {h.lower() for h in metadata_headers} if (fmt == "metadata" and metadata_headers) else None
			d["payload"] = self._render_payload(m.parsed.payload, fmt, filt)
		d["sizeEstimate"] = len(m.raw)
		d["historyId"] = str(m.history_id)
		d["internalDate"] = str(m.internal_date)
		return d

	# -- Gmail handlers (lock held) --------------------------------------------------------------------
	def _api_users_getProfile(self, c):
		return {
			"emailAddress": c.mb.email,
			"messagesTotal": len(c.mb.messages),
			"threadsTotal": len({m.thread_id for m in c.mb.messages.values()}),
			"historyId": str(c.mb.history_id),
		}

	def _api_users_watch(self, c):
		body = c.json()
		topic = body.get("topicName")
		if not isinstance(topic, str) or not TOPIC_RE.match(topic):
			raise ApiError(
				400,
				"Invalid topicName does not match projects/SOME-PROJECT/topics/SOME-TOPIC",
				"invalidArgument",
			)
		labels = self._check_labels(c.mb, body.get("labelIds") or [])
		behavior = str(body.get("labelFilterBehavior") or body.get("labelFilterAction") or "include").lower()
		if behavior not in ("include", "exclude"):
			raise ApiError(400, f"Invalid value at 'label_filter_behavior' ({behavior})", "invalidArgument")
		expiration = _now_ms() + WATCH_TTL_MS
		c.mb.watch = {
			"topicName": topic,
			"labelIds": labels,
			"labelFilterBehavior": behavior,
			"expiration": expiration,
		}
		return {"historyId": str(c.mb.history_id), "expiration": str(expiration)}

	def _api_users_stop(self, c):  # no result: 204 No Content, as Gmail answers
		c.mb.watch = None

	def _label_resource(self, mb, lab, counts=False) -> dict:
		d = {k: v for k, v in lab.items() if not k.startswith("_")}
		if counts:
			msgs = [m for m in mb.messages.values() if lab["id"] in m.label_ids]
			unread = [m for m in msgs if "UNREAD" in m.label_ids]
			d["messagesTotal"] = len(msgs)
			d["messagesUnread"] = len(unread)
			d["threadsTotal"] = len({m.thread_id for m in msgs})
			d["threadsUnread"] = len({m.thread_id for m in unread})
		return d

	def _api_labels_list(self, c):
		return {"labels": [self._label_resource(c.mb, lab) for lab in c.mb.labels.values()]}

	def _get_label(self, c) -> dict:
		lab = c.mb.labels.get(c.params["id"])
		if lab is None:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		return lab

	def _api_labels_get(self, c):
		return self._label_resource(c.mb, self._get_label(c), counts=True)

	def _label_name_taken(self, mb, name, except_id=None) -> bool:
		low = name.strip().lower()
		return any(lab["name"].lower() == low and lab["id"] != except_id for lab in mb.labels.values())

	def _api_labels_create(self, c):
		body = c.json()
		name = body.get("name")
		if not isinstance(name, str) or not name.strip():
			raise ApiError(400, "Invalid label name", "invalidArgument")
		if self._label_name_taken(c.mb, name):
			raise ApiError(409, "Label name exists or conflicts", "duplicate")
		lid = f"Label_{c.mb.next_label}"
		c.mb.next_label += 1
		lab = {
			"id": lid,
			"name": name.strip(),
			"messageListVisibility": body.get("messageListVisibility") or "show",
			"labelListVisibility": body.get("labelListVisibility") or "labelShow",
			"type": "user",
		}
		if isinstance(body.get("color"), dict):
			lab["color"] = body["color"]
		c.mb.labels[lid] = lab
		return self._label_resource(c.mb, lab)

	def _api_labels_patch(self, c):
		lab = self._get_label(c)
		if lab["type"] == "system":
			raise ApiError(400, "Invalid update request", "invalidArgument")
		body = c.json()
		if "name" in body:
			if not isinstance(body["name"], str) or not body["name"].strip():
				raise ApiError(400, "Invalid label name", "invalidArgument")
			if self._label_name_taken(c.mb, body["name"], lab["id"]):
				raise ApiError(409, "Label name exists or conflicts", "duplicate")
			lab["name"] = body["name"].strip()
		for key in ("messageListVisibility", "labelListVisibility", "color"):
			if key in body:
				lab[key] = body[key]
		return self._label_resource(c.mb, lab)

	_api_labels_update = _api_labels_patch

	def _api_labels_delete(self, c):
		lab = self._get_label(c)
		if lab["type"] == "system":
			raise ApiError(400, "Invalid delete request", "invalidArgument")
		msgs = [m for m in c.mb.messages.values() if lab["id"] in m.label_ids]
		self._modify(c.mb, msgs, [], [lab["id"]])
		del c.mb.labels[lab["id"]]

	def _get_message(self, c, key="id") -> Message:
		mid = c.params[key]
		if not re.fullmatch(r"[0-9A-Za-z]{1,40}", mid or ""):
			raise ApiError(400, "Invalid id value", "invalidArgument")
		m = c.mb.messages.get(mid)
		if m is None:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		return m

	def _list_filter(self, c):
		q = c.q1("q")
		label_ids = [x for v in c.query.get("labelIds", []) for x in v.split(",") if x]
		include = c.bool("includeSpamTrash")
		pred, q_spam = build_query(q, c.mb)
		include = include or q_spam or bool({"SPAM", "TRASH"} & set(label_ids))
		out = []
		for m in c.mb.messages.values():
			if not include and ("SPAM" in m.label_ids or "TRASH" in m.label_ids):
				continue
			if any(lid not in m.label_ids for lid in label_ids):
				continue
			if pred(m):
				out.append(m)
		out.sort(key=lambda m: (-m.internal_date, -m.seq))
		return out

	@staticmethod
	def _page_size(c, default=100, maximum=500) -> int:
		raw = c.q1("maxResults")
		if raw in (None, ""):
			return default
		try:
			n = int(raw)
		except ValueError:
			raise ApiError(400, f"Invalid value '{raw}' for maxResults", "invalidArgument") from None
		return max(1, min(maximum, n)) if n > 0 else default

	@staticmethod
	def _encode_token(*values) -> str:
		return base64.urlsafe_b64encode(":".join(str(v) for v in values).encode()).decode().rstrip("=")

	@staticmethod
	def _decode_token(token: str, n: int) -> list[str]:
		try:
			text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
			vals = text.split(":")
			if len(vals) != n:
				raise ValueError
			return vals
		except Exception:
			raise ApiError(400, "Invalid pageToken", "invalidArgument") from None

	def _api_messages_list(self, c):
		msgs = self._list_filter(c)
		size = self._page_size(c)
		token = c.q1("pageToken")
		start = 0
		if token:
			date_s, seq_s = self._decode_token(token, 2)
			key = (-int(date_s), -int(seq_s))
			while start < len(msgs) and (-msgs[start].internal_date, -msgs[start].seq) <= key:
				start += 1
		page = msgs[start : start + size]
		out = {}
		if page:
			out["messages"] = [m.ref() for m in page]
		if start + size < len(msgs) and page:
			out["nextPageToken"] = self._encode_token(page[-1].internal_date, page[-1].seq)
		out["resultSizeEstimate"] = len(msgs)
		return out

	def _api_messages_get(self, c):
		m = self._get_message(c)
		fmt = (c.q1("format") or "full").lower()
		if fmt not in ("full", "metadata", "minimal", "raw"):
			raise ApiError(400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
		return self._render_message(m, fmt, c.query.get("metadataHeaders"))

	def _api_messages_attachments_get(self, c):
		m = self._get_message(c, "messageId")
		data = m.parsed.attachments.get(c.params["id"])
		if data is None:
			raise ApiError(400, "Invalid attachment token", "invalidArgument")
		return {"size": len(data), "data": b64url(data)}

	def _api_messages_modify(self, c):
		m = self._get_message(c)
		body = c.json()
		add = self._check_labels(c.mb, body.get("addLabelIds") or [])
		remove = self._check_labels(c.mb, body.get("removeLabelIds") or [])
		self._modify(c.mb, [m], add, remove)
		return m.ref(labels=True) if m.label_ids else m.ref()

	def _api_messages_batchModify(self, c):
		body = c.json()
		ids = body.get("ids") or []
		if not isinstance(ids, list) or len(ids) > 1000:
			raise ApiError(
				400, "Too many ids (max 1000)" if isinstance(ids, list) else "Invalid ids", "invalidArgument"
			)
		add = self._check_labels(c.mb, body.get("addLabelIds") or [])
		remove = self._check_labels(c.mb, body.get("removeLabelIds") or [])
		msgs = [c.mb.messages[i] for i in ids if isinstance(i, str) and i in c.mb.messages]
		self._modify(c.mb, msgs, add, remove)

	def _api_messages_trash(self, c):
		m = self._get_message(c)
		self._modify(c.mb, [m], ["TRASH"], [])
		return m.ref(labels=True)

	def _api_messages_untrash(self, c):
		m = self._get_message(c)
		self._modify(c.mb, [m], [], ["TRASH"])
		return m.ref(labels=True) if m.label_ids else m.ref()

	def _api_messages_delete(self, c):
		self._delete(c.mb, [self._get_message(c)])

	def _api_messages_batchDelete(self, c):
		ids = c.json().get("ids") or []
		if not isinstance(ids, list) or len(ids) > 1000:
			raise ApiError(400, "Invalid ids", "invalidArgument")
		self._delete(c.mb, [c.mb.messages[i] for i in ids if isinstance(i, str) and i in c.mb.messages])

	def _raw_and_meta(self, c) -> tuple[bytes, dict]:
		"""The RFC 822 bytes and JSON metadata of send/insert/import (JSON ``raw`` or /upload forms)."""
		if c.upload:
			if c.upload.startswith("resumable"):
				raise ApiError(
					400, "Resumable uploads are not supported by the test server", "invalidArgument"
				)
			utype = (c.q1("uploadType") or "media").lower()
			ctype = c.headers.get("content-type") or ""
			if utype == "multipart" or ctype.lower().startswith("multipart/"):
				try:
					msg = BytesParser(policy=email.policy.compat32).parsebytes(
						b"Content-Type: " + ctype.encode("latin-1", "replace") + b"\r\n\r\n" + c.body
					)
					parts = msg.get_payload() if msg.is_multipart() else []
					meta = json.loads(parts[0].get_payload(decode=True) or b"{}") if len(parts) > 0 else {}
					raw = parts[1].get_payload(decode=True) if len(parts) > 1 else b""
				except Exception:
					raise ApiError(400, "Invalid multipart upload", "invalidArgument") from None
				return raw or b"", meta if isinstance(meta, dict) else {}
			return c.body, {}
		meta = c.json()
		raw_text = meta.get("raw")
		if not raw_text:
			raise ApiError(
				400,
				"'raw' RFC822 payload message string or uploading message via /upload/* URL required",
				"invalidArgument",
			)
		try:
			raw = b64_any_decode(raw_text)
		except ValueError:
			raise ApiError(400, "Invalid value for ByteString: raw", "invalidArgument") from None
		return raw, meta

	def _api_settings_sendAs_list(self, c):
		return {"sendAs": [dict(e) for e in c.mb.send_as]}

	def _api_messages_send(self, c):
		raw, meta = self._raw_and_meta(c)
		pm = parse_mail(raw)
		if not any(pm.header(h).strip() for h in ("to", "cc", "bcc")):
			raise ApiError(400, "Recipient address required", "invalidArgument")
		# Gmail stamps what a sending MTA adds when absent.
		add = []
		if not pm.header("message-id"):
			add.append(f"Message-ID: <{secrets.token_hex(12)}@mail.gmail.com>")
		if not pm.header("date"):
			add.append("Date: " + email.utils.formatdate(localtime=False))
		if not pm.header("from"):
			add.append(f"From: {c.mb.email}")
		if add:
			eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
			raw = eol.join(a.encode() for a in add) + eol + raw
			pm = parse_mail(raw)
		join = meta.get("threadId") if isinstance(meta.get("threadId"), str) else None
		m = self._insert(c.mb, raw, pm, ["SENT"], _now_ms(), join_thread=join)
		return m.ref(labels=True)

	def _insert_like(self, c, default_labels, date_source_default):
		raw, meta = self._raw_and_meta(c)
		pm = parse_mail(raw)
		labels = (
			self._check_labels(c.mb, meta.get("labelIds")) if meta.get("labelIds") else list(default_labels)
		)
		source = (c.q1("internalDateSource") or date_source_default).lower()
		when = pm.date_ms if source == "dateheader" and pm.date_ms else _now_ms()
		join = meta.get("threadId") if isinstance(meta.get("threadId"), str) else None
		m = self._insert(c.mb, raw, pm, labels, when, join_thread=join)
		return m.ref(labels=True) if m.label_ids else m.ref()

	def _api_messages_insert(self, c):
		return self._insert_like(c, [], "receivedTime")

	def _api_messages_import(self, c):
		return self._insert_like(c, ["INBOX", "UNREAD"], "dateHeader")

	def _api_threads_list(self, c):
		msgs = self._list_filter(c)
		threads: dict[str, list] = {}
		for m in msgs:  # newest first
			threads.setdefault(m.thread_id, []).append(m)
		ordered = sorted(threads.items(), key=lambda kv: (-kv[1][0].internal_date, -kv[1][0].seq))
		size = self._page_size(c)
		start = 0
		token = c.q1("pageToken")
		if token:
			date_s, seq_s = self._decode_token(token, 2)
			key = (-int(date_s), -int(seq_s))
			while (
				start < len(ordered)
				and (-ordered[start][1][0].internal_date, -ordered[start][1][0].seq) <= key
			):
				start += 1
		page = ordered[start : start + size]
		out = {}
		if page:
			items = []
			for tid, tmsgs in page:
				all_msgs = c.mb.thread_messages(tid)
				latest = all_msgs[-1] if all_msgs else tmsgs[0]
				items.append(
					{
						"id": tid,
						"snippet": latest.parsed.snippet,
						"historyId": str(max(m.history_id for m in (all_msgs or tmsgs))),
					}
				)
			out["threads"] = items
		if start + size < len(ordered) and page:
			last = page[-1][1][0]
			out["nextPageToken"] = self._encode_token(last.internal_date, last.seq)
		out["resultSizeEstimate"] = len(ordered)
		return out

	def _get_thread(self, c) -> list[Message]:
		tid = c.params["id"]
		if not re.fullmatch(r"[0-9A-Za-z]{1,40}", tid or ""):
			raise ApiError(400, "Invalid id value", "invalidArgument")
		msgs = c.mb.thread_messages(tid)
		if not msgs:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		return msgs

	def _api_threads_get(self, c):
		msgs = self._get_thread(c)
		fmt = (c.q1("format") or "full").lower()
		if fmt not in ("full", "metadata", "minimal"):
			raise ApiError(400, f"Invalid value at 'format' ({fmt})", "invalidArgument")
		return {
			"id": c.params["id"],
			"historyId": str(max(m.history_id for m in msgs)),
			"messages": [self._render_message(m, fmt, c.query.get("metadataHeaders")) for m in msgs],
		}

	def _thread_result(self, tid, msgs):
		return {"id": tid, "messages": [m.ref(labels=True) for m in msgs]}

	def _api_threads_modify(self, c):
		msgs = self._get_thread(c)
		body = c.json()
		add = self._check_labels(c.mb, body.get("addLabelIds") or [])
		remove = self._check_labels(c.mb, body.get("removeLabelIds") or [])
		self._modify(c.mb, msgs, add, remove)
		return self._thread_result(c.params["id"], msgs)

	def _api_threads_trash(self, c):
		msgs = self._get_thread(c)
		self._modify(c.mb, msgs, ["TRASH"], [])
		return self._thread_result(c.params["id"], msgs)

	def _api_threads_untrash(self, c):
		msgs = self._get_thread(c)
		self._modify(c.mb, msgs, [], ["TRASH"])
		return self._thread_result(c.params["id"], msgs)

	def _api_threads_delete(self, c):
		self._delete(c.mb, self._get_thread(c))

	def _api_history_list(self, c):
		raw = c.q1("startHistoryId")
		if not raw:
			raise ApiError(400, "Missing required parameter: startHistoryId", "required")
		try:
			start = int(raw)
		except ValueError:
			raise ApiError(400, f"Invalid value '{raw}' for startHistoryId", "invalidArgument") from None
		mb = c.mb
		if start < mb.history_floor:
			raise ApiError(404, "Requested entity was not found.", "notFound")
		types = {t for v in c.query.get("historyTypes", []) for t in v.split(",") if t}
		kinds = {
			"messageAdded": "messagesAdded",
			"messageDeleted": "messagesDeleted",
			"labelAdded": "labelsAdded",
			"labelRemoved": "labelsRemoved",
		}
		wanted = {kinds[t] for t in types if t in kinds} if types else set(kinds.values())
		label = c.q1("labelId")
		size = self._page_size(c)
		token = c.q1("pageToken")
		after = start
		if token:
			try:
				after = max(start, int(self._decode_token(token, 1)[0]))
			except ValueError:
				raise ApiError(400, "Invalid pageToken", "invalidArgument") from None
		records = []
		more = False
		for rec in mb.history:
			if rec["id"] <= after:
				continue
			out = {"id": str(rec["id"])}
			keep = False
			for field in ("messagesAdded", "messagesDeleted", "labelsAdded", "labelsRemoved"):
				if field not in rec or field not in wanted:
					continue
				entries = rec[field]
				if label:
					entries = [
						e
						for e in entries
						if label in e["message"].get("labelIds", []) or label in e.get("labelIds", [])
					]
				if entries:
					out[field] = [json.loads(json.dumps(e)) for e in entries]
					keep = True
			if not keep:
				continue
			if len(records) == size:
				more = True
				break
			records.append({"id": out.pop("id"), "messages": [dict(x) for x in rec["messages"]], **out})
		resp = {}
		if records:
			resp["history"] = records
		if more:
			resp["nextPageToken"] = self._encode_token(records[-1]["id"])
		resp["historyId"] = str(mb.history_id)
		return resp


class _Call:
	"""One Gmail call as seen by a handler."""

	__slots__ = ("_json", "body", "headers", "mb", "method", "params", "query", "raw_query", "upload")

	def __init__(self, mb, method, params, query, headers, body, upload, raw_query):
		self.mb = mb
		self.method = method
		self.params = params
		self.query = query
		self.headers = headers
		self.body = body or b""
		self.upload = upload
		self.raw_query = raw_query
		self._json = None

	def q1(self, name, default=None):
		vals = self.query.get(name)
		return vals[0] if vals else default

	def bool(self, name) -> bool:
		return (self.q1(name) or "").lower() in ("1", "true", "yes")

	def json(self) -> dict:
		if self._json is None:
			if not self.body.strip():
				self._json = {}
			else:
				try:
					data = json.loads(self.body.decode("utf-8"))
				except (ValueError, UnicodeDecodeError):
					raise ApiError(400, "Invalid JSON payload received.", "parseError") from None
				if not isinstance(data, dict):
					raise ApiError(400, "Invalid JSON payload received. Expected an object.", "parseError")
				self._json = data
		return self._json
