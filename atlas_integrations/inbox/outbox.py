"""The outbox: what every provider's send shares (Outgoing Mail states, request keys, typed errors).

An Outgoing Mail is committed before the provider is called and keyed by a hash of its caller's request key
(a reply: the user and the composer's client key; a background job: its own key), under a unique index, so
one request key sends at most one message. The provider's send (a mailbox type's ``send_reply`` /
``send_new`` entry points, :mod:`atlas_integrations.inbox.mailboxes`) raises the errors below, so callers
(replies, "Send quote") decide on the kind of failure, never on its words.
"""

from __future__ import annotations

import email.utils
import hashlib

import frappe

DOCTYPE = "Outgoing Mail"
#: an Outgoing Mail's states: being sent; sent and recorded; the provider took it, the record is unfinished
#: (Reconcile finishes it, never resends); not sent (the same request key may send again)
SENDING, SENT, UNRECORDED, FAILED = "Sending", "Sent", "Accepted, not recorded", "Failed"
#: states in which the provider holds the message
DELIVERED = (SENT, UNRECORDED)


class SendError(frappe.ValidationError):
	"""A send refused by a rule (no recipient, empty body, a From that is not the mailbox's) or by the
	provider; the message says which in words."""


class NotAnswered(SendError):
	"""The provider did not answer and does not hold the message: nothing was sent; the same request key
	may try again later (the mailbox is searched for it first)."""


class MailboxUnusable(SendError):
	"""The mailbox cannot send now (disabled, disconnected, access revoked, unhealthy): reconnect it."""


class Refused(SendError):
	"""The provider refused the message itself (a recipient, its size, its content)."""


def reply_key(user: str, client_key: str) -> str:
	"""The Outgoing Mail key of a reply: SHA-256 (hex) of the user and the composer's client key."""
	return hashlib.sha256(f"{user}\x00{client_key}".encode()).hexdigest()


def job_key(request_key: str) -> str:
	"""The Outgoing Mail key of a background send (e.g. ``xero-quote-send:<Sync Job>``): SHA-256 (hex)."""
	return hashlib.sha256(f"job\x00{request_key}".encode()).hexdigest()


def find(request_key: str, job: bool = True) -> frappe._dict | None:
	"""The Outgoing Mail of a caller's request key (``job``: a background send's key, else a reply's
	:func:`reply_key` already made): ``{"name", "status", "error"}``, or None when there is none yet."""
	key = job_key(request_key) if job else request_key
	return frappe.db.get_value(DOCTYPE, {"request_key": key}, ["name", "status", "error"], as_dict=True)


def split_addresses(value, strict: bool = False) -> list[str]:
	"""Addresses from a list, or a comma/semicolon separated string; each ``Name <a@b>`` or ``a@b``.

	Entries without an ``@`` are dropped, or with ``strict`` kept as typed (so that the caller can name
	them in its "not a valid email address" error)."""
	if not value:
		return []
	if isinstance(value, str):
		value = value.replace(";", ",").split(",")
	out = []
	for piece in (str(v).strip() for v in value):
		if not piece:
			continue
		found = [(n, a) for n, a in email.utils.getaddresses([piece]) if a]
		if not found and strict:
			out.append(piece)
		for name, addr in found:
			if "@" in addr:
				out.append(email.utils.formataddr((name, addr)) if name else addr)
			elif strict:
				out.append(piece)
	return out
