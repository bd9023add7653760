"""The Outlook layers that need no Frappe site: Graph error classification, the Redis semaphore Graph's
4 concurrent requests per mailbox are kept with, and the Graph client against the local Graph server over
real HTTPS (delta pages, ``$batch`` of ``$value`` with inner 429s retried alone, 401 renewal, pacing).

Run: ``~/atlas-bench/env/bin/python -m pytest tests/pure/test_outlook_client.py -q``
"""

from __future__ import annotations

import sys
import threading
import time
from email.utils import format_datetime
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
	sys.path.insert(0, str(ROOT))

requests = pytest.importorskip("requests")

from atlas_integrations.outlook import errors  # noqa: E402
from atlas_integrations.outlook.client import GraphClient  # noqa: E402
from atlas_integrations.quota import MovingWindow, Permits  # noqa: E402
from atlas_integrations.testing.graph import GraphTestServer  # noqa: E402
from atlas_integrations.testing.graph.tls import trusting_session  # noqa: E402
from tests.pure.redis_fixtures import client  # noqa: E402,F401 - client is a fixture

CORPUS = ROOT.parent / "shared" / "corpus"
CLIENT_ID, SECRET = "client-1", "secret-1"
USER = "box@contoso.example"


def test_graph_answers_are_classified_on_status_and_code_never_on_words():
	assert isinstance(errors.from_status(410, b'{"error":{"code":"syncStateNotFound"}}'), errors.CursorExpired)
	assert isinstance(errors.from_status(400, {"error": {"code": "resyncRequired"}}), errors.CursorExpired)
	throttled = errors.from_status(429, b'{"error":{"code":"ApplicationThrottled","message":"x"}}', {"Retry-After": "7"})
	assert isinstance(throttled, errors.Temporary) and throttled.retry_after == 7.0
	later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
	dated = errors.from_status(503, b"", {"Retry-After": later})
	assert isinstance(dated, errors.Temporary) and 25 <= dated.retry_after <= 31
	assert isinstance(errors.from_status(401, b"{}"), errors.AuthRevoked)
	assert isinstance(errors.from_status(404, b"not json"), errors.Permanent)
	assert errors.graph_error_code(b"\xff" * 10) == (None, "")
	assert len(str(errors.from_status(400, {"error": {"code": "X", "message": "m" * 5000}}))) < 500
	revoked = errors.from_token_result({"error": "invalid_grant", "error_codes": [70000]})
	assert isinstance(revoked, errors.AuthRevoked)
	consent = {"error": "invalid_client", "error_description": "AADSTS65001: not consented", "error_codes": [65001]}
	assert errors.needs_admin_consent(consent) and isinstance(errors.from_token_result(consent), errors.AuthRevoked)
	assert errors.needs_admin_consent({"error": "consent_required", "error_description": "AADSTS90094: admin"})
	assert not errors.needs_admin_consent({"error": "access_denied", "error_description": "AADSTS50020: no user"})
	assert isinstance(errors.from_token_result({"error": "temporarily_unavailable"}), errors.Temporary)


