"""No secret in a token object's repr; loopback decided with ipaddress (no site needed)."""

from __future__ import annotations

import pytest


def test_token_state_repr_shows_no_secret():
	from atlas_integrations.gmail.client import TokenState

	state = TokenState(client_id="cid.apps", client_secret="s3cr3t-client", token_uri="https://t",
					   refresh_token="1//refresh-abc", access_token="ya29.access-xyz")
	for text in (repr(state), str(state), f"{state}", repr([state])):
		for secret in ("s3cr3t-client", "1//refresh-abc", "ya29.access-xyz"):
			assert secret not in text
	assert "cid.apps" in repr(state)


@pytest.mark.parametrize("url, expected", [
	("http://127.0.0.1:8000/", True), ("http://127.8.9.10/x", True), ("http://[::1]:9/", True),
	("http://localhost:1/", True), ("http://atlas.localhost/", True), ("http://127.evil.example/", False),
	("http://10.0.0.1/", False), ("https://oauth2.googleapis.com/token", False), ("http://localhost.evil.com/", False),
])
def test_loopback_is_decided_with_ipaddress(url, expected):
	from atlas_integrations.endpoints import is_loopback

	assert is_loopback(url) is expected


def test_conf_number_reads_numbers_and_falls_back_for_none_and_junk():
	pytest.importorskip("frappe")
	from atlas_integrations.endpoints import conf_number

	assert conf_number("t", 30, {"t": 2}) == 2.0
	assert conf_number("t", 30, {"t": "1.5"}) == 1.5
	# "None" is what `bench set-config KEY None` (update_site_config) leaves in a running process's conf
	for junk in ({}, {"t": None}, {"t": ""}, {"t": "None"}, {"t": "soon"}, {"t": 0}, {"t": -1}):
		assert conf_number("t", 30, junk) == 30
