"""Provider failures become the small error family on status codes and reason fields."""

from __future__ import annotations

import json

import pytest

from atlas_integrations.gmail.errors import AuthRevoked, Permanent, Temporary, classify, from_status


def _google_error(code, reason):
	return json.dumps({"error": {"code": code, "message": "m", "errors": [{"reason": reason, "domain": "usageLimits"}]}})


@pytest.mark.parametrize(
	"status,reason,kind",
	[(429, "rateLimitExceeded", Temporary), (403, "userRateLimitExceeded", Temporary), (403, "rateLimitExceeded", Temporary),
	 (500, "backendError", Temporary), (503, None, Temporary), (401, "authError", AuthRevoked),
	 (403, "insufficientPermissions", Permanent), (404, "notFound", Permanent), (400, "invalidArgument", Permanent)],
)
def test_status_and_reason(status, reason, kind):
	err = from_status(status, _google_error(status, reason) if reason else b"", {}, "messages.get")
	assert type(err) is kind
	assert err.status == status and (reason is None or err.reason == reason)


def test_retry_after_seconds_and_http_date():
	assert from_status(429, b"", {"retry-after": "7"}).retry_after == 7
	err = from_status(503, b"", {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})
	assert err.retry_after == 0  # a date in the past means: now


def test_oauth_invalid_grant_body_is_auth_revoked():
	err = from_status(400, json.dumps({"error": "invalid_grant", "error_description": "Token has been expired or revoked."}))
	assert isinstance(err, AuthRevoked) and err.reason == "invalid_grant"


def test_refresh_error_decided_on_error_field():
	from google.auth.exceptions import RefreshError

	assert isinstance(classify(RefreshError("x", {"error": "invalid_grant"})), AuthRevoked)
	assert isinstance(classify(RefreshError("x", {"error": "temporarily_unavailable"})), Temporary)
	assert isinstance(classify(ConnectionResetError()), Temporary)
	assert isinstance(classify(ValueError("bad")), Permanent)


def test_scrub_removes_literal_and_token_shaped_secrets():
	from atlas_integrations.redact import scrub

	text = ("refresh_token=1//0gAbCdEf-long access_token: ya29.a0AfH6SMB Authorization: Bearer abc.def "
			"client_secret='s3cr3t-value' and the literal topsecret-literal")
	out = scrub(text, ["topsecret-literal"])
	for leaked in ("1//0gAbCdEf", "ya29.a0AfH6SMB", "abc.def", "s3cr3t-value", "topsecret-literal"):
		assert leaked not in out
	assert "***" in out
