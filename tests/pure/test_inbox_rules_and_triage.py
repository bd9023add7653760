"""The pure Smart Inbox modules: address normalisation, header signals, triage and Inbox Rules.

Every test states what the module promises (its docstrings) and fails when that promise is broken.
"""

from __future__ import annotations

import pytest

from atlas_integrations.inbox import addresses, rules, triage
from atlas_integrations.inbox.rules import Decision, Facts, applies, evaluate, validate_rule
from atlas_integrations.inbox.signals import AUTOMATED, BOUNCE, NEWSLETTER, Signal, detect, verdict

# --------------------------------------------------------------------------------------------------
# addresses
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
	"raw, expected",
	[
		("Ann@Example.ORG", "ann@example.org"),
		("  <Ann@Example.org>  ", "ann@example.org"),
		("< ann@example.org >", "ann@example.org"),
		("ann+invoices@example.org", "ann@example.org"),  # RFC 5233 sub-address dropped
		("ann+a+b@example.org", "ann@example.org"),  # everything from the first "+"
		("j.doe@example.org", "j.doe@example.org"),  # dots only matter outside Gmail
		("J.Doe@Gmail.com", "jdoe@gmail.com"),
		("j.d.o.e@googlemail.com", "jdoe@gmail.com"),  # googlemail.com is gmail.com
		("J.Doe+quotes@GoogleMail.com", "jdoe@gmail.com"),  # the docstring's example
		('"john.doe"@example.org', "john.doe@example.org"),  # quoted local part unquoted
		('"J.Doe+x"@gmail.com', "jdoe@gmail.com"),
		('"john doe"@example.org', "john doe@example.org"),  # a space is legal inside quotes
		("Ann Smith <Ann@Example.org>", "ann@example.org"),  # a pasted display-name form
		("user@[192.0.2.1]", "user@[192.0.2.1]"),  # a domain literal is an addr-spec
	],
)
def test_normalise(raw, expected):
	assert addresses.normalise(raw) == expected


@pytest.mark.parametrize(
	"garbage",
	[None, "", "   ", "<>", "ann", "ann@", "@example.org", "@", "ann example.org", "a b@example.org",
	 "ann@exa mple.org", "a@b@example.org", "ann@example.org>, bob", "...@gmail.com", "<ann@>"],
)
def test_normalise_garbage_is_empty(garbage):
	assert addresses.normalise(garbage) == ""


def test_normalise_is_idempotent():
	for raw in ("J.Doe+quotes@GoogleMail.com", "Ann+x@Example.org", '"a.b"@gmail.com'):
		once = addresses.normalise(raw)
		assert addresses.normalise(once) == once


def test_addresses_in_order_duplicates_and_unreadable():
	value = ('Ann <ANN@x.org>, "Doe, John" <J.Doe@gmail.com>, jdoe+news@googlemail.com, , not-an-address, '
			 "bob@y.org")
	assert addresses.addresses_in(value) == ["ann@x.org", "jdoe@gmail.com", "bob@y.org"]
	assert addresses.addresses_in(None) == []
	assert addresses.addresses_in("") == []
	assert addresses.addresses_in("undisclosed-recipients:;") == []


def test_domain_of():
	assert addresses.domain_of("ann@x.org") == "x.org"
	assert addresses.domain_of("") == ""
	assert addresses.domain_of(None) == ""
	assert addresses.domain_of("nodomain") == ""


# --------------------------------------------------------------------------------------------------
# signals
# --------------------------------------------------------------------------------------------------


def kinds(found):
	return [s.kind for s in found]


def test_person_mail_has_no_signal():
	found = detect({"content-type": "text/plain; charset=utf-8"}, "ann@example.org", "Quote for 20 chairs")
	assert found == []
	assert verdict(found) == ""


