"""The local Gmail/OAuth server driven by the real Google client libraries over real HTTP (no frappe).

Run: ``.venv/bin/python -m pytest tests/pure/test_gmail_server.py -q``
"""

from __future__ import annotations

import base64
import collections
import email
import email.policy
import email.utils
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

pytest.importorskip("googleapiclient")
pytest.importorskip("google_auth_oauthlib")

import google.auth.exceptions
import requests
from google.auth.transport.requests import Request
from google_auth_oauthlib.flow import Flow
from googleapiclient.errors import HttpError
from googleapiclient.http import BatchHttpRequest

from atlas_integrations.testing.gmail_server import GmailTestServer
from tests.pure.google_client import CLIENT_ID, CLIENT_SECRET, MODIFY, OWNER, gmail, make_creds

CORPUS = Path(os.environ.get("ATLAS_MAIL_CORPUS", "/work/shared/corpus"))
CORPUS_COUNT = 276
REDIRECT = "http://127.0.0.1:8000/api/method/atlas_integrations.api.gmail.oauth_callback"
READONLY = "https://www.googleapis.com/auth/gmail.readonly"
FULL = "https://mail.google.com/"
SPREAD_DAYS = 20

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"mail corpus not found at {CORPUS}")


# -- helpers ------------------------------------------------------------------------------------------
def new_batch(server, callback=None) -> BatchHttpRequest:
	# service.new_batch_http_request() would post to the discovery doc's rootUrl (Google) whatever
	# api_endpoint says, so the batch URI is built from the server root.
	return BatchHttpRequest(callback=callback, batch_uri=server.url + "batch/gmail/v1")


def http_json(url, data=None, method=None, headers=None):
	body = json.dumps(data).encode() if data is not None else None
	req = urllib.request.Request(url, data=body, method=method or ("POST" if body is not None else "GET"))
	req.add_header("Content-Type", "application/json")
	for k, v in (headers or {}).items():
		req.add_header(k, v)
	try:
		with urllib.request.urlopen(req, timeout=10) as resp:
			raw = resp.read()
			return resp.status, json.loads(raw) if raw else None
	except urllib.error.HTTPError as exc:
		raw = exc.read()
		try:
			return exc.code, json.loads(raw)
		except ValueError:
			return exc.code, raw.decode("utf-8", "replace")


def error_reason(exc: HttpError) -> str:
	return json.loads(exc.content)["error"]["errors"][0]["reason"]


def client_config(server) -> dict:
	return {
		"web": {
			"client_id": CLIENT_ID,
			"client_secret": CLIENT_SECRET,
			"auth_uri": server.url + "o/oauth2/auth",
			"token_uri": server.url + "token",
		}
	}


def consent(url: str) -> str:
	"""Play the browser: GET the consent URL and return the Location it redirects to."""
	resp = requests.get(url, allow_redirects=False, timeout=10)
	assert resp.status_code == 302, resp.text
	return resp.headers["Location"]


def corpus_files() -> list[Path]:
	return sorted(
		(p for p in CORPUS.rglob("*.eml") if p.is_file()), key=lambda p: p.relative_to(CORPUS).as_posix()
	)


def list_all(svc, **kwargs) -> list[dict]:
	out, token = [], None
	while True:
		page = svc.users().messages().list(userId="me", pageToken=token, **kwargs).execute()
		out.extend(page.get("messages", []))
		token = page.get("nextPageToken")
		if not token:
			return out


def mail(
	subject, msgid, sender="alice@customer.test", to=OWNER, in_reply_to=None, body="Hello there.\n"
) -> bytes:
	lines = [
		f"From: Alice <{sender}>",
		f"To: {to}",
		f"Subject: {subject}",
		"Date: " + email.utils.formatdate(time.time() - 3600),
		f"Message-ID: <{msgid}>",
	]
	if in_reply_to:
		lines += [f"In-Reply-To: <{in_reply_to}>", f"References: <{in_reply_to}>"]
	lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
	return "\r\n".join(lines).encode()


