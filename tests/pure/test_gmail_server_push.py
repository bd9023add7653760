"""Gmail push on the local server: users.watch / users.stop through the real google-api-python-client, and
Pub/Sub push deliveries to a real (stdlib) HTTP receiver whose OIDC JWT google-auth verifies against the
server's certificate endpoint. No frappe.

Run: ``bash scripts/test.sh -q tests/pure/test_gmail_server_push.py``
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

pytest.importorskip("googleapiclient")
pytest.importorskip("cryptography")

import requests
from google.auth.transport.requests import Request
from google.oauth2 import id_token
from googleapiclient.errors import HttpError

from tests.pure import google_client
from tests.pure.google_client import OWNER, make_creds

TOPIC = "projects/atlas-test/topics/gmail"
AUDIENCE = "https://atlas.example.test/api/method/atlas_integrations.api.push.gmail"
PUSH_SA = "gmail-push@atlas-test.iam.gserviceaccount.com"
SHARED_TOKEN = "shared-push-token-0123456789"


def mail(subject: str, sender: str = "alice@example.net", to: str = OWNER) -> bytes:
	return (
		f"From: Alice <{sender}>\r\nTo: {to}\r\nSubject: {subject}\r\n"
		f"Message-ID: <{subject.replace(' ', '-')}-{time.time_ns()}@example.net>\r\n"
		"Date: Mon, 02 Mar 2026 10:00:00 +0000\r\n\r\nHello.\r\n"
	).encode()


class Receiver:
	"""A tiny HTTP endpoint that records every POST and answers the next queued status (default 204)."""

	def __init__(self):
		self.requests: list[dict] = []
		self.statuses: list[int] = []
		self.lock = threading.Lock()
		outer = self

		class Handler(BaseHTTPRequestHandler):
			def log_message(self, *args):
				pass

			def do_POST(self):
				body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
				with outer.lock:
					outer.requests.append(
						{"path": self.path, "headers": dict(self.headers.items()), "body": body}
					)
					status = outer.statuses.pop(0) if outer.statuses else 204
				self.send_response(status)
				self.send_header("Content-Length", "0")
				self.end_headers()

		self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
		self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/push"
		threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

	def close(self):
		self.httpd.shutdown()
		self.httpd.server_close()


@pytest.fixture
def receiver():
	r = Receiver()
	yield r
	r.close()


def gmail(server, address=OWNER):
	return google_client.gmail(server, make_creds(server, address))


def envelope_data(body: bytes) -> dict:
	envelope = json.loads(body)
	assert envelope["subscription"] == "projects/p/subscriptions/s"
	message = envelope["message"]
	assert message["messageId"] and message["publishTime"].endswith("Z")
	return json.loads(base64.b64decode(message["data"]))


def bearer(request: dict) -> str:
	kind, _, token = request["headers"]["Authorization"].partition(" ")
	assert kind == "Bearer"
	return token


# -- watch / stop -----------------------------------------------------------------------------------
def test_watch_and_stop_through_the_google_client(server):
	service = gmail(server)
	before_ms = int(time.time() * 1000)
	answer = service.users().watch(userId="me", body={"topicName": TOPIC}).execute()
	assert answer["historyId"] == str(server.mailbox(OWNER).history_id)
	expiration = int(answer["expiration"])  # epoch ms, as a string
	assert abs(expiration - (before_ms + 7 * 86400 * 1000)) < 60_000
	assert server.watch_of(OWNER) == {
		"topicName": TOPIC,
		"labelIds": [],
		"labelFilterBehavior": "include",
		"expiration": expiration,
	}
	stats = server.stats(OWNER)
	assert stats["by_method"]["users.watch"] == 1
	assert stats["quota_units"] == 100

	with pytest.raises(HttpError) as bad_topic:
		service.users().watch(userId="me", body={"topicName": "gmail-topic"}).execute()
	assert bad_topic.value.resp.status == 400
	with pytest.raises(HttpError) as bad_label:
		service.users().watch(userId="me", body={"topicName": TOPIC, "labelIds": ["NOPE"]}).execute()
	assert bad_label.value.resp.status == 400

	assert service.users().stop(userId="me").execute() in ("", None, {})
	assert server.watch_of(OWNER) is None


def test_certs_endpoint_serves_x509_pem_by_key_id(server):
	r = requests.get(server.url + "oauth2/v1/certs", timeout=10)
	assert r.status_code == 200
	certs = r.json()
	[(kid, pem)] = certs.items()
	assert len(kid) == 40 and pem.startswith("-----BEGIN CERTIFICATE-----")
	assert "max-age" in r.headers["Cache-Control"]


# -- deliveries ---------------------------------------------------------------------------------------
def test_change_of_a_watched_mailbox_pushes_a_verifiable_oidc_request(server, receiver):
	server.configure_push(receiver.url, mode="oidc", audience=AUDIENCE, service_account=PUSH_SA)
	server.insert_message(OWNER, mail("before watch"))
	time.sleep(0.3)
	assert server.push_deliveries() == [] and receiver.requests == []  # no watch, no push

	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	server.insert_message(OWNER, mail("after watch"))
	[delivery] = server.wait_for_pushes(1, timeout=10)
	history_id = server.mailbox(OWNER).history_id
	assert delivery["email"] == OWNER and delivery["historyId"] == history_id
	assert (delivery["status"], delivery["attempts"]) == (204, 1)

	[request] = receiver.requests
	assert request["path"] == "/push"
	assert request["headers"]["Content-Type"] == "application/json"
	assert envelope_data(request["body"]) == {"emailAddress": OWNER, "historyId": history_id}
	claims = id_token.verify_token(
		bearer(request), Request(), audience=AUDIENCE, certs_url=server.url + "oauth2/v1/certs"
	)
	assert claims["iss"] == "https://accounts.google.com"
	assert claims["email"] == PUSH_SA and claims["email_verified"] is True
	assert claims["exp"] - claims["iat"] == 3600
	# the same token for another audience is refused
	with pytest.raises(ValueError):
		id_token.verify_token(
			bearer(request),
			Request(),
			audience="https://elsewhere.example/",
			certs_url=server.url + "oauth2/v1/certs",
		)


def test_label_change_delete_and_send_also_push(server, receiver):
	server.configure_push(receiver.url, audience=AUDIENCE, service_account=PUSH_SA)
	mid = server.insert_message(OWNER, mail("first"))
	service = gmail(server)
	service.users().watch(userId="me", body={"topicName": TOPIC}).execute()
	server.modify_message(OWNER, mid, remove_label_ids=["UNREAD"])
	assert len(server.wait_for_pushes(1)) == 1
	raw = base64.urlsafe_b64encode(mail("sent", sender=OWNER, to="bob@example.net")).decode()
	service.users().messages().send(userId="me", body={"raw": raw}).execute()
	assert len(server.wait_for_pushes(2)) == 2
	server.delete_message(OWNER, mid)
	deliveries = server.wait_for_pushes(3)
	assert [d["historyId"] for d in deliveries] == sorted(d["historyId"] for d in deliveries)
	assert deliveries[-1]["historyId"] == server.mailbox(OWNER).history_id
	assert all(d["status"] == 204 for d in deliveries)


def test_jwt_signed_with_another_key_is_refused_by_google_auth(server, receiver):
	server.configure_push(receiver.url, audience=AUDIENCE, service_account=PUSH_SA, sign_with_wrong_key=True)
	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	server.insert_message(OWNER, mail("tampered"))
	server.wait_for_pushes(1)
	token = bearer(receiver.requests[0])
	with pytest.raises(ValueError):
		id_token.verify_token(token, Request(), audience=AUDIENCE, certs_url=server.url + "oauth2/v1/certs")


def test_token_mode_appends_the_token_and_retries_until_acknowledged(server, receiver):
	receiver.statuses = [500, 503]
	server.configure_push(
		receiver.url + "?x=1", mode="token", token=SHARED_TOKEN, retry_delay=0.05, max_attempts=3
	)
	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	server.insert_message(OWNER, mail("token mode"))
	[delivery] = server.wait_for_pushes(1)
	assert (delivery["statuses"], delivery["attempts"], delivery["status"]) == ([500, 503, 204], 3, 204)
	assert len(receiver.requests) == 3
	assert len({envelope_data(r["body"])["historyId"] for r in receiver.requests}) == 1
	assert (
		len({json.loads(r["body"])["message"]["messageId"] for r in receiver.requests}) == 1
	)  # a redelivery
	for r in receiver.requests:
		assert "Authorization" not in r["headers"]
		assert urllib.parse.parse_qs(urllib.parse.urlsplit(r["path"]).query) == {
			"x": ["1"],
			"token": [SHARED_TOKEN],
		}


def test_retries_are_bounded_and_never_block_the_mailbox(server, receiver):
	receiver.statuses = [500] * 10
	server.configure_push(receiver.url, audience=AUDIENCE, retry_delay=0.3, max_attempts=2)
	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	started = time.monotonic()
	server.insert_message(OWNER, mail("fails"))
	assert time.monotonic() - started < 0.2  # the insert did not wait for the delivery
	[delivery] = server.wait_for_pushes(1)
	assert (delivery["statuses"], delivery["status"]) == ([500, 500], 500)


def test_unreachable_endpoint_is_recorded_as_status_zero(server):
	server.configure_push("http://127.0.0.1:9/push", audience=AUDIENCE, retry_delay=0.01, max_attempts=2)
	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	server.insert_message(OWNER, mail("nowhere"))
	[delivery] = server.wait_for_pushes(1)
	assert (delivery["status"], delivery["attempts"]) == (0, 2)


def test_no_push_after_stop_or_expiry_and_label_filter_is_applied(server, receiver):
	server.configure_push(receiver.url, audience=AUDIENCE)
	service = gmail(server)
	service.users().watch(userId="me", body={"topicName": TOPIC}).execute()
	service.users().stop(userId="me").execute()
	server.insert_message(OWNER, mail("after stop"))
	service.users().watch(userId="me", body={"topicName": TOPIC}).execute()
	server.expire_watch(OWNER)
	server.insert_message(OWNER, mail("after expiry"))
	time.sleep(0.3)
	assert server.push_deliveries() == []

	# only INBOX changes notify: a message landing in SENT alone does not, an INBOX one does
	service.users().watch(
		userId="me", body={"topicName": TOPIC, "labelIds": ["INBOX"], "labelFilterBehavior": "INCLUDE"}
	).execute()
	server.insert_message(OWNER, mail("sent only", sender=OWNER), label_ids=["SENT"])
	time.sleep(0.3)
	assert server.push_deliveries() == []
	server.insert_message(OWNER, mail("inbox"))
	assert len(server.wait_for_pushes(1)) == 1


def test_bursts_are_coalesced_and_the_last_push_carries_the_newest_history_id(server, receiver):
	server.configure_push(receiver.url, audience=AUDIENCE)
	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	for i in range(20):
		server.insert_message(OWNER, mail(f"burst {i}"))
	final = server.mailbox(OWNER).history_id
	deadline = time.monotonic() + 10
	while time.monotonic() < deadline:
		deliveries = server.push_deliveries()
		if deliveries and deliveries[-1]["historyId"] == final:
			break
		time.sleep(0.05)
	assert 1 <= len(deliveries) <= 20
	assert max(d["historyId"] for d in deliveries) == final


def test_push_controls_over_http(server, receiver):
	http = requests.Session()
	r = http.post(
		server.url + "_atlas/push", json={"endpoint_url": receiver.url, "audience": AUDIENCE}, timeout=10
	)
	assert r.status_code == 200
	gmail(server).users().watch(userId="me", body={"topicName": TOPIC}).execute()
	assert (
		http.get(server.url + "_atlas/watch", params={"email": OWNER}, timeout=10).json()["watch"][
			"topicName"
		]
		== TOPIC
	)
	assert http.post(server.url + "_atlas/notify", json={"email": OWNER}, timeout=10).json() == {
		"queued": True
	}
	server.wait_for_pushes(1)
	deliveries = http.get(server.url + "_atlas/push", params={"email": OWNER}, timeout=10).json()[
		"deliveries"
	]
	assert [d["status"] for d in deliveries] == [204]
	assert (
		http.post(
			server.url + "_atlas/push", json={"mode": "nope", "endpoint_url": "x"}, timeout=10
		).status_code
		== 400
	)