@pytest.mark.parametrize(
	"ctype",
	["multipart/report; report-type=delivery-status; boundary=x",
	 'Multipart/Report; Report-Type="delivery-status"; boundary="x"',
	 "multipart/report; boundary=x; report-type = delivery-status"],
)
def test_delivery_status_report_is_a_bounce(ctype):
	found = detect({"content-type": ctype}, "someone@example.org", "anything")
	assert kinds(found) == [BOUNCE]
	assert verdict(found) == BOUNCE


def test_report_type_outside_multipart_report_is_ignored():
	assert detect({"content-type": "multipart/mixed; report-type=delivery-status"}, "a@x.org", "hi") == []


def test_read_receipt_is_automated_not_bounce():
	ctype = "multipart/report; report-type=disposition-notification"
	found = detect({"content-type": ctype}, "a@x.org", "Read: hi")
	assert kinds(found) == [AUTOMATED]
	assert "disposition-notification" in found[0].evidence


def test_x_failed_recipients_is_a_bounce():
	found = detect({"x-failed-recipients": "bob@example.org"}, "ann@example.org", "hello")
	assert verdict(found) == BOUNCE and found[0].evidence == "X-Failed-Recipients"
	assert detect({"x-failed-recipients": "   "}, "ann@example.org", "hello") == []  # empty says nothing


@pytest.mark.parametrize(
	"sender, subject",
	[("MAILER-DAEMON@mx.example.org", "Undelivered Mail Returned to Sender"),
	 ("postmaster@example.org", "Delivery Status Notification (Failure)"),
	 ("Postmaster@example.org", "Mail System Error - Returned Mail"),
	 ("mailer-daemon@googlemail.com", "Delivery Status Notification (Delay)"),
	 ("MAILER-DAEMON@mx.example.org", "Warning: could not send message for past 4 hours"),
	 ("MAILER-DAEMON", "Undelivered Mail Returned to Sender"),  # a local bounce has no domain
	 ("<MAILER-DAEMON@mx.example.org>", "failure notice")],
)
def test_mail_system_with_delivery_failure_subject_is_a_bounce(sender, subject):
	found = detect({}, sender, subject)
	assert verdict(found) == BOUNCE, found
	assert AUTOMATED not in kinds(found)  # the mail-system sender is not counted twice


def test_mail_system_sender_without_failure_subject_is_automated():
	found = detect({}, "MAILER-DAEMON@mx.example.org", "Your mailbox is almost full")
	assert kinds(found) == [AUTOMATED] and "mail system sender" in found[0].evidence


def test_failure_subject_from_a_person_is_not_a_bounce():
	assert detect({}, "ann@example.org", "Re: Undelivered Mail Returned to Sender") == []


@pytest.mark.parametrize("value", ["auto-replied", "auto-generated", "auto-generated (failure)",
								   "auto-notified", "Auto-Replied; owner-email=ann@x.org"])
def test_auto_submitted_other_than_no_is_automated(value):
	found = detect({"auto-submitted": value}, "ann@example.org", "hello")
	assert kinds(found) == [AUTOMATED]
	assert found[0].evidence.startswith("Auto-Submitted: auto-")
	assert "(" not in found[0].evidence  # RFC 5322 comments are not part of the value


@pytest.mark.parametrize("value", ["no", "No", " no ", "no (written by a person)", "", "   "])
def test_auto_submitted_no_is_a_person(value):
	assert detect({"auto-submitted": value}, "ann@example.org", "hello") == []


def test_header_names_are_case_insensitive():
	assert kinds(detect({"Auto-Submitted": "auto-replied"}, "a@x.org", "")) == [AUTOMATED]
	assert kinds(detect({"LIST-ID": "<users.httpd.apache.org>"}, "a@x.org", "")) == [NEWSLETTER]


@pytest.mark.parametrize("name", ["x-autoreply", "x-autorespond"])
def test_vacation_responder_headers(name):
	found = detect({name: "yes"}, "ann@example.org", "Out of office")
	assert kinds(found) == [AUTOMATED] and found[0].evidence == name.title()
	assert detect({name: ""}, "ann@example.org", "Out of office") == []