# -- fixtures -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus_server():
	if not CORPUS.is_dir():
		pytest.skip(f"mail corpus not found at {CORPUS}")
	srv = GmailTestServer().start()
	srv.register_client(CLIENT_ID, CLIENT_SECRET)
	ids = srv.load_eml_dir(OWNER, CORPUS, spread_days=SPREAD_DAYS)
	srv.loaded_ids = ids
	yield srv
	srv.stop()
	assert not srv.errors, srv.errors


@pytest.fixture(scope="module")
def corpus_svc(corpus_server):
	return gmail(corpus_server, make_creds(corpus_server))


# -- OAuth ----------------------------------------------------------------------------------------------
def test_oauth_code_flow_with_pkce(server, monkeypatch):
	monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # loopback http only
	flow = Flow.from_client_config(
		client_config(server), scopes=[MODIFY], redirect_uri=REDIRECT, autogenerate_code_verifier=True
	)
	url, state = flow.authorization_url(prompt="consent", login_hint=OWNER)
	params = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
	assert params["code_challenge_method"] == ["S256"] and params["access_type"] == ["offline"]

	location = consent(url)
	back = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
	assert location.startswith(REDIRECT) and back["state"] == [state]
	token = flow.fetch_token(authorization_response=location)
	assert token["token_type"] == "Bearer" and token["expires_in"] > 3000

	creds = flow.credentials
	assert creds.refresh_token and creds.token
	profile = gmail(server, creds).users().getProfile(userId="me").execute()
	assert profile["emailAddress"] == OWNER

	# An authorization code is single-use.
	again = Flow.from_client_config(
		client_config(server), scopes=[MODIFY], redirect_uri=REDIRECT, autogenerate_code_verifier=True
	)
	again.code_verifier = flow.code_verifier
	from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

	with pytest.raises(InvalidGrantError):
		again.fetch_token(code=back["code"][0])


def test_oauth_pkce_verifier_is_checked(server, monkeypatch):
	monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
	from oauthlib.oauth2.rfc6749.errors import InvalidGrantError

	flow = Flow.from_client_config(
		client_config(server), scopes=[MODIFY], redirect_uri=REDIRECT, autogenerate_code_verifier=True
	)
	url, _ = flow.authorization_url()
	location = consent(url)
	flow.code_verifier = "x" * 64  # not the verifier whose S256 challenge was sent
	with pytest.raises(InvalidGrantError):
		flow.fetch_token(authorization_response=location)

	# Without PKCE the flow works too.
	plain = Flow.from_client_config(
		client_config(server), scopes=[MODIFY], redirect_uri=REDIRECT, autogenerate_code_verifier=False
	)
	url, _ = plain.authorization_url()
	assert "code_challenge" not in url
	plain.fetch_token(authorization_response=consent(url))
	assert plain.credentials.refresh_token


def test_oauth_deny_no_refresh_and_unknown_client(server, monkeypatch):
	monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
	server.set_consent(OWNER, "deny")
	flow = Flow.from_client_config(
		client_config(server), scopes=[MODIFY], redirect_uri=REDIRECT, autogenerate_code_verifier=True
	)
	url, state = flow.authorization_url()
	back = urllib.parse.parse_qs(urllib.parse.urlsplit(consent(url)).query)
	assert back == {"error": ["access_denied"], "state": [state]}

	server.set_consent(OWNER, "no_refresh")
	flow = Flow.from_client_config(
		client_config(server), scopes=[MODIFY], redirect_uri=REDIRECT, autogenerate_code_verifier=True
	)
	url, _ = flow.authorization_url()
	token = flow.fetch_token(authorization_response=consent(url))
	assert "refresh_token" not in token and token["access_token"]
	assert flow.credentials.refresh_token is None

	bad = requests.get(
		server.url + "o/oauth2/auth",
		params={"client_id": "nope", "redirect_uri": REDIRECT, "response_type": "code", "scope": MODIFY},
		allow_redirects=False,
		timeout=10,
	)
	assert bad.status_code == 400


