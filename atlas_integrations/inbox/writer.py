"""What every mail source writes for a message, in one place: the Communication values a parsed RFC 822
message gives, and an Inbox Thread's aggregates from its messages.

Gmail's sync (``gmail/store.py``) and the inbound route (``inbox/inbound.py``) build their rows with these
and add only what is theirs: the mailbox and the provider's ids and flags, or the route and its key. Every
mail-derived text value goes through the one convention of :mod:`atlas_integrations.inbox.text`; the body
is sanitized with nh3 (:func:`atlas_integrations.inbox.html.sanitize`).
"""

from __future__ import annotations

import html
import json
from datetime import datetime

from atlas_integrations.inbox.html import sanitize, text_to_html
from atlas_integrations.inbox.mime import ParsedMessage, format_address, rfc_message_key, snippet_of
from atlas_integrations.inbox.text import mail_text, plain, sender_values

DATA_LENGTH = 140  # varchar length of Frappe Data fields
REFERENCES_LENGTH = 10_000  # characters of ``atlas_references`` kept
PARTICIPANTS = 50  # addresses an Inbox Thread lists


def addresses(pairs: list[tuple[str, str]]) -> str:
	"""Addresses for Communication ``recipients``/``cc``/``bcc``/``atlas_reply_to`` (Code fields: the exact
	text, which Frappe escapes wherever it shows a Code value), comma separated."""
	return ", ".join(format_address(p) for p in pairs)


def message_values(parsed: ParsedMessage, communication_date: datetime, full: bool = True,
				   snippet: str | None = None) -> dict:
	"""The Communication values of a parsed message, the same for every source.

	Args:
		parsed: :func:`atlas_integrations.inbox.mime.parse_message`'s result.
		communication_date: when the message happened, naive in the site's time zone (as Frappe stores a
			Datetime); the source decides (Date header, or when the provider received it).
		full: store the body (``content`` sanitized HTML, ``text_content``); False keeps only the snippet
			(Atlas Settings "snippet only").
		snippet: the provider's snippet as plain text; None makes one from the body.

	Returns:
		``{field: value}`` for subject, sender (:func:`sender_values`), recipients, cc, bcc,
		communication_date, message_id, content, text_content, and the Smart Inbox pipeline's inputs
		(``atlas_snippet``, ``atlas_in_reply_to``, ``atlas_reply_to``, ``atlas_references`` (normalised
		Message-IDs, space separated, References then In-Reply-To, each once), ``atlas_signal_headers``,
		``atlas_message_key``, ``atlas_body_stored``, ``atlas_parse_error``, ``has_attachment`` 0 until the
		attachments are stored).
	"""
	snippet = snippet or snippet_of(parsed.text)
	references = dict.fromkeys(k for k in (rfc_message_key(x) for x in [*parsed.references, parsed.in_reply_to]) if k)
	return {
		"subject": mail_text(parsed.subject) or "(no subject)",
		# sender, sender_full_name, atlas_sender_as_written (an address Frappe refuses, as written)
		**sender_values(parsed.sender, DATA_LENGTH),
		"recipients": addresses(parsed.to) or None,
		"cc": addresses(parsed.cc) or None,
		"bcc": addresses(parsed.bcc) or None,
		"communication_date": communication_date,
		"message_id": mail_text(parsed.message_id[:900]),
		"content": ((sanitize(parsed.html) if parsed.html else text_to_html(parsed.text)) if full
					else html.escape(snippet)),
		"text_content": parsed.text if full else None,
		"atlas_snippet": mail_text(snippet),
		"atlas_in_reply_to": mail_text(parsed.in_reply_to),
		"atlas_reply_to": addresses(parsed.reply_to) or None,
		"atlas_references": " ".join(references)[:REFERENCES_LENGTH] or None,
		"atlas_signal_headers": json.dumps(parsed.signal_headers, sort_keys=True),
		"atlas_message_key": rfc_message_key(parsed.message_id) or None,
		"atlas_body_stored": 1 if full else 0,
		"atlas_parse_error": mail_text(parsed.parse_error),
		"has_attachment": 0,
	}


def unreadable_content(raw_headers: str) -> str:
	"""``content`` of a message that could not be read: its raw headers (at most 20,000 characters),
	escaped, in a ``<pre>``."""
	return "<pre>" + html.escape(raw_headers[:20000]) + "</pre>"


def thread_values(rows: list) -> dict:
	"""An Inbox Thread's aggregates from its messages, oldest first (rows with ``subject``, ``sender``,
	``atlas_sender_as_written``, ``recipients``, ``cc``, ``communication_date``, ``atlas_snippet``; at least
	one).

	Returns:
		``{"subject" (the first message's), "participants" (every address once, in order of appearance, at
		most :data:`PARTICIPANTS`), "first_message_at", "last_message_at", "message_count", "snippet" (the
		last message's)}``. The source adds unread state and tags.
	"""
	people: dict[str, None] = {}
	for row in rows:
		# recipients/cc are Code fields (exact text); participants is Small Text: kept as HTML text
		for value in (row.sender or plain(row.atlas_sender_as_written), row.recipients, row.cc):
			for part in (value or "").split(","):
				part = part.strip()
				if part:
					people.setdefault(part, None)
	return {
		"subject": (rows[0].subject or "(no subject)")[:1000],
		"participants": mail_text(", ".join(list(people)[:PARTICIPANTS])),
		"first_message_at": rows[0].communication_date,
		"last_message_at": rows[-1].communication_date,
		"message_count": len(rows),
		"snippet": rows[-1].atlas_snippet,
	}
