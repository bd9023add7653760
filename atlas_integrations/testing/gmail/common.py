"""What every part of the Google test server shares: the clock, Google's JSON error format, the
``(status, [(header, value)], body)`` response tuples, the case-insensitive header mapping and the
per-request context."""

from __future__ import annotations

import html
import json
import time

_STATUS_NAMES = {
	400: "INVALID_ARGUMENT",
	401: "UNAUTHENTICATED",
	403: "PERMISSION_DENIED",
	404: "NOT_FOUND",
	405: "METHOD_NOT_ALLOWED",
	409: "ALREADY_EXISTS",
	412: "FAILED_PRECONDITION",
	413: "OUT_OF_RANGE",
	429: "RESOURCE_EXHAUSTED",
	500: "INTERNAL",
	501: "UNIMPLEMENTED",
	502: "UNAVAILABLE",
	503: "UNAVAILABLE",
	504: "DEADLINE_EXCEEDED",
}
_USAGE_LIMIT_REASONS = {
	"rateLimitExceeded",
	"userRateLimitExceeded",
	"dailyLimitExceeded",
	"quotaExceeded",
	"limitExceeded",
	"concurrentLimitExceeded",
}

_JSON_CT = "application/json; charset=UTF-8"


# --------------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------------
def _now_ms() -> int:
	return int(time.time() * 1000)


class ApiError(Exception):
	"""An error answered in Google's JSON error format."""

	def __init__(
		self, code: int, message: str, reason: str | None = None, domain: str | None = None, headers=()
	):
		super().__init__(message)
		self.code = code
		self.message = message
		self.reason = reason
		self.domain = domain
		self.headers = list(headers)


def google_error_body(code: int, message: str, reason: str | None = None, domain: str | None = None) -> dict:
	"""``{"error": {"code", "message", "errors": [{"message", "domain", "reason"}], "status"}}``."""
	reason = reason or {
		400: "badRequest",
		401: "authError",
		403: "forbidden",
		404: "notFound",
		409: "duplicate",
		429: "rateLimitExceeded",
	}.get(code, "backendError" if code >= 500 else "badRequest")
	domain = domain or ("usageLimits" if reason in _USAGE_LIMIT_REASONS else "global")
	return {
		"error": {
			"code": code,
			"message": message,
			"errors": [{"message": message, "domain": domain, "reason": reason}],
			"status": _STATUS_NAMES.get(code, "UNKNOWN"),
		}
	}


def _json_resp(status: int, obj, headers=()) -> tuple:
	body = (
		b""
		if obj is None
		else json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
	)
	hdrs = [("Content-Type", _JSON_CT)] + list(headers)
	return status, hdrs, body


def _error_resp(exc: ApiError) -> tuple:
	return _json_resp(exc.code, google_error_body(exc.code, exc.message, exc.reason, exc.domain), exc.headers)


def _oauth_error(status: int, error: str, description: str, headers=()) -> tuple:
	return _json_resp(status, {"error": error, "error_description": description}, headers)


def _html_resp(status: int, title: str, text: str) -> tuple:
	page = (
		f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
		f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
	).encode()
	return status, [("Content-Type", "text/html; charset=utf-8")], page


class _Ctx:
	"""Per-request attribution (which mailbox a request belongs to)."""

	__slots__ = ("email",)

	def __init__(self):
		self.email = None


class _CaseDict(dict):
	"""Header mapping with case-insensitive get."""

	def __init__(self, items=()):
		super().__init__()
		for k, v in items:
			self[k.lower()] = v

	def get(self, key, default=None):
		return super().get(key.lower(), default)