@pytest.mark.parametrize(
	"precedence, kind",
	[("auto_reply", AUTOMATED), ("bulk", NEWSLETTER), ("Bulk", NEWSLETTER), ("list", NEWSLETTER),
	 ("junk", NEWSLETTER), ("bulk (mailing list)", NEWSLETTER)],
)
def test_precedence(precedence, kind):
	found = detect({"precedence": precedence}, "ann@example.org", "hello")
	assert kinds(found) == [kind]


@pytest.mark.parametrize("precedence", ["first-class", "normal", "", "bulkish"])
def test_other_precedence_says_nothing(precedence):
	assert detect({"precedence": precedence}, "ann@example.org", "hello") == []


@pytest.mark.parametrize(
	"sender",
	["noreply@example.org", "no-reply@example.org", "No_Reply@example.org", "no.reply@example.org",
	 "donotreply@example.org", "do-not-reply@example.org", "do_not_reply@example.org",
	 "noreply-billing@example.org", "gmail-noreply@google.com", "notifications@github.com",
	 "notification@example.org", "bounces@example.org", "automailer@example.org"],
)
def test_no_reply_senders_are_automated(sender):
	found = detect({}, sender, "Your order has shipped")
	assert kinds(found) == [AUTOMATED]
	assert found[0].evidence.startswith("no-reply sender")


@pytest.mark.parametrize("sender", ["reply@example.org", "norman@example.org", "nora@example.org",
									"info@example.org", "noreplyx@example.org", ""])
def test_ordinary_senders_are_not_automated(sender):
	assert detect({}, sender, "hello") == []


def test_list_headers_are_newsletter():
	headers = {"list-unsubscribe": "<mailto:u@x.org>", "list-id": "<news.x.org>"}
	found = detect(headers, "offers@x.org", "Offers")
	assert [s.evidence for s in found] == ["List-Unsubscribe", "List-Id"]
	assert verdict(found) == NEWSLETTER
	assert detect({"list-id": "", "list-unsubscribe": "  "}, "ann@x.org", "hi") == []


@pytest.mark.parametrize("value", ["<users.httpd.apache.org>", "SoCal-Raves <scr.socal-raves.org>",
								   '"Offers" <1234.list-id.mcsv.net>'])
def test_rfc2919_list_id_is_newsletter(value):
	assert [s.evidence for s in detect({"list-id": value}, "ann@x.org", "hi")] == ["List-Id"]


@pytest.mark.parametrize("value", ["abuser@rg.com Mailing List", "<abuse@rg.com>", "nolist", "<>"])
def test_free_text_list_id_is_not_evidence(value):
	assert detect({"list-id": value}, "ann@x.org", "illegal copy of our software") == []


@pytest.mark.parametrize("sender", ["news@insideapple.apple.com", "enews@free-quilting.com", "e-news@x.org",
									"newsletter@x.org", "newsletters@x.org", "discovercard_newsflash@x.net",
									"announcements@provantage.com", "announce@x.org",
									"promotions@shop.example", "news-de@shop.example"])
def test_bulk_senders_are_newsletter(sender):
	found = detect({}, sender, "Our new range")
	assert [(s.kind, s.evidence.split(" (")[0]) for s in found] == [(NEWSLETTER, "bulk sender")]


@pytest.mark.parametrize("sender", ["newsom@x.org", "newsroom@x.org", "announcer@x.org", "renews@x.org",
									"ann.newsome@x.org"])
def test_person_like_senders_are_not_bulk(sender):
	assert detect({}, sender, "hello") == []


@pytest.mark.parametrize("subject", ["Ppp digest, Vol 1 #2 - 5 msgs", "users Digest, Vol 42, Issue 7",
									 "Python-list Digest, Volume 3, Issue 12"])
def test_list_digest_subject_is_newsletter(subject):
	found = detect({}, "ppp-request@zzz.org", subject)
	assert verdict(found) == NEWSLETTER


@pytest.mark.parametrize("subject", ["Re: digest of the meeting", "Weekly digest", "Volume discount quote"])
def test_other_digest_words_are_not_newsletter(subject):
	assert detect({}, "ann@example.org", subject) == []


