"""Gmail search (the ``q=`` parameter of messages.list / threads.list): :func:`build_query` compiles a
search string into a predicate over stored messages."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from atlas_integrations.testing.gmail.common import _now_ms
from atlas_integrations.testing.gmail.mailbox import Mailbox

# --------------------------------------------------------------------------------------------------
# search query (q=)
# --------------------------------------------------------------------------------------------------
_CATEGORIES = {
	"primary": "CATEGORY_PERSONAL",
	"personal": "CATEGORY_PERSONAL",
	"social": "CATEGORY_SOCIAL",
	"promotions": "CATEGORY_PROMOTIONS",
	"updates": "CATEGORY_UPDATES",
	"forums": "CATEGORY_FORUMS",
}
_IN_LABELS = {
	"inbox": "INBOX",
	"sent": "SENT",
	"trash": "TRASH",
	"spam": "SPAM",
	"starred": "STARRED",
	"important": "IMPORTANT",
	"drafts": "DRAFT",
	"draft": "DRAFT",
	"unread": "UNREAD",
}


def _q_date_ms(value: str) -> int | None:
	v = value.strip()
	if re.fullmatch(r"\d{9,}", v):
		return int(v) * 1000
	m = re.fullmatch(r"(\d{4})[/-](\d{1,2})[/-](\d{1,2})", v)
	if not m:
		m2 = re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", v)
		if not m2:
			return None
		month, day, year = (int(x) for x in m2.groups())
	else:
		year, month, day = (int(x) for x in m.groups())
	try:
		return int(datetime(year, month, day, tzinfo=timezone.utc).timestamp() * 1000)
	except (ValueError, OverflowError):
		return None


def _size_bytes(value: str) -> int | None:
	m = re.fullmatch(r"(\d+)([kKmM]?)", value.strip())
	if not m:
		return None
	n = int(m.group(1))
	return n * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def _has_label(lid: str):
	return lambda msg: lid in msg.label_ids


def _date_at_least(ms: int):
	return lambda msg: msg.internal_date >= ms


def _date_before(ms: int):
	return lambda msg: msg.internal_date < ms


def _header_contains(names: list[str], needle: str):
	return lambda msg: any(needle in v.lower() for n in names for v in msg.parsed.header_all(n))


def _never(msg) -> bool:
	return False


def _always(msg) -> bool:
	return True


def build_query(q: str | None, mb: Mailbox, now_ms: int | None = None):
	"""Compile a Gmail search string into ``(predicate(Message) -> bool, includes_spam_trash)``.

	Supported: after:/before:/older:/newer: (epoch seconds or YYYY/MM/DD, UTC), newer_than:/older_than:
	(Nd, Nm, Ny, Nh), in:, is:, label:, category:, from:/to:/cc:/bcc:/subject:/deliveredto:/list:
	(substring), has:attachment, rfc822msgid:, filename:, larger:/smaller:, each negatable with ``-``.
	Anything else (free text, OR, braces, unknown operators) is ignored.
	"""
	now_ms = _now_ms() if now_ms is None else now_ms
	preds = []
	include_spam_trash = False
	# operator names hold digits too (rfc822msgid:)
	for token in re.findall(r'-?[A-Za-z0-9_]+:"[^"]*"|-?[A-Za-z0-9_]+:\([^)]*\)|-?"[^"]*"|\S+', q or ""):
		neg = token.startswith("-") and len(token) > 1
		tok = token[1:] if neg else token
		m = re.fullmatch(r"([A-Za-z][A-Za-z0-9_]*):(.*)", tok, re.DOTALL)
		if not m:
			continue  # free text: ignored
		op, val = m.group(1).lower(), m.group(2).strip().strip('"').strip("()")
		low = val.lower()
		pred = None
		if op in ("after", "newer", "before", "older"):
			ts = _q_date_ms(val)
			if ts is not None:
				pred = _date_at_least(ts) if op in ("after", "newer") else _date_before(ts)
		elif op in ("newer_than", "older_than"):
			mm = re.fullmatch(r"(\d+)([hdmy])", low)
			if mm:
				unit = {"h": 3600, "d": 86400, "m": 30 * 86400, "y": 365 * 86400}[mm.group(2)]
				cut = now_ms - int(mm.group(1)) * unit * 1000
				pred = _date_at_least(cut) if op == "newer_than" else _date_before(cut)
		elif op == "in":
			if low in ("chats", "chat"):
				pred = _never  # no chats are stored here
			elif low in ("anywhere", "all"):
				pred = _always
				include_spam_trash = include_spam_trash or not neg
			elif low in _IN_LABELS:
				pred = _has_label(_IN_LABELS[low])
				if _IN_LABELS[low] in ("TRASH", "SPAM") and not neg:
					include_spam_trash = True
			else:
				lab = mb.label_by_name(val)
				pred = _has_label(lab["id"]) if lab else _never
		elif op == "is":
			if low == "read":
				pred = lambda msg: "UNREAD" not in msg.label_ids
			elif low in _IN_LABELS:
				pred = _has_label(_IN_LABELS[low])
		elif op == "label":
			lab = mb.label_by_name(val)
			if lab is None:
				pred = _never  # Gmail answers no results for an unknown label
			else:
				pred = _has_label(lab["id"])
				if lab["id"] in ("TRASH", "SPAM") and not neg:
					include_spam_trash = True
		elif op == "category":
			if low in _CATEGORIES:
				pred = _has_label(_CATEGORIES[low])
		elif op in ("from", "to", "cc", "bcc", "subject", "deliveredto", "list"):
			names = {"deliveredto": ["delivered-to"], "list": ["list-id", "list-post"]}.get(op, [op])
			pred = _header_contains(names, low)
		elif op == "has":
			if low == "attachment":
				pred = lambda msg: bool(msg.parsed.attachments)
			elif low == "userlabels":
				pred = lambda msg: any(lid.startswith("Label_") for lid in msg.label_ids)
			elif low == "nouserlabels":
				pred = lambda msg: not any(lid.startswith("Label_") for lid in msg.label_ids)
		elif op == "rfc822msgid":
			want = val.strip("<>")
			pred = lambda msg, want=want: msg.parsed.message_id == want
		elif op == "filename":
			pred = lambda msg, needle=low: any(needle in f.lower() for f in msg.parsed.filenames)
		elif op in ("larger", "smaller", "size"):
			n = _size_bytes(val)
			if n is not None:
				if op == "smaller":
					pred = lambda msg, n=n: len(msg.raw) < n
				else:
					pred = lambda msg, n=n: len(msg.raw) > n
		if pred is None:
			continue  # unknown operator or value: ignored
		preds.append((pred, neg))

	def predicate(msg) -> bool:
		return all(bool(p(msg)) != negated for p, negated in preds)

	return predicate, include_spam_trash
