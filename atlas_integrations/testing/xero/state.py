"""Test-side state controls of :class:`XeroTestServer` (:class:`_StateMixin`): OAuth clients, tenants
(organisations), consent, token lifetimes, the injected clock and the per-endpoint call counters."""

from __future__ import annotations

import copy
import uuid

ACCESS_TOKEN_TTL = 1800  # seconds; Xero access tokens live 30 minutes
REFRESH_GRACE = 1800  # a rotated refresh token stays usable for 30 minutes
REFRESH_TOKEN_TTL = 60 * 24 * 3600  # an unused refresh token expires after 60 days
AUTH_CODE_TTL = 300  # Xero authorization codes are valid for 5 minutes

# country, Version and Timezone that go with a base currency (Organisation fields)
_CURRENCY_REGION = {
	"NZD": ("NZ", "NZ", "NEWZEALANDSTANDARDTIME"),
	"AUD": ("AU", "AU", "AUSEASTERNSTANDARDTIME"),
	"GBP": ("GB", "UK", "GMTSTANDARDTIME"),
	"USD": ("US", "US", "EASTERNSTANDARDTIME"),
	"EUR": ("IE", "GLOBAL", "GMTSTANDARDTIME"),
}

# The recorded Organisation of "Demo Company (NZ)" (xero-python cassettes, GET_Organisation.json); each
# tenant starts from it and overrides the identifying fields.
_ORG_TEMPLATE = {
	"Name": "Demo Company (NZ)",
	"LegalName": "Demo Company (NZ)",
	"PaysTax": True,
	"Version": "NZ",
	"OrganisationType": "COMPANY",
	"BaseCurrency": "NZD",
	"CountryCode": "NZ",
	"IsDemoCompany": False,
	"OrganisationStatus": "ACTIVE",
	"TaxNumber": "111-111-111",
	"FinancialYearEndDay": 31,
	"FinancialYearEndMonth": 3,
	"SalesTaxBasis": "PAYMENTS",
	"SalesTaxPeriod": "TWOMONTHS",
	"DefaultSalesTax": "Tax Exclusive",
	"DefaultPurchasesTax": "Tax Exclusive",
	"PeriodLockDate": "/Date(1254268800000+0000)/",
	"CreatedDateUTC": "/Date(1584566350680)/",
	"OrganisationEntityType": "COMPANY",
	"Timezone": "NEWZEALANDSTANDARDTIME",
	"ShortCode": "!1lqVQ",
	"OrganisationID": "",
	"Edition": "BUSINESS",
	"Class": "PREMIUM",
	"Addresses": [
		{
			"AddressType": "POBOX",
			"AddressLine1": "23 Main Street",
			"AddressLine2": "Central City",
			"City": "Marineville",
			"Region": "",
			"PostalCode": "1234",
			"Country": "",
			"AttentionTo": "",
		}
	],
	"Phones": [{"PhoneType": "OFFICE", "PhoneNumber": "1234 5678", "PhoneAreaCode": "0800"}],
	"ExternalLinks": [],
	"PaymentTerms": {},
}

CONSENT_ACTIONS = ("allow", "deny")