def test_provider_categories():
	found = detect({}, "ann@x.org", "hi", ["INBOX", "UNREAD", "CATEGORY_PROMOTIONS", "CATEGORY_PERSONAL"])
	assert [(s.kind, s.evidence) for s in found] == [(NEWSLETTER, "Gmail category Promotions")]
	assert verdict(found) == ""  # Gmail's own guess alone does not decide
	found = detect({}, "ann@x.org", "hi", ["CATEGORY_UPDATES"])
	assert [(s.kind, s.evidence) for s in found] == [(AUTOMATED, "Gmail category Updates")]
	assert verdict(found) == ""
	assert verdict(detect({"list-id": "<news.x.org>"}, "ann@x.org", "hi", ["CATEGORY_SOCIAL"])) == NEWSLETTER


def test_verdict_order_bounce_over_automated_over_newsletter():
	listed, autoreply = Signal(NEWSLETTER, "List-Id"), Signal(AUTOMATED, "X-Autoreply")
	bounced = Signal(BOUNCE, "multipart/report; report-type=delivery-status")
	assert verdict([listed, autoreply, bounced]) == BOUNCE
	assert verdict([listed, autoreply]) == AUTOMATED
	assert verdict([listed]) == NEWSLETTER
	assert verdict([]) == ""
	assert verdict([Signal(BOUNCE, "Gmail category Forums")]) == ""


def test_every_signal_of_a_real_bounce_is_reported():
	headers = {"content-type": "multipart/report; report-type=delivery-status",
			   "auto-submitted": "auto-replied", "x-failed-recipients": "bob@x.org"}
	found = detect(headers, "MAILER-DAEMON@mx.x.org", "Undelivered Mail Returned to Sender")
	assert kinds(found) == [BOUNCE, BOUNCE, BOUNCE, AUTOMATED]
	assert str(found[0]) == "bounce: multipart/report; report-type=delivery-status"


def test_none_and_empty_inputs():
	assert detect(None, None, None) == []  # type: ignore[arg-type]
	assert detect({"auto-submitted": None}, "", "") == []  # type: ignore[dict-item]


# --------------------------------------------------------------------------------------------------
# triage
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
	"subject, text, category",
	[("Quotation for 20 office chairs", "Hi,\n\nplease let us know.", triage.QUOTE),
	 ("Question", "Could you send an estimate and your prices for the job?", triage.QUOTE),
	 ("New work", "Please find our purchase order PO #4471 attached.", triage.ORDER),
	 ("Account", "The invoice INV-2041 is still unpaid, is the payment on its way?", triage.INVOICE),
	 ("Heater", "The heater you installed is not working and I am disappointed.", triage.SUPPORT),
	 ("Next week", "Can we move the meeting? I'd like to reschedule to Tuesday.", triage.SCHEDULING),
	 ("Hello", "Lovely to see you at the weekend, say hi to the kids.", triage.OTHER)],
)
def test_classify_categories(subject, text, category):
	result = triage.classify(subject, text)
	assert result.category == category, result.signals
	assert result.kind == ""


def test_subject_hits_count_double():
	result = triage.classify("Invoice 1021", "Also, could you quote for the extension?")
	assert result.category == triage.INVOICE
	assert "'invoice' in subject -> Invoice or payment query" in result.signals
	assert "'quote' in text -> Quote request" in result.signals


def test_confidence():
	assert triage.classify("Quote please", "").confidence == 1.0  # one subject hit (2 x 2) is enough
	mixed = triage.classify("", "quote and invoice")  # 2 vs 2 in the text: weak and split
	assert mixed.category == triage.QUOTE  # ties go to the earlier category
	assert mixed.confidence == pytest.approx(0.25)
	none = triage.classify("Hello", "Nice weekend")
	assert none.confidence == 0.3 and "no business keyword" in none.signals


