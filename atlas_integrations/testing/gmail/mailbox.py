"""The in-memory mailbox: stored messages, labels, history records and the thread union-find
(:class:`Message`, :class:`Mailbox`), and the server's mailbox methods (:class:`_MailboxMixin`): creating
mailboxes, loading ``.eml`` directories, test-side changes, and the mutations every Gmail call goes
through, which append history and trigger push."""

from __future__ import annotations

import hashlib
from pathlib import Path

from atlas_integrations.testing.gmail.common import ApiError, _now_ms
from atlas_integrations.testing.gmail.mime import ParsedMail, b64url, parse_mail

SYSTEM_LABELS = (
	"INBOX",
	"SENT",
	"UNREAD",
	"STARRED",
	"IMPORTANT",
	"TRASH",
	"SPAM",
	"DRAFT",
	"CATEGORY_PERSONAL",
	"CATEGORY_SOCIAL",
	"CATEGORY_PROMOTIONS",
	"CATEGORY_UPDATES",
	"CATEGORY_FORUMS",
)

FIRST_HISTORY_ID = 1000


# --------------------------------------------------------------------------------------------------
# mailbox model
# --------------------------------------------------------------------------------------------------
class Message:
	"""One stored message. ``raw`` is exactly the bytes inserted; ``label_ids`` keeps Gmail's order."""

	__slots__ = (
		"history_id",
		"id",
		"internal_date",
		"label_ids",
		"mailbox",
		"parsed",
		"raw",
		"seq",
		"source",
	)

	def __init__(self, mailbox, mid, seq, raw, parsed, label_ids, internal_date, source=None):
		self.mailbox = mailbox
		self.id = mid
		self.seq = seq
		self.raw = raw
		self.parsed = parsed
		self.label_ids = list(label_ids)
		self.internal_date = int(internal_date)
		self.history_id = 0
		self.source = source

	@property
	def thread_id(self) -> str:
		return self.mailbox.thread_of(self.id)

	def ref(self, labels: bool = False) -> dict:
		d = {"id": self.id, "threadId": self.thread_id}
		if labels:
			d["labelIds"] = list(self.label_ids)
		return d

	def __repr__(self):
		return f"<Message {self.id} thread={self.thread_id} labels={self.label_ids}>"


class Mailbox:
	"""One Gmail account: messages, labels, history and the thread union-find."""

	def __init__(self, address: str):
		self.email = address
		self.messages: dict[str, Message] = {}
		self.seq = 0
		self.ids_ever: set[str] = set()
		self.history_id = FIRST_HISTORY_ID
		self.history: list[dict] = []
		self.history_floor = 0  # startHistoryId below this -> 404
		# users.watch state: {"topicName", "labelIds", "labelFilterBehavior", "expiration" (epoch ms)}
		self.watch: dict | None = None
		self.sent_from: set[str] = {address.lower()}
		# users.settings.sendAs: the primary address, then aliases added with add_send_as()
		self.send_as: list[dict] = [{"sendAsEmail": address, "displayName": "", "replyToAddress": "", "signature": "",
									 "isPrimary": True, "isDefault": True, "treatAsAlias": False,
									 "verificationStatus": "accepted"}]
		self.labels: dict[str, dict] = {}
		self.next_label = 1
		for lid in SYSTEM_LABELS:
			hidden = lid.startswith("CATEGORY_") or lid in ("UNREAD", "STARRED", "IMPORTANT")
			self.labels[lid] = {
				"id": lid,
				"name": lid,
				"type": "system",
				"messageListVisibility": "hide",
				"labelListVisibility": "labelHide" if hidden else "labelShow",
			}
		self._uf_parent: dict[str, str] = {}
		self._uf_best: dict[str, tuple] = {}

	# -- threads (union-find over Message-ID / In-Reply-To / References) --
	def _find(self, node: str) -> str:
		parent = self._uf_parent
		if node not in parent:
			parent[node] = node
			return node
		root = node
		while parent[root] != root:
			root = parent[root]
		while parent[node] != root:
			parent[node], node = root, parent[node]
		return root

	def _union(self, a: str, b: str) -> None:
		ra, rb = self._find(a), self._find(b)
		if ra == rb:
			return
		best = [x for x in (self._uf_best.get(ra), self._uf_best.get(rb)) if x is not None]
		self._uf_parent[rb] = ra
		self._uf_best.pop(rb, None)
		if best:
			self._uf_best[ra] = min(best)

	def _thread_add(self, m: Message, join_thread: str | None = None) -> None:
		node = "g:" + m.id
		self._uf_parent[node] = node
		self._uf_best[node] = (m.internal_date, m.seq, m.id)
		if m.parsed.message_id:
			self._union(node, "m:" + m.parsed.message_id)
		for ref in m.parsed.parents:
			self._union(node, "m:" + ref)
		if join_thread and ("g:" + join_thread) in self._uf_parent:
			self._union(node, "g:" + join_thread)

	def thread_of(self, mid: str) -> str:
		best = self._uf_best.get(self._find("g:" + mid))
		return best[2] if best else mid

	def thread_messages(self, thread_id: str) -> list[Message]:
		msgs = [m for m in self.messages.values() if m.thread_id == thread_id]
		msgs.sort(key=lambda m: (m.internal_date, m.seq))
		return msgs

	def label_by_name(self, name: str):
		low = name.lower()
		for lab in self.labels.values():
			if lab["id"].lower() == low or lab["name"].lower() == low:
				return lab
		alt = low.replace("-", " ")
		for lab in self.labels.values():
			n = lab["name"].lower()
			if n.replace("-", " ").replace("/", " ") == alt.replace("/", " "):
				return lab
		return None


