"""Attachments of the MIME reader, checked on every corpus message against an oracle written here
with the ``email`` package alone (``policy.default``'s ``get_body()``, ``is_attachment()``,
``get_filename()``, ``get_payload(decode=True)``), not with anything of ``mime.py``.

What counts as an attachment (the oracle's rules, which ``parse_message`` must follow):

1. An enclosed message (``message/rfc822``, or its UTF-8 form ``message/global``) is ONE attachment: the
   whole enclosed message kept as an ``.eml`` file (mail forwarded as an attachment). Its own parts are
   not looked into: an attachment of the forwarded mail is inside that ``.eml``, not extracted again. This
   holds for the top-level message too (a message whose whole body is ``message/rfc822``, as GroupWise
   forwards).
2. Any other part with sub-parts (``multipart/*``, ``message/delivery-status``, ``message/external-body``,
   ...) is a container, never an attachment itself, even with a file name or a disposition (a
   ``message/external-body`` names a file kept elsewhere; a ``multipart/appledouble`` attachment is its
   two parts). Its parts are judged one by one.
3. A leaf with ``Content-Disposition: attachment`` or a file name (``get_filename()`` is not empty) is an
   attachment, an inline one included (an inline image with a name and a Content-ID), unless it is the
   part ``get_body(("plain",))`` or ``get_body(("html",))`` picks as the body: a ``text/plain`` part sent
   as ``inline; filename="msg.txt"`` is read as the text when it is the body; a second such part is an
   attachment.
4. A leaf that is neither text nor multipart nor message and has no name is an attachment too (an
   embedded image known only by its Content-ID, an ``application/octet-stream`` without a name): counting
   only named parts would drop it silently. Nameless text (plain, html, enriched, rfc822-headers, ...)
   is body text, and so is a ``multipart/*`` whose boundary the parser did not find (its text is kept).
5. A part whose content does not decode is still an attachment (raw bytes, ``error`` saying why).
6. A Content-Disposition policy.default cannot read counts as none; a file name it cannot read counts
   as a name (the part is kept as an attachment under a default name, unless it is the body).

The count is checked for every message, and beyond the count the order, content types, names, bytes,
Content-IDs and inline flags, so the two readings agree part by part.

The tree: policy.default reads an unquoted boundary holding ``=`` (``boundary=----=_Part_1.2``) as
``----``, finds no part and leaves the multipart unsplit; compat32 reads the whole value, as mail
clients do (three corpus messages, see :data:`STRICT_BOUNDARY`). ``mime.py`` splits the way compat32
does, so the oracle takes the parser's compat32 split and reads every part of it with policy.default
(same raw header values: ``header_source_parse`` is the same in both policies).
"""

from __future__ import annotations

import base64
import email
import email.policy
import glob
import os
from pathlib import Path

import pytest

from atlas_integrations.inbox.mime import default_filename, parse_message, unsurrogate
from tests.pure.mime_expectations import Expected, expected_attachments  # noqa: F401 - fixtures and helpers
from tests.pure.mime_expectations import message_tree  # noqa: F401 - fixtures and helpers

