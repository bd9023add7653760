"""Import rules per account: alias filter, blocklist, categories, auto-generated mail."""

from __future__ import annotations

from types import SimpleNamespace

from atlas_integrations.gmail.filters import MailFilter
from atlas_integrations.inbox.mime import parse_message


def _msg(headers: str) -> bytes:
	return (headers.strip() + "\r\n\r\nbody\r\n").replace("\n", "\r\n").replace("\r\r", "\r").encode()


def _account(**kw):
	base = dict(aliases="", blocklist="", only_alias_mail=0, skip_categories=0, skip_auto_generated=0,
				email_address="me@corp.example")
	base.update(kw)
	return SimpleNamespace(**base)


def test_defaults_import_everything():
	f = MailFilter.for_account(_account())
	m = parse_message(_msg("From: x@y.org\nTo: me@corp.example\nPrecedence: bulk"))
	assert f.skip_reason(["INBOX", "CATEGORY_PROMOTIONS"], m) is None


def test_categories_are_skipped_by_labels():
	f = MailFilter.for_account(_account(skip_categories=1))
	assert f.skip_reason(["INBOX", "CATEGORY_SOCIAL"], None) == "category CATEGORY_SOCIAL"
	assert f.skip_reason(["INBOX", "CATEGORY_PERSONAL"], None) is None


def test_blocklist_by_address_and_domain_but_never_sent_mail():
	f = MailFilter.for_account(_account(blocklist="spam@bad.example\n@worse.example, junk.example"))
	for sender in ("spam@bad.example", "anyone@worse.example", "x@junk.example"):
		assert f.skip_reason(["INBOX"], parse_message(_msg(f"From: {sender}\nTo: me@corp.example"))), sender
	assert f.skip_reason(["INBOX"], parse_message(_msg("From: ok@bad.example"))) is None
	assert f.skip_reason(["SENT"], parse_message(_msg("From: spam@bad.example"))) is None


def test_alias_filter_looks_at_from_to_cc_bcc():
	f = MailFilter.for_account(_account(only_alias_mail=1, aliases="sales@corp.example"))
	assert f.skip_reason(["INBOX"], parse_message(_msg("From: a@x.org\nTo: other@corp.example"))) == "no alias in From/To/Cc/Bcc"
	assert f.skip_reason(["INBOX"], parse_message(_msg("From: a@x.org\nTo: o@x.org\nCc: Sales <SALES@corp.example>"))) is None
	assert f.skip_reason(["INBOX"], parse_message(_msg("From: a@x.org\nBcc: me@corp.example"))) is None  # connected address


def test_auto_generated_mail():
	f = MailFilter.for_account(_account(skip_auto_generated=1))
	cases = {
		"Auto-Submitted: auto-replied": "Auto-Submitted: auto-replied",
		"Precedence: list": "Precedence: list",
		"List-Unsubscribe: <mailto:u@x.org>": "List-Unsubscribe",
		"Content-Type: multipart/report; report-type=delivery-status; boundary=b": "delivery report",
	}
	for header, why in cases.items():
		m = parse_message(_msg(f"From: robot@x.org\n{header}"))
		assert f.skip_reason(["INBOX"], m) == f"auto-generated ({why})"
	assert f.skip_reason(["INBOX"], parse_message(_msg("From: a@x.org\nAuto-Submitted: no"))) is None
