"""The app's Gmail client (google-api-python-client underneath) against the local server over real HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from atlas_integrations.gmail.client import SCOPES, GmailClient, TokenState, backoff_delay
from atlas_integrations.gmail.errors import AuthRevoked, Temporary
from atlas_integrations.testing.gmail_server import GmailTestServer

CORPUS = Path(os.environ.get("ATLAS_CORPUS", Path(__file__).resolve().parents[2].parent / "shared" / "corpus"))
MAILBOX = "client-test@example.com"


@pytest.fixture(scope="module")
def server():
	s = GmailTestServer().start()
	s.register_client("cid", "csecret")
	s.add_mailbox(MAILBOX)
	s.load_eml_dir(MAILBOX, str(CORPUS), spread_days=20)
	yield s
	s.stop()


def _client(server, sleeps=None):
	tokens = server.issue_tokens(MAILBOX, client_id="cid", scopes=SCOPES)
	state = TokenState(client_id="cid", client_secret="csecret", token_uri=server.url + "token",
					   refresh_token=tokens["refresh_token"])
	return GmailClient(state, server.url, sleep=(sleeps.append if sleeps is not None else lambda s: None))


def test_list_and_batch_get_raw_counts_calls(server):
	server.reset_stats(MAILBOX)
	client = _client(server)
	assert client.get_profile()["emailAddress"] == MAILBOX
	ids = [m["id"] for page in client.iter_message_ids(q="after:0") for m in page]
	assert len(ids) == 276 == len(set(ids))
	messages, failures = client.get_messages(ids, fmt="raw")
	assert failures == {} and set(messages) == set(ids)
	assert all(m["raw"] and m["threadId"] for m in messages.values())
	stats = server.stats(MAILBOX)
	assert client.api_calls == stats["api_calls"] == 1 + 1 + 276
	assert stats["batch_requests"] == 6  # 276 / 50 per batch
	assert client.credentials.token  # refreshed once, kept for the caller


def test_batch_parts_rate_limited_are_retried_with_retry_after(server):
	sleeps: list[float] = []
	client = _client(server, sleeps)
	ids = [m["id"] for m in next(client.iter_message_ids(q="after:0"))][:60]
	server.inject_fault(r"/messages/[0-9a-f]+$", 429, count=5, reason="rateLimitExceeded", retry_after=3, email=MAILBOX)
	messages, failures = client.get_messages(ids)
	assert failures == {} and len(messages) == 60
	assert sleeps and max(sleeps) >= 3  # Retry-After honoured


def test_persistent_5xx_gives_up_as_temporary(server):
	client = _client(server, [])
	server.inject_fault(r"/profile$", 500, count=100, email=MAILBOX)
	try:
		with pytest.raises(Temporary):
			client.get_profile()
	finally:
		server.clear_faults()


def test_revoked_grant_is_auth_revoked(server):
	client = _client(server)
	server.revoke_tokens(MAILBOX)
	with pytest.raises(AuthRevoked) as info:
		client.get_profile()
	assert info.value.reason == "invalid_grant"


def test_backoff_is_bounded_and_jittered():
	delays = [backoff_delay(a) for a in range(12)]
	assert all(0 <= d <= 64 for d in delays)
	assert backoff_delay(0, retry_after=9) >= 9
