"""Every Microsoft Graph / identity platform failure reduced to a few kinds, each with one action.

Decisions are made on HTTP status codes and the ``error.code`` of Graph's error body (``{"error": {"code",
"message"}}``) or the ``error`` of the identity platform's token answer (``invalid_grant``), never on message
text (learn.microsoft.com/graph/errors, /graph/throttling, /entra/identity-platform/reference-error-codes).
"""

from __future__ import annotations

import json

#: Graph codes of a delta link the service no longer knows (learn.microsoft.com/graph/delta-query-overview,
#: "Synchronization reset"): start the round again from a full listing
SYNC_RESET_CODES = frozenset({"syncStateNotFound", "resyncRequired", "syncStateInvalid"})
#: identity platform errors that mean the stored authorization is gone for good: sign in again
REVOKED_ERRORS = frozenset({"invalid_grant", "interaction_required", "consent_required", "invalid_client",
							"unauthorized_client"})
#: AADSTS codes of a consent only a tenant administrator can give (90094 "The grant requires admin
#: permission", 65001 "The user or administrator has not consented", 90099 "not been authorized in the tenant")
ADMIN_CONSENT_CODES = frozenset({90094, 65001, 90099})


class OutlookError(Exception):
	"""Base of the family. ``status`` is the HTTP status (0 when none), ``code`` Graph's error code (or the
	identity platform's ``error``)."""

	def __init__(self, message: str, status: int = 0, code: str | None = None):
		super().__init__(message)
		self.status = status
		self.code = code


class Temporary(OutlookError):
	"""429, 503, 504, 5xx and network errors: back off and retry. ``retry_after`` is the server's
	Retry-After in seconds when it sent one."""

	def __init__(self, message: str, status: int = 0, code: str | None = None, retry_after: float | None = None):
		super().__init__(message, status, code)
		self.retry_after = retry_after


class AuthRevoked(OutlookError):
	"""The stored authorization was refused (``invalid_grant`` on refresh, 401 after a fresh token, admin
	consent withdrawn): the mailbox turns UNAUTHORIZED and admins are told; no retry."""


class CursorExpired(OutlookError):
	"""A delta or skip link answered 410 Gone (``syncStateNotFound``): the folder needs a full resync."""


class Permanent(OutlookError):
	"""Bad request / not found / forbidden for good: fail this unit of work and keep its payload."""


def retry_after(headers) -> float | None:
	"""Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date, RFC 9110 §10.2.3), or None."""
	value = None
	if headers is not None:
		value = headers.get("Retry-After") or headers.get("retry-after")
	if not value:
		return None
	try:
		return max(0.0, float(value))
	except (TypeError, ValueError):
		from datetime import datetime, timezone
		from email.utils import parsedate_to_datetime

		try:
			when = parsedate_to_datetime(str(value))
		except (TypeError, ValueError):
			return None
		if when.tzinfo is None:
			when = when.replace(tzinfo=timezone.utc)
		return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def graph_error_code(body) -> tuple[str | None, str]:
	"""``(code, message)`` of a Graph error body (bytes, str or decoded dict); ``(None, "")`` for any other
	body. The message is cut to 300 characters (it is provider text, shown only as text)."""
	if isinstance(body, (bytes, str)):
		try:
			body = json.loads(body[:65536] if body else "{}")
		except (ValueError, UnicodeDecodeError):
			return None, ""
	err = body.get("error") if isinstance(body, dict) else None
	if isinstance(err, dict):
		code = err.get("code")
		return (str(code)[:100] if code else None), str(err.get("message") or "")[:300]
	if isinstance(err, str):  # the identity platform's shape
		return err[:100], str(body.get("error_description") or "")[:300]
	return None, ""


def from_status(status: int, body=None, headers=None, context: str = "") -> OutlookError:
	"""Classify one Graph answer (not raised).

	Args:
		status: HTTP status code.
		body: the answer's body (bytes, str or a decoded dict, as a ``$batch`` part carries it).
		headers: mapping with ``Retry-After`` when the server sent one.
		context: what was being done (e.g. ``"messages.delta"``), prefixed to the message.
	"""
	code, message = graph_error_code(body)
	text = f"{context}: HTTP {status}" + (f" {code}" if code else "") + (f" - {message}" if message else "")
	if status == 410 or code in SYNC_RESET_CODES:
		return CursorExpired(text, status, code)
	if status == 429 or status >= 500:
		return Temporary(text, status, code, retry_after(headers))
	if status == 401:
		return AuthRevoked(text, status, code)
	return Permanent(text, status, code)


def from_token_result(result: dict | None, context: str = "token") -> OutlookError:
	"""Classify an MSAL token answer that holds no access token (MSAL returns the platform's error as a
	dict: ``error``, ``error_description``, ``error_codes``)."""
	result = result or {}
	error = str(result.get("error") or "no_token")[:100]
	codes = {int(c) for c in (result.get("error_codes") or []) if str(c).isdigit()}
	text = f"{context}: {error}" + (f" (AADSTS{min(codes)})" if codes else "")
	if error in REVOKED_ERRORS or codes & ADMIN_CONSENT_CODES:
		return AuthRevoked(text, 400, error)
	if error in ("temporarily_unavailable", "server_error", "no_token"):
		return Temporary(text, 0, error)
	return Permanent(text, 400, error)


def needs_admin_consent(error: OutlookError | dict | None) -> bool:
	"""True when a refusal is a consent only a tenant administrator can give (AADSTS 90094 / 65001 /
	90099): the words then say so."""
	if isinstance(error, dict):
		codes = {int(c) for c in (error.get("error_codes") or []) if str(c).isdigit()}
		description = str(error.get("error_description") or "")
		return bool(codes & ADMIN_CONSENT_CODES) or any(description.startswith(f"AADSTS{c}") for c in ADMIN_CONSENT_CODES)
	return isinstance(error, OutlookError) and any(f"AADSTS{c}" in str(error) for c in ADMIN_CONSENT_CODES)


def classify(exc: BaseException, context: str = "") -> OutlookError:
	"""Map any exception raised while talking to Microsoft onto the family: an :class:`OutlookError` as it
	is, network errors (``requests`` connection / timeout, OSError) as :class:`Temporary`, anything else
	:class:`Permanent`."""
	if isinstance(exc, OutlookError):
		return exc
	import requests

	if isinstance(exc, (requests.ConnectionError, requests.Timeout, OSError, TimeoutError)):
		return Temporary(f"{context}: network error ({type(exc).__name__})", 0, "network")
	return Permanent(f"{context}: {type(exc).__name__}", 0, None)
