"""The mailboxes of the local Graph server: well-known folders, messages held as their exact RFC 822 bytes
with immutable ids, and a change log per mailbox from which per-folder delta rounds are answered."""

from __future__ import annotations

import base64
import email
import email.header
import email.policy
import email.utils
import hashlib
import itertools
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

#: Graph's well-known folder names this server has, with their display names
WELL_KNOWN = {"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts", "deleteditems": "Deleted Items",
			  "archive": "Archive", "junkemail": "Junk Email"}


def _graph_id(prefix: str, *parts: str) -> str:
	"""An id in Graph's shape (URL-safe base64 of a digest; immutable ids start ``AAkA``, mutable ``AAMk``)."""
	digest = hashlib.sha256("\x00".join(parts).encode()).digest() + secrets.token_bytes(6)
	return prefix + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def iso(ts: float) -> str:
	"""Epoch seconds as Graph writes a DateTimeOffset: ``2026-12-06T10:00:00Z``."""
	return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _addresses(value: str | None) -> list[dict]:
	return [{"emailAddress": {"name": name or addr, "address": addr}}
			for name, addr in email.utils.getaddresses([value or ""]) if addr]


@dataclass
class GraphMessage:
	"""One message. ``id`` is its immutable id (kept across moves); ``raw`` the exact RFC 822 bytes."""

	id: str
	folder: str  # folder id
	raw: bytes
	conversation_id: str
	internet_message_id: str
	received: float  # epoch seconds
	is_read: bool = False
	is_draft: bool = False
	categories: list[str] = field(default_factory=list)
	flag: str = "notFlagged"  # notFlagged | flagged | complete
	change_key: str = ""
	modified: float = 0.0
	extended: dict[str, str] = field(default_factory=dict)  # single-value extended properties: id -> value
	draft_fields: dict = field(default_factory=dict)  # a draft's subject, body, recipients, threading headers

	def mutable_id(self) -> str:
		"""The id Graph gives without ``Prefer: IdType="ImmutableId"``: it changes when the message moves."""
		digest = hashlib.sha256(f"{self.id}\x00{self.folder}".encode()).digest()
		return "AAMkAG" + base64.urlsafe_b64encode(digest).decode().rstrip("=")

	def resource(self, immutable: bool) -> dict:
		"""The message resource (the properties the app reads), ids as the request asked for them."""
		head = email.message_from_bytes(self.raw, policy=email.policy.compat32)
		try:  # an unknown or broken charset in the header: Graph shows the text as it can
			subject = str(email.header.make_header(email.header.decode_header(str(head.get("Subject") or ""))))
		except (LookupError, UnicodeError, ValueError):
			subject = str(head.get("Subject") or "")
		sender = _addresses(head.get("From"))
		return {
			"id": self.id if immutable else self.mutable_id(),
			"createdDateTime": iso(self.received), "lastModifiedDateTime": iso(self.modified),
			"changeKey": self.change_key, "categories": list(self.categories),
			"receivedDateTime": iso(self.received), "sentDateTime": iso(self.received),
			"hasAttachments": b"Content-Disposition: attachment" in self.raw,
			"internetMessageId": self.internet_message_id, "subject": subject,
			"bodyPreview": "", "importance": "normal", "parentFolderId": self.folder,
			"conversationId": self.conversation_id, "isRead": self.is_read, "isDraft": self.is_draft,
			"from": sender[0] if sender else None, "sender": sender[0] if sender else None,
			"toRecipients": _addresses(head.get("To")), "ccRecipients": _addresses(head.get("Cc")),
			"flag": {"flagStatus": self.flag},
		}


@dataclass
class Change:
	"""One entry of a mailbox's change log: its sequence number, the message and the folders it concerns."""

	seq: int
	message: str
	folders: tuple[str, ...]  # the folders the change concerns (both of a move)


