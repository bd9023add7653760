r"""Inbox Rules: admin-editable conditions on incoming mail and what to do with it.

A rule applies when *every* condition that is filled holds (an empty condition is no condition):
mailbox, sender (an address or an ``fnmatch`` pattern such as ``*@acme.com``, compared normalised),
sender domain, recipient alias (To/Cc/Delivered-To), subject keywords (comma-separated, any), text
keywords, a regex over subject and text, the triage category, and the matched party. Rules run by
``sequence`` (then name); each applying rule may set the category, priority and company, choose an
assignee and a document to create, or ignore the message; "Stop after this rule" ends the evaluation.
Pure functions over plain dicts (Inbox Rule rows, message facts); no Frappe needed (messages a user reads
are translated with ``frappe._`` when a site is connected).

The regex condition runs with RE2 (``google-re2``, https://github.com/google/re2/wiki/Syntax), which
matches in time linear in the text for every pattern: an admin's ``(a+)+$`` cannot make a stranger's mail
cost minutes, as it can with Python's backtracking ``re`` (which has no timeout). RE2 has no
backreferences, lookaround, atomic groups, possessive quantifiers or conditionals: a pattern that uses
them is refused on save with a message naming the feature (:func:`validate_rule`). RE2's ``\w``, ``\d``,
``\s`` and ``\b`` are ASCII-only (``\pL`` is any letter).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import lru_cache

import re2

from atlas_integrations.inbox.addresses import GMAIL_DOMAINS, domain_of, normalise

#: Inbox Rule fields that are conditions
CONDITIONS = ("mailbox", "sender", "sender_domain", "recipient", "subject_contains", "body_contains",
			  "subject_regex", "category_is", "party")


@dataclass
class Facts:
	"""What rules look at for one message. Addresses are normalised; texts are exact."""

	mailbox: str = ""
	sender: str = ""
	recipients: list[str] = field(default_factory=list)  # To, Cc and Delivered-To, lower case, not normalised
	subject: str = ""
	text: str = ""
	category: str = ""
	party_type: str = ""
	party: str = ""
	backfill: bool = False


@dataclass
class Decision:
	"""What the applying rules decided, and which rules those were (names, in order)."""

	rules: list[str] = field(default_factory=list)
	category: str = ""
	priority: str = ""
	company: str = ""
	assign_to: str = ""
	create_document: str = ""
	ignore: bool = False
	ignored_by: str = ""
	create_on_backfill: bool = False
	#: the rule that chose the document conditions on the triage category: the classifier must be sure
	create_needs_category: bool = False


def _keywords(value: str | None) -> list[str]:
	return [k.strip().lower() for k in (value or "").split(",") if k.strip()]


def _(message: str) -> str:
	"""``frappe._(message)`` when a Frappe site is connected (the user's language), else ``message``."""
	try:
		import frappe

		if getattr(frappe.local, "site", None):
			return frappe._(message)
	except Exception:  # no Frappe, or no site: the English text
		pass
	return message


#: what RE2 does not have, found in a pattern: escapes are consumed first, so ``\(?=`` is not a lookahead.
#: Each alternative starts with its own literal, so the scan is linear
_UNSUPPORTED = re.compile(r"""
	\\(?P<backref>[1-9]|g<[^<>]*>|k<[^<>]*>)
	|\\.
	|\(\?(?P<lookaround><?[=!])
	|\(\?P=(?P<named>[^)]*)\)
	|\(\?(?P<atomic>>)
	|\(\?(?P<conditional>\()
	|(?P<possessive>[*+?}]\+)
""", re.VERBOSE | re.DOTALL)


def _re2_options(case_sensitive: bool = False) -> re2.Options:
	options = re2.Options()
	options.case_sensitive = case_sensitive
	options.log_errors = False  # a refused pattern is reported to the user, not to stderr
	return options


def _unsupported_feature(pattern: str) -> str:
	"""What in ``pattern`` RE2 lacks, in words (e.g. "a backreference (\\1)"); "" when nothing known."""
	for m in _UNSUPPORTED.finditer(pattern):
		if m.group("backref") or m.group("named") is not None:
			return _("a backreference ({0})").format(m.group(0))
		if m.group("lookaround"):
			return _("lookaround ({0})").format(m.group(0))
		if m.group("atomic"):
			return _("an atomic group ((?>...))")
		if m.group("conditional"):
			return _("a conditional group ((?(...)...))")
		if m.group("possessive"):
			return _("a possessive quantifier ({0})").format(m.group(0))
	return ""


class RuleError(ValueError):
	"""An Inbox Rule that cannot work; ``str()`` is the message for the user (translated when a Frappe
	site is connected)."""


def validate_rule(rule: dict) -> None:
	"""Check that a rule can work.

	Args:
		rule: an Inbox Rule as a dict (``subject_regex`` is looked at).

	Raises:
		RuleError (a ``ValueError``): the regex does not compile with RE2; the message names the RE2
			feature it lacks (backreference, lookaround, atomic group, possessive quantifier, conditional)
			and points to RE2's syntax, or gives RE2's own error.
	"""
	pattern = rule.get("subject_regex")
	if not pattern:
		return
	try:
		re2.compile(pattern, _re2_options())
	except re2.error as exc:
		feature = _unsupported_feature(pattern)
		if feature:
			raise RuleError(_(
				"Subject or Text Matches uses {0}, which Inbox Rules do not support: rules match with RE2, "
				"which takes time linear in the mail's length for any pattern "
				"(syntax: https://github.com/google/re2/wiki/Syntax). Rewrite the pattern without it."
			).format(feature)) from None
		detail = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
		raise RuleError(_("Subject or Text Matches is not a valid regular expression (RE2 syntax): {0}").format(
			detail)) from None


def validate_rule_doc(doc, method=None) -> None:
	"""Inbox Rule ``validate`` doc event: :func:`validate_rule` as a Frappe validation error."""
	import frappe

	try:
		validate_rule(doc.as_dict())
	except ValueError as exc:
		from frappe.utils import escape_html

		frappe.throw(escape_html(str(exc)), title=_("Invalid Inbox Rule"))  # it quotes the admin's pattern


@lru_cache(maxsize=256)
def compiled(pattern: str):
	"""The rule regex ``pattern`` compiled with RE2, case-insensitive; None when RE2 refuses it (a rule
	stored before validation existed: it never applies)."""
	try:
		return re2.compile(pattern, _re2_options())
	except re2.error:
		return None


def _sender_pattern(value: str) -> str:
	"""A Sender condition in the form senders are compared in: an address normalised, a pattern lower case
	with a Gmail domain canonical (``*@googlemail.com`` -> ``*@gmail.com``); "" when unreadable."""
	pattern = value.strip().lower()
	if "*" not in pattern and "?" not in pattern:
		return normalise(pattern)
	pattern = pattern.strip("<>").strip()
	local, at, domain = pattern.rpartition("@")
	if at and domain in GMAIL_DOMAINS:
		return f"{local.replace('.', '')}@{GMAIL_DOMAINS[domain]}"
	return pattern


def applies(rule: dict, facts: Facts) -> bool:
	"""True when every filled condition of ``rule`` (an Inbox Rule as a dict) holds for ``facts``."""
	if rule.get("mailbox") and rule["mailbox"] != facts.mailbox:
		return False
	if rule.get("sender"):
		wanted = _sender_pattern(rule["sender"])
		if not wanted or not (facts.sender == wanted or fnmatch.fnmatchcase(facts.sender, wanted)):
			return False  # an unreadable sender condition (e.g. "acme.com") never applies
	if rule.get("sender_domain"):
		domain = rule["sender_domain"].strip().lower().lstrip("@")
		domain = GMAIL_DOMAINS.get(domain, domain)  # senders are normalised: googlemail.com is gmail.com
		got = domain_of(facts.sender)
		if not (got == domain or got.endswith("." + domain)):
			return False
	if rule.get("recipient") and rule["recipient"].strip().strip("<>").lower() not in facts.recipients:
		return False  # an alias is exact (case aside): sales+eu@ and sales@ are different aliases
	subject = (facts.subject or "").lower()
	if rule.get("subject_contains") and not any(k in subject for k in _keywords(rule["subject_contains"])):
		return False
	text = (facts.text or "").lower()
	if rule.get("body_contains") and not any(k in text for k in _keywords(rule["body_contains"])):
		return False
	if rule.get("subject_regex"):
		rx = compiled(rule["subject_regex"])  # RE2: linear in the text, whatever the pattern
		if rx is None:
			return False  # refused on save; a rule stored before that never applies
		if not (rx.search(facts.subject or "") or rx.search(facts.text or "")):
			return False
	if rule.get("category_is") and rule["category_is"] != facts.category:
		return False
	if rule.get("party") and (rule["party"] != facts.party or
							  (rule.get("party_type") and rule["party_type"] != facts.party_type)):
		return False
	return True


def evaluate(rules: list[dict], facts: Facts) -> Decision:
	"""Apply enabled ``rules`` in ``sequence`` order to ``facts``. Later rules fill only what earlier ones
	left empty; ``ignore`` from any applying rule wins; ``stop_processing`` ends the evaluation.

	Returns:
		A :class:`Decision` (empty when no rule applied).
	"""
	decision = Decision()
	for rule in sorted((r for r in rules if r.get("enabled")), key=lambda r: (r.get("sequence") or 0, r["name"])):
		if not applies(rule, facts):
			continue
		decision.rules.append(rule["name"])
		for attr, key in (("category", "set_category"), ("priority", "set_priority"), ("company", "set_company"),
						  ("assign_to", "assign_to"), ("create_document", "create_document")):
			if rule.get(key) and not getattr(decision, attr):
				setattr(decision, attr, rule[key])
				if attr == "create_document":
					decision.create_on_backfill = bool(rule.get("applies_to_backfill"))
					decision.create_needs_category = bool(rule.get("category_is"))
		if rule.get("ignore") and not decision.ignore:
			decision.ignore, decision.ignored_by = True, rule["name"]
		if rule.get("stop_processing"):
			break
	return decision
