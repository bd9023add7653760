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
  defaults, two BANK accounts ``090`` Business Bank Account and ``091`` Business Savings Account;
  :meth:`set_accounts` / :meth:`set_tax_rates` / :meth:`set_items`). POST and PUT both create
  or update by ContactID / InvoiceID. Invoice totals are worked out per line (Quantity x UnitAmount less
  DiscountRate, rounded half-up to cents, tax per line from the tenant's ``EffectiveRate`` table;
  Exclusive / Inclusive / NoTax). Status rules: new invoices DRAFT / SUBMITTED / AUTHORISED; only
  DRAFT / SUBMITTED can become DELETED; only AUTHORISED without payments, credit notes or over/prepayments
  applied can be VOIDED; VOIDED / DELETED / PAID are final.
* Quotes (``quotes.py``, scope ``accounting.transactions[.read]``): ``GET /Quotes`` (``QuoteNumber``,
  ``Status``, ``ContactID``, ``DateFrom`` / ``DateTo``, ``ExpiryDateFrom`` / ``ExpiryDateTo``, ``order``,
  ``page``), ``GET /Quotes/{id}`` (JSON; with ``Accept: application/pdf`` a one-page PDF 1.4 naming the
  number, contact, lines and Total, as xero-python's ``get_quote_as_pdf`` asks), ``GET /Quotes/{id}/pdf``,
  ``PUT`` / ``POST /Quotes`` (create or update by QuoteID, ``summarizeErrors``), ``POST /Quotes/{id}``.
  Contact, Date and line items required; lines and totals as for invoices (``LineAmountTypes`` EXCLUSIVE
  / INCLUSIVE / NOTAX); ``QuoteNumber`` unique among non-DELETED quotes (``Quote # must be unique.``;
  QU-0001.. generated). Statuses: new DRAFT / SENT; DRAFT -> SENT / DELETED; SENT -> ACCEPTED / DECLINED /
  DRAFT / DELETED; ACCEPTED -> INVOICED / SENT; DECLINED / INVOICED / DELETED final (Xero's docs list
  the statuses, not every move: these moves are this server's reading of Xero's quote workflow); a
  refused move is a 400 ValidationException (``A quote in ACCEPTED status cannot be changed to
  DELETED.``). Controls :meth:`quotes`, :meth:`set_quote_status` (a change "in Xero", not logged).
* Payments (``payments.py``): :meth:`pay_invoice` (a payment made in Xero to a BANK account; returns the
  Payment as ``GET /Payments`` renders it), :meth:`delete_payment` and Xero's ``POST /Payments/{id}``
  ``{"Status": "DELETED"}`` (the payment stays, DELETED; its amount is due again, PAID -> AUTHORISED);
  :meth:`apply_overpayment` / :meth:`apply_prepayment` (a RECEIVE-OVERPAYMENT / RECEIVE-PREPAYMENT of the
  invoice's contact fully allocated to it); ``GET /Payments`` (``where`` e.g. ``Status=="AUTHORISED"`` /
  ``Invoice.InvoiceID==Guid("...")``, ``order``, ``page`` / ``pageSize``), ``GET /Payments/{id}``,
  ``GET /Overpayments[/{id}]``, ``GET /Prepayments[/{id}]``. Invoices show ``Payments``, ``Overpayments``,
  ``Prepayments``; ``AmountCredited`` = credit notes + over/prepayments applied (Xero's definition);
  nothing due -> PAID with ``FullyPaidOnDate`` (the settling payment's / allocation's date). Every
  payment, deleted payment, allocation and over/prepayment bumps the invoice's ``UpdatedDateUTC``.
* List reads (Contacts, Invoices, CreditNotes, Quotes, Payments, Overpayments, Prepayments): the
  ``If-Modified-Since`` header keeps the records whose ``UpdatedDateUTC`` is strictly later, to the
  millisecond. It takes ISO 8601 as xero-python sends a datetime (``isoformat()``: naive
  ``2020-02-06T12:17:43.202000`` = UTC, or with an offset), ``...Z``, a bare date, or an RFC 7231
  HTTP-date; anything else is a 400 QueryParseException. ``order=UpdatedDateUTC`` / ``UpdatedDateUTC
  ASC`` (``DESC``) sorts by it (ties by id), any other order keeps creation order; then ``page`` /
  ``pageSize`` (default 100, at most 1000); a paged read of the envelopes whose spec has it carries Xero's
  ``pagination`` block (``page``, ``pageSize``, ``pageCount``, ``itemCount``; not Quotes).
* Webhooks (``webhooks.py``): every create / update of an invoice (also by a payment, deleted payment,
  allocation or over/prepayment), credit note (``data`` {Type, Status}) or contact records an event
  (``resourceUrl`` ``https://api.xero.com/api.xro/2.0/Invoices/{id}``, ``resourceId``,
  ``eventDateUtc`` ``2024-01-01T10:00:00.000``, ``eventType`` CREATE / UPDATE, ``eventCategory`` INVOICE /
  CREDITNOTE / CONTACT, ``tenantId``, ``tenantType`` ORGANISATION; quotes have no webhook category). Events
  wait in a per-server queue from the server's start (:meth:`pending_events`) until
  :meth:`deliver_webhooks` POSTs them to the URL set by :meth:`configure_webhook` (``{"events",
  "firstEventSequence", "lastEventSequence", "entropy"}``, ``Content-Type: application/json``,
  ``x-xero-signature`` = base64 HMAC-SHA256 of the raw body with the key); a non-2xx answer or no answer
  keeps the events pending (Xero retries). :meth:`post_webhook` posts exact bytes (replays, bad
  signatures); :meth:`intent_to_receive` is Xero's check (a signed empty payload must get 200 with an
  empty body, a wrongly signed one 401, each within 5 s).
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
``api`` (connections, Organisation), ``accounting`` (Contacts, Invoices, CreditNotes, Accounts, TaxRates,
Items, batches, idempotency, rate limits, faults, If-Modified-Since / order / paging and their controls),
``quotes`` (Quotes and their PDF), ``payments`` (Payments, Overpayments, Prepayments), ``webhooks`` (events,
signed deliveries, intent to receive), ``common`` (responses, error bodies, date formats, JWT).
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