@pytest.mark.parametrize(
	"subject, text, priority",
	[("URGENT: quote", "", "Urgent"), ("Quote", "We need this asap.", "Urgent"),
	 ("Quote", "It is an emergency.", "Urgent"), ("Quote", "Our deadline is Friday.", "High"),
	 ("Invoice", "This is a final notice.", "High"), ("Quote", "Whenever suits you.", "Normal"),
	 ("Heater", "It is broken.", "High")],  # support or complaint without a priority word -> High
)
def test_priority(subject, text, priority):
	assert triage.classify(subject, text).priority == priority


def test_priority_words_need_word_boundaries():
	assert triage.classify("Quote", "We are in Todayville.").priority == "Normal"


def test_keywords_in_quoted_history_are_ignored():
	text = ("Thanks, see you then.\n\nOn Mon, 1 Jan 2024 at 10:00, Ann <ann@x.org> wrote:\n"
			"> The invoice is overdue\n")
	result = triage.classify("Re: lunch", text)
	assert result.category == triage.OTHER
	assert result.priority == "Normal"  # 'overdue' only in the quote


@pytest.mark.parametrize(
	"text, summary",
	[("Hi John,\n\nCould you send a quote for 20 chairs? Thanks.", "Could you send a quote for 20 chairs?"),
	 ("Dear Sir or Madam,\nPlease find attached our invoice. Regards", "Please find attached our invoice."),
	 ("Good morning team!\n\nThe build is broken.", "The build is broken."),
	 ("Hello, I need a quote for 20 chairs.", "I need a quote for 20 chairs."),
	 ("Hi there. The heater is not working.", "The heater is not working."),
	 ("Hey team - the build is broken.", "the build is broken."),
	 ("Dear Mr. Smith, your order has shipped.", "your order has shipped."),
	 ("Highway 9 is closed today.", "Highway 9 is closed today."),  # not a greeting
	 ("Thanks!\n\nOn Tue, 2 Jan 2024, Bob <b@x.org> wrote:\n> Hi, the invoice is attached.", "Thanks!"),
	 ("> quoted only line\nActual news here.", "Actual news here.")],
)
def test_summary_of(text, summary):
	assert triage.summary_of("The subject", text) == summary


def test_summary_falls_back_to_subject():
	assert triage.summary_of("  Subject line  ", "") == "Subject line"
	assert triage.summary_of("Subject line", "Hi John,\n\nok") == "Subject line"  # "ok" is too short
	assert triage.summary_of("S" * 200, "", length=20) == "S" * 20


def test_summary_is_truncated_to_length():
	summary = triage.summary_of("s", "word " * 100, length=40)
	assert len(summary) == 40 and summary.endswith("…")


@pytest.mark.parametrize(
	"headers, sender, kind",
	[({"auto-submitted": "auto-replied"}, "ann@x.org", "automated"),
	 ({"content-type": "multipart/report; report-type=delivery-status"}, "MAILER-DAEMON@x.org", "bounce"),
	 ({}, "noreply@shop.example", "automated")],
)
def test_automated_and_bounce_short_circuit(headers, sender, kind):
	result = triage.classify("URGENT: invoice overdue", "Please pay the invoice today.", headers, sender)
	outcome = (result.category, result.priority, result.confidence, result.kind)
	assert outcome == (triage.AUTOMATED, "Low", 0.95, kind)
	assert not any("->" in s for s in result.signals)  # no keyword scoring after the short-circuit
	assert result.signals
	assert all(s.split(":")[0] in ("bounce", "automated", "newsletter") for s in result.signals)


def test_newsletter_short_circuit():
	headers = {"list-unsubscribe": "<mailto:u@x>"}
	result = triage.classify("Quote of the week", "Our best prices!", headers, "n@x.org")
	outcome = (result.category, result.priority, result.confidence, result.kind)
	assert outcome == (triage.NEWSLETTER, "Low", 0.9, "newsletter")
	assert result.signals == ["newsletter: List-Unsubscribe"]