def test_refresh_then_revoke_gives_invalid_grant(server):
	creds = make_creds(server)
	svc = gmail(server, creds)
	assert svc.users().getProfile(userId="me").execute()["emailAddress"] == OWNER  # refreshed on first use
	assert creds.token and creds.valid
	assert server.stats(OWNER)["token_requests"] == 1

	assert server.issued_refresh_tokens(OWNER) == [creds.refresh_token]
	assert creds.token in server.issued_access_tokens(OWNER)
	assert not server.token_is_revoked(creds.refresh_token)
	server.revoke_tokens(OWNER)
	assert server.token_is_revoked(creds.refresh_token) and server.token_is_revoked(creds.token)
	with pytest.raises(google.auth.exceptions.RefreshError) as info:
		creds.refresh(Request())
	assert info.value.args[1]["error"] == "invalid_grant"

	# The old access token is dead too: 401, the client refreshes, the refresh is refused.
	with pytest.raises(google.auth.exceptions.RefreshError):
		svc.users().getProfile(userId="me").execute()


def test_revoke_endpoint_and_expired_access_token(server):
	creds = make_creds(server)
	svc = gmail(server, creds)
	svc.users().getProfile(userId="me").execute()
	first = creds.token
	server.expire_access_tokens(OWNER)  # next call: 401 -> refresh -> retry
	svc.users().getProfile(userId="me").execute()
	assert creds.token != first

	status, body = http_json(server.url + "revoke?token=" + urllib.parse.quote(creds.refresh_token), data={})
	assert (status, body) == (200, {})
	with pytest.raises(google.auth.exceptions.RefreshError) as info:
		creds.refresh(Request())
	assert info.value.args[1]["error"] == "invalid_grant"
	status, body = http_json(server.url + "revoke?token=" + urllib.parse.quote(creds.refresh_token), data={})
	assert status == 400 and body["error"] == "invalid_token"


def test_unauthenticated_and_insufficient_scope(server):
	status, body = http_json(server.url + "gmail/v1/users/me/profile")
	assert status == 401
	assert (
		body["error"]["errors"][0]["reason"] == "authError" and body["error"]["status"] == "UNAUTHENTICATED"
	)

	mid = server.insert_message(OWNER, mail("hi", "scope-1@customer.test"))
	svc = gmail(server, make_creds(server, scopes=(READONLY,)))
	assert svc.users().messages().get(userId="me", id=mid, format="minimal").execute()["id"] == mid
	with pytest.raises(HttpError) as info:
		svc.users().messages().modify(userId="me", id=mid, body={"removeLabelIds": ["UNREAD"]}).execute()
	assert info.value.resp.status == 403 and error_reason(info.value) == "insufficientPermissions"


# -- corpus ---------------------------------------------------------------------------------------------
@needs_corpus
def test_whole_corpus_loads_with_unique_ids_and_threads(corpus_server, corpus_svc):
	ids = corpus_server.loaded_ids
	files = corpus_files()
	assert len(files) == CORPUS_COUNT and len(ids) == CORPUS_COUNT
	assert len(set(ids)) == CORPUS_COUNT
	assert all(len(i) == 16 and all(c in "0123456789abcdef" for c in i) for i in ids)

	listed = list_all(corpus_svc, maxResults=500, includeSpamTrash=True)
	assert sorted(m["id"] for m in listed) == sorted(ids)
	thread_of = {m["id"]: m["threadId"] for m in listed}

	# Every message whose In-Reply-To parent is in the corpus shares the parent's thread.
	by_msgid = collections.defaultdict(list)
	replies = []
	for path, mid in zip(files, ids):
		msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
		own = (msg.get("Message-ID") or "").strip()
		if own:
			by_msgid[own].append(mid)
		parent = str(msg.get("In-Reply-To") or "").strip().split()
		if parent and parent[0].startswith("<"):
			replies.append((mid, parent[0]))
	linked = [(mid, parent) for mid, parent in replies if parent in by_msgid]
	assert len(linked) >= 60  # the httpd-users July 2020 list alone has 67 in-set parents
	for mid, parent in linked:
		assert {thread_of[p] for p in by_msgid[parent]} == {thread_of[mid]}, (mid, parent)

	# threadId is the id of the earliest message of its thread; threads.get returns the whole thread.
	biggest, size = collections.Counter(thread_of.values()).most_common(1)[0]
	assert size > 5
	thread = corpus_svc.users().threads().get(userId="me", id=biggest, format="minimal").execute()
	assert len(thread["messages"]) == size and thread["messages"][0]["id"] == biggest
	dates = [int(m["internalDate"]) for m in thread["messages"]]
	assert dates == sorted(dates)


