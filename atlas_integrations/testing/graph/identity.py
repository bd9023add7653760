"""The Microsoft identity platform (v2.0 endpoints) as MSAL for Python uses it: OpenID configuration per
tenant, ``/authorize`` (authorization code, PKCE S256), ``/token`` (authorization code, refresh token,
client credentials). Errors in the platform's JSON shape (``error``, ``error_description`` starting with
the AADSTS code, ``error_codes``). Refresh tokens rotate: each use returns a new one and retires the old
(a retired one answers ``invalid_grant``). Tokens are opaque strings the server looks up.

Reference: learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow and
v2-oauth2-client-creds-grant-flow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field

GRAPH_RESOURCE = "https://graph.microsoft.com/"
DEFAULT_SCOPE = GRAPH_RESOURCE + ".default"
OIDC_SCOPES = {"openid", "profile", "offline_access", "email"}
ACCESS_TOKEN_TTL = 3599  # seconds, as the platform answers
CODE_TTL = 600  # seconds an authorization code stays usable
TENANT_ID = "9188040d-6c67-4c5b-b112-36a304b66dad"  # the tenant of the server's users (a fixed GUID)
ALIASES = {"common", "organizations", "consumers"}


def b64url(data: bytes) -> str:
	"""``data`` as unpadded URL-safe base64 (JWT parts, PKCE challenges, ``client_info``)."""
	return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Grant:
	"""What a token stands for: a user's delegated scopes, or an application's roles (``user`` None)."""

	client_id: str
	user: str | None
	scopes: list[str]
	expires: float = 0.0


@dataclass
class IdentityState:
	"""The identity platform's state: app registrations (client id -> secret), users (address -> object
	id), authorization codes, access and refresh tokens with their grants, retired refresh tokens, and
	the two consent switches tests turn."""

	clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
	users: dict[str, str] = field(default_factory=dict)  # address -> object id
	codes: dict[str, dict] = field(default_factory=dict)
	access: dict[str, Grant] = field(default_factory=dict)
	refresh: dict[str, Grant] = field(default_factory=dict)
	retired: set[str] = field(default_factory=set)  # refresh tokens used once (rotation)
	admin_consent_required: bool = False  # /authorize answers AADSTS90094 (a tenant admin must consent)
	app_consented: bool = True  # client credentials work (an admin granted the application permissions)


class IdentityError(Exception):
	"""A ``/token`` refusal: HTTP ``status``, OAuth ``error``, AADSTS ``code`` and its description."""

	def __init__(self, status: int, error: str, code: int, description: str):
		super().__init__(description)
		self.status, self.error, self.code, self.description = status, error, code, description

	def body(self) -> dict:
		"""The platform's JSON error body (``error``, ``error_description`` led by ``AADSTS<code>``,
		``error_codes``, ``timestamp``, ``trace_id``, ``correlation_id``)."""
		return {"error": self.error, "error_description": f"AADSTS{self.code}: {self.description}",
				"error_codes": [self.code], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
				"trace_id": secrets.token_hex(8), "correlation_id": secrets.token_hex(8)}


class _IdentityMixin:
	"""Mixed into :class:`~atlas_integrations.testing.graph.server.GraphTestServer` (``self.identity``,
	``self.base``, ``self._lock``)."""

	def add_client(self, client_id: str, secret: str) -> None:
		"""Register an application (Entra app registration) with its client secret."""
		with self._lock:
			self.identity.clients[client_id] = secret

	def revoke(self, address: str) -> None:
		"""Revoke every token of a user (the user changed their password, an admin revoked the sessions)."""
		with self._lock:
			for store in (self.identity.access, self.identity.refresh):
				for token in [t for t, g in store.items() if g.user == address]:
					del store[token]

	def _issuer(self, tenant: str) -> str:
		return f"{self.base}/{'{tenantid}' if tenant in ALIASES else tenant}/v2.0"

	def _openid_configuration(self, tenant: str) -> dict:
		root = f"{self.base}/{tenant}"
		return {
			"issuer": self._issuer(tenant),
			"authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
			"token_endpoint": f"{root}/oauth2/v2.0/token",
			"device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
			"end_session_endpoint": f"{root}/oauth2/v2.0/logout",
			"jwks_uri": f"{root}/discovery/v2.0/keys",
			"response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
			"scopes_supported": ["openid", "profile", "email", "offline_access"],
			"subject_types_supported": ["pairwise"],
			"id_token_signing_alg_values_supported": ["RS256"],
			"token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
			"code_challenge_methods_supported": ["plain", "S256"],
			"tenant_region_scope": "EU",
			"cloud_instance_name": "microsoftonline.com",
		}

	def _authorize(self, query: dict) -> tuple[int, list, bytes]:
		"""The user's browser at ``/authorize``: the server's user (``login_hint``, else the only one)
		signs in and consents at once; answers 302 to the redirect URI with ``code`` and ``state``, or with
		``error`` / ``error_description`` (the platform's redirect errors)."""
		redirect = query.get("redirect_uri", "")
		client = query.get("client_id", "")
		if client not in self.identity.clients or not redirect:
			return 400, [("Content-Type", "text/plain")], b"AADSTS700016: Application not found in the directory."
		params = {"state": query.get("state", "")}
		users = list(self.identity.users)
		user = query.get("login_hint") or (users[0] if len(users) == 1 else "")
		if self.identity.admin_consent_required:
			params.update(error="consent_required", error_description=(
				"AADSTS90094: The grant requires admin permission. Need admin approved."))
		elif user not in self.identity.users:
			params.update(error="access_denied", error_description="AADSTS50020: User account does not exist.")
		elif query.get("response_type") != "code":
			params.update(error="unsupported_response_type",
						  error_description="AADSTS70005: response_type is not supported.")
		else:
			code = secrets.token_urlsafe(32)
			with self._lock:
				self.identity.codes[code] = {
					"client_id": client, "user": user, "redirect_uri": redirect, "nonce": query.get("nonce"),
					"scopes": query.get("scope", "").split(), "challenge": query.get("code_challenge"),
					"method": query.get("code_challenge_method", "plain"), "expires": time.time() + CODE_TTL}
			params["code"] = code
		sep = "&" if "?" in redirect else "?"
		return 302, [("Location", redirect + sep + urllib.parse.urlencode(params))], b""

	def _client_secret(self, form: dict, headers) -> str | None:
		auth = headers.get("Authorization") or ""
		if auth.startswith("Basic "):
			try:
				cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
				form.setdefault("client_id", urllib.parse.unquote(cid))
				return urllib.parse.unquote(secret)
			except Exception:
				return None
		return form.get("client_secret")

	def _token(self, tenant: str, form: dict, headers) -> dict:
		"""``/token``. Raises :class:`IdentityError`."""
		secret = self._client_secret(form, headers)
		client = form.get("client_id", "")
		known = self.identity.clients.get(client)
		if known is None:
			raise IdentityError(400, "unauthorized_client", 700016, f"Application with identifier '{client}' was not found.")
		if secret is None or not hmac.compare_digest(secret, known):
			raise IdentityError(401, "invalid_client", 7000215, "Invalid client secret provided.")
		grant_type = form.get("grant_type")
		if grant_type == "authorization_code":
			with self._lock:
				code = self.identity.codes.pop(form.get("code", ""), None)
			if not code or code["expires"] < time.time() or code["client_id"] != client:
				raise IdentityError(400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired.")
			if code["redirect_uri"] != form.get("redirect_uri"):
				raise IdentityError(400, "invalid_grant", 50148, "The redirect_uri does not match the one of the authorization request.")
			verifier = form.get("code_verifier") or ""
			expected = b64url(hashlib.sha256(verifier.encode()).digest()) if code["method"] == "S256" else verifier
			if code["challenge"] and not hmac.compare_digest(expected, code["challenge"]):
				raise IdentityError(400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge.")
			return self._issue(tenant, Grant(client, code["user"], code["scopes"]), code.get("nonce"))
		if grant_type == "refresh_token":
			token = form.get("refresh_token", "")
			with self._lock:
				grant = self.identity.refresh.pop(token, None)
				if grant is None or token in self.identity.retired:
					raise IdentityError(400, "invalid_grant", 70000, "The provided value for the input parameter "
										"'refresh_token' or 'assertion' is not valid.")
				self.identity.retired.add(token)
			if grant.client_id != client:
				raise IdentityError(400, "invalid_grant", 70000, "The refresh token was issued to another client.")
			scopes = form.get("scope", "").split() or grant.scopes
			return self._issue(tenant, Grant(client, grant.user, scopes))
		if grant_type == "client_credentials":
			if form.get("scope") != DEFAULT_SCOPE:
				raise IdentityError(400, "invalid_scope", 1002012, "The provided value for scope is not valid. "
									"Client credential flows must have a scope value with /.default suffixed.")
			if not self.identity.app_consented:
				raise IdentityError(400, "invalid_client", 65001, "The user or administrator has not consented to "
									"use the application.")
			return self._issue(tenant, Grant(client, None, ["Mail.ReadWrite", "Mail.Send"]))
		raise IdentityError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")

	def _issue(self, tenant: str, grant: Grant, nonce: str | None = None) -> dict:
		access = "atlas-graph-at-" + secrets.token_urlsafe(32)
		graph_scopes = [s for s in grant.scopes if s not in OIDC_SCOPES]
		issued = Grant(grant.client_id, grant.user, grant.scopes, time.time() + ACCESS_TOKEN_TTL)
		answer = {"token_type": "Bearer", "expires_in": ACCESS_TOKEN_TTL, "ext_expires_in": ACCESS_TOKEN_TTL,
				  "access_token": access,
				  "scope": " ".join(s if s.startswith("https://") else GRAPH_RESOURCE + s for s in graph_scopes)}
		with self._lock:
			self.identity.access[access] = issued
			if grant.user and "offline_access" in grant.scopes:
				refresh = "atlas-graph-rt-" + secrets.token_urlsafe(48)
				self.identity.refresh[refresh] = issued
				answer["refresh_token"] = refresh
		if grant.user:
			oid = self.identity.users[grant.user]
			now = int(time.time())
			claims = {"aud": grant.client_id, "iss": self._issuer(TENANT_ID), "iat": now, "nbf": now,
					  "exp": now + ACCESS_TOKEN_TTL, "name": grant.user.split("@")[0], "oid": oid, "sub": oid,
					  "preferred_username": grant.user, "tid": TENANT_ID, "ver": "2.0"}
			if nonce:
				claims["nonce"] = nonce
			head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
			body = b64url(json.dumps(claims).encode())
			sig = b64url(hmac.new(self.signing_key, f"{head}.{body}".encode(), hashlib.sha256).digest())
			answer["id_token"] = f"{head}.{body}.{sig}"
			answer["client_info"] = b64url(json.dumps({"uid": oid, "utid": TENANT_ID}).encode())
		return answer

	def grant_for(self, authorization: str | None) -> Grant | None:
		"""The grant of a ``Bearer`` access token that is known and not expired, else None."""
		if not authorization or not authorization.startswith("Bearer "):
			return None
		grant = self.identity.access.get(authorization[7:])
		return grant if grant and grant.expires > time.time() else None
