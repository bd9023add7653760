"""The MIME reader on the real corpus: same header text as email.policy.default, never raises."""

from __future__ import annotations

import email
import email.policy
import glob
import os
import re
from pathlib import Path

import pytest

from atlas_integrations.inbox.mime import format_address, parse_message, snippet_of, unsurrogate

CORPUS = Path(os.environ.get("ATLAS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus"))
FILES = sorted(glob.glob(str(CORPUS / "**" / "*.eml"), recursive=True))


def test_corpus_is_there():
	assert len(FILES) == 276


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.split("corpus/")[-1])
def test_headers_decode_like_policy_default(path):
	raw = Path(path).read_bytes()
	parsed = parse_message(raw)
	ref = email.message_from_bytes(raw, policy=email.policy.default)
	try:
		subject, sender, date = ref["subject"], ref["from"], ref["date"]
	except Exception:
		pytest.skip("the reference parser itself raises on this message's headers")
	assert parsed.subject == (unsurrogate(" ".join(str(subject).split())) if subject is not None else "")
	if sender is not None and sender.addresses:
		first = sender.addresses[0]
		assert parsed.sender == (unsurrogate(first.display_name), unsurrogate(first.addr_spec))
	ref_date = getattr(date, "datetime", None) if date is not None else None
	if ref_date is not None and ref_date.tzinfo is not None:
		assert parsed.date == ref_date
	assert parsed.raw_headers  # what we could read is always kept


def test_charsets_decode():
	by_name = {Path(p).name: parse_message(Path(p).read_bytes()) for p in FILES}
	jp = [m for n, m in by_name.items() if "iso-2022-jp" in n.lower() or "iso_2022" in n.lower()]
	assert any(any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in m.subject) for m in jp) or not jp


def test_attachments_and_nested_message():
	pdf = parse_message((CORPUS / "mikel-mail" / "attachment_emails" / "attachment_pdf.eml").read_bytes())
	assert [a.content_type for a in pdf.attachments] == ["application/pdf"]
	assert pdf.attachments[0].content.startswith(b"%PDF")
	rfc822 = parse_message((CORPUS / "mikel-mail" / "attachment_emails" / "attachment_message_rfc822.eml").read_bytes())
	inner = [a for a in rfc822.attachments if a.content_type == "message/rfc822"]
	assert len(inner) == 1 and inner[0].filename.endswith(".eml") and b"Subject:" in inner[0].content


def test_encoded_attachment_names_are_decoded():
	m = parse_message((CORPUS / "mikel-mail" / "attachment_emails" / "attachment_with_encoded_name.eml").read_bytes())
	assert m.attachments and all("=?" not in a.filename for a in m.attachments)


def test_broken_messages_are_read_with_their_errors():
	for name in ("msg_15.eml", "msg_19.eml", "msg_41.eml"):
		m = parse_message((CORPUS / "cpython-test_email" / name).read_bytes())
		assert m.errors, name
		assert m.raw_headers
	bad_date = parse_message((CORPUS / "mikel-mail" / "error_emails" / "bad_date_header.eml").read_bytes())
	assert bad_date.date is None and any("Date" in e for e in bad_date.errors)


@pytest.mark.parametrize(
	"raw",
	[b"", b"\x00\xff\xfe garbage", b"Subject: =?bogus-charset?Q?abc?=\n\nbody", b"From: <<<>>>\nTo: ,,,\n\n",
	 b"Content-Type: multipart/mixed; boundary=x\n\n--x\nContent-Type: text/plain; charset=nope\n\n\xe9\n"],
)
def test_garbage_never_raises(raw):
	m = parse_message(raw)
	assert isinstance(m.subject, str) and isinstance(m.text, str)


def test_unknown_charset_is_replaced_not_fatal():
	m = parse_message(b"Subject: x\nContent-Type: text/plain; charset=x-unknown\n\ncaf\xe9\n")
	assert m.text.startswith("caf") and any("unknown charset" in e for e in m.errors)


def test_helpers():
	assert snippet_of("  a\n\n b\tc  ", 3) == "a b"
	assert format_address(("Ann Example", "ann@example.org")) == "Ann Example <ann@example.org>"
	assert format_address(("", "ann@example.org")) == "ann@example.org"