@needs_corpus
def test_spread_days_and_list_paging_with_after(corpus_server, corpus_svc):
	now = time.time()
	mb = corpus_server.mailbox(OWNER)
	dates = [m.internal_date for m in mb.messages.values()]
	assert min(dates) > (now - SPREAD_DAYS * 86400) * 1000 and max(dates) <= now * 1000

	# chronological order by Date header is kept
	dated = [(m.parsed.date_ms, m.internal_date) for m in mb.messages.values() if m.parsed.date_ms]
	dated.sort()
	assert [d[1] for d in dated] == sorted(d[1] for d in dated)

	cutoff = int(now - 10 * 86400)
	expected = sorted(m.id for m in mb.messages.values() if m.internal_date >= cutoff * 1000)
	assert 0 < len(expected) < CORPUS_COUNT

	pages, token, got = 0, None, []
	while True:
		page = (
			corpus_svc.users()
			.messages()
			.list(userId="me", q=f"after:{cutoff} -in:chats", maxResults=50, pageToken=token)
		).execute()
		pages += 1
		got.extend(page["messages"])
		assert page["resultSizeEstimate"] == len(expected)
		token = page.get("nextPageToken")
		if not token:
			break
	assert pages == -(-len(expected) // 50)
	assert sorted(m["id"] for m in got) == expected
	internal = [mb.messages[m["id"]].internal_date for m in got]
	assert internal == sorted(internal, reverse=True)  # newest first

	assert sorted(
		m["id"] for m in list_all(corpus_svc, q="newer_than:10d unknownword", maxResults=500)
	) == sorted(m.id for m in mb.messages.values() if m.internal_date >= (time.time() - 10 * 86400) * 1000)
	before = list_all(corpus_svc, q=f"before:{cutoff}", maxResults=500)
	assert len(before) + len(expected) == CORPUS_COUNT
	day = time.strftime("%Y/%m/%d", time.gmtime(now - 5 * 86400))
	assert 0 < len(list_all(corpus_svc, q=f"after:{day}", maxResults=500)) < len(expected)

	empty = corpus_svc.users().messages().list(userId="me", q="after:4102444800").execute()
	assert "messages" not in empty and empty["resultSizeEstimate"] == 0


@needs_corpus
def test_raw_round_trips_every_corpus_message_through_batches(corpus_server, corpus_svc):
	files = corpus_files()
	want = {mid: path.read_bytes() for mid, path in zip(corpus_server.loaded_ids, files)}
	got, errors = {}, {}

	def collect(request_id, response, exception):
		if exception is not None:
			errors[request_id] = exception
		else:
			got[request_id] = base64.urlsafe_b64decode(response["raw"])

	ids = list(want)
	for start in range(0, len(ids), 100):  # 100 = Google's per-batch maximum
		batch = new_batch(corpus_server, collect)
		for mid in ids[start : start + 100]:
			batch.add(corpus_svc.users().messages().get(userId="me", id=mid, format="raw"), request_id=mid)
		batch.execute()
	assert not errors
	assert got == want


@needs_corpus
def test_full_format_attachment_and_attachments_get(corpus_server, corpus_svc):
	files = corpus_files()
	path = CORPUS / "mikel-mail/attachment_emails/attachment_pdf.eml"
	mid = corpus_server.loaded_ids[files.index(path)]
	msg = corpus_svc.users().messages().get(userId="me", id=mid, format="full").execute()
	assert msg["payload"]["mimeType"].startswith("multipart/")
	parts = msg["payload"]["parts"]
	attachment = next(p for p in parts if p["filename"])
	assert attachment["filename"] == "broken.pdf" and attachment["mimeType"] == "application/pdf"
	assert "attachmentId" in attachment["body"] and "data" not in attachment["body"]
	text = next(p for p in parts if p["mimeType"] == "text/plain")
	assert base64.urlsafe_b64decode(text["body"]["data"])
	assert {h["name"].lower() for h in msg["payload"]["headers"]} >= {"from", "subject", "date"}

	expected = next(
		p.get_payload(decode=True)
		for p in email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32).walk()
		if p.get_filename()
	)
	att = (
		corpus_svc.users()
		.messages()
		.attachments()
		.get(userId="me", messageId=mid, id=attachment["body"]["attachmentId"])
		.execute()
	)
	assert base64.urlsafe_b64decode(att["data"]) == expected and att["size"] == len(expected)

	meta = (
		corpus_svc.users()
		.messages()
		.get(userId="me", id=mid, format="metadata", metadataHeaders=["Subject", "From"])
		.execute()
	)
	assert sorted(h["name"] for h in meta["payload"]["headers"]) == ["From", "Subject"]
	assert "parts" not in meta["payload"] and "body" not in meta["payload"]

	with pytest.raises(HttpError) as info:
		corpus_svc.users().messages().get(userId="me", id="0123456789abcdef").execute()
	assert info.value.resp.status == 404 and error_reason(info.value) == "notFound"


