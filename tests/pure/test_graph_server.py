"""The local Microsoft identity platform + Graph server driven by MSAL for Python (Microsoft's own library)
and ``requests`` over real HTTPS on 127.0.0.1 (no frappe): what Outlook mailboxes will connect through.

Run: ``~/atlas-bench/env/bin/python -m pytest tests/pure/test_graph_server.py -q``
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

msal = pytest.importorskip("msal")
requests = pytest.importorskip("requests")

from atlas_integrations.testing.graph import GraphTestServer  # noqa: E402
from atlas_integrations.testing.graph.tls import trusting_session  # noqa: E402

CLIENT_ID, SECRET = "11111111-2222-3333-4444-555555555555", "app-secret~value"
USER = "dispatch@contoso.example"
SCOPES = ["Mail.ReadWrite", "Mail.Send", "User.Read"]  # MSAL adds openid profile offline_access itself
REDIRECT = "https://erp.example/api/method/atlas_integrations.api.outlook.callback"


@pytest.fixture
def server():
	with GraphTestServer() as srv:
		srv.add_client(CLIENT_ID, SECRET)
		srv.add_user(USER)
		yield srv
		assert not srv.errors, srv.errors[-1]


def _app(server, tenant: str = "common") -> msal.ConfidentialClientApplication:
	return msal.ConfidentialClientApplication(
		CLIENT_ID, client_credential=SECRET, authority=f"{server.base}/{tenant}", instance_discovery=False,
		http_client=trusting_session(server.ca_path), token_cache=msal.SerializableTokenCache())


def _sign_in(server, app, **kwargs) -> tuple[dict, dict]:
	"""The user's browser: MSAL's authorization URL, followed to the redirect (not followed further)."""
	flow = app.initiate_auth_code_flow(SCOPES, redirect_uri=REDIRECT, **kwargs)
	assert flow["auth_uri"].startswith(f"{server.base}/") and "/oauth2/v2.0/authorize?" in flow["auth_uri"]
	answer = requests.get(flow["auth_uri"], verify=server.ca_path, allow_redirects=False, timeout=10)
	assert answer.status_code == 302, answer.text
	location = answer.headers["Location"]
	assert location.startswith(REDIRECT + "?")
	return flow, dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))


def test_the_certificate_is_trusted_only_when_named_and_plain_http_is_not_served(server):
	with pytest.raises(requests.exceptions.SSLError):  # the system's bundle does not hold it
		requests.get(f"{server.base}/common/v2.0/.well-known/openid-configuration", timeout=10)
	with pytest.raises(requests.exceptions.ConnectionError):
		requests.get(f"http://127.0.0.1:{server.port}/common/v2.0/.well-known/openid-configuration", timeout=5)
	ok = requests.get(f"{server.base}/common/v2.0/.well-known/openid-configuration", verify=server.ca_path, timeout=10)
	assert ok.status_code == 200 and ok.json()["token_endpoint"] == f"{server.base}/common/oauth2/v2.0/token"


def test_msal_authorization_code_flow_with_pkce_then_graph_me(server):
	app = _app(server)
	flow, auth_response = _sign_in(server, app)
	query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(flow["auth_uri"]).query))
	assert query["code_challenge_method"] == "S256" and query["code_challenge"]  # MSAL always sends PKCE
	assert set(query["scope"].split()) >= {"offline_access", "openid", "profile", *SCOPES}
	result = app.acquire_token_by_auth_code_flow(flow, auth_response)
	assert "access_token" in result, result
	assert result["refresh_token"].startswith("atlas-graph-rt-")
	assert result["id_token_claims"]["preferred_username"] == USER
	assert set(result["scope"].split()) >= {f"https://graph.microsoft.com/{s}" for s in SCOPES}
	me = requests.get(f"{server.graph_url}/me", headers={"Authorization": f"Bearer {result['access_token']}"},
					  verify=server.ca_path, timeout=10)
	assert me.status_code == 200 and me.json()["mail"] == USER
	accounts = app.get_accounts()
	assert [a["username"] for a in accounts] == [USER]  # MSAL built its account from client_info + id_token


def test_a_code_is_used_once_and_a_wrong_pkce_verifier_is_refused(server):
	app = _app(server)
	flow, auth_response = _sign_in(server, app)
	wrong = dict(flow, code_verifier="x" * 43)
	refused = app.acquire_token_by_auth_code_flow(wrong, auth_response)
	assert refused["error"] == "invalid_grant" and "AADSTS501481" in refused["error_description"]
	flow, auth_response = _sign_in(server, app)
	assert "access_token" in app.acquire_token_by_auth_code_flow(flow, auth_response)
	again = _app(server).acquire_token_by_auth_code_flow(dict(flow), auth_response)
	assert again["error"] == "invalid_grant"


def test_refresh_tokens_rotate_and_a_used_one_is_invalid_grant(server):
	app = _app(server)
	flow, auth_response = _sign_in(server, app)
	first = app.acquire_token_by_auth_code_flow(flow, auth_response)
	second = app.acquire_token_by_refresh_token(first["refresh_token"], SCOPES)
	assert "access_token" in second and second["refresh_token"] != first["refresh_token"]
	reused = app.acquire_token_by_refresh_token(first["refresh_token"], SCOPES)
	assert reused["error"] == "invalid_grant" and reused["error_codes"] == [70000]
	server.revoke(USER)
	revoked = app.acquire_token_by_refresh_token(second["refresh_token"], SCOPES)
	assert revoked["error"] == "invalid_grant"
	me = requests.get(f"{server.graph_url}/me", headers={"Authorization": f"Bearer {second['access_token']}"},
					  verify=server.ca_path, timeout=10)
	assert me.status_code == 401 and me.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_a_consent_only_a_tenant_admin_can_give_comes_back_as_an_error_redirect(server):
	server.identity.admin_consent_required = True
	flow, auth_response = _sign_in(server, _app(server))
	assert auth_response["error"] == "consent_required" and "AADSTS90094" in auth_response["error_description"]
	assert auth_response["state"] == flow["state"] and "code" not in auth_response


def test_client_credentials_for_a_shared_mailbox_reach_users_by_address_not_me(server):
	app = _app(server, tenant="9188040d-6c67-4c5b-b112-36a304b66dad")
	result = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])
	assert "access_token" in result and "refresh_token" not in result, result
	auth = {"Authorization": f"Bearer {result['access_token']}"}
	shared = requests.get(f"{server.graph_url}/users/{USER}", headers=auth, verify=server.ca_path, timeout=10)
	assert shared.status_code == 200 and shared.json()["mail"] == USER
	me = requests.get(f"{server.graph_url}/me", headers=auth, verify=server.ca_path, timeout=10)
	assert me.status_code == 400
	wrong = msal.ConfidentialClientApplication(CLIENT_ID, client_credential="wrong", authority=f"{server.base}/common",
											   instance_discovery=False, http_client=trusting_session(server.ca_path))
	refused = wrong.acquire_token_for_client(["https://graph.microsoft.com/.default"])
	assert refused["error"] == "invalid_client"
	server.identity.app_consented = False
	no_consent = _app(server).acquire_token_for_client(["https://graph.microsoft.com/.default"])
	assert no_consent["error"] == "invalid_client" and "AADSTS65001" in no_consent["error_description"]


# -- mail: folders, delta, $value, $batch --------------------------------------------------------------------
CORPUS = ROOT.parent / "shared" / "corpus"


def _mail(subject: str, message_id: str, in_reply_to: str | None = None) -> bytes:
	extra = f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n" if in_reply_to else ""
	return (f"From: Ann <ann@fabrikam.example>\r\nTo: {USER}\r\nSubject: {subject}\r\n"
			f"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMessage-ID: <{message_id}>\r\n{extra}"
			f"Content-Type: text/plain; charset=utf-8\r\n\r\nBody of {subject}\r\n").encode()


def _token(server) -> str:
	app = _app(server)
	flow, auth_response = _sign_in(server, app, login_hint=USER)  # the user who signs in
	return app.acquire_token_by_auth_code_flow(flow, auth_response)["access_token"]


def _get(server, token: str, url: str, immutable: bool = True, page: int | None = None) -> requests.Response:
	prefer = ['IdType="ImmutableId"'] if immutable else []
	if page:
		prefer.append(f"odata.maxpagesize={page}")
	headers = {"Authorization": f"Bearer {token}", **({"Prefer": ", ".join(prefer)} if prefer else {})}
	return requests.get(url if url.startswith("https://") else server.graph_url + url, headers=headers,
						verify=server.ca_path, timeout=10)


def _round(server, token: str, url: str, immutable: bool = True, page: int | None = None) -> tuple[list, str]:
	"""One delta round: every page, followed by @odata.nextLink, to the @odata.deltaLink."""
	items = []
	while True:
		answer = _get(server, token, url, immutable, page)
		assert answer.status_code == 200, answer.text
		body = answer.json()
		items += body["value"]
		if "@odata.deltaLink" in body:
			return items, body["@odata.deltaLink"]
		url = body["@odata.nextLink"]


def test_a_folder_delta_pages_then_reports_new_changed_moved_and_deleted_messages(server):
	box = server.mailbox(USER)
	sent = [box.add(_mail(f"Order {i}", f"order{i}@fabrikam.example")) for i in range(8)]
	token = _token(server)
	first = _get(server, token, "/me/mailFolders/inbox/messages/delta", page=3)
	assert first.headers["Preference-Applied"].startswith('IdType="ImmutableId"')
	assert len(first.json()["value"]) == 3 and "@odata.nextLink" in first.json()
	items, link = _round(server, token, "/me/mailFolders/inbox/messages/delta", page=3)
	assert sorted(i["id"] for i in items) == sorted(m.id for m in sent)  # each once, immutable ids
	assert all(i["parentFolderId"] == box.folder_id("inbox") and i["isRead"] is False for i in items)

	new = box.add(_mail("Re: Order 0", "reply0@fabrikam.example", in_reply_to="order0@fabrikam.example"))
	box.update(sent[1].id, is_read=True, categories=["Quote"])
	box.move(sent[2].id, "archive")
	box.delete(sent[3].id)
	items, link2 = _round(server, token, link)
	by_id = {i["id"]: i for i in items}
	assert set(by_id) == {new.id, sent[1].id, sent[2].id, sent[3].id}
	assert by_id[new.id]["conversationId"] == sent[0].conversation_id  # the reply joins its conversation
	assert by_id[sent[1].id]["isRead"] is True and by_id[sent[1].id]["categories"] == ["Quote"]
	assert by_id[sent[2].id]["@removed"] == {"reason": "deleted"}  # moved out: removed from this folder
	assert by_id[sent[3].id]["@removed"] == {"reason": "deleted"}
	archive, _ = _round(server, token, "/me/mailFolders/archive/messages/delta")
	assert [i["id"] for i in archive] == [sent[2].id]  # the immutable id survives the move
	assert _round(server, token, link2)[0] == []  # nothing since


def test_without_immutable_ids_a_moved_message_changes_its_id(server):
	box = server.mailbox(USER)
	msg = box.add(_mail("Moves", "moves@fabrikam.example"))
	token = _token(server)
	before = _get(server, token, f"/me/messages/{msg.id}", immutable=False).json()["id"]
	box.move(msg.id, "archive")
	after = _get(server, token, f"/me/messages/{msg.id}", immutable=False).json()["id"]
	assert before != after and msg.id not in (before, after)
	assert _get(server, token, f"/me/messages/{after}").json()["id"] == msg.id  # either id finds it


def test_a_dropped_sync_state_answers_410(server):
	box = server.mailbox(USER)
	box.add(_mail("One", "one@fabrikam.example"))
	token = _token(server)
	_, link = _round(server, token, "/me/mailFolders/inbox/messages/delta")
	server.expire_delta_tokens(USER)
	gone = _get(server, token, link)
	assert gone.status_code == 410 and gone.json()["error"]["code"] == "syncStateNotFound"


def test_value_and_batch_give_the_exact_rfc822_bytes(server):
	box = server.mailbox(USER)
	assert box.load(CORPUS / "asf-httpd-users-2020-07") > 0
	msgs = list(box.messages.values())[:20]
	token = _token(server)
	assert _get(server, token, f"/me/messages/{msgs[0].id}/$value").content == msgs[0].raw
	batch = {"requests": [{"id": str(i), "method": "GET", "url": f"/me/messages/{m.id}/$value"}
						  for i, m in enumerate(msgs)]}
	auth = {"Authorization": f"Bearer {token}"}
	answer = requests.post(f"{server.graph_url}/$batch", json=batch, headers=auth, verify=server.ca_path, timeout=30)
	assert answer.status_code == 200
	got = {r["id"]: base64.b64decode(r["body"]) for r in answer.json()["responses"] if r["status"] == 200}
	assert got == {str(i): m.raw for i, m in enumerate(msgs)}
	too_many = {"requests": batch["requests"] + [dict(batch["requests"][0], id="20")]}
	refused = requests.post(f"{server.graph_url}/$batch", json=too_many, headers=auth, verify=server.ca_path, timeout=30)
	assert refused.status_code == 400


def test_a_delegated_token_reaches_only_its_own_mailbox(server):
	server.add_user("other@contoso.example")
	token = _token(server)
	mine = _get(server, token, f"/users/{USER}/mailFolders")
	assert mine.status_code == 200 and {f["wellKnownName"] for f in mine.json()["value"]} >= {"inbox", "sentitems"}
	assert _get(server, token, "/users/other@contoso.example/mailFolders").status_code == 404


# -- throttling: 4 concurrent requests, 10,000 per 10 minutes per mailbox -----------------------------------------
def test_the_ten_minute_window_counts_every_request_a_batch_carries(server):
	box = server.mailbox(USER)
	msg = box.add(_mail("Counted", "counted@fabrikam.example"))
	token = _token(server)
	server.window = (5, 600)
	assert all(_get(server, token, f"/me/messages/{msg.id}").status_code == 200 for _ in range(3))
	batch = {"requests": [{"id": str(i), "method": "GET", "url": f"/users/{USER}/messages/{msg.id}"} for i in range(3)]}
	answer = requests.post(f"{server.graph_url}/$batch", json=batch, headers={"Authorization": f"Bearer {token}"},
						   verify=server.ca_path, timeout=10).json()["responses"]
	assert [r["status"] for r in answer] == [200, 200, 429]  # requests 4 and 5 fit, the 6th does not
	assert 1 <= int(answer[2]["headers"]["Retry-After"]) <= 600
	refused = _get(server, token, f"/me/messages/{msg.id}")
	assert refused.status_code == 429 and refused.json()["error"]["code"] == "ApplicationThrottled"
	assert 1 <= int(refused.headers["Retry-After"]) <= 600
	assert server.request_counts[USER] == 5


def test_at_most_four_requests_of_a_mailbox_run_at_once_and_a_batch_holds_four(server):
	box = server.mailbox(USER)
	msg = box.add(_mail("Busy", "busy@fabrikam.example"))
	token = _token(server)
	server.latency = 0.6
	start, statuses = threading.Barrier(7), []

	def one():
		start.wait()
		statuses.append(_get(server, token, f"/me/messages/{msg.id}"))

	threads = [threading.Thread(target=one) for _ in range(7)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	refused = [r for r in statuses if r.status_code == 429]
	assert refused and all(r.headers["Retry-After"] == "1" and "MailboxConcurrency" in r.json()["error"]["message"]
						   for r in refused)
	assert server.max_in_flight[USER] == 4
	batch = {"requests": [{"id": str(i), "method": "GET", "url": f"/me/messages/{msg.id}"} for i in range(5)]}
	done = []
	running = threading.Thread(target=lambda: done.append(requests.post(
		f"{server.graph_url}/$batch", json=batch, headers={"Authorization": f"Bearer {token}"},
		verify=server.ca_path, timeout=10)))
	running.start()
	time.sleep(0.3)  # the batch is running and holds all four slots
	assert _get(server, token, f"/me/messages/{msg.id}").status_code == 429
	running.join()
	assert [r["status"] for r in done[0].json()["responses"]] == [200] * 5


# -- writes: state, move, createReply + send, sendMail, finding what was sent --------------------------------------
KEY_PROP = "String {66f5a359-4659-4830-9070-00047ec6ac6e} Name AtlasRequestKey"


def _call(server, token: str, method: str, url: str, body: dict | None = None) -> requests.Response:
	return requests.request(method, server.graph_url + url, json=body, verify=server.ca_path, timeout=10,
							headers={"Authorization": f"Bearer {token}", "Prefer": 'IdType="ImmutableId"'})


def test_a_reply_is_a_draft_with_graphs_threading_then_sent_once_and_findable_by_its_key(server):
	box, ann = server.mailbox(USER), server.mailbox("ann@fabrikam.example")
	original = box.add(_mail("Quote please", "quote@fabrikam.example"))
	token = _token(server)
	draft = _call(server, token, "POST", f"/me/messages/{original.id}/createReply", {})
	assert draft.status_code == 201, draft.text
	d = draft.json()
	assert d["isDraft"] is True and d["conversationId"] == original.conversation_id
	assert d["parentFolderId"] == box.folder_id("drafts") and d["subject"] == "RE: Quote please"
	patched = _call(server, token, "PATCH", f"/me/messages/{d['id']}", {
		"body": {"contentType": "html", "content": "<p>Twelve boxes: 120.00</p>"},
		"singleValueExtendedProperties": [{"id": KEY_PROP, "value": "request-key-1"}]})
	assert patched.status_code == 200 and patched.json()["singleValueExtendedProperties"][0]["value"] == "request-key-1"
	assert _call(server, token, "POST", f"/me/messages/{d['id']}/send").status_code == 202
	assert len(server.sent) == 1 and server.sent[0]["extended"] == {KEY_PROP: "request-key-1"}
	sent = box.messages[d["id"]]
	assert sent.folder == box.folder_id("sentitems") and not sent.is_draft  # the same immutable id
	assert b"In-Reply-To: <quote@fabrikam.example>" in sent.raw and b"Twelve boxes" in sent.raw
	delivered = [m for m in ann.messages.values()]
	assert len(delivered) == 1 and delivered[0].raw == sent.raw  # the recipient's inbox has it
	flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROP}' and ep/value eq 'request-key-1')"
	found = _call(server, token, "GET", f"/me/mailFolders/sentitems/messages?$filter={urllib.parse.quote(flt)}")
	assert [m["id"] for m in found.json()["value"]] == [d["id"]]
	again = _call(server, token, "POST", f"/me/messages/{d['id']}/send")  # no longer a draft: refused
	assert again.status_code == 400 and len(server.sent) == 1


def test_a_new_draft_takes_attachments_is_filed_late_with_a_send_lag_and_can_be_deleted(server):
	import base64
	import time

	box = server.mailbox(USER)
	token = _token(server)
	made = _call(server, token, "POST", "/me/messages", {
		"subject": "Your quote", "body": {"contentType": "Text", "content": "Attached."},
		"toRecipients": [{"emailAddress": {"address": "buyer@fabrikam.example"}}],
		"bccRecipients": [{"emailAddress": {"address": "audit@fabrikam.example"}}]})
	assert made.status_code == 201 and made.json()["isDraft"] is True, made.text
	draft_id = made.json()["id"]
	added = _call(server, token, "POST", f"/me/messages/{draft_id}/attachments", {
		"@odata.type": "#microsoft.graph.fileAttachment", "name": "Q-1.pdf", "contentType": "application/pdf",
		"contentBytes": base64.b64encode(b"%PDF-1.4 q").decode()})
	assert added.status_code == 201, added.text
	server.send_lag = 0.5
	try:
		assert _call(server, token, "POST", f"/me/messages/{draft_id}/send").status_code == 202
		assert len(server.sent) == 1 and server.sent[0]["to"] == ["buyer@fabrikam.example", "audit@fabrikam.example"]
		assert box.messages[draft_id].is_draft  # accepted, not filed yet
		time.sleep(0.8)
		assert not box.messages[draft_id].is_draft and box.messages[draft_id].folder == box.folder_id("sentitems")
	finally:
		server.send_lag = 0.0
	assert b'filename="Q-1.pdf"' in box.messages[draft_id].raw
	other = _call(server, token, "POST", "/me/messages", {"subject": "scrap"}).json()["id"]
	assert _call(server, token, "DELETE", f"/me/messages/{other}").status_code == 204
	assert other not in box.messages
	assert _call(server, token, "DELETE", f"/me/messages/{other}").status_code == 404


def test_send_mail_state_changes_and_moves_show_in_the_delta(server):
	box = server.mailbox(USER)
	msg = box.add(_mail("State", "state@fabrikam.example"))
	token = _token(server)
	_, link = _round(server, token, "/me/mailFolders/inbox/messages/delta")
	assert _call(server, token, "PATCH", f"/me/messages/{msg.id}",
				 {"isRead": True, "categories": ["Atlas"], "flag": {"flagStatus": "flagged"}}).status_code == 200
	items, link = _round(server, token, link)
	assert [(i["id"], i["isRead"], i["categories"], i["flag"]["flagStatus"]) for i in items] == [
		(msg.id, True, ["Atlas"], "flagged")]
	moved = _call(server, token, "POST", f"/me/messages/{msg.id}/move", {"destinationId": "archive"})
	assert moved.status_code == 201 and moved.json()["id"] == msg.id
	assert [i.get("@removed") for i in _round(server, token, link)[0]] == [{"reason": "deleted"}]
	sent = _call(server, token, "POST", "/me/sendMail", {"message": {
		"subject": "Quotation", "body": {"contentType": "text", "content": "Attached."},
		"toRecipients": [{"emailAddress": {"address": "buyer@fabrikam.example"}}],
		"singleValueExtendedProperties": [{"id": KEY_PROP, "value": "quote-key-7"}]}, "saveToSentItems": True})
	assert sent.status_code == 202 and [s["to"] for s in server.sent] == [["buyer@fabrikam.example"]]
	flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{KEY_PROP}' and ep/value eq 'quote-key-7')"
	found = _call(server, token, "GET", f"/me/messages?$filter={urllib.parse.quote(flt)}").json()["value"]
	assert len(found) == 1 and found[0]["parentFolderId"] == box.folder_id("sentitems")


# -- change notifications --------------------------------------------------------------------------------------
class _Receiver:
	"""A webhook receiver on 127.0.0.1: answers the validation handshake (unless told not to) and records
	every notification it accepts."""

	def __init__(self, validate: bool = True):
		from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

		self.validate, self.received = validate, []
		receiver = self

		class H(BaseHTTPRequestHandler):
			def log_message(self, *a):
				pass

			def do_POST(self):
				body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
				token = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query)).get("validationToken")
				if token is not None:
					answer = token.encode() if receiver.validate else b"nope"
					self.send_response(200)
					self.send_header("Content-Type", "text/plain")
					self.send_header("Content-Length", str(len(answer)))
					self.end_headers()
					self.wfile.write(answer)
					return
				receiver.received.append((self.path, json.loads(body)))
				self.send_response(202)
				self.send_header("Content-Length", "0")
				self.end_headers()

		self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
		threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
		self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

	def wait(self, count: int, seconds: float = 5) -> list:
		deadline = time.monotonic() + seconds
		while len(self.received) < count and time.monotonic() < deadline:
			time.sleep(0.02)
		return self.received


def _subscribe(server, token: str, receiver: _Receiver, minutes: int = 60) -> requests.Response:
	from datetime import datetime, timedelta, timezone

	expires = (datetime.now(timezone.utc) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
	return _call(server, token, "POST", "/subscriptions", {
		"changeType": "created,updated,deleted", "notificationUrl": receiver.url + "/notify",
		"lifecycleNotificationUrl": receiver.url + "/lifecycle", "resource": "/me/mailFolders('inbox')/messages",
		"expirationDateTime": expires, "clientState": "secret-client-state"})


def test_a_subscription_is_validated_then_notifies_changes_and_lifecycle_events(server):
	receiver = _Receiver()
	box = server.mailbox(USER)
	token = _token(server)
	created = _subscribe(server, token, receiver)
	assert created.status_code == 201, created.text
	sub = created.json()
	assert sub["clientState"] == "secret-client-state" and "_address" not in sub
	msg = box.add(_mail("Notify me", "notify@fabrikam.example"))
	box.move(msg.id, "archive")
	got = receiver.wait(2)
	assert sorted((p, n["value"][0]["changeType"], n["value"][0]["resourceData"]["id"]) for p, n in got) == [
		("/notify", "created", msg.id), ("/notify", "deleted", msg.id)]  # Graph promises no order
	assert all(n["value"][0]["clientState"] == "secret-client-state" for _, n in got)
	renewed = _call(server, token, "PATCH", f"/subscriptions/{sub['id']}", {"expirationDateTime": "2099-01-01T00:00:00Z"})
	assert renewed.status_code == 400  # beyond the 10,080 minutes a mail subscription may live
	server.lifecycle(sub["id"], "reauthorizationRequired")
	server.lifecycle(sub["id"], "subscriptionRemoved")
	events = [n["value"][0]["lifecycleEvent"] for p, n in receiver.wait(4) if p == "/lifecycle"]
	assert sorted(events) == ["reauthorizationRequired", "subscriptionRemoved"]
	assert _call(server, token, "GET", f"/subscriptions/{sub['id']}").status_code == 404


def test_a_receiver_that_does_not_echo_the_validation_token_gets_no_subscription(server):
	receiver = _Receiver(validate=False)
	server.mailbox(USER)
	refused = _subscribe(server, _token(server), receiver)
	assert refused.status_code == 400 and refused.json()["error"]["code"] == "ValidationError"
	assert server.subscriptions == {}


# -- faults and the command line ---------------------------------------------------------------------------------
def test_an_accepted_send_whose_answer_is_lost_was_still_sent_once(server):
	box = server.mailbox(USER)
	original = box.add(_mail("Lost answer", "lost@fabrikam.example"))
	token = _token(server)
	draft = _call(server, token, "POST", f"/me/messages/{original.id}/createReply", {}).json()
	server.add_fault("POST", r"/send$", status=None, delay=1.5, after=True)
	with pytest.raises(requests.exceptions.ReadTimeout):
		requests.post(f"{server.graph_url}/me/messages/{draft['id']}/send", verify=server.ca_path, timeout=0.5,
					  headers={"Authorization": f"Bearer {token}"})
	time.sleep(1.2)
	assert len(server.sent) == 1  # Graph did it; only the answer never came
	assert _call(server, token, "GET", f"/me/messages/{draft['id']}").json()["isDraft"] is False


def test_an_injected_429_hits_one_request_inside_a_batch(server):
	box = server.mailbox(USER)
	msgs = [box.add(_mail(f"B{i}", f"b{i}@fabrikam.example")) for i in range(3)]
	token = _token(server)
	server.add_fault("GET", re.escape(msgs[1].id) + r"/\$value$", status=429, retry_after=7)
	batch = {"requests": [{"id": str(i), "method": "GET", "url": f"/me/messages/{m.id}/$value"} for i, m in enumerate(msgs)]}
	answer = requests.post(f"{server.graph_url}/$batch", json=batch, headers={"Authorization": f"Bearer {token}"},
						   verify=server.ca_path, timeout=10).json()["responses"]
	assert [(r["status"], r["headers"].get("Retry-After")) for r in answer] == [(200, None), (429, "7"), (200, None)]


def test_the_command_line_serves_a_loaded_mailbox(tmp_path):
	import subprocess

	(tmp_path / "a.eml").write_bytes(_mail("From the CLI", "cli@fabrikam.example"))
	proc = subprocess.Popen([sys.executable, "-m", "atlas_integrations.testing.graph", "--client", f"{CLIENT_ID}:{SECRET}",
							 "--mailbox", f"{USER}={tmp_path}"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
	watchdog = threading.Timer(30, proc.kill)  # a child that never prints must not hang the suite
	watchdog.start()
	try:
		info = json.loads(proc.stdout.readline())
		app = msal.ConfidentialClientApplication(CLIENT_ID, client_credential=SECRET,
												 authority=info["authority_host"] + "/organizations",
												 instance_discovery=False, http_client=trusting_session(info["ca_path"]))
		token = app.acquire_token_for_client(["https://graph.microsoft.com/.default"])["access_token"]
		delta = requests.get(f"{info['graph_url']}/users/{USER}/mailFolders/inbox/messages/delta",
							 headers={"Authorization": f"Bearer {token}"}, verify=info["ca_path"], timeout=10).json()
		assert [m["subject"] for m in delta["value"]] == ["From the CLI"]
	finally:
		watchdog.cancel()
		proc.terminate()
		proc.wait(timeout=10)
