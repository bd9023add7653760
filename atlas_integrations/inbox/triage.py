"""Triage: a category, a priority, a one-line summary and the signals that decided them.

The default classifier is offline and explainable: header signals (:mod:`.signals`) decide automated,
bounce and newsletter mail; otherwise weighted keywords of the subject and the *new* text (quoted history
and signatures stripped by :mod:`.reply`, a linear-time port of ``email-reply-parser``) pick a business
category. Every decision is recorded as
a signal string, e.g. ``"keyword 'quote' in subject"``. Inbox Rules and an optional LLM backend may
override the result afterwards (:mod:`.rules`, :mod:`.llm`). Pure functions; no Frappe needed.

Bounded time on any mail: every regular expression here is applied to at most :data:`SUBJECT_LIMIT` /
:data:`TEXT_LIMIT` characters and none backtracks more than a constant per position (literal alternations
between ``\\b``; ``_GREETING``'s repetition is bounded, ``{0,4}``, and each repeat starts with white space
after a non-space run, so it splits a line one way only); ``tests/pure/test_bounded_time.py`` holds them to
it on 100 KB adversarial input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from atlas_integrations.inbox import reply
from atlas_integrations.inbox import signals as sig

QUOTE = "Quote request"
ORDER = "Order or work request"
INVOICE = "Invoice or payment query"
SUPPORT = "Support or complaint"
SCHEDULING = "Scheduling"
NEWSLETTER = "Newsletter or marketing"
AUTOMATED = "Automated notification or bounce"
OTHER = "Personal or other"
CATEGORIES = (QUOTE, ORDER, INVOICE, SUPPORT, SCHEDULING, NEWSLETTER, AUTOMATED, OTHER)
PRIORITIES = ("Low", "Normal", "High", "Urgent")
#: below this confidence a classification asks for review
CONFIDENCE_THRESHOLD = 0.5
#: characters of a plain-text body read to find the new text (the new text is at the top; the pipeline
#: itself reads at most 20,000, ``pipeline.TEXT_LIMIT``; "Create work" reads the stored body)
TEXT_LIMIT = 100_000
#: characters of a subject the classifier reads (RFC 5322 section 2.1.1: a line is at most 998)
SUBJECT_LIMIT = 1_000
#: characters of the new text searched for business keywords, and of it for priority words
BODY_KEYWORD_LIMIT, PRIORITY_LIMIT = 5_000, 1_000

#: category -> (pattern, weight); subject hits count double
KEYWORDS: dict[str, list[tuple[str, float]]] = {
	QUOTE: [(r"\bquot(e|es|ation|ing)\b", 2), (r"\bestimate\b", 1.5), (r"\bpric(e|es|ing)\b", 1),
			(r"\bhow much\b", 1), (r"\brfq\b", 2), (r"\bproposal\b", 1)],
	ORDER: [(r"\b(purchase )?order\b", 1.5), (r"\bpo\s?#?\d", 2), (r"\bwork order\b", 2),
			(r"\b(book|schedule) (a|the) (job|repair|service)\b", 1.5), (r"\bplease (send|ship|deliver)\b", 1),
			(r"\brepair\b", 1), (r"\binstall(ation)?\b", 1)],
	INVOICE: [(r"\binvoice\b", 2), (r"\bpayment\b", 1.5), (r"\bpaid\b", 1), (r"\bremittance\b", 2),
			  (r"\boverdue\b", 1.5), (r"\bstatement\b", 1), (r"\breceipt\b", 1), (r"\bbilling\b", 1.5),
			  (r"\brefund\b", 1.5), (r"\bcredit note\b", 2)],
	SUPPORT: [(r"\bcomplain(t|ts|ing)?\b", 2), (r"\bnot working\b", 2), (r"\bbroken\b", 1.5),
			  (r"\bproblem\b", 1), (r"\bissue\b", 1), (r"\berror\b", 1), (r"\bhelp\b", 0.5),
			  (r"\bdisappointed\b", 1.5), (r"\bfault(y)?\b", 1.5), (r"\bbug\b", 1.5), (r"\bcrash(es|ed)?\b", 1.5)],
	SCHEDULING: [(r"\bmeeting\b", 1.5), (r"\b(re)?schedul(e|ed|ing)\b", 1.5), (r"\bappointment\b", 2),
				 (r"\bcalendar\b", 1), (r"\bavailab(le|ility)\b", 1), (r"\binvitation\b", 1),
				 (r"\b(call|meet) (on|at|tomorrow|next)\b", 1.5)],
}
_COMPILED = {c: [(re.compile(p, re.IGNORECASE), w) for p, w in patterns] for c, patterns in KEYWORDS.items()}
URGENT = re.compile(r"\b(urgent(ly)?|emergency|asap|immediately|critical)\b", re.IGNORECASE)
HIGH = re.compile(r"\b(important|as soon as possible|today|deadline|overdue|final notice)\b", re.IGNORECASE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
#: a salutation at the start of a line ("Hi John,", "Dear Mr. Smith,", "Good morning team!", "Hey all -"):
#: a greeting word, at most four more words, then punctuation or the end of the line
_GREETING = re.compile(r"^(hi|hello|hey|dear|good (morning|afternoon|evening)|greetings)\b"
					   r"(\s+(mr|mrs|ms|miss|dr|prof)\.?)?(\s+[^\s,.!?:;]+){0,4}?\s*([,.!:;]+|-+|$)\s*",
					   re.IGNORECASE)


@dataclass
class Triage:
	"""The outcome of triage. ``confidence`` is 0..1; ``signals`` are human-readable reasons."""

	category: str = OTHER
	priority: str = "Normal"
	summary: str = ""
	confidence: float = 0.0
	kind: str = ""  # bounce / automated / newsletter from header signals, "" for mail a person wrote
	signals: list[str] = field(default_factory=list)


@lru_cache(maxsize=32)  # summary, classification and the pipeline's rules ask for the same text (<= 100 KB each)
def new_text(text: str) -> str:
	"""The part of a plain-text body the sender just wrote: quoted history and signature removed
	(:func:`atlas_integrations.inbox.reply.parse_reply`, linear time).

	Args:
		text: the decoded plain-text body; only its first :data:`TEXT_LIMIT` characters are read.

	Returns:
		The new text, stripped ("" for an empty body).
	"""
	return reply.parse_reply((text or "")[:TEXT_LIMIT]).strip()


def summary_of(subject: str, text: str, length: int = 140) -> str:
	"""One line: the first meaningful sentence of the new text (a salutation opening a line skipped,
	"Hi John, the heater is broken." -> "the heater is broken."), else the subject."""
	for line in new_text(text).splitlines():
		line = line.strip()
		if line.startswith(">"):
			continue
		line = _GREETING.sub("", line, count=1).strip()
		if not line:
			continue
		sentence = _SENTENCE.split(line, 1)[0].strip()
		if len(sentence) >= 3:
			return sentence[: length - 1] + "…" if len(sentence) > length else sentence
	return (subject or "").strip()[:length]


def classify(subject: str, text: str, headers: dict[str, str] | None = None, sender: str = "",
			 provider_categories: list[str] | tuple = ()) -> Triage:
	"""The default, offline classification of one message.

	Args:
		subject: decoded subject (exact text; its first :data:`SUBJECT_LIMIT` characters are read).
		text: plain-text body ("" when only a snippet is stored: the snippet then; see :func:`new_text`).
		headers, sender, provider_categories: see :func:`atlas_integrations.inbox.signals.detect`.

	Returns:
		A :class:`Triage`.
	"""
	subject = (subject or "")[:SUBJECT_LIMIT]
	result = Triage(summary=summary_of(subject, text))
	found = sig.detect(headers or {}, sender, subject, provider_categories)
	result.signals = [str(s) for s in found]
	result.kind = sig.verdict(found)
	if result.kind in (sig.BOUNCE, sig.AUTOMATED):
		result.category, result.priority, result.confidence = AUTOMATED, "Low", 0.95
		return result
	if result.kind == sig.NEWSLETTER:
		result.category, result.priority, result.confidence = NEWSLETTER, "Low", 0.9
		return result
	body = new_text(text)[:BODY_KEYWORD_LIMIT]
	scores: dict[str, float] = {}
	for category, patterns in _COMPILED.items():
		for pattern, weight in patterns:
			hit = pattern.search(subject or "")
			if hit:
				scores[category] = scores.get(category, 0) + 2 * weight
				result.signals.append(f"'{hit.group(0).lower()}' in subject -> {category}")
				continue
			hit = pattern.search(body)
			if hit:
				scores[category] = scores.get(category, 0) + weight
				result.signals.append(f"'{hit.group(0).lower()}' in text -> {category}")
	if scores:
		ranked = sorted(scores.items(), key=lambda kv: (-kv[1], CATEGORIES.index(kv[0])))
		best, score = ranked[0]
		runner = ranked[1][1] if len(ranked) > 1 else 0.0
		result.category = best
		# strength of the evidence (a subject hit is enough) times its margin over the runner-up
		result.confidence = round(min(1.0, score / 4) * score / (score + runner), 2)
	else:
		result.category, result.confidence = OTHER, 0.3
		result.signals.append("no business keyword")
	head = f"{subject}\n{body[:PRIORITY_LIMIT]}"
	if URGENT.search(head):
		result.priority = "Urgent"
		result.signals.append(f"'{URGENT.search(head).group(0)}' -> Urgent")
	elif HIGH.search(head):
		result.priority = "High"
		result.signals.append(f"'{HIGH.search(head).group(0)}' -> High")
	elif result.category == SUPPORT:
		result.priority = "High"
		result.signals.append("support or complaint -> High")
	return result
