"""Adversarial mail: messages of about 100 KB, each shaped to make a mail reader's regular expressions or
parsers do super-linear work, and the timing of Atlas's reading stages on them (issue 16: a stranger's mail
costs bounded time).

Used by ``bench/adversarial.py`` (figures), ``tests/pure/test_bounded_time.py`` (each stage, generous
bounds) and ``tests/realsite/test_bounded_pipeline.py`` (the real writer and pipeline on a real site).
Pure: building and timing need no Frappe (the pipeline's document-name scan and :func:`match.resolve` are
timed too when Frappe is importable).
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field

#: bytes each message aims at
SIZE = 100_000
#: the pipeline's reading stages, in the order the pipeline runs them
STAGES = ("parse MIME", "sanitize HTML", "reply + summary", "signals", "classify", "rules", "match")
#: regular expressions that take exponential or polynomial time in a backtracking engine (Python's ``re``)
#: on the right text; Inbox Rules run them with RE2, linear in the text
RULE_PATTERNS = (r"(a+)+$", r"(x+x+)+y", r"(a|aa)+b", r"(.*a){12}", r"^(\w+\s?)*$", r"(\d+)*[a-z]!",
				 r"(on .*)*wrote:", r"([a-z]+)*=")
#: the sender and recipient of every message (``inbox@…`` is replaced by a route's address on a site)
SENDER, RECIPIENT = "Mallory <mallory@attacker.example>", "inbox@atlas-test.example"


def _fill(unit: str | bytes, size: int, head=None, tail=None):
	"""``unit`` repeated to about ``size`` characters (bytes), between ``head`` and ``tail``."""
	head = head if head is not None else unit[:0]
	tail = tail if tail is not None else unit[:0]
	count = max(1, (size - len(head) - len(tail)) // max(1, len(unit)))
	return head + unit * count + tail


def mail(body: str | bytes, *, subject: str = "Adversarial", content_type: str = "text/plain; charset=utf-8",
		 headers: list[tuple[str, str]] | tuple = (), sender: str = SENDER, to: str = RECIPIENT,
		 raw_headers: bytes = b"", message_id: str | None = None) -> bytes:
	"""One RFC 822 message (``\\n`` line ends), a fresh Message-ID each call.

	Args:
		body: the body (text is UTF-8 encoded).
		subject, sender, to: header values (written as given: no folding, no encoding).
		content_type: the top-level Content-Type value.
		headers: more ``(name, value)`` header fields, written before Content-Type.
		raw_headers: header bytes written as they are (folded or hostile headers).
		message_id: the Message-ID without angle brackets (default a fresh one).

	Returns:
		The message bytes.
	"""
	message_id = message_id or f"{uuid.uuid4().hex}@adversarial.example"
	lines = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Message-ID: <{message_id}>",
			 "Date: Tue, 01 Dec 2026 10:00:00 +0000", "MIME-Version: 1.0"]
	lines += [f"{k}: {v}" for k, v in headers]
	head = ("\n".join(lines) + "\n").encode("utf-8") + raw_headers + f"Content-Type: {content_type}\n\n".encode()
	return head + (body.encode("utf-8") if isinstance(body, str) else body)


def _deep_multipart(size: int, tail: bytes = b"hello\n", levels: int | None = None) -> bytes:
	parts, level = [], 0
	while (levels is None and sum(map(len, parts)) < size - 200) or (levels is not None and level < levels):
		parts.append(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (level, level + 1))
		level += 1
	body = b"".join(parts) + b"--b%d\nContent-Type: text/plain\n\n" % level + tail
	return mail(body, content_type="multipart/mixed; boundary=b0")


def _deep_rfc822(size: int) -> bytes:
	inner = b"From: a@x.example\nSubject: innermost\n\nhello\n"
	unit = b"Subject: enclosed\nContent-Type: message/rfc822\n\n"
	return mail(unit * ((size - len(inner)) // len(unit)) + inner, content_type="message/rfc822")


def _parts(size: int, part: bytes) -> bytes:
	body = _fill(part, size - 10) + b"--b--\n"
	return mail(body, content_type="multipart/mixed; boundary=b")


def _attachments(size: int) -> bytes:
	out, i = [], 0
	while sum(map(len, out)) < size:
		out.append(b"--b\nContent-Type: application/octet-stream\nContent-Disposition: attachment; "
				   b"filename=\"part-%05d.bin\"\nContent-Transfer-Encoding: base64\n\n%s\n" % (
					   i, base64.b64encode(b"adversarial part %d" % i)))
		i += 1
	return mail(b"--b\nContent-Type: text/plain\n\nsee the parts\n" + b"".join(out) + b"--b--\n",
				content_type="multipart/mixed; boundary=b")


def _refused_attachments(size: int) -> bytes:
	"""Parts every one of which Frappe refuses to store (a PDF that does not read), with long names: the
	message's record of what was not stored must still fit its column."""
	out, i = [], 0
	while sum(map(len, out)) < size:
		out.append(b'--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="%s-%04d.pdf"\n\n'
				   b"%%PDF-1.4 not a pdf\n" % (b"refused" * 14, i))
		i += 1
	return mail(b"--b\nContent-Type: text/plain\n\nsee the parts\n" + b"".join(out) + b"--b--\n",
				content_type="multipart/mixed; boundary=b")