class _StateMixin:
	"""Controls of :class:`XeroTestServer` (state: ``_clients``, ``_tenants``, ``_consent``, ``_calls``,
	``access_token_ttl``, ``refresh_grace``, ``_clock``). Every method is thread-safe."""

	# -- clock ----------------------------------------------------------------------------------------
	def now(self) -> float:
		"""The server's current time (epoch seconds) from the injected clock."""
		return float(self._clock())

	def set_clock(self, clock) -> None:
		"""Use ``clock()`` (epoch seconds) for every expiry; pass ``time.time`` to go back to real time."""
		with self._lock:
			self._clock = clock

	# -- clients and tenants --------------------------------------------------------------------------
	def register_client(
		self, client_id: str, client_secret: str | None, redirect_uris=(), name: str = "Atlas Test App"
	) -> None:
		"""Register an app. ``client_secret=None`` makes it a PKCE-only public client (no secret at the
		token endpoint). ``redirect_uris`` must contain the exact redirect_uri used at authorize (as Xero
		requires); empty accepts any. ``name`` is the Organisation envelope's ``ProviderName``."""
		with self._lock:
			self._clients[client_id] = {
				"secret": client_secret,
				"redirect_uris": list(redirect_uris),
				"name": name,
			}

	def add_tenant(
		self, name: str, short_code: str | None = None, base_currency: str = "NZD", **fields
	) -> str:
		"""Add an organisation; returns its tenant id (= ``OrganisationID``). ``fields`` override any
		Organisation field (e.g. ``IsDemoCompany=True``, ``TaxNumber=...``)."""
		tid = str(uuid.uuid4())
		currency = base_currency.upper()
		country, version, tz = _CURRENCY_REGION.get(currency, ("NZ", "GLOBAL", "UTC"))
		org = copy.deepcopy(_ORG_TEMPLATE)
		org.update(
			{
				"Name": name,
				"LegalName": name,
				"BaseCurrency": currency,
				"CountryCode": country,
				"Version": version,
				"Timezone": tz,
				"ShortCode": short_code or "!" + uuid.uuid4().hex[:5],
				"OrganisationID": tid,
			}
		)
		with self._lock:
			org["CreatedDateUTC"] = f"/Date({int(self.now() * 1000)})/"
			org.update(fields)
			org["OrganisationID"] = tid
			self._tenants[tid] = org
		return tid

	def tenant(self, tenant: str) -> dict:
		"""A copy of the Organisation record of a tenant (by id, name or short code)."""
		with self._lock:
			return copy.deepcopy(self._tenants[self._tenant_id(tenant)])

	def tenant_ids(self) -> list[str]:
		with self._lock:
			return list(self._tenants)

	def _tenant_id(self, key: str) -> str:
		if key in self._tenants:
			return key
		for tid, org in self._tenants.items():
			if key in (org["Name"], org["ShortCode"]):
				return tid
		raise KeyError(f"unknown tenant {key!r}")

	# -- consent --------------------------------------------------------------------------------------
	def set_consent(self, tenants=None, action: str = "allow", scopes=None) -> None:
		"""How the next authorizations answer.

		``action``: ``allow`` or ``deny`` (redirect with ``error=access_denied``). ``tenants``: the
		organisations the user ticks (ids, names or short codes); None = every tenant. ``scopes``: when
		given, only the requested scopes that are also in ``scopes`` are granted.
		"""
		if action not in CONSENT_ACTIONS:
			raise ValueError(f"unknown consent action {action!r}")
		with self._lock:
			ids = None if tenants is None else [self._tenant_id(t) for t in tenants]
			if isinstance(scopes, str):
				scopes = scopes.split()
			self._consent = {
				"action": action,
				"tenants": ids,
				"scopes": None if scopes is None else list(scopes),
			}

	# -- tokens ---------------------------------------------------------------------------------------
	def set_refresh_grace(self, seconds: float) -> None:
		"""How long a rotated (already used) refresh token keeps working (Xero: 30 minutes)."""
		with self._lock:
			self.refresh_grace = float(seconds)

	def set_access_token_ttl(self, seconds: int) -> None:
		"""Lifetime (and ``expires_in``) of access tokens issued from now on (Xero: 1800)."""
		with self._lock:
			self.access_token_ttl = int(seconds)

	def expire_access_tokens(self) -> int:
		"""Expire every live access token now (the next API call answers 401 TokenExpired). Returns count."""
		n = 0
		with self._lock:
			now = self.now()
			for tok in self._access.values():
				if tok["expires"] > now:
					tok["expires"] = now - 1
					n += 1
		return n

	def connections(self, client_id: str | None = None) -> list[dict]:
		"""Current connections (as ``GET /connections`` renders them), optionally of one client."""
		with self._lock:
			return [
				self._render_connection(c)
				for c in self._connections.values()
				if client_id is None or c["client_id"] == client_id
			]

	# -- counters -------------------------------------------------------------------------------------
	def calls(self, endpoint: str | None = None):
		"""Requests served per endpoint: ``authorize``, ``token``, ``revocation``, ``connections``,
		``connections_delete``, ``organisation``, ``not_found``, and for the Accounting stores ``contacts``,
		``invoices``, ``creditnotes``, ``quotes``, ``payments``, ``overpayments``, ``prepayments``,
		``accounts``, ``taxrates``, ``items``, ``idempotent_replay``, ``accounting_unauthorised``. With ``endpoint``: that count (int);
		without: a dict of every non-zero count."""
		with self._lock:
			if endpoint is not None:
				return self._calls.get(endpoint, 0)
			return dict(self._calls)

	def reset_calls(self) -> None:
		with self._lock:
			self._calls.clear()