@needs_corpus
def test_batch_of_50_gets_counts_50_calls_and_101_is_rejected(corpus_server, corpus_svc):
	ids = corpus_server.loaded_ids[:50]
	corpus_server.reset_stats()
	results = {}
	batch = new_batch(corpus_server, lambda rid, resp, exc: results.__setitem__(rid, (resp, exc)))
	for mid in ids:
		batch.add(corpus_svc.users().messages().get(userId="me", id=mid, format="metadata"), request_id=mid)
	batch.execute()
	assert sorted(results) == sorted(ids)
	assert all(exc is None and resp["id"] == rid for rid, (resp, exc) in results.items())
	st = corpus_server.stats(OWNER)
	assert st["api_calls"] == 50 and st["batch_requests"] == 1 and st["http_requests"] == 1
	assert st["by_method"] == {"messages.get": 50} and st["quota_units"] == 250

	too_many = new_batch(corpus_server)
	for i in range(101):
		too_many.add(corpus_svc.users().messages().get(userId="me", id=ids[i % 50]), request_id=str(i))
	with pytest.raises(HttpError) as info:
		too_many.execute()
	assert info.value.resp.status == 400


def test_injected_429_then_success_with_num_retries(server, monkeypatch):
	mid = server.insert_message(OWNER, mail("retry me", "retry-1@customer.test"))
	svc = gmail(server, make_creds(server))
	svc.users().getProfile(userId="me").execute()
	server.reset_stats()
	sleeps = []
	import googleapiclient.http

	monkeypatch.setattr(googleapiclient.http.time, "sleep", sleeps.append)
	server.inject_fault(rf"/messages/{mid}$", 429, count=1, retry_after=3)
	msg = svc.users().messages().get(userId="me", id=mid).execute(num_retries=2)
	assert msg["id"] == mid and len(sleeps) == 1
	st = server.stats(OWNER)
	assert st["by_method"] == {"messages.get": 2} and st["quota_units"] == 5 and st["faults_served"] == 1

	# Without retries the client sees Google's error body.
	server.inject_fault(r"/messages/", 403, reason="userRateLimitExceeded", method="GET")
	with pytest.raises(HttpError) as info:
		svc.users().messages().get(userId="me", id=mid).execute()
	body = json.loads(info.value.content)["error"]
	assert body["code"] == 403 and body["errors"][0] == {
		"message": body["message"],
		"domain": "usageLimits",
		"reason": "userRateLimitExceeded",
	}


def test_fault_on_one_batch_part(server):
	ids = [server.insert_message(OWNER, mail(f"m{i}", f"part-{i}@customer.test")) for i in range(5)]
	svc = gmail(server, make_creds(server))
	server.inject_fault(rf"/messages/{ids[2]}$", 503, retry_after=1)
	outcome = {}
	batch = new_batch(server, lambda rid, resp, exc: outcome.__setitem__(rid, exc))
	for mid in ids:
		batch.add(svc.users().messages().get(userId="me", id=mid, format="minimal"), request_id=mid)
	batch.execute()
	assert [outcome[m] is None for m in ids] == [True, True, False, True, True]
	failed = outcome[ids[2]]
	assert failed.resp.status == 503 and failed.resp["retry-after"] == "1"
	assert error_reason(failed) == "backendError"


