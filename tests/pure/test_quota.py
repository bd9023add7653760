"""A provider's per-user quota (atlas_integrations/quota.py): a moving window of weighted units in Redis,
taken atomically before each request; and Google's per-user quota as the local Gmail server enforces it
(429 ``userRateLimitExceeded``, "Retry after <time>"), which the app's Gmail client never meets when it
paces itself, and waits out when it does not."""

from __future__ import annotations

import threading
import time

import pytest

redis = pytest.importorskip("redis")

from atlas_integrations.quota import MovingWindow, QuotaWait  # noqa: E402
from tests.pure.clocks import Clock  # noqa: E402
from tests.pure.redis_fixtures import client  # noqa: E402,F401 - client is a fixture


def test_units_are_taken_until_the_window_is_spent_then_the_wait_is_until_enough_expire(client):
	client_redis, prefix = client
	clock = Clock()
	quota = MovingWindow(client_redis, f"{prefix}:q", limit=100, window=60, clock=clock, sleep=clock.sleep)
	assert quota.try_take(40) == 0.0
	clock.t += 10
	assert quota.try_take(40) == 0.0
	clock.t += 10
	assert quota.try_take(30) == pytest.approx(40.0)  # 80 used: the first 40 expire at t+60
	assert quota.try_take(20) == 0.0  # what fits is taken at once
	assert quota.take(50) == pytest.approx(50.0)  # slept until the first two spends (80) left the window
	assert quota.waited == pytest.approx(50.0)
	with pytest.raises(QuotaWait) as raised:
		quota.take(90, deadline=5)
	assert raised.value.retry_after > 5
	assert quota.try_take(10_000) > 0  # more than the limit takes a whole empty window


def test_parallel_takers_never_spend_more_than_the_limit(client):
	client_redis, prefix = client
	clock = Clock()
	taken, barrier = [], threading.Barrier(12)

	def worker():
		quota = MovingWindow(client_redis, f"{prefix}:q", limit=50, window=60, clock=clock, sleep=clock.sleep)
		barrier.wait()
		if quota.try_take(10) == 0.0:
			taken.append(1)

	threads = [threading.Thread(target=worker) for _ in range(12)]
	for t in threads:
		t.start()
	for t in threads:
		t.join()
	assert len(taken) == 5


def test_redis_clock_paces_real_time_within_the_limit(client):
	client_redis, prefix = client
	quota = MovingWindow(client_redis, f"{prefix}:q", limit=100, window=1.0)
	stamps = []
	started = time.monotonic()
	for _ in range(10):
		quota.take(30)
		stamps.append(time.monotonic())
	# 300 units at 100 a second: the first 90 at once, then one take of 30 per 0.3 s or so
	assert time.monotonic() - started >= 1.9
	for i, t in enumerate(stamps):
		assert sum(30 for s in stamps[: i + 1] if s > t - 0.95) <= 100 + 30  # never far past the window's limit


# -- the local Gmail server's per-user quota, and the client ------------------------------------------------
@pytest.fixture
def gmail(client):
	from atlas_integrations.testing.gmail_server import GmailTestServer

	server = GmailTestServer().start()
	server.register_client("cid", "csecret")
	server.add_mailbox("quota@example.com")
	ids = [server.insert_message("quota@example.com", f"From: a@b.example\r\nSubject: m{i}\r\n\r\nbody {i}\r\n".encode(),
								 label_ids=["INBOX"]) for i in range(30)]
	yield server, ids
	server.stop()


def _client(server, quota=None, sleeps=None):
	from atlas_integrations.gmail.client import SCOPES, GmailClient, TokenState

	tokens = server.issue_tokens("quota@example.com", client_id="cid", scopes=SCOPES)
	state = TokenState(client_id="cid", client_secret="csecret", token_uri=server.url + "token",
					   refresh_token=tokens["refresh_token"])
	return GmailClient(state, server.url, quota=quota, max_attempts=3,
					   sleep=(sleeps.append if sleeps is not None else (lambda s: None)))


def test_the_server_answers_429_user_rate_limit_with_the_time_to_retry(gmail):
	from atlas_integrations.gmail.errors import Temporary

	server, ids = gmail
	server.set_user_quota(50)  # ten messages.get a minute
	sleeps = []
	client = _client(server, sleeps=sleeps)
	for mid in ids[:10]:
		client.get_message(mid)
	with pytest.raises(Temporary) as raised:
		client.get_message(ids[10])
	assert raised.value.status == 429 and raised.value.reason == "userRateLimitExceeded"
	assert "User-rate limit exceeded.  Retry after " in str(raised.value)
	assert 50 < raised.value.retry_after <= 61  # read from Google's message: no Retry-After header
	assert sleeps and all(s >= 50 for s in sleeps)  # the client waited as long as Google said, then gave up
	assert server.stats("quota@example.com")["quota_refused"] == 3


def test_a_paced_client_meets_no_429_and_fetches_everything(gmail, client):
	from atlas_integrations.gmail.client import QUOTA_UNITS

	client_redis, prefix = client
	server, ids = gmail
	server.QUOTA_WINDOW = 2.0  # Google's minute, shortened: 50 units per 2 s
	server.set_user_quota(50)
	quota = MovingWindow(client_redis, f"{prefix}:gmail", limit=45, window=2.0)
	client = _client(server, quota=quota)
	started = time.monotonic()
	messages, failures = client.get_messages(ids, batch_size=5)  # 30 x 5 = 150 units
	elapsed = time.monotonic() - started
	assert (len(messages), failures) == (30, {})
	assert server.stats("quota@example.com")["quota_refused"] == 0
	assert QUOTA_UNITS["messages.get"] == 5
	assert elapsed >= 4.0  # 150 units at 45 per 2 s: paced, not burst
	assert quota.waited > 0
