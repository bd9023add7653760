"""Charset labels read by the WHATWG Encoding Standard's table (inbox/charsets.py), on real-world shaped
messages (tests/pure/data/charset_mail/): Outlook's ks_c_5601-1987, Outlook Express's iso-8859-1 that is
windows-1252, Foxmail's gb2312 that is GBK, a Japanese mailer's shift_jis that is windows-31J, and the
RFC 1341 sample whose sender has no domain."""

from __future__ import annotations

import base64
import codecs
import json
import time
from pathlib import Path

import pytest

from atlas_integrations.inbox import charsets, mime
from atlas_integrations.inbox.mime import HEADER_LIMIT, parse_message

DATA = Path(__file__).parent / "data"
MAIL = DATA / "charset_mail"


def read(name: str) -> bytes:
	return (MAIL / name).read_bytes()


# --- the table -------------------------------------------------------------------------------------------


def test_every_label_of_the_standard_is_in_the_table_once():
	labels = [label for ls in charsets.WHATWG_LABELS.values() for label in ls]
	assert len(labels) == len(set(labels)) == len(charsets.LABELS) == 228
	assert all(label == label.strip().lower() for label in labels)
	assert len(charsets.WHATWG_LABELS) == 40  # encodings.json's 40 encodings
	for label, name in charsets.LABELS.items():
		codec = charsets.lookup(label)
		if name == "replacement" and label not in charsets.MAIL_REPLACEMENT_CODECS:
			assert codec is None, label  # iso-2022-cn(-ext), "replacement": unknown labels here
		else:
			assert codecs.lookup(codec), label  # every codec the table names exists


@pytest.mark.parametrize(("label", "codec"), [
	("ks_c_5601-1987", "cp949"), ("KS_C_5601-1987", "cp949"), ("  euc-kr\t", "cp949"), ("windows-949", "cp949"),
	("korean", "cp949"), ("ks_c_5601", "cp949"),  # not in the table; Python reads it as euc_kr -> cp949
	("gb2312", "gb18030"), ("gbk", "gb18030"), ("x-gbk", "gb18030"), ("cp936", "gb18030"), ("gb18030", "gb18030"),
	("shift_jis", "cp932"), ("sjis", "cp932"), ("x-sjis", "cp932"), ("windows-31j", "cp932"), ("ms_kanji", "cp932"),
	("big5", "big5hkscs"), ("iso-8859-1", "whatwg-windows-1252"), ("us-ascii", "whatwg-windows-1252"),
	("latin1", "whatwg-windows-1252"), ("ascii", "whatwg-windows-1252"), ("latin-1", "whatwg-windows-1252"),
	("iso-8859-9", "whatwg-windows-1254"), ("tis-620", "whatwg-windows-874"), ("iso-8859-2", "iso8859_2"),
	("utf-8", "utf-8"), ("unicode-1-1-utf-8", "utf-8"), ("utf-16", "utf-16-le"), ("unicodefffe", "utf-16-be"),
	("iso-2022-jp", "iso2022_jp"), ("iso-2022-kr", "iso2022_kr"), ("hz-gb-2312", "hz"),
	("utf-7", "utf-7"), ("cp949", "cp949"),  # Python's own labels the table does not list
	("x-unknown", None), ("iso-2022-cn", None), ("replacement", None), ("", None), (None, None), ("a\x00b", None),
	("x" * 65, None),
])
def test_lookup(label, codec):
	assert charsets.lookup(label) == codec


def test_single_byte_codecs_equal_the_standards_indexes():
	indexes = {k: v for k, v in json.loads((DATA / "whatwg_single_byte.json").read_text()).items()
			   if not k.startswith("_")}
	assert len(indexes) == 28
	for name, expected in indexes.items():
		codec = charsets.PYTHON_CODECS[name]
		got = "".join(bytes([b]).decode(codec, "replace") for b in range(0x80, 0x100))
		assert got == expected, name
		assert bytes(range(0x80)).decode(codec) == "".join(map(chr, range(0x80))), name
	# x-user-defined: 0x80-0xFF -> U+F780-U+F7FF
	assert bytes([0x41, 0x80, 0xFF]).decode(charsets.lookup("x-user-defined")) == "A\uf780\uf7ff"


