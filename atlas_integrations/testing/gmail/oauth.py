"""Google OAuth 2.0 of the test server: client registration, consent, grants, access and refresh
tokens, and the endpoints ``/o/oauth2/auth``, ``/token``, ``/revoke``, ``/oauth2/v3/userinfo`` and
``/oauth2/v3/tokeninfo`` (:class:`_OAuthMixin`); the Gmail scope names."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import secrets
import time
import urllib.parse

from atlas_integrations.testing.gmail.common import _html_resp, _json_resp, _oauth_error
from atlas_integrations.testing.gmail.mailbox import Mailbox

ACCESS_TOKEN_TTL = 3599  # seconds, as Google answers
AUTH_CODE_TTL = 600

SCOPE_FULL = "https://mail.google.com/"
_G = "https://www.googleapis.com/auth/gmail."
SCOPE_MODIFY, SCOPE_READONLY, SCOPE_METADATA = _G + "modify", _G + "readonly", _G + "metadata"
SCOPE_COMPOSE, SCOPE_SEND, SCOPE_INSERT, SCOPE_LABELS = (
	_G + "compose",
	_G + "send",
	_G + "insert",
	_G + "labels",
)


class _OAuthMixin:
	"""OAuth controls, token internals and OAuth endpoints of :class:`GmailTestServer` (state:
	``_clients``, ``_codes``, ``_grants``, ``_refresh``, ``_access``, ``_consent``).
	"""

	# -- setup ----------------------------------------------------------------------------------------
	def register_client(self, client_id: str, client_secret: str) -> None:
		"""Register an OAuth client (any redirect_uri is accepted)."""
		with self._lock:
			self._clients[client_id] = client_secret

	# -- OAuth controls -------------------------------------------------------------------------------
	def set_consent(self, email: str | None = None, action: str = "allow", scopes=None) -> None:
		"""How the next consents answer: ``allow`` | ``deny`` | ``no_refresh`` (no refresh_token), and as whom.

		``scopes``: with granular consent the user may untick scopes; when given, only those of the
		requested scopes that are in ``scopes`` are granted (the token response's ``scope`` says which).
		"""
		if action not in ("allow", "deny", "no_refresh"):
			raise ValueError(f"unknown consent action {action!r}")
		if email:
			self.add_mailbox(email)
		with self._lock:
			self._consent = {"email": email.strip().lower() if email else None, "action": action,
							 "scopes": list(scopes) if scopes is not None else None}

	def revoke_tokens(self, address: str) -> int:
		"""Invalidate every grant of the mailbox (refresh -> 400 invalid_grant, API -> 401). Returns count."""
		key = address.strip().lower()
		n = 0
		with self._lock:
			for grant in self._grants.values():
				if grant["email"] == key and not grant["revoked"]:
					grant["revoked"] = True
					n += 1
		return n

	def expire_access_tokens(self, address: str | None = None) -> None:
		"""Make current access tokens expired (the next API call gets 401 and the client refreshes)."""
		key = address.strip().lower() if address else None
		with self._lock:
			for tok in self._access.values():
				if key is None or self._grants[tok["grant"]]["email"] == key:
					tok["expires"] = 0

	def issue_tokens(
		self, address: str, client_id: str | None = None, scopes=None, offline: bool = True
	) -> dict:
		"""Mint tokens without the consent dance (a shortcut for tests).

		Returns ``{"access_token", "refresh_token" (when offline), "scope", "expires_in", "token_type"}``.
		"""
		self.add_mailbox(address)
		with self._lock:
			if client_id is None:
				if not self._clients:
					raise ValueError("register_client() first")
				client_id = next(iter(self._clients))
			scope = " ".join(scopes) if isinstance(scopes, (list, tuple)) else (scopes or SCOPE_FULL)
			return self._new_grant(address.strip().lower(), client_id, scope, offline)

	def issued_refresh_tokens(self, address: str) -> list[str]:
		"""Every refresh token ever issued for the mailbox (revoked ones included), oldest first."""
		key = address.strip().lower()
		with self._lock:
			return [g["refresh"] for g in self._grants.values() if g["email"] == key and g["refresh"]]

	def issued_access_tokens(self, address: str) -> list[str]:
		"""Every access token ever issued for the mailbox (expired and revoked ones included)."""
		key = address.strip().lower()
		with self._lock:
			return [t for t, rec in self._access.items() if self._grants[rec["grant"]]["email"] == key]

	def token_is_revoked(self, token: str) -> bool:
		"""True when ``token`` (refresh or access) belongs to a revoked grant; False for live or unknown tokens."""
		with self._lock:
			gid = self._refresh.get(token) or (self._access.get(token) or {}).get("grant")
			return bool(gid and self._grants[gid]["revoked"])

	# -- OAuth internals ------------------------------------------------------------------------------
	def _new_grant(self, email: str, client_id: str, scope: str, offline: bool) -> dict:
		gid = secrets.token_hex(8)
		refresh = ("1//0" + secrets.token_urlsafe(48)) if offline else None
		self._grants[gid] = {
			"email": email,
			"client_id": client_id,
			"scope": scope,
			"refresh": refresh,
			"revoked": False,
		}
		if refresh:
			self._refresh[refresh] = gid
		out = {"access_token": self._new_access(gid), "expires_in": ACCESS_TOKEN_TTL}
		if refresh:
			out["refresh_token"] = refresh
		out["scope"] = scope
		out["token_type"] = "Bearer"
		return out

	def _new_access(self, gid: str) -> str:
		token = "ya29.a0" + secrets.token_urlsafe(60)
		self._access[token] = {"grant": gid, "expires": time.time() + ACCESS_TOKEN_TTL}
		return token

	def _bearer(self, headers) -> tuple[dict | None, dict | None]:
		"""(grant, access token record) for an Authorization header; either may be None."""
		auth = headers.get("authorization") or ""
		m = re.match(r"(?i)\s*bearer\s+(\S+)", auth)
		if not m:
			return None, None
		tok = self._access.get(m.group(1))
		if tok is None:
			return None, None
		return self._grants.get(tok["grant"]), tok

	# -- OAuth endpoints ----------------------------------------------------------------------------------
	def _authorize(self, method, path, query, ctx) -> tuple:
		q = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
		with self._lock:
			consent = dict(self._consent)
			hint = (q.get("login_hint") or "").strip().lower()
			if hint and hint in self._mailboxes:
				who = hint
			elif consent["email"]:
				who = consent["email"]
			elif len(self._mailboxes) == 1:
				who = next(iter(self._mailboxes))
			else:
				who = None
			ctx.email = who
		fault = self._take_fault(method.upper(), path, query, who)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		client_id = q.get("client_id") or ""
		if client_id not in self._clients:
			return _html_resp(400, "Error 401: invalid_client", "The OAuth client was not found.")
		redirect_uri = q.get("redirect_uri") or ""
		if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", redirect_uri):
			return _html_resp(400, "Error 400: invalid_request", "Missing required parameter: redirect_uri")
		state = q.get("state")

		def redirect(params: dict) -> tuple:
			ordered = ([("state", state)] if state is not None else []) + list(params.items())
			parts = urllib.parse.urlsplit(redirect_uri)
			extra = urllib.parse.urlencode(ordered, quote_via=urllib.parse.quote)
			new_q = parts.query + ("&" if parts.query else "") + extra
			loc = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, new_q, parts.fragment))
			return 302, [("Location", loc), ("Content-Type", "text/html; charset=utf-8")], b""

		if q.get("response_type") != "code":
			return redirect({"error": "unsupported_response_type"})
		scope = " ".join((q.get("scope") or "").split())
		if not scope:
			return _html_resp(400, "Error 400: invalid_request", "Missing required parameter: scope")
		if who is None:
			return _html_resp(
				400,
				"Error 400: no account",
				"Several mailboxes exist: call set_consent(email=...) or pass login_hint.",
			)
		if consent["action"] == "deny":
			return redirect({"error": "access_denied"})
		challenge = q.get("code_challenge")
		cmethod = q.get("code_challenge_method") or ("plain" if challenge else None)
		if challenge and cmethod not in ("S256", "plain"):
			return _html_resp(400, "Error 400: invalid_request", "Invalid code_challenge_method")
		if consent.get("scopes") is not None:  # granular consent: the user unticked some scopes
			scope = " ".join(x for x in scope.split() if x in consent["scopes"])
		code = "4/0" + secrets.token_urlsafe(40)
		with self._lock:
			self._add_mailbox_locked(who)
			self._codes[code] = {
				"client_id": client_id,
				"redirect_uri": redirect_uri,
				"scope": scope,
				"email": who,
				"offline": (q.get("access_type") or "online") == "offline"
				and consent["action"] != "no_refresh",
				"challenge": challenge,
				"method": cmethod,
				"expires": time.time() + AUTH_CODE_TTL,
			}
		return redirect({"code": code, "scope": scope, "authuser": "0", "prompt": "consent"})

	def _add_mailbox_locked(self, key):
		if key not in self._mailboxes:
			self._mailboxes[key] = Mailbox(key)

	@staticmethod
	def _client_auth(headers, form) -> tuple[str | None, str | None]:
		auth = headers.get("authorization") or ""
		m = re.match(r"(?i)\s*basic\s+(\S+)", auth)
		if m:
			try:
				decoded = base64.b64decode(m.group(1)).decode("utf-8", "replace")
				cid, _, secret = decoded.partition(":")
				return urllib.parse.unquote(cid), urllib.parse.unquote(secret)
			except (binascii.Error, ValueError):
				return None, None
		return form.get("client_id"), form.get("client_secret")

	def _token(self, method, path, query, headers, body, ctx) -> tuple:
		form = {
			k: v[0]
			for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
		}
		for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items():
			form.setdefault(k, v[0])
		grant_type = form.get("grant_type")
		with self._lock:
			if grant_type == "authorization_code":
				info = self._codes.get(form.get("code") or "")
				ctx.email = info["email"] if info else None
			elif grant_type == "refresh_token":
				gid = self._refresh.get(form.get("refresh_token") or "")
				ctx.email = self._grants[gid]["email"] if gid else None
			self._st(ctx.email).token_requests += 1
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		if method.upper() != "POST":
			return _oauth_error(405, "invalid_request", "Token requests must be POSTed.")
		client_id, secret = self._client_auth(headers, form)
		with self._lock:
			if not client_id or client_id not in self._clients:
				return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
			if self._clients[client_id] != (secret or ""):
				return _oauth_error(401, "invalid_client", "Unauthorized")
			if grant_type == "authorization_code":
				code = form.get("code") or ""
				info = self._codes.pop(code, None)  # single use, even when the exchange fails
				if info is None or info["expires"] < time.time():
					return _oauth_error(400, "invalid_grant", "Malformed auth code.")
				if info["client_id"] != client_id:
					return _oauth_error(400, "invalid_grant", "Unauthorized client for this code.")
				if (form.get("redirect_uri") or "") != info["redirect_uri"]:
					return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
				if info["challenge"]:
					verifier = form.get("code_verifier") or ""
					if not verifier:
						return _oauth_error(
							400, "invalid_request", "code_verifier or verifier is not needed."
						)
					if info["method"] == "S256":
						calc = (
							base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
							.decode()
							.rstrip("=")
						)
					else:
						calc = verifier
					if not secrets.compare_digest(calc, info["challenge"]):
						return _oauth_error(400, "invalid_grant", "Invalid code verifier.")
				return _json_resp(
					200,
					self._new_grant(info["email"], client_id, info["scope"], info["offline"]),
					[("Cache-Control", "no-store")],
				)
			if grant_type == "refresh_token":
				gid = self._refresh.get(form.get("refresh_token") or "")
				grant = self._grants.get(gid) if gid else None
				if grant is None or grant["revoked"]:
					return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
				if grant["client_id"] != client_id:
					return _oauth_error(401, "unauthorized_client", "Unauthorized")
				want = set((form.get("scope") or "").split())
				if want and not want <= set(grant["scope"].split()):
					return _oauth_error(400, "invalid_scope", "Some requested scopes were invalid.")
				out = {
					"access_token": self._new_access(gid),
					"expires_in": ACCESS_TOKEN_TTL,
					"scope": grant["scope"],
					"token_type": "Bearer",
				}
				return _json_resp(200, out, [("Cache-Control", "no-store")])
			return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

	def _revoke(self, method, path, query, body, ctx) -> tuple:
		form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
		for k, v in urllib.parse.parse_qs(query).items():
			form.setdefault(k, v[0])
		token = form.get("token") or ""
		with self._lock:
			gid = self._refresh.get(token) or (self._access.get(token) or {}).get("grant")
			ctx.email = self._grants[gid]["email"] if gid else None
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		with self._lock:
			grant = self._grants.get(gid) if gid else None
			if grant is None or grant["revoked"]:
				return _oauth_error(400, "invalid_token", "Token expired or revoked")
			grant["revoked"] = True
		return _json_resp(200, {})

	def _userinfo(self, method, path, query, headers, ctx) -> tuple:
		with self._lock:
			grant, tok = self._bearer(headers)
			ctx.email = grant["email"] if grant else None
		fault = self._take_fault(method.upper(), path, query, ctx.email)
		if fault is not None:
			return self._fault_oauth_resp(fault)
		if grant is None or grant["revoked"] or tok["expires"] < time.time():
			return _json_resp(401, {"error": "invalid_request", "error_description": "Invalid Credentials"})
		sub = str(int(hashlib.sha1(grant["email"].encode()).hexdigest()[:15], 16))
		return _json_resp(
			200,
			{"sub": sub, "id": sub, "email": grant["email"], "email_verified": True, "verified_email": True},
		)

	def _tokeninfo(self, method, path, query, headers, body, ctx) -> tuple:
		form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
		for k, v in urllib.parse.parse_qs(query).items():
			form.setdefault(k, v[0])
		with self._lock:
			tok = self._access.get(form.get("access_token") or "")
			grant = self._grants.get(tok["grant"]) if tok else None
			if grant is None or grant["revoked"] or tok["expires"] < time.time():
				return _oauth_error(400, "invalid_token", "Invalid Value")
			sub = str(int(hashlib.sha1(grant["email"].encode()).hexdigest()[:15], 16))
			left = int(tok["expires"] - time.time())
			return _json_resp(
				200,
				{
					"azp": grant["client_id"],
					"aud": grant["client_id"],
					"sub": sub,
					"scope": grant["scope"],
					"exp": str(int(tok["expires"])),
					"expires_in": str(left),
					"email": grant["email"],
					"email_verified": "true",
					"access_type": "offline" if grant["refresh"] else "online",
				},
			)
