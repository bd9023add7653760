"""Every Gmail/Google OAuth failure reduced to a few kinds, each with one action.

Decisions are made on HTTP status codes and the ``reason`` / ``error`` fields of Google's error bodies,
never on message text (Gmail API "Resolve errors" guide:
https://developers.google.com/gmail/api/guides/handle-errors). The one thing read from a message is *when*
to retry: Google's rate-limit messages name the time ("Retry after …") where no Retry-After header is sent.
"""

from __future__ import annotations

import json
import re

# Reasons Google sends with 403 when the caller should back off (usage limits), not give up.
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "backendError"})


class GmailError(Exception):
	"""Base of the family. ``status`` is the HTTP status (0 when none), ``reason`` Google's reason code."""

	def __init__(self, message: str, status: int = 0, reason: str | None = None):
		super().__init__(message)
		self.status = status
		self.reason = reason


class Temporary(GmailError):
	"""429, 5xx, 403 rate limits, network errors: back off and retry.

	``retry_after`` is the server's Retry-After in seconds when it sent one.
	"""

	def __init__(self, message: str, status: int = 0, reason: str | None = None, retry_after: float | None = None):
		super().__init__(message, status, reason)
		self.retry_after = retry_after


class AuthRevoked(GmailError):
	"""invalid_grant on refresh, or 401 after a refresh: mark the account UNAUTHORIZED, stop retrying."""


class CursorExpired(GmailError):
	"""history.list answered 404 for the stored historyId: a full resync is needed."""


class Permanent(GmailError):
	"""Bad request / not found / forbidden for good: fail this unit of work and keep its payload."""


def _google_error_details(content: bytes | str | None) -> tuple[str | None, str]:
	"""Return (reason, message) from a Google JSON error body; tolerant of any body."""
	if not content:
		return None, ""
	try:
		body = json.loads(content.decode() if isinstance(content, bytes) else content)
	except (ValueError, UnicodeDecodeError):
		return None, ""
	err = body.get("error") if isinstance(body, dict) else None
	if isinstance(err, str):  # OAuth form: {"error": "invalid_grant", "error_description": ...}
		return err, str(body.get("error_description") or "")
	if isinstance(err, dict):
		errors = err.get("errors") or []
		reason = errors[0].get("reason") if errors and isinstance(errors[0], dict) else None
		if not reason:
			details = err.get("details") or []
			for d in details:
				if isinstance(d, dict) and d.get("reason"):
					reason = d["reason"]
					break
		return reason or err.get("status"), str(err.get("message") or "")
	return None, ""


def _retry_after(headers) -> float | None:
	value = None
	if headers is not None:
		value = headers.get("retry-after") or headers.get("Retry-After")
	if not value:
		return None
	try:
		return max(0.0, float(value))
	except ValueError:
		from email.utils import parsedate_to_datetime
		from datetime import datetime, timezone

		try:
			when = parsedate_to_datetime(value)
		except (TypeError, ValueError):
			return None
		return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


#: Google's rate-limit messages name the time the user's quota has room again: "User-rate limit exceeded.
#: Retry after 2026-12-06T10:21:11.187Z"
_RETRY_AT = re.compile(r"Retry after (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?)Z")


def retry_after_in_message(message: str | None) -> float | None:
	"""Seconds until the time a Google rate-limit message names ("Retry after <RFC 3339 UTC>"), or None.
	Reads at most the first 500 characters (a bounded, non-backtracking pattern)."""
	from datetime import datetime, timezone

	found = _RETRY_AT.search((message or "")[:500])
	if not found:
		return None
	try:
		when = datetime.fromisoformat(found.group(1)).replace(tzinfo=timezone.utc)
	except ValueError:
		return None
	return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def from_status(status: int, content=None, headers=None, context: str = "") -> GmailError:
	"""Classify an HTTP answer from Gmail into the family.

	Args:
		status: HTTP status code.
		content: response body (bytes or str) — Google's JSON error, if any.
		headers: response headers (mapping) for Retry-After.
		context: what was being done (e.g. ``"messages.get"``), prefixed to the message.

	Returns:
		A :class:`GmailError` subclass instance (not raised).
	"""
	reason, message = _google_error_details(content)
	text = f"{context}: HTTP {status}" + (f" {reason}" if reason else "") + (f" - {message}" if message else "")
	if status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS):
		wait = _retry_after(headers)
		return Temporary(text, status, reason, wait if wait is not None else retry_after_in_message(message))
	if status == 401 or reason == "invalid_grant":
		return AuthRevoked(text, status, reason)
	return Permanent(text, status, reason)


def classify(exc: BaseException, context: str = "") -> GmailError:
	"""Map any exception raised while talking to Google onto the family.

	Handles ``googleapiclient.errors.HttpError``, ``google.auth.exceptions.RefreshError`` (decided on its
	``error`` field, e.g. ``invalid_grant``), ``TransportError``, socket/timeout errors and httplib2's
	server-not-found. Anything else becomes :class:`Permanent`.
	"""
	if isinstance(exc, GmailError):
		return exc
	try:
		from googleapiclient.errors import HttpError
	except ImportError:  # pragma: no cover - the library is a hard dependency
		HttpError = ()  # type: ignore
	from google.auth import exceptions as gauth

	if HttpError and isinstance(exc, HttpError):
		return from_status(int(exc.resp.status), exc.content, exc.resp, context)
	if isinstance(exc, gauth.RefreshError):
		data = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
		error = data.get("error")
		if error in ("invalid_grant", "invalid_scope", "unauthorized_client", "invalid_client"):
			return AuthRevoked(f"{context}: token refresh refused ({error})", 400, error)
		return Temporary(f"{context}: token refresh failed ({error or type(exc).__name__})", 0, error)
	if isinstance(exc, (gauth.TransportError, OSError, TimeoutError)):
		return Temporary(f"{context}: network error ({type(exc).__name__})", 0, "network")
	try:
		import httplib2

		if isinstance(exc, (httplib2.HttpLib2Error,)):
			return Temporary(f"{context}: network error ({type(exc).__name__})", 0, "network")
	except ImportError:  # pragma: no cover
		pass
	return Permanent(f"{context}: {type(exc).__name__}: {exc}", 0, None)