CORPUS = Path(
	os.environ.get("ATLAS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus")
)
FILES = sorted(glob.glob(str(CORPUS / "**" / "*.eml"), recursive=True))
STANDARD_CTE = ("", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode")


def corpus(name: str) -> bytes:
	return (CORPUS / name).read_bytes()


#: the corpus messages whose multipart policy.default does not split (unquoted boundary with "=")
STRICT_BOUNDARY = (
	"mikel-mail/mime_emails/raw_email_with_binary_encoded.eml",
	"mikel-mail/mime_emails/raw_email_with_illegal_boundary.eml",
	"mikel-mail/plain_emails/raw_email_bad_time.eml",
)


#: where policy.default loses the file name, mime.py reads the raw parameter (see test_readable_names)
SALVAGED_NAMES = {
	"mikel-mail/attachment_emails/attachment_with_unquoted_name.eml": "This is a test.txt",  # pd: "This"
	"mikel-mail/attachment_emails/attachment_with_base64_encoded_name.eml": "This is a test.pdf",  # pd: None
}


def shape(msg) -> list[str]:
	return [p.get_content_type() + ("*" if p.is_multipart() else "") for p in msg.walk()]


def test_the_tree_is_policy_defaults_but_for_the_boundary_it_cannot_read():
	for path in FILES:
		raw = Path(path).read_bytes()
		same = shape(message_tree(raw)) == shape(email.message_from_bytes(raw, policy=email.policy.default))
		assert same != path.endswith(STRICT_BOUNDARY), path


# --------------------------------------------------------------------------------------------------
# every corpus message
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.split("corpus/")[-1])
def test_attachments_match_the_oracle(path):
	raw = Path(path).read_bytes()
	parsed = parse_message(raw)
	expected = expected_attachments(raw)
	got = parsed.attachments
	assert len(got) == len(expected), [(a.content_type, a.filename) for a in got]
	assert bool(got) == bool(expected)  # "has attachment"
	assert [a.content_type for a in got] == [e.content_type for e in expected]
	for att, exp in zip(got, expected, strict=True):
		assert isinstance(att.filename, str) and att.filename
		assert not any("\udc80" <= ch <= "\udcff" for ch in att.filename)  # storable text
		assert isinstance(att.content, bytes) and att.size == len(att.content)
		assert att.error is None or (isinstance(att.error, str) and att.error)
		cid = exp.part["content-id"]
		if cid is not None:
			assert att.content_id == "".join(unsurrogate(str(cid)).split()).strip("<>")
			assert "<" not in att.content_id and ">" not in att.content_id
		else:
			assert att.content_id is None
		disposition = exp.part.get_content_disposition()
		assert att.inline == (disposition == "inline" or (not disposition and cid is not None))
		if exp.enclosed:
			check_enclosed(att, exp)
			continue
		# the readable name as policy.default decodes it, else a default from the content type
		rel = path.split("corpus/")[-1]
		assert att.filename == (SALVAGED_NAMES.get(rel) or exp.name or default_filename(exp.content_type))
		cte = str(exp.part.get("content-transfer-encoding", "")).strip().lower()
		if att.error is None and cte in STANDARD_CTE:
			assert att.content == (exp.part.get_payload(decode=True) or b"")


def check_enclosed(att, exp: Expected) -> None:
	"""The .eml is the enclosed message: same headers, same parts, same body bytes; named by the part's
	file name or by the enclosed subject."""
	inner = exp.part.get_payload()[0]
	again = email.message_from_bytes(att.content, policy=email.policy.default)
	for header in ("subject", "from", "to", "date", "message-id", "content-type"):
		assert str(again.get(header, "")) == str(inner.get(header, "")), header
	assert [p.get_content_type() for p in again.walk()] == [p.get_content_type() for p in inner.walk()]
	for a, b in zip(again.walk(), inner.walk(), strict=True):
		if not a.is_multipart():
			assert a.get_payload(decode=True) == b.get_payload(decode=True)
	subject = " ".join(unsurrogate(str(inner.get("subject", ""))).split())
	assert att.filename == (exp.name or (f"{subject}.eml" if subject else "message.eml"))


def test_corpus_figures():
	"""The totals of the oracle over the corpus (the same as parse_message's, by the test above)."""
	per_message = [expected_attachments(Path(p).read_bytes()) for p in FILES]
	assert len(per_message) == 276
	assert sum(1 for e in per_message if e) == 56  # messages with attachments
	assert sum(len(e) for e in per_message) == 68  # attachments
	assert sum(x.enclosed for e in per_message for x in e) == 22  # enclosed messages (.eml)
	assert not any(a.error for p in FILES for a in parse_message(Path(p).read_bytes()).attachments)


# --------------------------------------------------------------------------------------------------
# named cases of the corpus
# --------------------------------------------------------------------------------------------------
def test_inline_image_keeps_its_content_id_for_the_html():
	m = parse_message(corpus("mikel-mail/attachment_emails/attachment_message_rfc822_inline_image.eml"))
	img = [a for a in m.attachments if a.content_type == "image/png"]
	assert len(img) == 1 and img[0].inline and img[0].filename == "img.png"
	assert img[0].content_id == "emedfeb92f-a786-4718-a446-98db8afb53fb@kronos"
	assert f"cid:{img[0].content_id}" in m.html
	assert img[0].content.startswith(b"\x89PNG")