def test_raw_8bit_headers_are_read_as_utf8():
	assert unsurrogate("caf\udcc3\udca9") == "café"  # UTF-8 bytes
	assert unsurrogate("Forma\udce7\udce3o") == "Formação"  # legacy windows-1252 bytes
	assert unsurrogate("plain") == "plain"


def _from(value: str):
	return parse_message(f"From: {value}\r\nSubject: s\r\n\r\nbody\r\n".encode())


@pytest.mark.parametrize(
	("header", "sender"),
	[
		('"john doe"@x.org', ("", '"john doe"@x.org')),  # quoted local part: kept, quotes and all
		('John <"john doe"@x.org>', ("John", '"john doe"@x.org')),
		("john", ("", "john")),  # no domain
		("<john>", ("", "john")),
		("John <john>", ("John", "john")),
		("MAILER-DAEMON", ("", "MAILER-DAEMON")),
		("root@localhost", ("", "root@localhost")),
		("MAILER DAEMON <>", ("MAILER DAEMON", "<>")),  # the null sender of a bounce
		("John <john@[127.0.0.1]>", ("John", "john@[127.0.0.1]")),
		("x.org!john", ("", "x.org!john")),
		("john..doe@x.org", ("", "john..doe@x.org")),
		('"very.(),:;<>[]\\".VERY.\\"very@\\\\ \\"very\\".unusual"@strange.example.com',
		 ("", '"very.(),:;<>[]\\".VERY.\\"very@\\\\ \\"very\\".unusual"@strange.example.com')),
		("Jörg <jörg@bücher.de>", ("Jörg", "jörg@bücher.de")),  # RFC 6532 raw UTF-8
		("=?utf-8?q?J=C3=B6rg?= <j@x.org>", ("Jörg", "j@x.org")),
		("foo@bar.com (Foo Bar)", ("", "foo@bar.com")),
		("John Smith <@relay.x.org:john@x.org>", ("John Smith", "john@x.org")),  # obsolete route
		("tim@x.org other@x.org", ("", "tim@x.org")),  # two addresses without a comma: the first
		# where policy.default loses the address, it is given as written in the header
		("a@b@c", ("", "a@b@c")),  # policy.default: "<>"
		("<<john@x.org>>", ("", "john@x.org")),  # policy.default: "<>"
		("@x.org", ("", "@x.org")),  # policy.default: "<>"
		("user@ex ample.com", ("", "user@ex ample.com")),  # policy.default: "user@ex"
		("john@", ("", "john@")),  # policy.default raises
	],
)
def test_unusual_sender_addresses_are_kept(header, sender):
	m = _from(header)
	assert m.sender == sender
	ref = email.message_from_bytes(f"From: {header}\r\n\r\n".encode(), policy=email.policy.default)
	try:
		first = ref["from"].addresses[0]
		ref_addr = unsurrogate(first.addr_spec)
	except Exception:
		ref_addr = None
	if ref_addr != sender[1]:  # not policy.default's reading: noted in the parse error
		assert any("kept as written" in e for e in m.errors)


def test_no_sender_address_is_lost_on_the_corpus():
	"""Every From header that holds an address gives a non-empty address; the address appears in the
	header (quotes, spaces and comments aside)."""

	def squash(text: str) -> str:
		return "".join(text.split()).replace('"', "")

	def uncomment(text: str) -> str:
		while True:
			less = re.sub(r"\((?:[^()\\]|\\.)*\)", "", text)
			if less == text:
				return text
			text = less

	for path in FILES:
		raw = Path(path).read_bytes()
		headers = email.message_from_bytes(raw, policy=email.policy.compat32)._headers  # raw values
		header = next((v for k, v in headers if k.lower() == "from"), None)
		m = parse_message(raw)
		if header is None:
			assert m.sender == ("", ""), path
			continue
		text = uncomment(unsurrogate(str(header)))
		if "@" in text:
			assert "@" in m.sender[1], path
		assert squash(m.sender[1]) in squash(text) or m.sender[1] == "<>", path