def _html(body: str) -> bytes:
	return mail(body, content_type="text/html; charset=utf-8")


def messages(size: int = SIZE) -> list[tuple[str, bytes]]:
	"""The adversarial messages, each about ``size`` bytes.

	Returns:
		``[(name, raw bytes)]``; the names say the shape (``on-prefixes``: ``On `` repeated without
		``wrote:``, email-reply-parser's cubic case; ``deep-multipart``: multiparts nested as deep as
		``size`` allows; ``html-deep-dl``: ``<dl><dd>`` nesting, quadratic in html5ever's scope checks …).
	"""
	n = size
	addresses = ", ".join(f"Person {i} <person{i}@example.org>" for i in range(n // 70))
	return [
		# reply / quote / signature stripping of the plain text
		("on-prefixes", mail(_fill("On ", n))),
		("on-prefixes-then-wrote", mail(_fill("On ", n, tail="wrote:\n"))),
		("on-lines", mail(_fill("On Mon, 1 Jan 2024 Ann\n", n))),
		("quote-deepening", mail("".join(">" * k + " x\n" for k in range(1, 440)))),
		("quote-one-line", mail(_fill(">", n))),
		("header-lines", mail(_fill("From: a\nhello\n", n))),
		("signature-lines", mail(_fill("--\n\n", n))),
		("rule-lines", mail(_fill("text\n-------\n", n))),
		("long-line", mail(_fill("a", n))),
		("greeting-spaces", mail(_fill(" ", n, head="Hi", tail="x"))),
		("greeting-words", mail(_fill(" a", n, head="Hello"))),
		# MIME structure
		("deep-multipart", _deep_multipart(n)),
		("deep-multipart-boundary-lines", _deep_multipart(n, tail=_fill(b"--x\n", n - 6000), levels=99)),
		("deep-multipart-text-lines", _deep_multipart(n, tail=_fill(b"x\n", n - 6000), levels=99)),
		("deep-rfc822", _deep_rfc822(n)),
		("many-parts", _parts(n, b"--b\n\nx\n")),
		("many-typed-parts", _parts(n, b"--b\nContent-Type: image/png\n\nx\n")),
		("many-attachments", _attachments(n)),
		("refused-attachments", _refused_attachments(n)),
		("epilogue-boundary-lines", mail(_fill(b"--x\n", n, head=b"--b\nContent-Type: text/plain\n\nhi\n--b--\n"),
										 content_type="multipart/mixed; boundary=b")),
		("base64-garbage", mail(
			b"--b\nContent-Type: text/plain\n\nhi\n--b\nContent-Type: application/pdf\nContent-Disposition: attachment; "
			b"filename=x.pdf\nContent-Transfer-Encoding: base64\n\n" + _fill(b"!@#$", n) + b"\n--b--\n",
			content_type="multipart/mixed; boundary=b")),
		# headers
		("many-headers", mail("hello", raw_headers=_fill(b"X-Header: value\n", n))),
		("long-folded-subject", mail("hello", subject=_fill("word\n ", n, head="Quote"))),
		("many-addresses", mail("hello", to=addresses[: n // 2], headers=[("Cc", addresses[: n // 2])])),
		("from-quotes", mail("hello", sender=_fill('" ', n) + "<a@x.example>")),
		("from-nested-comments", mail("hello", sender=_fill("(", n) + "a@x.example")),
		("from-many-addresses", mail("hello", sender=_fill("a@x.example, ", n))),
		("to-encoded-words", mail("hello", to=_fill("=?a?q?x", n))),
		("subject-encoded-words", mail("hello", subject=_fill("=?a?q?x", n))),
		("content-type-semicolons", mail("hello", content_type=_fill(";", n, head="text/plain"))),
		("content-type-comments", mail("hello", content_type=_fill("(a)", n, head="text/plain"))),
		("content-disposition-params", mail(
			b"--b\nContent-Type: application/pdf\nContent-Disposition: attachment" + _fill(b"; a=b", n) + b"\n\n%PDF\n--b--\n",
			content_type="multipart/mixed; boundary=b")),
		("references-brackets", mail("hello", headers=[("References", _fill("<", n))])),
		("long-message-ids", mail("hello", message_id=_fill("m", 1000, tail=f"{uuid.uuid4().hex}@x.example"),
								  headers=[("In-Reply-To", _fill("<" + "r" * 900 + "@x.example> ", n // 2)),
										   ("References", _fill("<" + "r" * 900 + "@x.example> ", n // 2))])),
		# subjects and header signals
		("subject-keywords", mail("hello", subject=_fill("quote invoice urgent meeting ", n))),
		("subject-reply-digest", mail("hello", subject=_fill("Re ", n, tail=": digest, vol 1"))),
		("bulk-sender-local-part", mail("hello", sender=_fill("news.", n, tail="!@x.example"))),
		("list-id-dots", mail("hello", headers=[("List-Id", _fill("a.", n, head="<"))])),
		# HTML
		("html-deep-div", _html(_fill("<div>", n))),
		("html-deep-dl", _html(_fill("<dl><dd>", n))),
		("html-formatting", _html(_fill("<a><b>", n))),
		("html-many-attributes", _html(_fill(" a=1", n, head="<p", tail=">x</p>"))),
		("html-huge-comment", _html(_fill("x", n, head="<!--", tail="-->"))),
		("html-img-alt", _html(_fill("<img ", n, head='<img alt="', tail='" src="http://tracker.example/x">'))),
		("html-many-images", _html(_fill('<img src="http://tracker.example/p.gif">', n))),
		# what Inbox Rule regexes see
		("rule-regex-text", mail(_fill("a", n, tail="!"))),
		("rule-regex-words", mail(_fill("word ", n, tail="!"))),
	]


def adversarial_rules() -> list[dict]:
	"""Inbox Rules (as dicts, :func:`atlas_integrations.inbox.rules.evaluate`'s input) with the patterns of
	:data:`RULE_PATTERNS`, plus keyword conditions; none changes anything but the priority."""
	rules = [{"name": f"adversarial regex {i}", "enabled": 1, "sequence": i, "subject_regex": p, "set_priority": "Low"}
			 for i, p in enumerate(RULE_PATTERNS)]
	rules.append({"name": "adversarial keywords", "enabled": 1, "sequence": 99, "subject_contains": "zzz, quote",
				  "body_contains": "zzz, aaaa", "sender_domain": "attacker.example", "set_priority": "Low"})
	return rules


@dataclass
class Timing:
	"""Seconds per stage (:data:`STAGES`) for one message, and what the stages saw."""

	name: str
	seconds: dict[str, float] = field(default_factory=dict)
	errors: int = 0
	attachments: int = 0
	category: str = ""

	@property
	def total(self) -> float:
		"""Seconds of all stages together (the optional LLM call is not a stage)."""
		return sum(self.seconds.values())


def run_stages(name: str, raw: bytes, rules: list[dict] | None = None, text_limit: int = 20_000) -> Timing:
	"""Time the reading stages of the pipeline on one raw message, as the writer and the pipeline run them.

	Args:
		name: the message's name (kept in the result).
		raw: the RFC 822 bytes.
		rules: Inbox Rules as dicts (default :func:`adversarial_rules`).
		text_limit: characters of the plain text the pipeline reads (``pipeline.TEXT_LIMIT``); the reply
			stage reads the whole text, as "Create work" does.

	Returns:
		A :class:`Timing`: parse MIME (:func:`mime.parse_message`), sanitize HTML (:func:`html.sanitize`, or
		``text_to_html``), reply + summary (:func:`triage.new_text` on the whole text, :func:`triage.summary_of`),
		signals (:func:`signals.detect`), classify (:func:`triage.classify`, its reply cache cleared first),
		rules (:func:`rules.evaluate`), match (participants normalised, ``match.resolve`` and the pipeline's
		document-name scan when Frappe is importable).
	"""
	from atlas_integrations.inbox import addresses, html, mime, signals, triage
	from atlas_integrations.inbox import rules as inbox_rules

	try:  # imported before the clock starts
		from atlas_integrations.inbox import match, pipeline
	except ImportError:  # no Frappe: the pure part of matching only
		match = pipeline = None
	timing = Timing(name)
	clock = time.perf_counter()

	def lap(stage: str) -> None:
		nonlocal clock
		now = time.perf_counter()
		timing.seconds[stage] = timing.seconds.get(stage, 0.0) + now - clock
		clock = now

	parsed = mime.parse_message(raw)
	lap("parse MIME")
	html.sanitize(parsed.html) if parsed.html else html.text_to_html(parsed.text)
	lap("sanitize HTML")
	triage.new_text.cache_clear()
	triage.new_text(parsed.text)
	triage.summary_of(parsed.subject, parsed.text)
	lap("reply + summary")
	sender = addresses.normalise(parsed.sender[1])
	signals.detect(parsed.signal_headers, sender, parsed.subject)
	lap("signals")
	text = parsed.text[:text_limit]
	triage.new_text.cache_clear()
	result = triage.classify(parsed.subject, text, parsed.signal_headers, sender)
	lap("classify")
	recipients = addresses.exact_addresses(", ".join(mime.format_address(p) for p in parsed.to + parsed.cc))
	facts = inbox_rules.Facts(mailbox="adversarial", sender=sender, recipients=recipients, subject=parsed.subject,
							  text=triage.new_text(text), category=result.category)
	inbox_rules.evaluate(adversarial_rules() if rules is None else rules, facts)
	lap("rules")
	addresses.addresses_in(", ".join(mime.format_address(p) for p in [parsed.sender, *parsed.reply_to, *parsed.to,
																	   *parsed.cc]))
	if match is not None:
		match.resolve(sender, None)
		pipeline._DOC_NAME.findall(parsed.subject) + pipeline._DOC_NAME.findall(text)
	lap("match")
	timing.errors, timing.attachments, timing.category = len(parsed.errors), len(parsed.attachments), result.category
	return timing


# -- the real site: the real writer (the Inbound Route's store) and the real pipeline job ---------------------
@dataclass
class SiteTiming:
	"""One message through the real site: seconds to store it (parse, sanitize, Communication, Files, thread;
	committed), to run the pipeline job on it (``inbound.process``), and to match it again ("Process
	again": ``pipeline.run_threads``); what was stored."""

	name: str
	store: float = 0.0
	pipeline: float = 0.0
	again: float = 0.0
	communication: str = ""
	outcome: str = ""
	parse_error: str = ""
	files: int = 0
	skipped: int = 0

	@property
	def total(self) -> float:
		"""Seconds from the raw bytes to the message's outcome (store + pipeline)."""
		return self.store + self.pipeline


def make_site_route(frappe, tag: str = "") -> str:
	"""An enabled Inbound Route for the adversarial messages (25 MB limit, known sender not required) and
	Inbox Rules for mail to :data:`RECIPIENT` with every pattern of :data:`RULE_PATTERNS` (each validated by
	the doc event, RE2; they only set the priority); committed. Returns the route's name;
	:func:`remove_site_route` removes everything again."""
	tag = tag or uuid.uuid4().hex[:8]
	route = frappe.get_doc({"doctype": "Inbound Route", "route_name": f"Adversarial {tag}",
							"inbound_address": f"adversarial-{tag}@atlas-test.example",
							"signing_key": uuid.uuid4().hex, "max_message_mb": 25, "require_known_sender": 0,
							}).insert(ignore_permissions=True)
	for i, pattern in enumerate(RULE_PATTERNS):  # only for mail to RECIPIENT: other mail never reaches the regex
		frappe.get_doc({"doctype": "Inbox Rule", "rule_name": f"{route.name} regex {i}", "enabled": 1,
						"sequence": 900 + i, "recipient": RECIPIENT.rpartition(" ")[2].strip("<>"),
						"subject_regex": pattern, "set_priority": "Low"}).insert(ignore_permissions=True)
	frappe.db.commit()
	return route.name


def run_on_site(frappe, route_name: str, items: list[tuple[str, bytes]]) -> list[SiteTiming]:
	"""Each raw message through the real writer and the real pipeline job, one at a time, timed.

	Args:
		frappe: the connected ``frappe`` module (a site, a user allowed to write).
		route_name: from :func:`make_site_route`.
		items: ``[(name, raw)]`` (:func:`messages`).

	Returns:
		A :class:`SiteTiming` per message: ``inbound.store`` + commit, then ``inbound.process`` (the
		pipeline job the store enqueues; run here at once), then ``pipeline.run_threads`` on its thread (the
		desk's "Process again"); and what the Communication holds afterwards.
	"""
	from atlas_integrations.inbox import inbound, pipeline

	out = []
	for name, raw in items:
		timing = SiteTiming(name)
		route = inbound.route_for(route_name)
		clock = time.perf_counter()
		stored = inbound.store(route, raw)
		frappe.db.commit()
		timing.store = time.perf_counter() - clock
		timing.communication = stored["communication"]
		_unqueue_process(timing.communication)  # run here at once, below: the queued copy would run it again
		clock = time.perf_counter()
		inbound.process([timing.communication])
		timing.pipeline = time.perf_counter() - clock
		thread = frappe.db.get_value("Communication", timing.communication, "atlas_inbox_thread")
		clock = time.perf_counter()
		pipeline.run_threads([thread])
		timing.again = time.perf_counter() - clock
		row = frappe.db.get_value("Communication", timing.communication,
								  ["atlas_outcome", "atlas_parse_error", "atlas_skipped_attachments"], as_dict=True)
		timing.outcome, timing.parse_error = row.atlas_outcome or "", row.atlas_parse_error or ""
		timing.skipped = row.atlas_skipped_attachments.count('"reason"') if row.atlas_skipped_attachments else 0
		timing.files = frappe.db.count("File", {"attached_to_doctype": "Communication",
											   "attached_to_name": timing.communication})
		out.append(timing)
	return out


def _unqueue_process(communication: str) -> int:
	"""Remove the ``inbound.process`` rq job the store queued for ``communication`` (this module runs the
	pipeline itself, timed): left queued, every message's job would run again in whichever test next starts a
	worker, minutes of adversarial work that test did not ask for. Returns how many jobs were removed."""
	from frappe.utils.background_jobs import get_queue

	removed = 0
	queue = get_queue("short")
	for job in queue.jobs:
		kwargs = job.kwargs or {}
		if (kwargs.get("job_name") == "atlas_integrations.inbox.inbound.process"
				and communication in ((kwargs.get("kwargs") or {}).get("names") or [])):
			job.delete()
			removed += 1
	return removed


def remove_site_route(frappe, route_name: str) -> None:
	"""Delete what :func:`make_site_route` and :func:`run_on_site` wrote (Files, Communications, threads,
	rules, the route); committed."""
	frappe.db.rollback()
	comms = frappe.get_all("Communication", filters={"atlas_mailbox": route_name}, pluck="name")
	# Frappe queues one ``delete_dynamic_links`` rq job per deleted document unless ``flags.in_test`` (then it
	# runs inline): the adversarial corpus leaves ~1,000 Files, whose jobs would take the next test's worker
	# 150-210 s. Run them here, inline, as Frappe's own tests do
	in_test, frappe.flags.in_test = frappe.flags.in_test, True
	try:
		for file in frappe.get_all("File", filters={"attached_to_doctype": "Communication",
													"attached_to_name": ["in", comms or [""]]}, pluck="name"):
			frappe.delete_doc("File", file, ignore_permissions=True, force=True)
	finally:
		frappe.flags.in_test = in_test
	frappe.db.delete("Communication Link", {"parent": ["in", comms or [""]]})
	frappe.db.delete("Communication", {"atlas_mailbox": route_name})
	frappe.db.delete("Inbox Thread", {"mailbox": route_name})
	frappe.db.delete("Inbox Rule", {"rule_name": ["like", f"{route_name} regex %"]})
	frappe.delete_doc("Inbound Route", route_name, ignore_permissions=True, force=True)
	frappe.db.commit()