@pytest.mark.parametrize(
	"name",
	[
		"mikel-mail/attachment_emails/attachment_content_location.eml",
		"mikel-mail/mime_emails/raw_email12.eml",
	],
)
def test_nameless_embedded_image_is_kept(name):
	m = parse_message(corpus(name))
	assert [(a.filename, a.content_type, a.inline, a.content_id) for a in m.attachments] == [
		("attachment.jpg", "image/jpeg", True, "qbFGyPQAS8")
	]
	assert m.attachments[0].size == 227  # (the fixture's "image" is not a real JPEG)


def test_forwarded_message_is_one_eml_with_its_own_attachments_inside():
	raw = corpus("mikel-mail/attachment_emails/attachment_message_rfc822.eml")
	m = parse_message(raw)
	assert [(a.filename, a.content_type) for a in m.attachments] == [
		("ForwardedMessage.eml", "message/rfc822")
	]
	eml = m.attachments[0].content
	assert eml in raw  # the enclosed message's bytes, as they came
	inner = parse_message(eml)
	assert [a.filename for a in inner.attachments] == ["broken.pdf"]  # inside the .eml, not extracted again
	assert inner.attachments[0].content.startswith(b"%PDF")


def test_digest_messages_are_named_by_subject():
	m = parse_message(corpus("cpython-test_email/msg_02.eml"))
	assert [a.filename for a in m.attachments] == [
		"[Ppp] testing #1.eml",
		"message.eml",
		"[Ppp] testing #3.eml",
		"[Ppp] testing #4.eml",
		"[Ppp] testing #5.eml",
	]
	assert all(a.content_type == "message/rfc822" and a.content for a in m.attachments)


def test_message_that_is_only_an_enclosed_message():
	raw = corpus("cpython-test_email/msg_46.eml")  # GroupWise forward: the top level is message/rfc822
	m = parse_message(raw)
	assert [(a.filename, a.content_type) for a in m.attachments] == [
		("GroupwiseForwardingTest.eml", "message/rfc822")
	]
	assert parse_message(m.attachments[0].content).sender == ("Dr. Sender", "sender@example.net")


def test_named_inline_text_is_the_body_once():
	for name in ("cpython-test_email/msg_04.eml", "cpython-test_email/msg_44.eml"):
		m = parse_message(corpus(name))
		assert m.text.startswith("a simple kind of mirror")
		assert [(a.filename, a.content_type) for a in m.attachments] == [("msg.txt", "text/plain")]


@pytest.mark.parametrize(
	("name", "filename"),
	[
		("mikel-mail/multi_charset/japanese_attachment.eml", "てすと.txt"),  # RFC 2047 in a quoted name
		("mikel-mail/attachment_emails/attachment_nonascii_filename.eml", "ciële.txt"),  # raw UTF-8
		(
			"mikel-mail/attachment_emails/attachment_with_quoted_filename.eml",
			"Eelanalüüsi päring.jpg",
		),  # RFC 2231
		("mikel-mail/multi_charset/japanese_attachment_long_name.eml", "かきくけこ" * 5 + ".txt"),
		# iso-2022-jp RFC 2231 value holding a byte that is not iso-2022-jp: replaced, as policy.default does
		(
			"mikel-mail/attachment_emails/attachment_with_encoded_name.eml",
			"01 Quien Te Dij\ufffdat. Pitbull.mp3",
		),
		# where policy.default loses the name the raw value is read: unquoted name with spaces ("This") ...
		("mikel-mail/attachment_emails/attachment_with_unquoted_name.eml", "This is a test.txt"),
		# ... and an unquoted encoded word (policy.default: no name at all)
		("mikel-mail/attachment_emails/attachment_with_base64_encoded_name.eml", "This is a test.pdf"),
	],
)
def test_readable_names(name, filename):
	m = parse_message(corpus(name))
	assert [a.filename for a in m.attachments] == [filename]