def test_permits_are_never_held_beyond_the_limit_by_parallel_holders(client):
	r, prefix = client
	permits = Permits(r, f"{prefix}:permits", 4, lease=30)
	held, most, lock = [0], [0], threading.Lock()

	def work(n):
		token = permits.acquire(n, timeout=30)
		with lock:
			held[0] += n
			most[0] = max(most[0], held[0])
		time.sleep(0.01)
		with lock:
			held[0] -= n
		permits.release(token)

	threads = [threading.Thread(target=work, args=(4 if i % 5 == 0 else 1,)) for i in range(40)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	assert most[0] == 4 and permits.held() == 0


def test_a_dead_holders_permits_come_back_when_its_lease_expires(client):
	r, prefix = client
	permits = Permits(r, f"{prefix}:permits", 4, lease=0.5)
	assert permits.try_acquire(4)  # never released: its process "died"
	assert permits.try_acquire(1) is None
	started = time.monotonic()
	permits.acquire(1, timeout=5)
	assert 0.3 < time.monotonic() - started < 2.0


@pytest.fixture
def graph():
	with GraphTestServer() as server:
		server.add_client(CLIENT_ID, SECRET)
		box = server.mailbox(USER)
		for path in sorted(CORPUS.rglob("*.eml"))[:45]:
			box.add(path.read_bytes())
		yield server
		assert not server.errors, server.errors[-1]


def _token(server) -> str:
	answer = requests.post(f"{server.base}/common/oauth2/v2.0/token", verify=server.ca_path, timeout=10, data={
		"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET,
		"scope": "https://graph.microsoft.com/.default"})
	return answer.json()["access_token"]


def _client(server, **kwargs) -> GraphClient:
	token = _token(server)
	return GraphClient(server.graph_url, f"users/{USER}", lambda force=False: token, trusting_session(server.ca_path),
					   sleep=kwargs.pop("sleep", lambda s: None), **kwargs)


def test_a_delta_round_pages_to_its_delta_link_and_the_link_then_holds_only_changes(graph):
	c = _client(graph)
	inbox = c.folder("inbox")["id"]
	pages = list(c.delta_pages(inbox, page_size=20))
	assert [len(p["value"]) for p in pages] == [20, 20, 5] and "@odata.deltaLink" in pages[-1]
	ids = [m["id"] for p in pages for m in p["value"]]
	assert len(set(ids)) == 45 and all(i.startswith("AAkA") for i in ids)  # immutable ids, asked on every request
	box = graph.mailbox(USER)
	box.update(ids[0], is_read=True)
	again = list(c.delta_pages(inbox, pages[-1]["@odata.deltaLink"]))
	assert [m["id"] for p in again for m in p["value"]] == [ids[0]]
	graph.expire_delta_tokens(USER)
	with pytest.raises(errors.CursorExpired):
		list(c.delta_pages(inbox, again[-1]["@odata.deltaLink"]))


def test_mime_comes_through_batches_of_20_with_inner_429s_retried_on_their_own(graph):
	naps = []
	c = _client(graph, sleep=naps.append)
	ids = list(graph.mailbox(USER).messages)
	graph.add_fault("GET", r"/\$value$", status=429, times=4, retry_after=2)
	raws, failures = c.get_mime(ids)
	assert not failures and set(raws) == set(ids)
	box = graph.mailbox(USER)
	assert all(raws[i] == box.messages[i].raw for i in ids)
	assert c.throttled == 4 and naps and min(naps) >= 2.0  # Retry-After honoured
	assert c.http_calls == 4  # 45 in 3 batches, then the 4 throttled ones in one more
	# every request sent is counted, the 4 answered 429 included (the faults answered them before the server's
	# own count)
	assert c.api_calls == 45 + 4 and graph.request_counts[USER] == 45


def test_a_refused_token_is_renewed_once_then_a_second_401_is_auth_revoked(graph):
	calls = []
	good = _token(graph)

	def token(force=False):
		calls.append(force)
		return good if force else "expired-token"

	c = GraphClient(graph.graph_url, f"users/{USER}", token, trusting_session(graph.ca_path), sleep=lambda s: None)
	assert c.me()["mail"] == USER and calls == [False, True]
	bad = GraphClient(graph.graph_url, f"users/{USER}", lambda force=False: "nope", trusting_session(graph.ca_path))
	with pytest.raises(errors.AuthRevoked):
		bad.me()


def test_a_paced_client_meets_no_429_from_a_window_graph_enforces(graph, client):
	r, prefix = client
	graph.window = (60, 3)  # 60 requests per 3 seconds at the server
	window = MovingWindow(r, f"{prefix}:window", 40, window=3.0)  # a batch of headroom
	permits = Permits(r, f"{prefix}:permits", 4)
	c = _client(graph, permits=permits, window=window, sleep=time.sleep)
	ids = list(graph.mailbox(USER).messages)
	started = time.monotonic()
	raws, failures = c.get_mime(ids)
	assert not failures and len(raws) == 45
	assert graph.throttled_counts[USER] == 0 and c.throttled == 0
	assert time.monotonic() - started >= 2.5  # 45 requests took more than one window
