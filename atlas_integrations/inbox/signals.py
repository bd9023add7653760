"""Header signals: is a message a bounce, an automated notification or a newsletter?

Decided from what the sending software says about the message, never from guessing at its prose:

* **bounce** — a delivery status notification: ``multipart/report; report-type=delivery-status``
  (RFC 3464, delay warnings included), or a sender that is a mail system (``MAILER-DAEMON``,
  ``postmaster``, with or without a domain) with a "could not be delivered" or delay-warning subject,
  or ``X-Failed-Recipients`` (Exim).
* **automated** — RFC 3834 ``Auto-Submitted`` other than ``no`` (comments ignored); ``X-Autoreply`` /
  ``X-Autorespond`` (vacation responders); ``Precedence: auto_reply``; a read receipt
  (``report-type=disposition-notification``, RFC 8098); a no-reply sender (``noreply@``, ``no-reply@``,
  ``donotreply@`` ...); Gmail's "Updates" category.
* **newsletter** — bulk or list mail: ``List-Unsubscribe`` (RFC 2369/8058), ``List-Id`` in its RFC 2919
  form (``<label.namespace>``; a free-text value that some site aliases add is not one), ``Precedence:
  bulk|list|junk``; a bulk-sender address (``news@``, ``enews@``, ``newsletter@``, ``announcements@``,
  ``promotions@``, also as a part as in ``shop_newsflash@``); a list digest subject (``<list> digest,
  Vol N ...`` as Mailman and LISTSERV write it, not a reply or forward); Gmail's "Promotions", "Social"
  and "Forums" categories.

Pure functions over a header dict (lower-case names, raw values) as
:func:`atlas_integrations.inbox.mime.signal_headers` returns it.

Bounded time on any mail: header values are read up to :data:`HEADER_LIMIT` characters, the subject up to
:data:`SUBJECT_LIMIT`, an address up to :data:`ADDRESS_LIMIT`; every regular expression is anchored or
made of runs that cannot overlap, so none backtracks more than linearly (``tests/pure/test_bounded_time.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BOUNCE, AUTOMATED, NEWSLETTER = "bounce", "automated", "newsletter"
#: characters of a header value read (``mime.signal_headers`` keeps 500)
HEADER_LIMIT = 1_000
#: characters of a subject read (RFC 5322 section 2.1.1: a line is at most 998)
SUBJECT_LIMIT = 1_000
#: characters of a sender address read (RFC 5321 section 4.5.3.1.3: a path is at most 256 octets)
ADDRESS_LIMIT = 256

#: local parts of senders that never read replies
_NO_REPLY = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-_.].*|.*[-_.]noreply|"
					   r"notifications?|mailer|automailer|bounces?)$")
#: words of local parts of senders of bulk mail: newsletters, announcements, promotions. A local part is
#: a bulk sender when it is words of ``[a-z0-9]`` joined by single ``-``, ``_`` or ``.`` and one word is
#: one of these (``e-news`` is the words ``e`` and ``news``). Checked by splitting, not by the regular
#: expression ``^([a-z0-9]+[-_.])*(news|...)([-_.][a-z0-9]+)*$`` it replaces, which tries every split
#: of the words before the keyword against every split after it: quadratic in the length of the local part
_BULK_WORDS = frozenset({"enews", "news", "newsletter", "newsletters", "newsflash", "announce", "announcement",
						 "announcements", "promo", "promos", "promotion", "promotions"})
_LOCAL_WORD = re.compile(r"[a-z0-9]+")
_LOCAL_SEPARATOR = re.compile(r"[-_.]")
#: RFC 2919 list-id: "<" list-label "." list-id-namespace ">": bracketed text without ``<>@`` or white
#: space, with a dot that is neither its first nor its last character (:func:`_is_list_id`)
_BRACKETED = re.compile(r"<([^<>@\s]+)>")
_MAIL_SYSTEM = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)$")
_BOUNCE_SUBJECT = re.compile(
	r"(undeliver|delivery (status notification|failure|has failed|delayed)|returned mail|"
	r"mail delivery (failed|subsystem)|failure notice|could not be delivered|could not send message|"
	r"delivery notification|delayed mail)", re.IGNORECASE)
#: "<list> digest, Vol 1 #2" (Mailman 2), "<list> Digest, Vol 42, Issue 7" (Mailman), "Volume 3, Issue 12"
_DIGEST_SUBJECT = re.compile(r"\bdigest,?\s+vol(ume)?\b\.?\s*\d", re.IGNORECASE)
#: "Re:", "Fwd:", "AW:", "Re[2]:" ... The optional "[n]" carries its own trailing white space, so no two
#: adjacent ``\s*`` compete for the same spaces (``\s*(\[\d+\])?\s*:`` was quadratic in them)
_REPLY_OR_FORWARD = re.compile(r"^\s*(re|fwd?|aw|sv|wg)\s*(?:\[\d+\]\s*)?:", re.IGNORECASE)
_COMMENT = re.compile(r"\([^()]*\)")
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


def _keyword(value: str) -> str:
	"""The keyword of a header such as ``Auto-Submitted: auto-generated (failure)`` or ``Precedence: bulk``:
	comments and parameters dropped, lower case ("" when none)."""
	words = _COMMENT.sub(" ", value or "").split(";")[0].split()
	return words[0].lower() if words else ""


def _bulk_sender(local: str) -> bool:
	"""``local`` (lower case) is words of ``[a-z0-9]`` joined by single ``-``/``_``/``.`` and one word is in
	:data:`_BULK_WORDS`, e.g. ``news``, ``shop_newsflash``, ``e-news.uk``; linear time."""
	words = _LOCAL_SEPARATOR.split(local)
	return (any(w in _BULK_WORDS for w in words) and all(_LOCAL_WORD.fullmatch(w) for w in words))


def _is_list_id(value: str) -> bool:
	"""``value`` holds an RFC 2919 list-id, as ``re.search(r"<[^<>@\\s]+\\.[^<>@\\s]+>", value)`` decides,
	in linear time (that expression tries every dot of a long run as the separator: quadratic). Each
	``<`` starts at most one bracketed run, and runs cannot overlap."""
	return any("." in m.group(1)[1:-1] for m in _BRACKETED.finditer(value))


def _param(content_type: str, name: str) -> str:
	match = re.search(rf"{name}\s*=\s*\"?([^\";\s]+)", content_type or "", re.IGNORECASE)
	return match.group(1).lower() if match else ""


def detect(headers: dict[str, str], sender: str = "", subject: str = "",
		   provider_categories: list[str] | tuple = ()) -> list[Signal]:
	"""Every signal a message carries, strongest first within each kind.

	Args:
		headers: lower-case header name -> raw value (only the headers named in the module docstring
			matter; ``content-type`` is the top-level one).
		sender: the From addr-spec (any case; angle brackets allowed; a bare local part such as
			``MAILER-DAEMON`` is read as one).
		subject: the decoded subject.
		provider_categories: the provider's own classification labels, e.g. Gmail ``CATEGORY_UPDATES``.

	Returns:
		A list of :class:`Signal` (empty for mail a person wrote to you).

	Only the first :data:`HEADER_LIMIT` characters of each header, :data:`SUBJECT_LIMIT` of the subject and
	:data:`ADDRESS_LIMIT` of the sender are read.
	"""
	h = {k.lower(): (v or "")[:HEADER_LIMIT].strip() for k, v in (headers or {}).items()}
	addr = (sender or "")[:ADDRESS_LIMIT].strip().strip("<>").strip().lower()
	subject = (subject or "")[:SUBJECT_LIMIT]
	local = addr.rpartition("@")[0] if "@" in addr else addr
	found: list[Signal] = []
	ctype = h.get("content-type", "").lower()
	report = _param(ctype, "report-type") if ctype.startswith("multipart/report") else ""
	if report == "delivery-status":
		found.append(Signal(BOUNCE, "multipart/report; report-type=delivery-status"))
	if h.get("x-failed-recipients"):
		found.append(Signal(BOUNCE, "X-Failed-Recipients"))
	if _MAIL_SYSTEM.match(local) and _BOUNCE_SUBJECT.search(subject or ""):
		found.append(Signal(BOUNCE, f"sender {local}@ with a delivery-failure subject"))
	auto = _keyword(h.get("auto-submitted", ""))
	if auto and auto != "no":
		found.append(Signal(AUTOMATED, f"Auto-Submitted: {auto}"))
	for name in ("x-autoreply", "x-autorespond"):
		if h.get(name):
			found.append(Signal(AUTOMATED, name.title()))
	precedence = _keyword(h.get("precedence", ""))
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
	if _is_list_id(h.get("list-id", "")):
		found.append(Signal(NEWSLETTER, "List-Id"))
	if precedence in ("bulk", "list", "junk"):
		found.append(Signal(NEWSLETTER, f"Precedence: {precedence}"))
	if _bulk_sender(local):
		found.append(Signal(NEWSLETTER, f"bulk sender ({local}@)"))
	if _DIGEST_SUBJECT.search(subject or "") and not _REPLY_OR_FORWARD.match(subject or ""):
		found.append(Signal(NEWSLETTER, "list digest subject"))
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