def test_unquoted_boundary_with_equals_sign_is_split():
	m = parse_message(corpus(STRICT_BOUNDARY[0]))
	assert [(a.filename, a.content_type, a.content) for a in m.attachments] == [
		("2013-08-13_19-08-28-1.jpg", "image/jpeg", b"BINARY_CONTENT_GOES_HERE")
	]
	for name in STRICT_BOUNDARY[1:]:
		m = parse_message(corpus(name))
		assert m.text and m.html and not m.attachments and "----=_" not in m.text


def test_parts_the_parser_cannot_see_are_reported():
	m = parse_message(corpus("cpython-test_email/msg_15.eml"))  # a reused boundary hides an image/gif
	assert any("after the closing boundary" in e for e in m.errors)


# --------------------------------------------------------------------------------------------------
# made-up messages: what the corpus does not have
# --------------------------------------------------------------------------------------------------
def mail(*parts: str, boundary: str = "b0", top: str = "multipart/mixed") -> bytes:
	body = "".join(f"--{boundary}\r\n{p}\r\n" for p in parts)
	return (
		f"From: a@example.org\r\nSubject: made up\r\nMIME-Version: 1.0\r\n"
		f'Content-Type: {top}; boundary="{boundary}"\r\n\r\n{body}--{boundary}--\r\n'
	).encode()


TEXT = "Content-Type: text/plain; charset=utf-8\r\n\r\nhello"


def check(raw: bytes):
	"""parse_message on ``raw``, checked against the oracle's count and content types."""
	m = parse_message(raw)
	expected = expected_attachments(raw)
	assert [a.content_type for a in m.attachments] == [e.content_type for e in expected]
	return m


@pytest.mark.parametrize(
	("cte", "payload", "content", "error"),
	[
		("base64", "QUJD\r\nR", b"QUJDR", "impossible length"),  # 5 base64 characters: kept raw
		("base64", "QU*JD", b"ABC", "outside the base64 alphabet"),
		(
			"x-foo",
			"\u00e9t\u00e9",
			"\u00e9t\u00e9".encode("utf-8"),
			"unknown Content-Transfer-Encoding 'x-foo'",
		),
		("x-uuencode", "not uuencoded at all", b"not uuencoded at all", "x-uuencode"),
	],
)
def test_undecodable_payload_is_kept_with_an_error(cte, payload, content, error):
	raw = mail(
		TEXT,
		f'Content-Type: application/pdf; name="r.pdf"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{payload}',
	)
	m = check(raw)
	assert len(m.attachments) == 1
	att = m.attachments[0]
	assert att.filename == "r.pdf" and att.error and error in att.error
	assert att.content == content
	assert any(error in e for e in m.errors)  # and in the message's parse error


@pytest.mark.parametrize("cte", ["Base64;", "base 64", "BASE64  "])
def test_misspelled_transfer_encoding_still_decodes(cte):
	data = base64.b64encode(b"%PDF-1.4 hello").decode()
	m = check(
		mail(
			TEXT,
			f"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n"
			f"Content-Transfer-Encoding: {cte}\r\n\r\n{data}",
		)
	)
	assert [(a.filename, a.content, a.error) for a in m.attachments] == [
		("attachment.pdf", b"%PDF-1.4 hello", None)
	]


def test_default_names():
	assert default_filename("application/pdf") == "attachment.pdf"
	assert default_filename("message/rfc822") == "message.eml"
	assert default_filename("image/jpeg") == "attachment.jpg"
	assert default_filename("text/plain") == "attachment.txt"
	assert default_filename("application/x-no-such-type") == "attachment.bin"
	m = check(
		mail(
			TEXT,
			"Content-Type: application/pdf\r\nContent-Disposition: attachment\r\n\r\n%PDF",
			"Content-Type: image/png\r\nContent-ID: <logo@x>\r\n\r\npng",
		)
	)
	assert [(a.filename, a.inline, a.content_id) for a in m.attachments] == [
		("attachment.pdf", False, None),
		("attachment.png", True, "logo@x"),
	]