def test_multi_byte_codecs_read_what_windows_senders_write():
	# characters outside the old standard that the label names, inside Microsoft's code page the standard means
	cases = [("ks_c_5601-1987", "똠햏뷁갂", "euc_kr"), ("gb2312", "镕喆堃", "gb2312"),
			 ("shift_jis", "①髙﨑㈱Ⅱ", "shift_jis"), ("big5", "嗀", None)]
	for label, text, python_reading in cases:
		raw = text.encode(charsets.lookup(label))
		assert charsets.decode(raw, label) == (text, None)
		if python_reading:
			with pytest.raises(UnicodeDecodeError):
				raw.decode(python_reading)  # what the label meant to Python before


def test_decode_sniffs_a_byte_order_mark_and_keeps_unknown_labels_readable():
	assert charsets.decode(codecs.BOM_UTF8 + "café".encode(), "iso-8859-1") == ("café", None)
	assert charsets.decode(codecs.BOM_UTF16_BE + "hé".encode("utf-16-be"), "utf-16") == ("hé", None)
	assert charsets.decode("hé".encode("utf-16-le"), "utf-16") == ("hé", None)  # no BOM: UTF-16LE
	assert charsets.decode(b"\x80\x81\x93x\x94", None) == ("€\x81“x”", None)  # no label: us-ascii = windows-1252
	assert charsets.decode(b"caf\xc3\xa9", "x-nope") == ("café", "unknown charset 'x-nope': read as UTF-8")
	assert charsets.decode(b"caf\xe9", "x-nope") == ("café", "unknown charset 'x-nope': read as windows-1252")
	text, problem = charsets.decode(b"\x8c", "ks_c_5601-1987")  # a lone lead byte: replaced, as the standard does
	assert text == "\ufffd" and problem is None


def test_relabel_rewrites_encoded_words_and_rfc2231_values_only():
	assert charsets.relabel("=?ks_c_5601-1987?B?seiMY8fx?= <a@b.kr>") == "=?whatwg-cp949?B?seiMY8fx?= <a@b.kr>"
	assert charsets.relabel("=?ISO-8859-1*fr?Q?caf=E9?=") == "=?whatwg-windows-1252*fr?Q?caf=E9?="
	assert charsets.relabel("attachment; filename*=gb2312''%E9%95") == "attachment; filename*=whatwg-gb18030''%E9%95"
	assert charsets.relabel("attachment;\r\n filename*0*=sjis''%87%40; filename*1*=.txt") == \
		"attachment;\r\n filename*0*=whatwg-cp932''%87%40; filename*1*=.txt"
	for same in ("=?utf-8?B?w6k=?=", "=?iso-8859-2?Q?x?=", "=?x-unknown?Q?x?=", "=?ks_c_5601-1987?B?incomplete",
				 'attachment; filename="a*=gb2312\'x.txt"', "plain text"):
		assert charsets.relabel(same) == same
	# the names written are codecs of their own: email.charset's aliases (cp949 -> euc-kr) cannot catch them
	from email.header import decode_header, make_header
	raw = "=?cp949?B?" + base64.b64encode("똠".encode("cp949")).decode() + "?="
	assert str(make_header(decode_header(charsets.relabel(raw)))) == "똠"