def test_provider_category_alone_does_not_short_circuit():
	result = triage.classify("Quote please", "", {}, "ann@x.org", ["CATEGORY_PROMOTIONS"])
	assert result.category == triage.QUOTE and result.kind == ""
	assert "newsletter: Gmail category Promotions" in result.signals


def test_summary_is_set_for_automated_mail_too():
	result = triage.classify("Out of office", "Hello,\n\nI am away until Monday.", {"x-autoreply": "yes"})
	assert result.summary == "I am away until Monday."


# --------------------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def facts():
	return Facts(mailbox="Sales", sender="jdoe@gmail.com", recipients=["sales+eu@acme.com", "ann@acme.com"],
				 subject="Quote for 20 Chairs", text="Please send your PRICES by Friday.",
				 category=triage.QUOTE, party_type="Customer", party="CUST-001")


def test_a_rule_without_conditions_applies(facts):
	assert applies({}, facts)
	assert applies({"mailbox": "", "sender": None, "subject_regex": ""}, facts)


@pytest.mark.parametrize(
	"condition, holds",
	[({"mailbox": "Sales"}, True), ({"mailbox": "Support"}, False), ({"mailbox": "sales"}, False),
	 ({"sender": "jdoe@gmail.com"}, True), ({"sender": "J.Doe+x@GoogleMail.com"}, True),
	 ({"sender": " <JDOE@gmail.com> "}, True), ({"sender": "John Doe <j.doe@gmail.com>"}, True),
	 ({"sender": "ann@gmail.com"}, False),
	 ({"sender": "*@gmail.com"}, True), ({"sender": "*@GMAIL.COM"}, True),
	 ({"sender": "*@googlemail.com"}, True), ({"sender": "J.D*@googlemail.com"}, True),
	 ({"sender": "j?oe@gmail.com"}, True), ({"sender": "*@acme.com"}, False), ({"sender": "jdoe@*"}, True),
	 ({"sender_domain": "gmail.com"}, True), ({"sender_domain": "@Gmail.com"}, True),
	 ({"sender_domain": "googlemail.com"}, True), ({"sender_domain": "mail.com"}, False),
	 ({"sender_domain": "com"}, True),  # a parent domain covers its subdomains
	 ({"recipient": "sales+eu@acme.com"}, True), ({"recipient": "<Sales+EU@Acme.com>"}, True),
	 ({"recipient": "sales@acme.com"}, False),  # an alias is exact: sales+eu@ is not sales@
	 ({"subject_contains": "chairs"}, True), ({"subject_contains": "tables, CHAIRS"}, True),
	 ({"subject_contains": "tables, desks"}, False),
	 ({"body_contains": "prices"}, True), ({"body_contains": "invoice"}, False),
	 ({"subject_regex": r"quote\s+for\s+\d+"}, True), ({"subject_regex": r"by (mon|fri)day"}, True),
	 ({"subject_regex": r"^invoice"}, False),
	 ({"category_is": triage.QUOTE}, True), ({"category_is": triage.INVOICE}, False),
	 ({"party": "CUST-001"}, True), ({"party": "CUST-001", "party_type": "Customer"}, True),
	 ({"party": "CUST-001", "party_type": "Supplier"}, False), ({"party": "CUST-002"}, False)],
)
def test_each_condition(facts, condition, holds):
	assert applies(condition, facts) is holds


def test_every_filled_condition_must_hold(facts):
	assert applies({"mailbox": "Sales", "sender_domain": "gmail.com", "subject_contains": "quote"}, facts)
	assert not applies({"mailbox": "Sales", "sender_domain": "gmail.com", "subject_contains": "bill"}, facts)


@pytest.mark.parametrize("pattern", ["acme.com", "not an address", "@acme.com"])
def test_unreadable_sender_condition_never_applies(pattern):
	assert not applies({"sender": pattern}, Facts(sender=""))
	assert not applies({"sender": pattern}, Facts(sender="ann@acme.com"))


def test_sender_domain_does_not_match_a_lookalike():
	assert not applies({"sender_domain": "acme.com"}, Facts(sender="ann@notacme.com"))
	assert applies({"sender_domain": "acme.com"}, Facts(sender="ann@mail.acme.com"))