# -- history, labels, send ----------------------------------------------------------------------------
def test_history_after_insert_and_modify_then_expiry(server):
	parent = server.insert_message(OWNER, mail("Order 42", "order-42@customer.test"))
	svc = gmail(server, make_creds(server))
	start = svc.users().getProfile(userId="me").execute()["historyId"]

	reply = server.insert_message(
		OWNER, mail("Re: Order 42", "order-42-r1@customer.test", in_reply_to="order-42@customer.test")
	)
	svc.users().messages().modify(userId="me", id=parent, body={"removeLabelIds": ["UNREAD"]}).execute()

	hist = svc.users().history().list(userId="me", startHistoryId=start).execute()
	records = hist["history"]
	assert int(hist["historyId"]) > int(start) and len(records) == 2
	added = records[0]["messagesAdded"][0]["message"]
	assert added["id"] == reply and added["threadId"] == parent and "INBOX" in added["labelIds"]
	removed = records[1]["labelsRemoved"][0]
	assert removed["message"]["id"] == parent and removed["labelIds"] == ["UNREAD"]
	assert records[1]["messages"] == [{"id": parent, "threadId": parent}]

	only = (
		svc.users().history().list(userId="me", startHistoryId=start, historyTypes=["labelRemoved"]).execute()
	)
	assert [list(r) for r in only["history"]] == [["id", "messages", "labelsRemoved"]]
	msg = svc.users().messages().get(userId="me", id=reply, format="minimal").execute()
	assert msg["threadId"] == parent and msg["historyId"] == records[0]["id"]

	current = hist["historyId"]
	server.expire_history(OWNER)
	with pytest.raises(HttpError) as info:
		svc.users().history().list(userId="me", startHistoryId=start).execute()
	assert info.value.resp.status == 404
	empty = svc.users().history().list(userId="me", startHistoryId=current).execute()
	assert "history" not in empty and empty["historyId"] == current


def test_labels_send_and_threads(server):
	parent = server.insert_message(OWNER, mail("Quote request", "quote-1@customer.test"))
	mine = server.insert_message(
		OWNER, mail("Sent by me", "mine-1@example.com", sender=OWNER, to="x@customer.test")
	)
	assert server.mailbox(OWNER).messages[mine].label_ids == ["SENT"]
	svc = gmail(server, make_creds(server))
	users = svc.users()

	names = {lab["id"]: lab for lab in users.labels().list(userId="me").execute()["labels"]}
	assert {"INBOX", "SENT", "UNREAD", "TRASH", "SPAM", "CATEGORY_PERSONAL"} <= set(names)
	assert names["INBOX"]["type"] == "system"
	created = users.labels().create(userId="me", body={"name": "Atlas/Processed"}).execute()
	assert created["id"] == "Label_1" and created["type"] == "user"
	with pytest.raises(HttpError) as info:
		users.labels().create(userId="me", body={"name": "atlas/processed"}).execute()
	assert info.value.resp.status == 409
	users.messages().batchModify(userId="me", body={"ids": [parent], "addLabelIds": ["Label_1"]}).execute()
	label = users.labels().get(userId="me", id="Label_1").execute()
	assert label["messagesTotal"] == 1 and label["messagesUnread"] == 1 and label["threadsTotal"] == 1

	reply = (
		"From: owner@example.com\r\nTo: alice@customer.test\r\nSubject: Re: Quote request\r\n"
		"In-Reply-To: <quote-1@customer.test>\r\nReferences: <quote-1@customer.test>\r\n\r\nHere is the quote.\r\n"
	)
	sent = (
		users.messages()
		.send(
			userId="me", body={"raw": base64.urlsafe_b64encode(reply.encode()).decode(), "threadId": parent}
		)
		.execute()
	)
	assert sent["labelIds"] == ["SENT"] and sent["threadId"] == parent
	raw = base64.urlsafe_b64decode(
		users.messages().get(userId="me", id=sent["id"], format="raw").execute()["raw"]
	)
	assert b"Message-ID: <" in raw and raw.endswith(reply.encode())

	assert [m["id"] for m in list_all(svc, q="in:sent")] == [sent["id"], mine]
	assert [m["id"] for m in list_all(svc, q="in:inbox")] == [parent]
	assert [m["id"] for m in list_all(svc, labelIds=["Label_1"])] == [parent]
	thread = users.threads().get(userId="me", id=parent).execute()
	assert [m["id"] for m in thread["messages"]] == [parent, sent["id"]]
	threads = users.threads().list(userId="me").execute()["threads"]
	assert {t["id"] for t in threads} == {parent, mine}

	users.messages().trash(userId="me", id=mine).execute()
	assert [m["id"] for m in list_all(svc, q="in:sent")] == [sent["id"]]
	assert mine in [m["id"] for m in list_all(svc, q="in:sent", includeSpamTrash=True)]


