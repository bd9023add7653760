"""A local Xero-compatible OAuth 2.0 identity service + API server for tests and demos.

Real HTTP on 127.0.0.1 (stdlib ``ThreadingHTTPServer``), so clients exercise their real request framing,
token refreshes and error handling. Pure standard library: it never imports frappe.

Usage::

	server = XeroTestServer(clock=clock).start()
	server.register_client("cid", "secret", ["http://127.0.0.1:8000/callback"])
	acme = server.add_tenant("Acme Ltd", short_code="!AcMe1", base_currency="NZD")
	server.set_consent(tenants=[acme])
	...  # authorize at server.authorize_url, token at server.token_url, API at server.url
	server.stop()

What it models (shapes from Xero's xero-identity.yaml and the recorded xero-python cassettes):

* ``GET /identity/connect/authorize``: consent is programmed by :meth:`XeroTestServer.set_consent`
  (allow / deny -> ``error=access_denied``, which tenants, which scopes); answers 302 to
  ``redirect_uri?code=...&scope=...&state=...``. PKCE ``S256`` only (as Xero); codes live 5 minutes and
  are single use. Unknown client / unregistered redirect_uri -> a 400 HTML error page (no redirect).
* ``POST /connect/token`` (client auth by HTTP Basic or body ``client_id``/``client_secret``; a client
  registered with ``client_secret=None`` is a PKCE public client): ``authorization_code`` (verifier
  checked against the challenge) and ``refresh_token`` with rotation: every refresh returns a new refresh
  token; the used one keeps working for ``refresh_grace`` seconds, then ``400 {"error":
  "invalid_grant"}``. A refresh token is issued only with ``offline_access``; ``id_token`` only with
  ``openid``. Errors are Xero's bare ``{"error": "..."}`` (invalid_client, invalid_grant,
  unsupported_grant_type).
* ``POST /connect/revocation`` (``token=<refresh token>``): revokes the grant (all its refresh tokens)
  and deletes its connections. 200 with an empty body, also for unknown tokens.
* ``GET /connections`` (``?authEventId=`` filter) and ``DELETE /connections/{id}`` (204; 404 for
  another app's or an unknown id).
* ``GET /api.xro/2.0/Organisation`` with ``xero-tenant-id``: 401 problem JSON (``AuthenticationUnsuccessful``
  for a missing/unknown token, ``TokenExpired: token expired at ...`` + ``WWW-Authenticate`` for an
  expired one, ``AuthorizationUnsuccessful`` without an accounting.settings scope), 403
  ``AuthenticationUnsuccessful`` for a tenant not connected to the app.

* Accounting stores per tenant (``accounting.py``), behind the same 401 / 403 checks, scope-checked
  (``accounting.contacts[.read]``, ``accounting.transactions[.read]``, ``accounting.settings[.read]``;
  missing -> 401 ``AuthorizationUnsuccessful``): ``GET/POST/PUT /Contacts`` (``where`` equality terms
  such as ``Name=="X"`` / ``ContactNumber=="X"`` / ``EmailAddress=="X"`` joined by AND, ``IDs``,
  ``searchTerm``, ``includeArchived``, ``page``), ``GET /Contacts/{id}``; ``GET/POST/PUT /Invoices``
  (``IDs``, ``InvoiceNumbers``, ``ContactIDs``, ``Statuses``, ``where``), ``GET /Invoices/{id or
  number}``, ``POST /Invoices/{id}``; ``GET /Accounts``, ``/TaxRates``, ``/Items`` (seeded NZ demo
  defaults; :meth:`set_accounts` / :meth:`set_tax_rates` / :meth:`set_items`). POST and PUT both create
  or update by ContactID / InvoiceID. Invoice totals are worked out per line (Quantity x UnitAmount less
  DiscountRate, rounded half-up to cents, tax per line from the tenant's ``EffectiveRate`` table;
  Exclusive / Inclusive / NoTax). Status rules: new invoices DRAFT / SUBMITTED / AUTHORISED; only
  DRAFT / SUBMITTED can become DELETED; only AUTHORISED without payments (:meth:`pay_invoice`) can be
  VOIDED; VOIDED / DELETED / PAID are final.
* Batches: ``summarizeErrors=false`` -> 200, bad elements carry ``HasValidationErrors`` (invoices:
  ``HasErrors``), ``ValidationErrors`` and ``StatusAttributeString: ERROR``, good ones are stored;
  otherwise any bad element -> 400 ``{"ErrorNumber": 10, "Type": "ValidationException", ...,
  "Elements": [the bad elements]}`` and nothing is stored. Rules: contact Name required and unique among
  ACTIVE contacts (case-insensitive, also within a batch); invoice needs Type, an existing Contact, line
  items, known AccountCode / TaxType / ItemCode, an AccountCode when SUBMITTED / AUTHORISED, and a
  unique ACCREC InvoiceNumber (``Invoice # must be unique.``; numbers INV-0001.. are generated).
* ``Idempotency-Key`` on POST / PUT: a 2xx response is stored per (tenant, path, key) for 24 h and
  replayed without re-applying (errors are not stored, so a corrected retry with the same key works).
* Every Accounting response (Organisation too) carries ``X-DayLimit-Remaining`` / ``X-MinLimit-Remaining``
  / ``X-AppMinLimit-Remaining`` (:meth:`set_rate_limits`, default 5000 / 60 / 10000; an exhausted budget
  answers 429 with ``Retry-After`` and ``X-Rate-Limit-Problem``, Organisation is counted but never
  refused). Faults: :meth:`fail_next` (default 429 ``Retry-After: 1`` ``X-Rate-Limit-Problem: minute``,
  not applied) and :meth:`delay_next` (applied, answered late). :meth:`requests_received` lists every
  authenticated Accounting request (method, path, query, headers, JSON body) per tenant.
* Note for clients: xero-python's default urllib3 pool retries GET / PUT (not POST) by itself on 429 /
  503 with ``Retry-After`` (sleeping that long) and on read timeouts.

Choices where Xero is unspecified or this server simplifies:

* One Xero user consents; connections belong to (user, app) as in Xero, so ``/connections`` lists every
  tenant the app is connected to; re-authorising an already connected tenant keeps its connection id
  and ``createdDateUtc`` and moves it to the new grant (``authEventId``, ``updatedDateUtc``).
  Revocation deletes the connections whose latest grant is the revoked one.
* Access and id tokens are JWT-shaped (Xero's claims) but signed HS256 with a per-server key (Xero uses
  RS256); an access token stays valid until it expires, even after revocation (as a Xero JWT does): API
  calls then answer 403 because the connections are gone.

Modules: ``server`` (:class:`XeroTestServer`, HTTP plumbing, router), ``state`` (test controls, clock,
counters, the Organisation template), ``oauth`` (authorize / token / revocation, grants, tokens),
``api`` (connections, Organisation), ``accounting`` (Contacts, Invoices, Accounts, TaxRates, Items,
batches, idempotency, rate limits, faults and their controls), ``common`` (responses, error bodies, date
formats, JWT).
"""

from __future__ import annotations

from atlas_integrations.testing.xero.common import (  # noqa: F401 - re-exported
	jwt_claims,
	ms_date,
	s256,
	xero_utc,
)
from atlas_integrations.testing.xero.oauth import USER  # noqa: F401 - re-exported
from atlas_integrations.testing.xero.server import XeroTestServer  # noqa: F401 - re-exported
from atlas_integrations.testing.xero.state import (  # noqa: F401 - re-exported
	ACCESS_TOKEN_TTL,
	AUTH_CODE_TTL,
	REFRESH_GRACE,
	REFRESH_TOKEN_TTL,
)

__all__ = ["XeroTestServer"]
