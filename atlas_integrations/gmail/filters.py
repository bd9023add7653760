"""Which messages an account imports: alias filter, blocklist, Gmail categories, auto-generated mail.

Pure functions over Gmail labelIds and a :class:`~atlas_integrations.inbox.mime.ParsedMessage`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from atlas_integrations.inbox.mime import ParsedMessage

#: Gmail's category labels skipped by "Skip Promotions, Social, Forums and Updates" (Primary is kept)
SKIPPED_CATEGORIES = frozenset({"CATEGORY_PROMOTIONS", "CATEGORY_SOCIAL", "CATEGORY_FORUMS", "CATEGORY_UPDATES"})


def _lines(text: str | None) -> list[str]:
	return [x.strip().lower() for x in (text or "").replace(",", "\n").splitlines() if x.strip()]


@dataclass
class MailFilter:
	"""An account's import rules.

	Args:
		aliases: the account's verified addresses (the connected address included), lower case.
		blocklist: addresses (``ann@x.org``) or domains (``@x.org`` or ``x.org``), lower case.
		only_alias_mail: import only mail where an alias is in From, To, Cc or Bcc.
		skip_categories: skip Promotions, Social, Forums and Updates.
		skip_auto_generated: skip mail that says it was generated automatically (RFC 3834
			Auto-Submitted, Precedence bulk/junk/list, List-Unsubscribe, delivery reports).
	"""

	aliases: set[str] = field(default_factory=set)
	blocklist: set[str] = field(default_factory=set)
	only_alias_mail: bool = False
	skip_categories: bool = False
	skip_auto_generated: bool = False

	@classmethod
	def for_account(cls, account) -> MailFilter:
		"""Build from a Gmail Account document (or any object with its fields)."""
		aliases = set(_lines(account.aliases))
		if account.email_address:
			aliases.add(account.email_address.lower())
		return cls(
			aliases=aliases,
			blocklist=set(_lines(account.blocklist)),
			only_alias_mail=bool(account.only_alias_mail),
			skip_categories=bool(account.skip_categories),
			skip_auto_generated=bool(account.skip_auto_generated),
		)

	@property
	def needs_message(self) -> bool:
		"""True when a decision needs the parsed message (not only its labels)."""
		return bool(self.blocklist or self.only_alias_mail or self.skip_auto_generated)

	def skip_by_labels(self, label_ids: list[str]) -> str | None:
		"""Reason to skip decided on labelIds alone, or None."""
		if self.skip_categories:
			hit = SKIPPED_CATEGORIES.intersection(label_ids or [])
			if hit:
				return f"category {sorted(hit)[0]}"
		return None

	def skip_reason(self, label_ids: list[str], parsed: ParsedMessage | None) -> str | None:
		"""Why this message is not imported, or None to import it.

		Mail the account sent (label SENT) is never dropped by the blocklist or the auto-generated rule.
		"""
		reason = self.skip_by_labels(label_ids)
		if reason or parsed is None:
			return reason
		sender = (parsed.sender[1] or "").lower()
		sent = "SENT" in (label_ids or [])
		if self.blocklist and not sent and sender:
			domain = sender.rsplit("@", 1)[-1]
			if sender in self.blocklist or f"@{domain}" in self.blocklist or domain in self.blocklist:
				return f"blocklisted sender {sender}"
		if self.only_alias_mail:
			people = {sender} | {a.lower() for _, a in parsed.to + parsed.cc + parsed.bcc}
			if not people & self.aliases:
				return "no alias in From/To/Cc/Bcc"
		if self.skip_auto_generated and not sent and parsed.auto_generated:
			return f"auto-generated ({parsed.auto_generated})"
		return None