def test_rfc822msgid_search_finds_only_that_message(server):
	"""``rfc822msgid:`` (an operator with digits in its name) selects by Message-ID: an unknown id finds
	nothing, so "was it sent?" is never answered by another message (the exactly-once sends rely on it)."""
	first = server.insert_message(OWNER, mail("First", "first-1@customer.test"))
	server.insert_message(OWNER, mail("Second", "second-1@customer.test"))
	svc = gmail(server, make_creds(server))
	assert [m["id"] for m in list_all(svc, q="rfc822msgid:first-1@customer.test")] == [first]
	assert [m["id"] for m in list_all(svc, q="rfc822msgid:<first-1@customer.test>", includeSpamTrash=True)] == [first]
	assert list_all(svc, q="rfc822msgid:never-sent.atlas@atlas-test.example") == []
	assert first not in [m["id"] for m in list_all(svc, q="-rfc822msgid:first-1@customer.test")]


def test_stats_and_quota_units(server):
	mid = server.insert_message(OWNER, mail("count me", "count-1@customer.test"))
	svc = gmail(server, make_creds(server))
	svc.users().getProfile(userId="me").execute()  # refresh happens here
	server.reset_stats()
	users = svc.users()
	users.messages().list(userId="me").execute()
	users.messages().get(userId="me", id=mid).execute()
	users.history().list(userId="me", startHistoryId="1").execute()
	users.labels().list(userId="me").execute()
	users.messages().modify(userId="me", id=mid, body={"addLabelIds": ["STARRED"]}).execute()
	st = server.stats(OWNER)
	assert st["http_requests"] == 5 and st["api_calls"] == 5 and st["batch_requests"] == 0
	assert st["quota_units"] == 5 + 5 + 2 + 1 + 5
	assert st["by_method"] == {
		"messages.list": 1,
		"messages.get": 1,
		"history.list": 1,
		"labels.list": 1,
		"messages.modify": 1,
	}


def test_http_controls(server):
	base = server.url + "_atlas/"
	raw = mail("over http", "ctl-1@customer.test")
	status, body = http_json(base + "insert", {"email": OWNER, "raw": base64.b64encode(raw).decode()})
	assert status == 200 and len(body["id"]) == 16
	assert server.mailbox(OWNER).messages[body["id"]].raw == raw

	svc = gmail(server, make_creds(server))
	assert http_json(base + "faults", {"path_regex": "/profile$", "status": 500, "count": 1})[0] == 200
	with pytest.raises(HttpError) as info:
		svc.users().getProfile(userId="me").execute()
	assert info.value.resp.status == 500
	assert svc.users().getProfile(userId="me").execute()["messagesTotal"] == 1

	status, stats = http_json(base + "stats?email=" + urllib.parse.quote(OWNER))
	assert status == 200 and stats["by_method"]["users.getProfile"] == 2 and stats["quota_units"] == 1

	assert http_json(base + "revoke", {"email": OWNER})[0] == 200
	creds = make_creds(server)
	assert (
		http_json(base + "faults", {"path_regex": "^/token$", "status": 400, "reason": "invalid_grant"})[0]
		== 200
	)
	with pytest.raises(google.auth.exceptions.RefreshError) as err:
		creds.refresh(Request())
	assert err.value.args[1]["error"] == "invalid_grant"
	assert http_json(base + "consent", {"email": OWNER, "action": "deny"})[0] == 200
	assert http_json(base + "nope")[0] == 404