# --------------------------------------------------------------------------------------------------
# the server's mailbox methods
# --------------------------------------------------------------------------------------------------
class _MailboxMixin:
	"""Mailbox setup, ``.eml`` loading, test-side changes and history-recording mutations of
	:class:`GmailTestServer` (state: ``_lock``, ``_mailboxes``; ``_bump`` calls ``_push_changed``).
	"""

	# -- setup ----------------------------------------------------------------------------------------
	def add_mailbox(self, address: str, sent_from=None) -> Mailbox:
		"""Create (or return) the mailbox for ``address``. ``sent_from``: extra From addresses that mean SENT."""
		key = address.strip().lower()
		with self._lock:
			mb = self._mailboxes.get(key)
			if mb is None:
				mb = self._mailboxes[key] = Mailbox(address.strip())
			if sent_from:
				mb.sent_from.update(
					a.strip().lower() for a in ([sent_from] if isinstance(sent_from, str) else sent_from)
				)
			return mb

	def add_send_as(self, address: str, alias: str, display_name: str = "", verified: bool = True,
					default: bool = False) -> dict:
		"""Add a send-as alias to the mailbox (``verificationStatus`` accepted or pending); mail From it
		counts as SENT. ``default``: Gmail's default From address from now on (``isDefault``; exactly one
		entry of a mailbox has it). Returns the SendAs resource."""
		with self._lock:
			mb = self.mailbox(address)
			entry = {"sendAsEmail": alias, "displayName": display_name, "replyToAddress": "", "signature": "",
					 "isPrimary": False, "isDefault": bool(default), "treatAsAlias": True,
					 "verificationStatus": "accepted" if verified else "pending"}
			if default:
				for other in mb.send_as:
					other["isDefault"] = False
			mb.send_as.append(entry)
			mb.sent_from.add(alias.strip().lower())
			return dict(entry)

	def mailbox(self, address: str) -> Mailbox:
		"""The mailbox for ``address`` (KeyError if unknown)."""
		return self._mailboxes[address.strip().lower()]

	@property
	def mailboxes(self) -> list[Mailbox]:
		return list(self._mailboxes.values())

	def _default_labels(self, mb: Mailbox, pm: ParsedMail) -> list[str]:
		if pm.from_addr and pm.from_addr in mb.sent_from:
			return ["SENT"]
		return ["UNREAD", "INBOX"]

	def load_eml_dir(self, address: str, path, spread_days: float | None = None, sent_from=None) -> list[str]:
		"""Load every ``*.eml`` under ``path`` (recursively, sorted by path) into the mailbox.

		Args:
			spread_days: re-time the loaded messages evenly across the last N days ending now, keeping
				their chronological order by Date header (undated ones last).
			sent_from: From addresses whose messages get SENT instead of INBOX+UNREAD.

		Returns:
			Message ids in path order.
		"""
		root = Path(path)
		files = sorted(
			(p for p in root.rglob("*.eml") if p.is_file()), key=lambda p: p.relative_to(root).as_posix()
		)
		mb = self.add_mailbox(address, sent_from=sent_from)
		loaded = []
		for p in files:
			raw = p.read_bytes()
			loaded.append((p.relative_to(root).as_posix(), raw, parse_mail(raw)))
		now = _now_ms()
		dates = [pm.date_ms for _, _, pm in loaded]
		if spread_days is not None and loaded:
			window = int(float(spread_days) * 86400 * 1000)
			order = sorted(range(len(loaded)), key=lambda i: (dates[i] is None, dates[i] or 0, i))
			step = window / len(loaded)
			start = now - window
			for rank, i in enumerate(order):
				dates[i] = int(start + step * (rank + 0.5))
		else:
			dates = [d if d is not None else now for d in dates]
		ids = []
		with self._lock:
			for (rel, raw, pm), when in zip(loaded, dates):
				m = self._insert(mb, raw, pm, self._default_labels(mb, pm), when, source=rel)
				ids.append(m.id)
		return ids

	def insert_message(self, address: str, raw, label_ids=None, internal_date_ms: int | None = None) -> str:
		"""Store one RFC 822 message (bytes kept as-is) and return its id. Threads like Gmail.

		``label_ids`` None -> INBOX+UNREAD, or SENT when From is the mailbox (or a sent_from address).
		``internal_date_ms`` None -> now.
		"""
		if isinstance(raw, str):
			raw = raw.encode("utf-8")
		pm = parse_mail(raw)
		mb = self.add_mailbox(address)
		with self._lock:
			labels = self._default_labels(mb, pm) if label_ids is None else self._check_labels(mb, label_ids)
			when = _now_ms() if internal_date_ms is None else int(internal_date_ms)
			return self._insert(mb, raw, pm, labels, when).id

	def add_label(self, address: str, name: str) -> str:
		"""Create a user label as if the user did it in Gmail (any name, hostile ones included). Returns its id."""
		with self._lock:
			mb = self.add_mailbox(address)
			lid = f"Label_{mb.next_label}"
			mb.next_label += 1
			mb.labels[lid] = {"id": lid, "name": name, "messageListVisibility": "show",
							  "labelListVisibility": "labelShow", "type": "user"}
			return lid

	def modify_message(self, address: str, msg_id: str, add_label_ids=(), remove_label_ids=()) -> list[str]:
		"""Change labels as if the user did it in Gmail (records history). Returns the new labelIds."""
		with self._lock:
			mb = self.mailbox(address)
			m = mb.messages[msg_id]
			self._modify(
				mb,
				[m],
				self._check_labels(mb, add_label_ids or []),
				self._check_labels(mb, remove_label_ids or []),
			)
			return list(m.label_ids)

	def delete_message(self, address: str, msg_id: str) -> None:
		"""Permanently delete a message as if the user did it (records messagesDeleted)."""
		with self._lock:
			mb = self.mailbox(address)
			self._delete(mb, [mb.messages[msg_id]])

	def expire_history(self, address: str) -> None:
		"""Drop every history record: any startHistoryId below the current historyId now answers 404."""
		with self._lock:
			mb = self.mailbox(address)
			mb.history.clear()
			mb.history_floor = mb.history_id

	def advance_history_id(self, address: str, steps: int = 1) -> str:
		"""Move the mailbox's historyId on without any history record (as Gmail does for changes
		history.list does not report, e.g. settings). Returns the new historyId."""
		with self._lock:
			mb = self.mailbox(address)
			mb.history_id += int(steps)
			return str(mb.history_id)

	def dump_messages(self, address: str) -> list[dict]:
		"""Every stored message in insertion order: ``{"id", "threadId", "labelIds", "internalDate",
		"historyId", "raw" (base64url), "source" (path relative to the loaded dir, or None)}``."""
		with self._lock:
			mb = self.mailbox(address)
			return [
				{
					"id": m.id,
					"threadId": m.thread_id,
					"labelIds": list(m.label_ids),
					"internalDate": str(m.internal_date),
					"historyId": str(m.history_id),
					"raw": b64url(m.raw),
					"source": m.source,
				}
				for m in mb.messages.values()
			]

	# -- mailbox mutations (call with the lock held) ----------------------------------------------------
	def _check_labels(self, mb: Mailbox, label_ids) -> list[str]:
		if isinstance(label_ids, str):
			label_ids = [label_ids]
		out = []
		for lid in label_ids or []:
			if not isinstance(lid, str) or lid not in mb.labels:
				raise ApiError(400, f"Invalid label: {lid}", "invalidArgument")
			if lid not in out:
				out.append(lid)
		return out

	def _bump(self, mb: Mailbox, msgs: list[Message], **fields) -> int:
		mb.history_id += 1
		rec = {"id": mb.history_id, "messages": [m.ref() for m in msgs]}
		rec.update(fields)
		mb.history.append(rec)
		for m in msgs:
			m.history_id = mb.history_id
		self._push_changed(mb, msgs, fields)
		return mb.history_id

	def _insert(self, mb, raw, pm, labels, internal_date, source=None, join_thread=None) -> Message:
		mb.seq += 1
		salt = 0
		while True:
			mid = hashlib.sha1(f"{mb.email.lower()}\0{mb.seq}\0{salt}\0".encode() + raw).hexdigest()[:16]
			if mid not in mb.ids_ever:
				break
			salt += 1
		mb.ids_ever.add(mid)
		m = Message(mb, mid, mb.seq, raw, pm, labels, internal_date, source)
		mb.messages[mid] = m
		mb._thread_add(m, join_thread)
		self._bump(mb, [m], messagesAdded=[{"message": m.ref(labels=True)}])
		return m

	def _modify(self, mb, msgs, add, remove) -> None:
		for m in msgs:
			added = [lid for lid in add if lid not in m.label_ids and lid not in remove]
			removed = [lid for lid in remove if lid in m.label_ids]
			if not added and not removed:
				continue
			m.label_ids = [lid for lid in m.label_ids if lid not in removed] + added
			fields = {}
			if added:
				fields["labelsAdded"] = [{"message": m.ref(labels=True), "labelIds": added}]
			if removed:
				fields["labelsRemoved"] = [{"message": m.ref(labels=True), "labelIds": removed}]
			self._bump(mb, [m], **fields)

	def _delete(self, mb, msgs) -> None:
		for m in msgs:
			if mb.messages.pop(m.id, None) is None:
				continue
			self._bump(mb, [m], messagesDeleted=[{"message": m.ref(labels=True)}])
