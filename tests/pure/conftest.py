"""Fixtures of the pure tests (no Frappe site needed)."""

from __future__ import annotations

import pytest


@pytest.fixture
def server():
	"""A started local Gmail server with the test OAuth client and the ``OWNER`` mailbox; stopped after
	the test, which fails if the server recorded an internal error."""
	from atlas_integrations.testing.gmail_server import GmailTestServer
	from tests.pure.google_client import CLIENT_ID, CLIENT_SECRET, OWNER

	srv = GmailTestServer().start()
	srv.register_client(CLIENT_ID, CLIENT_SECRET)
	srv.add_mailbox(OWNER)
	yield srv
	srv.stop()
	assert not srv.errors, srv.errors