def test_malformed_requests_do_not_break_the_server(server):
	tokens = server.issue_tokens(OWNER, CLIENT_ID, [MODIFY])
	auth = {"Authorization": "Bearer " + tokens["access_token"]}
	status, body = http_json(server.url + "gmail/v1/users/me/messages/zz!z", headers=auth)
	assert status in (400, 404)
	status, body = http_json(
		server.url + "gmail/v1/users/me/messages/send", data=None, method="POST", headers=auth
	)
	assert status == 400 and body["error"]["code"] == 400
	req = urllib.request.Request(
		server.url + "batch/gmail/v1",
		data=b"garbage",
		method="POST",
		headers={"Content-Type": "text/plain", **auth},
	)
	with pytest.raises(urllib.error.HTTPError) as info:
		urllib.request.urlopen(req, timeout=10)
	assert info.value.code == 400
	assert http_json(server.url + "gmail/v1/users/me/history?startHistoryId=abc", headers=auth)[0] == 400
	assert http_json(server.url + "gmail/v1/users/other@example.com/profile", headers=auth)[0] == 403
	assert http_json(server.url + "gmail/v1/users/me/profile", headers=auth)[0] == 200


def test_cli_serves_and_prints_ready(tmp_path):
	(tmp_path / "a.eml").write_bytes(mail("one", "cli-1@customer.test"))
	(tmp_path / "sub").mkdir()
	(tmp_path / "sub" / "b.eml").write_bytes(
		mail("Re: one", "cli-2@customer.test", in_reply_to="cli-1@customer.test")
	)
	env = {**os.environ, "PYTHONPATH": str(ROOT)}
	proc = subprocess.Popen(
		[
			sys.executable,
			"-m",
			"atlas_integrations.testing.gmail_server",
			"--port",
			"0",
			"--mailbox",
			f"{OWNER}={tmp_path}",
			"--spread-days",
			"5",
			"--client",
			f"{CLIENT_ID}:{CLIENT_SECRET}",
		],
		cwd=str(ROOT),
		env=env,
		stdout=subprocess.PIPE,
		stderr=subprocess.PIPE,
		text=True,
	)
	try:
		line = []
		reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
		reader.start()
		reader.join(15)
		assert line and line[0].startswith("ready http://127.0.0.1:"), (line, proc.poll())
		url = line[0].split()[1]
		status, tokens = http_json(url + "_atlas/tokens", {"email": OWNER, "scopes": [MODIFY]})
		assert status == 200
		status, listed = http_json(
			url + "gmail/v1/users/me/messages", headers={"Authorization": "Bearer " + tokens["access_token"]}
		)
		assert status == 200 and len(listed["messages"]) == 2
		assert len({m["threadId"] for m in listed["messages"]}) == 1
	finally:
		proc.terminate()
		proc.wait(10)
	assert proc.returncode == 0
	assert proc.stderr.read() == ""


def test_ids_are_deterministic_and_duplicates_are_distinct(tmp_path):
	(tmp_path / "a.eml").write_bytes(mail("one", "det-1@customer.test"))
	(tmp_path / "b.eml").write_bytes(
		mail("mine", "det-2@example.com", sender="Me@Example.com", to="x@customer.test")
	)
	first, second = GmailTestServer(), GmailTestServer()  # not started: loading needs no socket
	ids1 = first.load_eml_dir(OWNER, tmp_path, sent_from=["me@example.com"])
	ids2 = second.load_eml_dir(OWNER, tmp_path, sent_from=["me@example.com"])
	assert ids1 == ids2
	mb = first.mailbox(OWNER)
	assert mb.messages[ids1[0]].label_ids == ["UNREAD", "INBOX"] and mb.messages[ids1[1]].label_ids == [
		"SENT"
	]

	dumped = first.dump_messages(OWNER)
	assert [(d["id"], d["source"]) for d in dumped] == [(ids1[0], "a.eml"), (ids1[1], "b.eml")]
	assert base64.urlsafe_b64decode(dumped[0]["raw"]) == (tmp_path / "a.eml").read_bytes()

	raw = (tmp_path / "a.eml").read_bytes()
	again = first.insert_message(OWNER, raw)
	assert again not in ids1 and mb.messages[again].raw == raw
	assert mb.thread_of(again) == ids1[0]  # same Message-ID: same thread, the earlier message names it
