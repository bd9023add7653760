"""The optional LLM backend of triage (:mod:`atlas_integrations.inbox.llm`) over real HTTP against the local
OpenAI-compatible fake (:class:`atlas_integrations.testing.llm_server.FakeLLM`)."""

from __future__ import annotations

import json
import time

import pytest
import requests

from atlas_integrations.inbox import llm, triage
from atlas_integrations.testing.llm_server import FakeLLM

KEY = "sk-test-0123456789-secret-key"
MODEL = "fake-gpt"
BODY = "Hi team,\nCould you send us a quotation for 40 m of fencing? Secret body marker 7f3a."


@pytest.fixture
def fake():
	srv = FakeLLM(api_key=KEY).start()
	yield srv
	srv.stop()
	assert not srv.errors, srv.errors


def offline(subject="Fencing", text=BODY, sender="ann@example.com", headers=None):
	return triage.classify(subject, text or "", headers or {}, sender)


def refine(fake, result, *, subject="Fencing", text=BODY, sender="ann@example.com", **kw):
	kwargs = {"base_url": fake.url, "model": MODEL, "api_key": KEY, "timeout": 2.0, **kw}
	return llm.refine(result, subject=subject, text=text, sender=sender, **kwargs)


def assert_no_key(result):
	assert all(KEY not in s for s in result.signals), result.signals


def kept(before_signals, result, reason):
	assert result.signals[:-1] == before_signals
	assert result.signals[-1] == f"llm unavailable ({reason}); offline result kept"
	assert_no_key(result)


def test_success_fills_fields_and_adds_signal(fake):
	fake.set_reply({"category": triage.SCHEDULING, "priority": "High", "summary": "Wants a site visit Monday",
					"confidence": 0.91})
	base = offline()
	before = list(base.signals)
	out = refine(fake, base)
	assert out is not base
	assert (out.category, out.priority, out.summary, out.confidence) == (
		triage.SCHEDULING, "High", "Wants a site visit Monday", 0.91)
	assert out.kind == ""
	assert out.signals == [*before, f"llm {MODEL}: {triage.SCHEDULING}, High"]
	assert base.signals == before  # the offline result is left as it was
	assert_no_key(out)


def test_default_reply_and_default_confidence(fake):
	out = refine(fake, offline(), subject="Please quote: fencing\nsecond line")
	assert (out.category, out.priority, out.confidence) == (triage.QUOTE, "Normal", 0.8)
	assert out.summary == "Please quote: fencing second line"  # the subject is sent as one line
	out = refine(fake, offline(text="Hello"), subject="Lunch?", text="See you at noon")
	assert (out.category, out.summary) == (triage.OTHER, "Lunch?")


def test_request_carries_model_options_key_and_text(fake):
	refine(fake, offline(), text=BODY + "x" * 10000)
	assert len(fake.requests) == 1
	body, headers = fake.requests[0], fake.headers[0]
	assert headers["Authorization"] == f"Bearer {KEY}"
	assert body["model"] == MODEL
	assert body["temperature"] == 0
	assert body["response_format"] == {"type": "json_object"}
	system, user = body["messages"]
	assert system["role"] == "system" and user["role"] == "user"
	for name in (*triage.CATEGORIES, *triage.PRIORITIES, "category", "priority", "summary", "confidence"):
		assert name in system["content"]
	assert "ann@example.com" in user["content"] and "Fencing" in user["content"]
	assert "Secret body marker 7f3a" in user["content"]
	assert user["content"].count("x") <= llm.MAX_TEXT
	assert KEY not in json.dumps(body)


def test_text_none_sends_no_body(fake):
	out = refine(fake, offline(text=""), subject="Quote for fencing", text=None)
	assert out.category == triage.QUOTE
	(body,) = fake.requests
	sent = json.dumps(body)
	assert "Secret body marker" not in sent and "quotation for 40 m" not in sent
	user = body["messages"][1]["content"]
	assert "Text:" not in user
	assert user == "Sender: ann@example.com\nSubject: Quote for fencing"


def test_timeout_keeps_offline_result(fake):
	fake.set_delay(3.0)
	base = offline()
	before, snapshot = list(base.signals), (base.category, base.priority, base.summary, base.confidence)
	started = time.monotonic()
	out = refine(fake, base, timeout=0.5)
	elapsed = time.monotonic() - started
	assert elapsed < 0.5 + 1.0, elapsed
	assert out is base
	assert (out.category, out.priority, out.summary, out.confidence) == snapshot
	kept(before, out, "timeout")


def test_server_error_keeps_offline_result(fake):
	fake.set_status(500)
	base = offline()
	before = list(base.signals)
	out = refine(fake, base)
	assert out is base and out.category == triage.QUOTE
	kept(before, out, "HTTP 500")


