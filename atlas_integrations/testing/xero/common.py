"""What every part of the Xero test server shares: response tuples, Xero's error bodies (the Accounting
API's "problem" JSON, the identity service's OAuth errors), Xero's date formats, the case-insensitive
header mapping and a small HS256 JWT encoder for the token values."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import html
import json
import time
import uuid

_JSON_CT = "application/json; charset=UTF-8"
# as identity.xero.com answers its token endpoint (recorded in the xero-python cassettes)
NO_STORE = [("Cache-Control", "max-age=0, no-cache, no-store"), ("Pragma", "no-cache")]


def _json_resp(status: int, obj, headers=(), content_type: str = _JSON_CT) -> tuple:
	body = b"" if obj is None else json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
	hdrs = [("Content-Type", content_type), ("Xero-Correlation-Id", str(uuid.uuid4()))] + list(headers)
	return status, hdrs, body


def _empty_resp(status: int, headers=()) -> tuple:
	return status, [("Xero-Correlation-Id", str(uuid.uuid4()))] + list(headers), b""


def _oauth_error(error: str, status: int = 400) -> tuple:
	"""Xero's identity service answers token / revocation errors as a bare ``{"error": "..."}``."""
	return _json_resp(status, {"error": error}, NO_STORE)


def _problem(status: int, detail: str, headers=()) -> tuple:
	"""The api.xero.com error body, e.g. ``{"Type":null,"Title":"Forbidden","Status":403,
	"Detail":"AuthenticationUnsuccessful","Instance":"<uuid>","Extensions":{}}``."""
	title = {
		401: "Unauthorized",
		403: "Forbidden",
		404: "Not Found",
		405: "Method Not Allowed",
		429: "Too Many Requests",
		500: "Internal Server Error",
		503: "Service Unavailable",
	}.get(status, "Error")
	body = {
		"Type": None,
		"Title": title,
		"Status": status,
		"Detail": detail,
		"Instance": str(uuid.uuid4()),
		"Extensions": {},
	}
	return _json_resp(status, body, headers)


def _failed_element(element, errors: list[str]) -> dict:
	"""A batch element Xero refused, as a ``summarizeErrors=false`` answer carries it: a copy of what was
	sent plus ``ValidationErrors`` ([{"Message"}]) and ``StatusAttributeString: ERROR``."""
	failed = copy.deepcopy(element) if isinstance(element, dict) else {}
	failed.update({"ValidationErrors": [{"Message": m} for m in errors], "StatusAttributeString": "ERROR"})
	return failed


def _html_resp(status: int, title: str, text: str) -> tuple:
	page = (
		f"<!DOCTYPE html><html><head><title>{html.escape(title)}</title></head>"
		f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
	).encode()
	return status, [("Content-Type", "text/html; charset=utf-8")], page


def xero_utc(ts: float) -> str:
	"""The identity API's timestamps: ``2019-12-07T18:46:19.5165400`` (UTC, 7 fraction digits, no zone)."""
	whole = int(ts)
	frac = int(round((ts - whole) * 10_000_000))
	if frac >= 10_000_000:
		whole, frac = whole + 1, 0
	return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{frac:07d}"


def ms_date(ts: float) -> str:
	"""The Accounting API's JSON dates: ``/Date(1584585851967)/``."""
	return f"/Date({int(ts * 1000)})/"


def _b64url(data: bytes) -> str:
	return base64.urlsafe_b64encode(data).decode().rstrip("=")


def s256(verifier: str) -> str:
	"""The PKCE S256 code challenge of a verifier (RFC 7636)."""
	return _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())


def jwt_hs256(claims: dict, key: bytes, kid: str = "atlas-xero-test") -> str:
	"""A compact JWT. Xero signs RS256 with its own key; clients never verify access tokens (they are
	opaque to them), so an HMAC signature keeps this standard-library only."""
	header = {"alg": "HS256", "kid": kid, "typ": "JWT"}
	signing = (
		_b64url(json.dumps(header, separators=(",", ":")).encode())
		+ "."
		+ _b64url(json.dumps(claims, separators=(",", ":")).encode())
	)
	sig = hmac.new(key, signing.encode(), hashlib.sha256).digest()
	return signing + "." + _b64url(sig)


def jwt_claims(token: str) -> dict:
	"""The (unverified) claims of a compact JWT."""
	payload = token.split(".")[1]
	return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class _CaseDict(dict):
	"""Header mapping with case-insensitive get."""

	def __init__(self, items=()):
		super().__init__()
		for k, v in items:
			self[k.lower()] = v

	def get(self, key, default=None):
		return super().get(key.lower(), default)


class XeroUrls:
	"""Xero's OAuth 2.0 endpoints under a server root ``url`` (with its trailing slash): shared by the local
	server and the handle of one running in another process (:class:`atlas_integrations.testing.remote.RemoteXero`)."""

	url: str

	@property
	def authorize_url(self) -> str:
		return self.url + "identity/connect/authorize"

	@property
	def token_url(self) -> str:
		return self.url + "connect/token"

	@property
	def revocation_url(self) -> str:
		return self.url + "connect/revocation"
