"""Email addresses as the Smart Inbox compares them.

Matching compares *normalised* addresses: lower case, surrounding space and angle brackets removed, a
``+tag`` sub-address dropped from the local part (RFC 5233 "subaddress" convention, used by Gmail,
Outlook and Fastmail), and for Gmail's own domains (gmail.com, googlemail.com) the dots of the local part
ignored and the domain taken as gmail.com (Google: "Gmail doesn't recognize dots as characters within
usernames"). Pure functions; no Frappe needed.
"""

from __future__ import annotations

import re
from email.utils import getaddresses
from functools import lru_cache

#: domains where dots in the local part do not matter, mapped to their canonical domain
GMAIL_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}
#: what cannot appear in an unquoted local part or in a domain (RFC 5322 specials and white space)
_SPECIALS = re.compile(r'[\s<>()\[\],;:"@\\]')
#: characters of a header-style list read (the stored To/Cc/Bcc/Reply-To/From of one message together;
#: the MIME reader keeps at most 32,768 characters of each)
LIST_LIMIT = 200_000


def _pairs(value: str) -> list[tuple[str, str]]:
	"""``email.utils.getaddresses`` of the first :data:`LIST_LIMIT` characters of ``value``. It recurses
	into nested comments and may raise on hostile text: then each comma-separated piece is one address."""
	value = value[:LIST_LIMIT]
	try:
		return getaddresses([value])
	except Exception:
		return [("", piece.strip()) for piece in value.split(",")]


def normalise(address: str | None) -> str:
	"""The comparable form of one addr-spec, e.g. ``"J.Doe+quotes@GoogleMail.com"`` -> ``"jdoe@gmail.com"``.

	Args:
		address: an addr-spec (``local@domain``), optionally in angle brackets, or a display-name form
			such as ``"Ann <ann@x.org>"`` (the part in angle brackets is taken).

	Returns:
		The normalised address, or ``""`` when ``address`` is not one readable addr-spec: no ``@`` with
		text on both sides, or white space or specials (``<>()[],;:"@``) in the domain or in an unquoted
		local part.
	"""
	value = (address or "").strip().lower()
	if value.endswith(">") and "<" in value:
		value = value[value.rindex("<") + 1 : -1]  # "Ann <ann@x.org>" -> "ann@x.org"
	value = value.strip().strip("<>").strip()
	local, at, domain = value.rpartition("@")
	if not at or not local or not domain:
		return ""
	if len(local) > 1 and local.startswith('"') and local.endswith('"'):
		local = local[1:-1]
	elif _SPECIALS.search(local):
		return ""
	if _SPECIALS.search(domain.strip("[]")):
		return ""
	local = local.split("+", 1)[0] or local
	if domain in GMAIL_DOMAINS:
		local, domain = local.replace(".", ""), GMAIL_DOMAINS[domain]
	return f"{local}@{domain}" if local else ""


def addresses_in(value: str | None) -> list[str]:
	"""The normalised addresses of a header-style list (``"Ann <ann@x.org>, bob@y.org"``), in order,
	without duplicates or unreadable entries; its first :data:`LIST_LIMIT` characters are read."""
	return list(_addresses_in(value or ""))


@lru_cache(maxsize=4096)  # a mailbox sees the same few recipient lists over and over
def _addresses_in(value: str) -> tuple[str, ...]:
	seen: dict[str, None] = {}
	for _name, addr in _pairs(value or ""):
		norm = normalise(addr)
		if norm:
			seen.setdefault(norm, None)
	return tuple(seen)


def exact_addresses(value: str | None) -> list[str]:
	"""The addr-specs of a header-style list, lower case but otherwise as written (``+tag`` and dots
	kept: an alias such as ``sales+eu@x.org`` is its own address), in order, without duplicates."""
	return list(_exact_addresses(value or ""))


@lru_cache(maxsize=4096)
def _exact_addresses(value: str) -> tuple[str, ...]:
	seen: dict[str, None] = {}
	for _name, addr in _pairs(value):
		addr = (addr or "").strip().lower()
		if "@" in addr:
			seen.setdefault(addr, None)
	return tuple(seen)


def domain_of(address: str | None) -> str:
	"""The domain of a normalised address ("" when none)."""
	_local, at, domain = (address or "").rpartition("@")
	return domain if at else ""