def test_invalid_regex():
	with pytest.raises(ValueError, match="not a valid regular expression"):
		validate_rule({"subject_regex": "quote(["})
	validate_rule({"subject_regex": r"quote\s+\d+"})
	validate_rule({})
	assert not applies({"subject_regex": "quote(["}, Facts(subject="quote(["))  # a stored bad rule: never


def rule(name, sequence=10, **fields):
	return {"name": name, "enabled": 1, "sequence": sequence, **fields}


def test_evaluate_no_rules_or_none_applying(facts):
	assert evaluate([], facts) == Decision()
	assert evaluate([rule("R1", mailbox="Support", set_category="X")], facts) == Decision()


def test_disabled_rules_are_skipped(facts):
	rows = [{**rule("R1", set_priority="Urgent"), "enabled": 0}, rule("R2", set_priority="Low")]
	decision = evaluate(rows, facts)
	assert decision.rules == ["R2"] and decision.priority == "Low"


def test_sequence_order_then_name(facts):
	rows = [rule("B", 20, set_priority="Low"), rule("Z", 5, set_priority="High"),
			rule("A", 20, set_priority="Urgent"), rule("N", None, set_company="Acme")]  # None sorts as 0
	decision = evaluate(rows, facts)
	assert decision.rules == ["N", "Z", "A", "B"]
	assert decision.priority == "High" and decision.company == "Acme"


def test_first_set_wins_and_later_rules_fill_gaps(facts):
	rows = [rule("R1", 1, set_category=triage.ORDER),
			rule("R2", 2, set_category=triage.INVOICE, set_priority="High", assign_to="ann@acme.com"),
			rule("R3", 3, set_priority="Low", set_company="Acme Ltd", create_document="Quotation")]
	decision = evaluate(rows, facts)
	assert decision == Decision(rules=["R1", "R2", "R3"], category=triage.ORDER, priority="High",
								company="Acme Ltd", assign_to="ann@acme.com", create_document="Quotation")


def test_stop_processing(facts):
	rows = [rule("R1", 1, set_category=triage.ORDER), rule("R2", 2, mailbox="Support", stop_processing=1),
			rule("R3", 3, set_priority="High", stop_processing=1), rule("R4", 4, set_company="Never")]
	decision = evaluate(rows, facts)
	assert decision.rules == ["R1", "R3"]  # R2 does not apply so it does not stop anything
	assert decision.priority == "High" and decision.company == ""


def test_ignore_and_ignored_by(facts):
	rows = [rule("R1", 1, set_category=triage.ORDER), rule("R2", 2, ignore=1),
			rule("R3", 3, ignore=1, set_priority="Low")]
	decision = evaluate(rows, facts)
	assert decision.ignore and decision.ignored_by == "R2"  # the first ignoring rule is recorded
	assert decision.rules == ["R1", "R2", "R3"] and decision.priority == "Low"
	assert not evaluate([rule("R1", ignore=0)], facts).ignore


def test_create_document_flags_come_from_the_rule_that_chose_it(facts):
	rows = [rule("R1", 1, create_document="Quotation"),
			rule("R2", 2, category_is=triage.QUOTE, create_document="Opportunity", applies_to_backfill=1)]
	decision = evaluate(rows, facts)
	assert decision.create_document == "Quotation"
	assert decision.create_needs_category is False and decision.create_on_backfill is False
	rows = [rule("R1", 1, category_is=triage.QUOTE, create_document="Quotation", applies_to_backfill=1),
			rule("R2", 2, create_document="Opportunity")]
	decision = evaluate(rows, facts)
	assert decision.create_document == "Quotation"
	assert decision.create_needs_category is True and decision.create_on_backfill is True


def test_conditions_tuple_names_the_rule_fields():
	assert set(rules.CONDITIONS) == {"mailbox", "sender", "sender_domain", "recipient", "subject_contains",
									 "body_contains", "subject_regex", "category_is", "party"}
