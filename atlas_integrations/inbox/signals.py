"""Header signals: is a message a bounce, an automated notification or a newsletter?

Decided from what the sending software says about the message, never from guessing at its prose:

* **bounce** — a delivery status notification: ``multipart/report; report-type=delivery-status``
  (RFC 3464), or a sender that is a mail system (``MAILER-DAEMON``, ``postmaster``) with a "could not be
  delivered" subject, or ``X-Failed-Recipients`` (Exim).
* **automated** — RFC 3834 ``Auto-Submitted`` other than ``no``; ``X-Autoreply`` / ``X-Autorespond``
  (vacation responders); ``Precedence: auto_reply``; a read receipt (``report-type=disposition-
  notification``, RFC 8098); a no-reply sender (``noreply@``, ``no-reply@``, ``donotreply@`` ...);
  Gmail's "Updates" category.
* **newsletter** — bulk or list mail: ``List-Unsubscribe`` (RFC 2369/8058), ``List-Id`` (RFC 2919),
  ``Precedence: bulk|list|junk``; Gmail's "Promotions", "Social" and "Forums" categories.

Pure functions over a header dict (lower-case names, raw values) as
:func:`atlas_integrations.inbox.mime.signal_headers` returns it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOUNCE, AUTOMATED, NEWSLETTER = "bounce", "automated", "newsletter"

#: local parts of senders that never read replies
_NO_REPLY = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-_.].*|.*[-_.]noreply|"
					   r"notifications?|mailer|automailer|bounces?)$")
_MAIL_SYSTEM = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)$")
_BOUNCE_SUBJECT = re.compile(
	r"(undeliver|delivery (status notification|failure|has failed)|returned mail|mail delivery (failed|"
	r"subsystem)|failure notice|could not be delivered|delivery notification)", re.IGNORECASE)
#: provider categories (Gmail's CATEGORY_* labels) and what they say
PROVIDER_CATEGORIES = {
	"CATEGORY_PROMOTIONS": NEWSLETTER,
	"CATEGORY_SOCIAL": NEWSLETTER,
	"CATEGORY_FORUMS": NEWSLETTER,
	"CATEGORY_UPDATES": AUTOMATED,
}


@dataclass(frozen=True)
class Signal:
	"""One observation: ``kind`` (bounce / automated / newsletter) and the evidence, e.g.
	``"Auto-Submitted: auto-replied"``."""

	kind: str
	evidence: str

	def __str__(self) -> str:
		return f"{self.kind}: {self.evidence}"


def _param(content_type: str, name: str) -> str:
	match = re.search(rf"{name}\s*=\s*\"?([^\";\s]+)", content_type or "", re.IGNORECASE)
	return match.group(1).lower() if match else ""


def detect(headers: dict[str, str], sender: str = "", subject: str = "",
		   provider_categories: list[str] | tuple = ()) -> list[Signal]:
	"""Every signal a message carries, strongest first within each kind.

	Args:
		headers: lower-case header name -> raw value (only the headers named in the module docstring
			matter; ``content-type`` is the top-level one).
		sender: the From addr-spec (any case).
		subject: the decoded subject.
		provider_categories: the provider's own classification labels, e.g. Gmail ``CATEGORY_UPDATES``.

	Returns:
		A list of :class:`Signal` (empty for mail a person wrote to you).
	"""
	h = {k.lower(): (v or "").strip() for k, v in (headers or {}).items()}
	local = (sender or "").lower().rpartition("@")[0]
	found: list[Signal] = []
	ctype = h.get("content-type", "").lower()
	report = _param(ctype, "report-type") if ctype.startswith("multipart/report") else ""
	if report == "delivery-status":
		found.append(Signal(BOUNCE, "multipart/report; report-type=delivery-status"))
	if h.get("x-failed-recipients"):
		found.append(Signal(BOUNCE, "X-Failed-Recipients"))
	if _MAIL_SYSTEM.match(local) and _BOUNCE_SUBJECT.search(subject or ""):
		found.append(Signal(BOUNCE, f"sender {local}@ with a delivery-failure subject"))
	auto = h.get("auto-submitted", "").lower().split(";")[0].strip()
	if auto and auto != "no":
		found.append(Signal(AUTOMATED, f"Auto-Submitted: {auto}"))
	for name in ("x-autoreply", "x-autorespond"):
		if h.get(name):
			found.append(Signal(AUTOMATED, name.title()))
	precedence = h.get("precedence", "").lower()
	if precedence == "auto_reply":
		found.append(Signal(AUTOMATED, "Precedence: auto_reply"))
	if report == "disposition-notification":
		found.append(Signal(AUTOMATED, "read receipt (report-type=disposition-notification)"))
	if local and _NO_REPLY.match(local) and not _MAIL_SYSTEM.match(local):
		found.append(Signal(AUTOMATED, f"no-reply sender ({local}@)"))
	elif _MAIL_SYSTEM.match(local) and not any(s.kind == BOUNCE for s in found):
		found.append(Signal(AUTOMATED, f"mail system sender ({local}@)"))
	if h.get("list-unsubscribe"):
		found.append(Signal(NEWSLETTER, "List-Unsubscribe"))
	if h.get("list-id"):
		found.append(Signal(NEWSLETTER, "List-Id"))
	if precedence in ("bulk", "list", "junk"):
		found.append(Signal(NEWSLETTER, f"Precedence: {precedence}"))
	for label in provider_categories or ():
		kind = PROVIDER_CATEGORIES.get(label)
		if kind:
			found.append(Signal(kind, f"Gmail category {label.split('_', 1)[1].title()}"))
	return found


def verdict(signals: list[Signal]) -> str:
	"""The one kind a message is treated as: bounce over automated over newsletter; "" for none.
	A provider category alone (Gmail's own guess) does not decide it."""
	strong = [s for s in signals if not s.evidence.startswith("Gmail category")]
	for kind in (BOUNCE, AUTOMATED, NEWSLETTER):
		if any(s.kind == kind for s in strong):
			return kind
	return ""