def test_relabel_is_linear_and_bounded():
	for unit in ("=?l1?q??=", "=?l1?q?x?= ", "=?" * 3, "=?ks_c_5601-1987?B?", "; a*=l1'", "=?l1?q?" + "x" * 50):
		value = (unit * (HEADER_LIMIT // len(unit) + 1))[:HEADER_LIMIT]
		started = time.perf_counter()
		out = charsets.relabel(value)
		assert time.perf_counter() - started < 0.05, unit
		assert len(out) <= 3.2 * len(value)
	# the worst growth still parses fast: policy.default on a From header of relabelled words
	started = time.perf_counter()
	parse_message(b"From: " + (b"=?l1?q?a?= " * 190) + b"<a@b.org>\r\nSubject: " + b"=?l1?q??=" * 227 + b"\r\n\r\nx")
	assert time.perf_counter() - started < 1.0


# --- the messages ------------------------------------------------------------------------------------------


def test_outlook_ks_c_5601_1987_is_windows_949_in_names_subject_and_body():
	m = parse_message(read("ks_c_5601_1987_outlook.eml"))
	assert m.sender == ("김똠희", "ddom.kim@tomyum.example.kr")  # before: "ê¹\x80Œcí\x9d¬" / an encoded word
	assert m.subject == "똠양꿍 식당 견적서 요청드립니다"
	assert m.text == "안녕하세요, 똠양꿍 식당 김똠희입니다.\r\n견적서를 보내주시겠어요?"
	assert "<p>안녕하세요, 똠양꿍 식당 김똠희입니다.</p>" in m.html
	assert "\ufffd" not in m.subject + m.text + m.html and not any("charset" in e for e in m.errors)


def test_ks_c_5601_1987_in_an_address_list_and_an_enclosed_message():
	name = "=?ks_c_5601-1987?B?" + base64.b64encode("김똠희".encode("cp949")).decode() + "?="
	inner = read("ks_c_5601_1987_outlook.eml")
	raw = (f"From: a@b.org\r\nTo: {name} <ddom@x.kr>, b@c.org\r\nCc: {name} <c@x.kr>\r\nSubject: fwd\r\n"
		   "Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain\r\n\r\nsee below\r\n"
		   "--z\r\nContent-Type: message/rfc822\r\n\r\n").encode() + inner + b"\r\n--z--\r\n"
	m = parse_message(raw)
	assert m.to == [("김똠희", "ddom@x.kr"), ("", "b@c.org")] and m.cc == [("김똠희", "c@x.kr")]
	[enclosed] = m.attachments
	assert enclosed.filename == "똠양꿍 식당 견적서 요청드립니다.eml"


def test_iso_8859_1_from_windows_is_windows_1252():
	m = parse_message(read("iso_8859_1_is_windows_1252.eml"))
	assert m.sender == ("Renée Müller – Café “Le Coin”", "renee@cafe.example.fr")
	assert m.subject == "“Café crème” € 4,50"
	assert "the “Café crème” offer is € 4,50 – it’s valid until Friday." in m.text


def test_foxmail_gb2312_is_gbk_in_names_body_and_rfc2231_file_name():
	m = parse_message(read("gb2312_is_gbk_foxmail.eml"))
	assert m.sender == ("王镕", "wang.rong@example.cn")
	assert m.subject == "报价单 - 王镕"
	assert m.text == "您好，我是王镕。请查收附件中的报价单。"
	assert [(a.filename, a.content) for a in m.attachments] == [("报价单-镕.txt", "报价 100\r\n".encode("gbk"))]


def test_shift_jis_is_windows_31j_in_names_body_and_rfc2047_file_name():
	m = parse_message(read("shift_jis_is_windows_31j.eml"))
	assert m.sender == ("髙橋 ㈱アトラス", "takahashi@atlas-jp.example")
	assert m.subject == "見積依頼①"
	assert m.text == "いつもお世話になっております。㈱アトラスの髙橋です。\r\n①②③の件、お見積りをお願いします。"
	assert [a.filename for a in m.attachments] == ["見積書①.txt"]


def test_rfc2231_name_past_the_policy_default_budget_is_read_by_the_table_too():
	part = ("--z\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; "
			"filename*=gb2312''%E9%46.txt\r\n\r\nx\r\n")  # 镕 in GBK: 0xE9 0x46
	parts = part * 3
	filler = ("--z\r\nContent-Type: text/plain; name=\"" + "f" * 2000 + ".txt\"\r\n\r\nx\r\n") * 9  # spends the budget
	m = parse_message(("From: a@b.org\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n" + filler + parts
					   + "--z--\r\n").encode())
	assert any("compat32" in e for e in m.errors)  # the last parts were read the compat32 way
	assert [a.filename for a in m.attachments][-3:] == ["镕.txt"] * 3


def test_rfc1341_sender_without_a_domain_keeps_its_address():
	m = parse_message(read("rfc1341_nsb.eml"))
	assert m.sender == ("Nathaniel Borenstein", "nsb")
	assert m.to == [("Ned Freed", "ned@innosoft.com")]
	assert m.text.startswith("This is implicitly typed plain ASCII text.")
	assert "This is explicitly typed plain ASCII text." in m.text


def test_unknown_labels_keep_their_fallback_and_say_so():
	m = parse_message(b"Subject: =?x-klingon?Q?caf=E9?=\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\ncaf\xe9")
	assert m.text == "café" and any("unknown charset 'x-klingon'" in e for e in m.errors)
	assert "caf" in m.subject  # the stdlib's own fallback for an encoded word it cannot decode


def test_raw_8bit_header_bytes_that_are_not_utf8_are_windows_1252():
	assert mime.unsurrogate("\udc80 \udc81") == "€ \x81"  # every byte is a character: nothing replaced
