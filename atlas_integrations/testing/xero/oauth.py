"""Xero's OAuth 2.0 identity service (:class:`_OAuthMixin`): ``GET /identity/connect/authorize``
(login.xero.com), ``POST /connect/token`` and ``POST /connect/revocation`` (identity.xero.com), with
PKCE (S256), refresh-token rotation with a grace period, and the grants / tokens / connections they
create."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import urllib.parse
import uuid

from atlas_integrations.testing.xero.common import (
	NO_STORE,
	_empty_resp,
	_html_resp,
	_json_resp,
	_oauth_error,
	jwt_hs256,
	s256,
	xero_utc,
)
from atlas_integrations.testing.xero.state import AUTH_CODE_TTL, REFRESH_TOKEN_TTL

ISSUER = "https://identity.xero.com"
ACCESS_AUDIENCE = "https://identity.xero.com/resources"
# the (single) Xero user who logs in and consents
USER = {
	"xero_userid": "6a2a1f06-7a0b-4a64-a0b4-6b3b1f1c7a11",
	"email": "atlas.tester@example.com",
	"given_name": "Atlas",
	"family_name": "Tester",
}


def _form(body: bytes) -> dict:
	return {
		k: v[0]
		for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()
	}


class _OAuthMixin:
	"""OAuth endpoints and token internals of :class:`XeroTestServer` (state: ``_codes``, ``_grants``,
	``_refresh``, ``_access``, ``_connections``)."""

	# -- client authentication ------------------------------------------------------------------------
	def _client_auth(self, headers, form) -> tuple[str | None, bool]:
		"""(client_id, ok) from HTTP Basic or the body's client_id / client_secret."""
		auth = headers.get("authorization") or ""
		m = re.match(r"(?i)\s*basic\s+(\S+)", auth)
		if m:
			try:
				raw = base64.b64decode(m.group(1), validate=True).decode("utf-8")
			except (binascii.Error, UnicodeDecodeError):
				return None, False
			cid, _, secret = raw.partition(":")
			cid, secret = urllib.parse.unquote_plus(cid), urllib.parse.unquote_plus(secret)
		else:
			cid, secret = form.get("client_id") or "", form.get("client_secret")
		client = self._clients.get(cid)
		if client is None:
			return None, False
		if client["secret"] is None:  # PKCE public client: no secret (or an empty one)
			return cid, not secret
		return cid, secret is not None and secrets.compare_digest(secret, client["secret"])

	# -- grants and tokens ----------------------------------------------------------------------------
	def _new_access(self, gid: str) -> tuple[str, int]:
		grant = self._grants[gid]
		now = int(self.now())
		ttl = self.access_token_ttl
		claims = {
			"nbf": now,
			"exp": now + ttl,
			"iss": ISSUER,
			"aud": ACCESS_AUDIENCE,
			"client_id": grant["client_id"],
			"sub": grant["sub"],
			"auth_time": grant["auth_time"],
			"xero_userid": USER["xero_userid"],
			"global_session_id": grant["session"],
			"jti": uuid.uuid4().hex,
			"authentication_event_id": grant["auth_event_id"],
			"scope": grant["scope"].split(),
		}
		token = jwt_hs256(claims, self._signing_key)
		self._access[token] = {"grant": gid, "expires": now + ttl}
		return token, ttl

	def _new_refresh(self, gid: str) -> str:
		token = secrets.token_hex(32)
		self._refresh[token] = {
			"grant": gid,
			"issued": self.now(),
			"rotated_at": None,
		}
		self._grants[gid]["refresh_tokens"].append(token)
		return token

	def _id_token(self, gid: str) -> str:
		grant = self._grants[gid]
		now = int(self.now())
		claims = {
			"nbf": now,
			"exp": now + 300,
			"iss": ISSUER,
			"aud": grant["client_id"],
			"iat": now,
			"at_hash": secrets.token_urlsafe(16),
			"sid": grant["session"],
			"sub": grant["sub"],
			"auth_time": grant["auth_time"],
			"xero_userid": USER["xero_userid"],
			"global_session_id": grant["session"],
			"preferred_username": USER["email"],
			"email": USER["email"],
			"given_name": USER["given_name"],
			"family_name": USER["family_name"],
			"name": f"{USER['given_name']} {USER['family_name']}",
			"amr": ["pwd"],
		}
		return jwt_hs256(claims, self._signing_key)

	def _token_set(self, gid: str, refresh: str | None) -> dict:
		"""The token endpoint's JSON, in Xero's field order."""
		grant = self._grants[gid]
		scopes = grant["scope"].split()
		out = {}
		if "openid" in scopes:
			out["id_token"] = self._id_token(gid)
		access, ttl = self._new_access(gid)
		out.update({"access_token": access, "expires_in": ttl, "token_type": "Bearer"})
		if refresh:
			out["refresh_token"] = refresh
		out["scope"] = grant["scope"]
		return out

	def _connect_tenants(self, gid: str, tenant_ids) -> None:
		"""Create (or refresh) the connections of the grant's client to ``tenant_ids``."""
		grant = self._grants[gid]
		now = self.now()
		for tid in tenant_ids:
			conn = next(
				(
					c
					for c in self._connections.values()
					if c["client_id"] == grant["client_id"] and c["tenant_id"] == tid
				),
				None,
			)
			if conn is None:
				cid = str(uuid.uuid4())
				self._connections[cid] = conn = {
					"id": cid,
					"tenant_id": tid,
					"client_id": grant["client_id"],
					"created": now,
				}
			conn.update({"grant": gid, "auth_event_id": grant["auth_event_id"], "updated": now})

	def _render_connection(self, conn: dict) -> dict:
		org = self._tenants.get(conn["tenant_id"]) or {}
		return {
			"id": conn["id"],
			"authEventId": conn["auth_event_id"],
			"tenantId": conn["tenant_id"],
			"tenantType": "ORGANISATION",
			"tenantName": org.get("Name"),
			"createdDateUtc": xero_utc(conn["created"]),
			"updatedDateUtc": xero_utc(conn["updated"]),
		}

	def _bearer(self, headers) -> tuple[dict | None, str]:
		"""(grant, problem detail) of the Authorization header: grant None and why on failure."""
		auth = headers.get("authorization") or ""
		m = re.match(r"(?i)\s*bearer\s+(\S+)", auth)
		tok = self._access.get(m.group(1)) if m else None
		if tok is None:
			return None, "AuthenticationUnsuccessful"
		if tok["expires"] <= self.now():
			when = xero_utc(tok["expires"])
			stamp = f"{when[5:7]}/{when[8:10]}/{when[0:4]} {when[11:19]}"
			return None, f"TokenExpired: token expired at {stamp}"
		return self._grants[tok["grant"]], ""

	# -- GET /identity/connect/authorize ------------------------------------------------------------------
	def _authorize(self, query: str) -> tuple:
		q = {k: v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
		with self._lock:
			self._calls["authorize"] += 1
			client = self._clients.get(q.get("client_id") or "")
			if client is None:
				return _html_resp(400, "Error: unauthorized_client", "Unknown client or client not enabled")
			redirect_uri = q.get("redirect_uri") or ""
			if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", redirect_uri) or (
				client["redirect_uris"] and redirect_uri not in client["redirect_uris"]
			):
				return _html_resp(400, "Error: unauthorized_client", "Invalid redirect_uri")
			state = q.get("state")

			def redirect(params: dict) -> tuple:
				parts = urllib.parse.urlsplit(redirect_uri)
				pairs = list(params.items()) + ([("state", state)] if state is not None else [])
				extra = urllib.parse.urlencode(pairs, quote_via=urllib.parse.quote)
				new_q = parts.query + ("&" if parts.query else "") + extra
				loc = urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, new_q, parts.fragment))
				return 302, [("Location", loc), ("Content-Type", "text/html; charset=utf-8")], b""

			if q.get("response_type") != "code":
				return redirect({"error": "unsupported_response_type"})
			requested = (q.get("scope") or "").split()
			if not requested:
				return redirect({"error": "invalid_scope"})
			challenge = q.get("code_challenge") or None
			method = q.get("code_challenge_method") or ("plain" if challenge else None)
			if challenge and method != "S256":
				return redirect({"error": "invalid_request", "error_description": "code_challenge_method"})
			consent = dict(self._consent)
			if consent["action"] == "deny":
				return redirect({"error": "access_denied"})
			if consent["scopes"] is not None:
				requested = [s for s in requested if s in consent["scopes"]]
			tenants = list(self._tenants) if consent["tenants"] is None else list(consent["tenants"])
			code = secrets.token_urlsafe(32)
			self._codes[code] = {
				"client_id": q["client_id"],
				"redirect_uri": redirect_uri,
				"scope": " ".join(dict.fromkeys(requested)),
				"challenge": challenge,
				"tenants": tenants,
				"expires": self.now() + AUTH_CODE_TTL,
				"auth_time": int(self.now()),
			}
			return redirect({"code": code, "scope": " ".join(dict.fromkeys(requested))})

	# -- POST /connect/token ------------------------------------------------------------------------------
	def _token(self, headers, body: bytes) -> tuple:
		form = _form(body)
		with self._lock:
			self._calls["token"] += 1
			client_id, ok = self._client_auth(headers, form)
			if not ok:
				return _oauth_error("invalid_client")
			grant_type = form.get("grant_type") or ""
			if grant_type == "authorization_code":
				return self._exchange_code(client_id, form)
			if grant_type == "refresh_token":
				return self._refresh_grant(client_id, form)
			return _oauth_error("unsupported_grant_type")

	def _exchange_code(self, client_id: str, form: dict) -> tuple:
		info = self._codes.pop(form.get("code") or "", None)  # single use, even when the exchange fails
		if info is None or info["expires"] <= self.now() or info["client_id"] != client_id:
			return _oauth_error("invalid_grant")
		if (form.get("redirect_uri") or "") != info["redirect_uri"]:
			return _oauth_error("invalid_grant")
		verifier = form.get("code_verifier")
		if info["challenge"]:
			if not verifier or not secrets.compare_digest(s256(verifier), info["challenge"]):
				return _oauth_error("invalid_grant")
		elif self._clients[client_id]["secret"] is None:  # a public client must use PKCE
			return _oauth_error("invalid_grant")
		gid = uuid.uuid4().hex
		self._grants[gid] = {
			"client_id": client_id,
			"scope": info["scope"],
			"sub": uuid.uuid4().hex,
			"session": uuid.uuid4().hex,
			"auth_event_id": str(uuid.uuid4()),
			"auth_time": info["auth_time"],
			"revoked": False,
			"refresh_tokens": [],
		}
		self._connect_tenants(gid, info["tenants"])
		refresh = self._new_refresh(gid) if "offline_access" in info["scope"].split() else None
		return _json_resp(200, self._token_set(gid, refresh), NO_STORE)

	def _refresh_grant(self, client_id: str, form: dict) -> tuple:
		old = form.get("refresh_token") or ""
		rec = self._refresh.get(old)
		if rec is None:
			return _oauth_error("invalid_grant")
		grant = self._grants[rec["grant"]]
		now = self.now()
		if grant["revoked"] or grant["client_id"] != client_id:
			return _oauth_error("invalid_grant")
		if rec["rotated_at"] is not None and now > rec["rotated_at"] + self.refresh_grace:
			return _oauth_error("invalid_grant")
		if now > rec["issued"] + REFRESH_TOKEN_TTL:
			return _oauth_error("invalid_grant")
		if rec["rotated_at"] is None:
			rec["rotated_at"] = now
		new = self._new_refresh(rec["grant"])
		return _json_resp(200, self._token_set(rec["grant"], new), NO_STORE)

	# -- POST /connect/revocation -------------------------------------------------------------------------
	def _revocation(self, headers, body: bytes) -> tuple:
		form = _form(body)
		with self._lock:
			self._calls["revocation"] += 1
			client_id, ok = self._client_auth(headers, form)
			if not ok:
				return _oauth_error("invalid_client")
			token = form.get("token") or ""
			if not token:
				return _oauth_error("invalid_request")
			rec = self._refresh.get(token)
			if rec is not None and self._grants[rec["grant"]]["client_id"] == client_id:
				self._revoke_grant(rec["grant"])
			return _empty_resp(200)  # unknown tokens answer 200 too (RFC 7009)

	def _revoke_grant(self, gid: str) -> None:
		self._grants[gid]["revoked"] = True
		for cid in [c for c, conn in self._connections.items() if conn["grant"] == gid]:
			del self._connections[cid]
