"""The one convention for mail text (inbox/text.py) and the HTML sanitizer (gmail/html.py), without a site."""

from __future__ import annotations

import html

from atlas_integrations.inbox.html import has_remote_images, resolve_cid_images


def test_sanitizer_and_text_helpers():
	from atlas_integrations.inbox.html import allow_remote_images, sanitize
	from atlas_integrations.inbox.text import mail_text, plain, safe_file_name

	assert mail_text("Ann <ann@x.org> & \"co\"") == "Ann &lt;ann@x.org&gt; &amp; &quot;co&quot;"
	assert plain(mail_text("a &lt; b")) == "a &lt; b"  # lossless, entities in the original included
	cut = mail_text("<" * 100, length=140)
	assert len(cut) <= 140 and cut.endswith("&lt;")
	assert safe_file_name("../../etc/<passwd>.html") == "etc_passwd.html"
	assert safe_file_name("履歴書.pdf") == "attachment.pdf"
	assert safe_file_name("", "application/pdf") == "attachment.pdf"
	body = sanitize('<img src="https://t.example/p.gif"><a href="javascript:x()">a</a><img src="/api/method/logout">')
	assert "https://t.example" not in body.replace('data-atlas-src="https://t.example/p.gif"', "")
	assert "javascript" not in body and "/api/method/logout" not in body
	assert 'src="https://t.example/p.gif"' in allow_remote_images(body)
	assert html.unescape(mail_text("x")) == "x"


def test_cid_images_resolve_and_remote_ones_wait_for_consent():
	from atlas_integrations.inbox.html import sanitize

	body = sanitize('<img src="cid:logo@x"><img src="http://t.example/p.gif">')
	assert has_remote_images(body)
	resolved = resolve_cid_images(body, {"logo@x": "data:image/png;base64,AAAA"})
	assert 'src="data:image/png;base64,AAAA"' in resolved and ' src="http://t.example' not in resolved
	assert resolve_cid_images(body, {}) == body


def test_renderable_files_are_recognised():
	from atlas_integrations.downloads import is_renderable

	assert is_renderable("a.xhtml") and is_renderable("a.SHTML") and is_renderable("x.svg")
	assert is_renderable("photo.jpg", "image/jpeg", b"\xef\xbb\xbf <!DOCTYPE html><p>")
	assert is_renderable("n.txt", "text/plain", b"<html><body onload=x>")
	assert not is_renderable("report.pdf", "application/pdf", b"%PDF-1.4")
	assert not is_renderable("photo.png", "image/png", b"\x89PNG\r\n")