@pytest.mark.parametrize(
	"name", ["../../etc/passwd", "C:\\Users\\me\\<b>x</b>.pdf", " spaced .txt", "a\u202eexe.txt"]
)
def test_names_are_not_sanitised(name):
	quoted = name.replace("\\", "\\\\")
	raw = mail(
		TEXT,
		f"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; "
		f'filename="{quoted}"\r\n\r\nx',
	)
	m = check(raw)
	ref = email.message_from_bytes(raw, policy=email.policy.default)
	assert [a.filename for a in m.attachments] == [list(ref.iter_attachments())[0].get_filename()]
	assert m.attachments[0].filename.strip() == name.strip()


def test_rfc2231_continuations_are_joined():
	m = check(
		mail(
			TEXT,
			"Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
			" filename*0*=UTF-8''R%C3%A9sum%C3%A9%20de;\r\n filename*1*=%20l%27ann%C3%A9e.pdf\r\n\r\nx",
		)
	)
	assert [a.filename for a in m.attachments] == ["Résumé de l'année.pdf"]


def test_html_body_with_a_name_is_the_body_and_an_attached_html_is_not():
	m = check(
		mail(
			'Content-Type: multipart/alternative; boundary="b1"\r\n\r\n--b1\r\n' + TEXT + "\r\n--b1\r\n"
			'Content-Type: text/html; name="body.html"\r\nContent-Disposition: inline\r\n\r\n'
			"<p>hi</p>\r\n--b1--",
			'Content-Type: text/html; name="page.html"\r\nContent-Disposition: attachment\r\n\r\n<p>page</p>',
		)
	)
	assert m.html == "<p>hi</p>" and m.text == "hello"
	assert [(a.filename, a.content) for a in m.attachments] == [("page.html", b"<p>page</p>")]


def test_enclosed_message_global_and_encoded_rfc822():
	inner = b"From: b@example.org\r\nSubject: inner one\r\n\r\ninner body\r\n"
	glob_ = mail(TEXT, "Content-Type: message/global\r\n\r\n" + inner.decode())
	m = check(glob_)
	assert [(a.filename, a.content_type) for a in m.attachments] == [("inner one.eml", "message/global")]
	assert m.attachments[0].content.replace(b"\r\n", b"\n").strip() == inner.replace(b"\r\n", b"\n").strip()
	# base64 message/rfc822 (RFC 2046 forbids it; Exchange sends it): the .eml is the decoded message
	encoded = base64.encodebytes(inner).decode()
	m = check(
		mail(TEXT, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded)
	)
	assert [(a.filename, a.content, a.error) for a in m.attachments] == [("inner one.eml", inner, None)]


def test_garbage_attachments_never_raise():
	raws = [
		mail(
			TEXT, "Content-Type: application/pdf\r\nContent-Disposition: attachment; filename*=''%\r\n\r\nx"
		),
		mail(
			TEXT,
			"Content-Type: application/pdf; name*0*=bogus'xx'%FF%FE\r\n"
			"Content-Disposition: attachment\r\n\r\nx",
		),
		mail(TEXT, 'Content-Type: /\r\nContent-Disposition: attachment; filename=""\r\n\r\nx'),
		mail(TEXT, "Content-Type: message/rfc822\r\n\r\n"),
		mail(TEXT, "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!!"),
		mail(
			TEXT,
			"Content-Type: image/gif\r\nContent-ID: <<<>>>\r\nContent-Disposition: inline; filename=\r\n\r\n",
		),
		b"Content-Type: application/pdf\r\n\r\n%PDF-1.4",  # the whole message is a nameless file
	]
	for raw in raws:
		m = check(raw)
		assert m.attachments, raw
		for a in m.attachments:
			assert isinstance(a.filename, str) and a.filename and isinstance(a.content, bytes)


def test_deep_nesting():
	depth = 60
	parts = (
		'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="deep.pdf"\r\n\r\n%PDF'
	)
	for level in range(depth, 0, -1):
		parts = (
			f'Content-Type: multipart/mixed; boundary="n{level}"\r\n\r\n--n{level}\r\n{parts}\r\n--n{level}--'
		)
	m = check(mail(TEXT, parts))
	assert [a.filename for a in m.attachments] == ["deep.pdf"]