@dataclass
class GraphMailbox:
	"""A user's mailbox: folders by id, messages by immutable id, the change log and its sequence."""

	address: str
	folders: dict[str, dict] = field(default_factory=dict)  # id -> {"id", "displayName", "wellKnownName"}
	messages: dict[str, GraphMessage] = field(default_factory=dict)
	changes: list[Change] = field(default_factory=list)
	seq: itertools.count = field(default_factory=lambda: itertools.count(1))
	last_seq: int = 0
	generation: int = 1  # delta tokens of an older generation answer 410 (sync state gone)
	by_internet_id: dict[str, str] = field(default_factory=dict)  # Message-ID -> conversationId (threading)
	#: called with (message id, folder ids, "created" | "updated" | "deleted") after each change
	listener: object = None

	def __post_init__(self):
		for name, display in WELL_KNOWN.items():
			fid = _graph_id("AAMkAG", self.address, name)
			self.folders[fid] = {"id": fid, "displayName": display, "wellKnownName": name}

	def folder_id(self, name_or_id: str) -> str | None:
		"""A folder's id from its id or well-known name (case-insensitive), else None."""
		if name_or_id in self.folders:
			return name_or_id
		for fid, folder in self.folders.items():
			if folder["wellKnownName"] == name_or_id.lower():
				return fid
		return None

	def _log(self, message: str, *folders: str, kind: str = "updated") -> None:
		self.last_seq = next(self.seq)
		self.changes.append(Change(self.last_seq, message, tuple(dict.fromkeys(folders))))
		if self.listener:
			self.listener(message, folders, kind)

	def _touch(self, msg: GraphMessage) -> None:
		msg.change_key = secrets.token_urlsafe(12)
		msg.modified = time.time()

	def add(self, raw: bytes, folder: str = "inbox", received: float | None = None, is_read: bool = False,
			is_draft: bool = False) -> GraphMessage:
		"""Deliver ``raw`` into ``folder`` (id or well-known name). Its conversation is the one of the message
		it replies to (In-Reply-To / References) when that is in the mailbox, else a new one."""
		fid = self.folder_id(folder)
		head = email.message_from_bytes(raw, policy=email.policy.compat32)
		mid = (head.get("Message-ID") or "").strip() or f"<{secrets.token_hex(8)}@graph.local>"
		refs = (str(head.get("In-Reply-To") or "") + " " + str(head.get("References") or "")).split()
		conversation = next((self.by_internet_id[r] for r in refs if r in self.by_internet_id), None)
		date = None
		if received is None and head.get("Date"):
			try:  # a message's Date header is hostile input too
				date = email.utils.parsedate_to_datetime(str(head["Date"])).timestamp()
			except (TypeError, ValueError, IndexError, OverflowError):
				date = None
		msg = GraphMessage(id=_graph_id("AAkALg", self.address, mid), folder=fid, raw=raw,
						   conversation_id=conversation or _graph_id("AAQk", self.address, mid),
						   internet_message_id=mid, received=received or date or time.time(), is_read=is_read,
						   is_draft=is_draft)
		self._touch(msg)
		self.messages[msg.id] = msg
		self.by_internet_id.setdefault(mid, msg.conversation_id)
		self._log(msg.id, fid, kind="created")
		return msg

	def update(self, message_id: str, **values) -> GraphMessage:
		"""Change a message's isRead / categories / flag (``is_read``, ``categories``, ``flag``)."""
		msg = self.messages[message_id]
		for key, value in values.items():
			setattr(msg, key, value)
		self._touch(msg)
		self._log(msg.id, msg.folder)
		return msg

	def move(self, message_id: str, folder: str) -> GraphMessage:
		"""Move a message to another folder; its immutable id stays."""
		msg = self.messages[message_id]
		old, msg.folder = msg.folder, self.folder_id(folder)
		self._touch(msg)
		self.last_seq = next(self.seq)
		self.changes.append(Change(self.last_seq, msg.id, (old, msg.folder)))
		if self.listener:  # Graph: deleted in the folder it left, created in the one it entered
			self.listener(msg.id, (old,), "deleted")
			self.listener(msg.id, (msg.folder,), "created")
		return msg

	def delete(self, message_id: str) -> None:
		"""Delete a message for good (not a move to Deleted Items)."""
		msg = self.messages.pop(message_id)
		self._log(message_id, msg.folder, kind="deleted")

	def load(self, directory: str | Path, folder: str = "inbox", spread_days: float = 20) -> int:
		"""Deliver every ``*.eml`` under ``directory`` (sorted), received times spread over the last
		``spread_days`` days. Returns how many."""
		paths = sorted(Path(directory).rglob("*.eml"))
		now = time.time()
		for i, path in enumerate(paths):
			self.add(path.read_bytes(), folder, received=now - spread_days * 86400 * (len(paths) - i) / max(len(paths), 1))
		return len(paths)
