"""The real Google client libraries pointed at the local Gmail-compatible server (shared by the pure
server tests): a refresh-token-only Credentials, as the app stores them, and a Gmail v1 service."""

from __future__ import annotations

from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

OWNER = "owner@example.com"
CLIENT_ID = "atlas-test-client.apps.googleusercontent.com"
CLIENT_SECRET = "atlas-test-secret"
MODIFY = "https://www.googleapis.com/auth/gmail.modify"


def make_creds(server, address: str = OWNER, scopes=(MODIFY,)) -> Credentials:
	"""Credentials holding only a refresh token the server issued for ``address``; the first call refreshes
	against the server's token endpoint."""
	tokens = server.issue_tokens(address, CLIENT_ID, list(scopes))
	return Credentials(
		token=None,
		refresh_token=tokens["refresh_token"],
		token_uri=server.url + "token",
		client_id=CLIENT_ID,
		client_secret=CLIENT_SECRET,
	)


def gmail(server, creds: Credentials):
	"""A google-api-python-client Gmail v1 service (static discovery) whose endpoint is the server."""
	return build(
		"gmail",
		"v1",
		credentials=creds,
		client_options={"api_endpoint": server.url},
		static_discovery=True,
		cache_discovery=False,
	)