def test_connection_refused_keeps_offline_result():
	srv = FakeLLM(api_key=KEY).start()
	url = srv.url
	srv.stop()
	base = offline()
	before = list(base.signals)
	out = llm.refine(base, subject="Fencing", text=BODY, sender="a@example.com", base_url=url, model=MODEL,
					 api_key=KEY, timeout=1.0)
	assert out is base
	kept(before, out, "connection error")


@pytest.mark.parametrize("raw, reason", [
	("this is not json", "bad JSON"),
	('["a list"]', "bad JSON"),
	('{"category": "Spam", "priority": "Normal", "summary": "x"}', "invalid category"),
	('{"category": "Quote request", "priority": "Whenever", "summary": "x"}', "invalid priority"),
	('{"category": "Quote request", "priority": "Normal", "summary": ""}', "invalid summary"),
	('{"category": "Quote request", "priority": "Normal", "summary": "two\\nlines"}', "invalid summary"),
	('{"category": "Quote request", "priority": "Normal", "summary": "' + "y" * 301 + '"}', "invalid summary"),
	('{"category": "Quote request", "priority": "Normal", "summary": "x", "confidence": 1.5}',
	 "invalid confidence"),
	('{"category": "Quote request", "priority": "Normal", "summary": "x", "confidence": "high"}',
	 "invalid confidence"),
])
def test_invalid_answers_keep_offline_result(fake, raw, reason):
	fake.set_raw(raw)
	base = offline()
	before = list(base.signals)
	out = refine(fake, base)
	assert out is base
	kept(before, out, reason)


def test_wrong_key_is_401_and_keeps_offline_result(fake):
	base = offline()
	before = list(base.signals)
	out = refine(fake, base, api_key="sk-wrong-key-000000")
	assert out is base
	kept(before, out, "HTTP 401")
	assert all("sk-wrong-key" not in s for s in out.signals)


def test_key_never_in_signals_across_modes(fake):
	results = [refine(fake, offline())]
	fake.set_status(503)
	results.append(refine(fake, offline()))
	fake.reset()
	fake.set_raw(KEY)  # even a backend echoing the key cannot get it into a signal
	results.append(refine(fake, offline()))
	fake.set_delay(2.0)
	results.append(refine(fake, offline(), timeout=0.3))
	for r in results:
		assert_no_key(r)


@pytest.mark.parametrize("headers, kind", [
	({"Auto-Submitted": "auto-replied"}, "automated"),
	({"List-Unsubscribe": "<mailto:unsub@news.example.com>", "Precedence": "bulk"}, "newsletter"),
])
def test_header_decided_kind_makes_no_request(fake, headers, kind):
	base = offline(headers=headers)
	assert base.kind
	before = list(base.signals)
	out = refine(fake, base)
	assert out is base and out.signals == before
	assert fake.requests == []


def test_uses_given_session(fake):
	with requests.Session() as session:
		out = refine(fake, offline(), session=session)
	assert out.signals[-1].startswith(f"llm {MODEL}: ")


def test_not_configured_makes_no_request(fake):
	base = offline()
	out = llm.refine(base, subject="s", text="t", sender="a@example.com", base_url="", model=MODEL, api_key=KEY)
	assert out is base and out.signals[-1] == "llm unavailable (not configured); offline result kept"
	assert fake.requests == []


def test_settings_from():
	assert llm.settings_from({"llm_base_url": "", "llm_model": "m", "llm_api_key": "k"}) is None
	assert llm.settings_from({"llm_base_url": "http://x/v1", "llm_model": " ", "llm_api_key": "k"}) is None
	assert llm.settings_from(None) is None
	assert llm.settings_from({"llm_base_url": " http://x/v1 ", "llm_model": "m", "llm_api_key": "k"}) == {
		"base_url": "http://x/v1", "model": "m", "api_key": "k", "timeout": 5.0}

	class Doc:
		llm_base_url, llm_model, llm_api_key, llm_timeout_seconds = "http://y/v1", "gpt", None, 12

	assert llm.settings_from(Doc()) == {"base_url": "http://y/v1", "model": "gpt", "api_key": "",
										"timeout": 12.0}


def test_settings_from_feeds_refine(fake):
	kwargs = llm.settings_from({"llm_base_url": fake.url, "llm_model": MODEL, "llm_api_key": KEY,
								"llm_timeout_seconds": 2})
	out = llm.refine(offline(), subject="Need a quote", text=None, sender="a@example.com", **kwargs)
	assert out.category == triage.QUOTE and out.signals[-1] == f"llm {MODEL}: {triage.QUOTE}, Normal"
