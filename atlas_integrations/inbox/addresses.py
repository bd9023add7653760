"""Email addresses as the Smart Inbox compares them.

Matching compares *normalised* addresses: lower case, surrounding space and angle brackets removed, a
``+tag`` sub-address dropped from the local part (RFC 5233 "subaddress" convention, used by Gmail,
Outlook and Fastmail), and for Gmail's own domains (gmail.com, googlemail.com) the dots of the local part
ignored and the domain taken as gmail.com (Google: "Gmail doesn't recognize dots as characters within
usernames"). Pure functions; no Frappe needed.
"""

from __future__ import annotations

from email.utils import getaddresses

#: domains where dots in the local part do not matter, mapped to their canonical domain
GMAIL_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def normalise(address: str | None) -> str:
	"""The comparable form of one addr-spec, e.g. ``"J.Doe+quotes@GoogleMail.com"`` -> ``"jdoe@gmail.com"``.

	Args:
		address: an addr-spec (``local@domain``), optionally in angle brackets.

	Returns:
		The normalised address, or ``""`` when ``address`` has no ``@`` with text on both sides.
	"""
	value = (address or "").strip().strip("<>").strip().lower()
	local, at, domain = value.rpartition("@")
	if not at or not local or not domain:
		return ""
	if local.startswith('"') and local.endswith('"'):
		local = local[1:-1]
	local = local.split("+", 1)[0] or local
	if domain in GMAIL_DOMAINS:
		local, domain = local.replace(".", ""), GMAIL_DOMAINS[domain]
	return f"{local}@{domain}" if local else ""


def addresses_in(value: str | None) -> list[str]:
	"""The normalised addresses of a header-style list (``"Ann <ann@x.org>, bob@y.org"``), in order,
	without duplicates or unreadable entries."""
	seen: dict[str, None] = {}
	for _name, addr in getaddresses([value or ""]):
		norm = normalise(addr)
		if norm:
			seen.setdefault(norm, None)
	return list(seen)


def exact_addresses(value: str | None) -> list[str]:
	"""The addr-specs of a header-style list, lower case but otherwise as written (``+tag`` and dots
	kept: an alias such as ``sales+eu@x.org`` is its own address), in order, without duplicates."""
	seen: dict[str, None] = {}
	for _name, addr in getaddresses([value or ""]):
		addr = (addr or "").strip().lower()
		if "@" in addr:
			seen.setdefault(addr, None)
	return list(seen)


def domain_of(address: str | None) -> str:
	"""The domain of a normalised address ("" when none)."""
	return (address or "").rpartition("@")[2]
