"""The Accounting API stores of :class:`XeroTestServer` (:class:`_AccountingMixin`): per-tenant Contacts,
Invoices, CreditNotes (and their Allocations to invoices), Accounts, TaxRates and Items under
``/api.xro/2.0/``, Xero's batch semantics (``summarizeErrors``), ``Idempotency-Key`` replay, the rate-limit
headers, injected faults / delays, the log of requests received, ``If-Modified-Since`` / ``order`` /
``page`` on list reads; plus the test controls for all of them. Quotes (``quotes.py``) and payments
(``payments.py``) are routed from :meth:`_AccountingMixin._dispatch`; every change records its webhook
event (``webhooks.py``)."""

from __future__ import annotations

import calendar
import copy
import datetime
import email.utils
import json
import math
import re
import time
import urllib.parse
import uuid
from decimal import ROUND_HALF_UP, Decimal

from atlas_integrations.testing.xero.common import _failed_element, _json_resp, _problem, ms_date

API_PREFIX = "/api.xro/2.0"
IDEMPOTENCY_TTL = 24 * 3600  # Xero keeps idempotency keys ~24 hours
DAY_LIMIT = 5000  # calls per tenant per day
MINUTE_LIMIT = 60  # calls per tenant per minute
APP_MINUTE_LIMIT = 10000  # calls per app per minute (all tenants)
PAGE_SIZE = 100
# list envelopes that carry Xero's ``pagination`` block on a paged read (spec: Contacts, CreditNotes,
# Invoices, Overpayments, Payments, Prepayments have the property; Quotes do not)
PAGINATED = ("Contacts", "CreditNotes", "Invoices", "Overpayments", "Payments", "Prepayments")

CONTACT_SCOPES = ("accounting.contacts", "accounting.contacts.read")
INVOICE_SCOPES = ("accounting.transactions", "accounting.transactions.read")
SETTINGS_SCOPES = ("accounting.settings", "accounting.settings.read")
LINE_AMOUNT_TYPES = ("Exclusive", "Inclusive", "NoTax")
CREATE_STATUSES = ("DRAFT", "SUBMITTED", "AUTHORISED")
INVOICE_TYPES = ("ACCREC", "ACCPAY")
CREDIT_NOTE_TYPES = ("ACCRECCREDIT", "ACCPAYCREDIT")
# the invoice Type a credit note of each Type can be allocated to
CREDIT_NOTE_INVOICE_TYPE = {"ACCRECCREDIT": "ACCREC", "ACCPAYCREDIT": "ACCPAY"}
# batch resources: (collection key in the body, id field)
_DOCS = {
	"contacts": ("Contacts", "ContactID"),
	"invoices": ("Invoices", "InvoiceID"),
	"creditnotes": ("CreditNotes", "CreditNoteID"),
}
_ID_RE = re.compile(r"(?i)^/(contacts|invoices|creditnotes)/([^/]+)/?$")
_ALLOCATIONS_RE = re.compile(r"(?i)^/creditnotes/([^/]+)/allocations/?$")
# one token of a where clause: an equality term, a parenthesis, AND / && or OR / ||
_WHERE_TOKEN_RE = re.compile(
	r'\s*(?:(?P<field>[A-Za-z][A-Za-z0-9.]*)\s*==\s*'
	r'(?:(?i:Guid)\(\s*"(?P<guid>[^"]*)"\s*\)|"(?P<value>[^"]*)")'
	r"|(?P<lp>\()|(?P<rp>\))|(?P<and>&&|(?i:AND)\b)|(?P<or>\|\||(?i:OR)\b))"
)
VOID_ALLOCATED = "This document cannot be voided as it has a payment or credit note allocated to it."
EDIT_ALLOCATED = "This document cannot be edited as it has a payment or credit note allocated to it."


def _tax_rate(name: str, tax_type: str, report: str, rate: float, revenue=True, expenses=True) -> dict:
	return {
		"Name": name,
		"TaxType": tax_type,
		"ReportTaxType": report,
		"CanApplyToAssets": True,
		"CanApplyToEquity": True,
		"CanApplyToExpenses": expenses,
		"CanApplyToLiabilities": True,
		"CanApplyToRevenue": revenue,
		"DisplayTaxRate": float(rate),
		"EffectiveRate": float(rate),
		"Status": "ACTIVE",
		"TaxComponents": [
			{"Name": "GST", "Rate": float(rate), "IsCompound": False, "IsNonRecoverable": False}
		],
	}


# seeded per tenant (shapes from the spec's GET_TaxRates / GET_Accounts / GET_Items examples, NZ demo org)
DEFAULT_TAX_RATES = (
	_tax_rate("15% GST on Expenses", "INPUT2", "INPUT", 15, revenue=False),
	_tax_rate("15% GST on Income", "OUTPUT2", "OUTPUT", 15, expenses=False),
	_tax_rate("No GST", "NONE", "NONE", 0),
	_tax_rate("Zero Rated", "ZERORATED", "OUTPUT", 0, expenses=False),
)
DEFAULT_ACCOUNTS = (
	("090", "Business Bank Account", "BANK", "NONE"),
	("091", "Business Savings Account", "BANK", "NONE"),
	("200", "Sales", "REVENUE", "OUTPUT2"),
	("260", "Other Revenue", "REVENUE", "OUTPUT2"),
	("400", "Advertising", "EXPENSE", "INPUT2"),
	("610", "Accounts Receivable", "CURRENT", "NONE"),
	("800", "Accounts Payable", "CURRLIAB", "NONE"),
)
DEFAULT_ITEMS = (("WIDGET", "Widget", "Standard widget", 100.0, "200", "OUTPUT2"),)


def _account(code: str, name: str, kind: str, tax_type: str, currency: str) -> dict:
	acc = {
		"AccountID": str(uuid.uuid4()),
		"Code": code,
		"Name": name,
		"Type": kind,
		"TaxType": tax_type,
		"EnablePaymentsToAccount": False,
		"Status": "ACTIVE",
		"Class": {"REVENUE": "REVENUE", "EXPENSE": "EXPENSE", "CURRLIAB": "LIABILITY"}.get(kind, "ASSET"),
		"ShowInExpenseClaims": False,
		"ReportingCode": "",
		"HasAttachments": False,
		"UpdatedDateUTC": "/Date(1584566350680+0000)/",
		"AddToWatchlist": False,
	}
	if kind == "BANK":
		acc.update(
			{"BankAccountNumber": "0209087654321050", "BankAccountType": "BANK", "CurrencyCode": currency}
		)
	return acc


def _item(code, name, description, price, account, tax_type) -> dict:
	return {
		"ItemID": str(uuid.uuid4()),
		"Code": code,
		"Name": name,
		"Description": description,
		"UpdatedDateUTC": "/Date(1584566350680+0000)/",
		"PurchaseDetails": {},
		"SalesDetails": {"UnitPrice": float(price), "AccountCode": account, "TaxType": tax_type},
		"IsTrackedAsInventory": False,
		"IsSold": True,
		"IsPurchased": False,
	}


def _money(value) -> Decimal:
	return Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _num(value, default=None) -> Decimal | None:
	if value is None or value == "":
		return default
	if isinstance(value, bool):
		raise ValueError(value)
	return Decimal(str(value))


def _ms_stamp(ts: float) -> str:
	"""Record timestamps as Xero writes them: ``/Date(1552327126117+0000)/``."""
	return f"/Date({int(ts * 1000)}+0000)/"


def _parse_date(value) -> int | None:
	"""Epoch ms (UTC midnight) of ``/Date(ms[+zzzz])/``, ``YYYY-MM-DD`` or ``YYYY-MM-DDThh:mm:ss``."""
	if value is None or value == "":
		return None
	if not isinstance(value, str):
		raise ValueError(value)
	m = re.match(r"^/Date\((-?\d+)([+-]\d{4})?\)/$", value)
	if m:
		day = datetime.datetime.fromtimestamp(int(m.group(1)) / 1000, datetime.timezone.utc).date()
	else:
		day = datetime.date.fromisoformat(value[:10])
	return calendar.timegm(day.timetuple()) * 1000


def _date_fields(name: str, ms: int | None) -> dict:
	if ms is None:
		return {}
	day = time.strftime("%Y-%m-%dT00:00:00", time.gmtime(ms / 1000))
	return {name: f"/Date({ms}+0000)/", name + "String": day}


_STAMP_RE = re.compile(r"^/Date\((-?\d+)([+-]\d{4})?\)/$")
# ISO 8601 as xero-python sends a datetime (``value.isoformat()``: naive ``2020-02-06T12:17:43.202000``
# or with an offset) and as Xero's docs write it (``2020-02-06T12:17:43.202-08:00``, ``...Z``)
_ISO_RE = re.compile(
	r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*"
	r"(Z|[+-]\d{2}(?::?\d{2})?)?$",
	re.IGNORECASE,
)


def _stamp_ms(value) -> int | None:
	"""Epoch ms of a ``/Date(ms[+zzzz])/`` timestamp (None for anything else)."""
	m = _STAMP_RE.match(str(value or ""))
	return int(m.group(1)) if m else None


def _modified_since(value) -> int | None:
	"""``If-Modified-Since`` as epoch **microseconds** (None when absent). ISO 8601 with or without a
	fraction / zone (no zone = UTC, as Xero reads it), or an RFC 7231 HTTP-date
	(``Thu, 06 Feb 2020 12:17:43 GMT``). Anything else raises ValueError."""
	if value is None or not str(value).strip():
		return None
	text = str(value).strip()
	m = _ISO_RE.match(text)
	if m:
		year, month, day, hour, minute, sec, frac, zone = m.groups()
		micro = int((frac or "0")[:6].ljust(6, "0"))
		when = datetime.datetime(
			int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(sec or 0), micro,
			tzinfo=datetime.timezone.utc,
		)
		if zone and zone.upper() != "Z":
			sign = -1 if zone[0] == "-" else 1
			digits = zone[1:].replace(":", "")
			offset = int(digits[:2]) * 60 + int(digits[2:4] or 0)
			when -= datetime.timedelta(minutes=sign * offset)
	else:
		try:
			when = email.utils.parsedate_to_datetime(text)
		except (TypeError, ValueError, IndexError):
			raise ValueError(f"If-Modified-Since {text!r} is not a date") from None
		if when.tzinfo is None:
			when = when.replace(tzinfo=datetime.timezone.utc)
	delta = when - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
	return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _utc_string(stamp) -> str:
	"""``UpdatedDateUTCString`` of a ``/Date(ms+0000)/`` stamp: ``2019-03-12T22:08:55Z``."""
	ms = _stamp_ms(stamp) or 0
	return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))


def _today_ms(ts: float) -> int:
	"""Epoch ms of the UTC midnight of ``ts``."""
	return calendar.timegm(time.gmtime(ts)[:3] + (0, 0, 0)) * 1000


def _lower(value) -> str:
	return str(value if value is not None else "").strip().lower()


def _bool_param(q: dict, name: str, default: bool) -> bool:
	value = q.get(name.lower())
	if value is None:
		return default
	return value.strip().lower() not in ("false", "0", "no")


def _lookup(record: dict, dotted: str):
	value = record
	for part in dotted.split("."):
		if not isinstance(value, dict):
			return None
		key = next((k for k in value if k.lower() == part.lower()), None)
		value = value.get(key) if key is not None else None
	return value


def _where_tokens(where: str) -> list:
	tokens, pos, text = [], 0, where.rstrip()
	while pos < len(text):
		m = _WHERE_TOKEN_RE.match(text, pos)
		if not m or m.end() == pos:
			raise ValueError(text[pos:].strip() or where)
		pos = m.end()
		if m.group("field"):
			value = m.group("guid") if m.group("guid") is not None else m.group("value")
			tokens.append(("term", (m.group("field"), value.lower())))
		else:
			tokens.append((next(k for k in ("lp", "rp", "and", "or") if m.group(k)), None))
	return tokens


def _where(records: list, where: str) -> list:
	"""Xero's ``where``, minimally: ``Field=="value"`` / ``Field==Guid("...")`` terms (case-insensitive
	equality, dotted paths such as ``Contact.ContactID``) joined by AND / && and OR / || (AND binds
	tighter than OR; parentheses group). Anything else raises ValueError."""
	tokens = _where_tokens(where)
	pos = 0

	def peek():
		return tokens[pos][0] if pos < len(tokens) else None

	def atom():
		nonlocal pos
		if peek() == "term":
			(field, value) = tokens[pos][1]
			pos += 1
			return lambda r: _lower(_lookup(r, field)) == value
		if peek() == "lp":
			pos += 1
			inner = either()
			if peek() != "rp":
				raise ValueError(where)
			pos += 1
			return inner
		raise ValueError(where)

	def chain(sub, op: str, combine):
		nonlocal pos
		parts = [sub()]
		while peek() == op:
			pos += 1
			parts.append(sub())
		return lambda r: combine(p(r) for p in parts)

	def both():
		return chain(atom, "and", all)

	def either():
		return chain(both, "or", any)

	match = either()
	if pos != len(tokens):
		raise ValueError(where)
	return [r for r in records if match(r)]


def _validation_400(elements: list) -> tuple:
	body = {
		"ErrorNumber": 10,
		"Type": "ValidationException",
		"Message": "A validation exception occurred",
		"Elements": elements,
	}
	return _json_resp(400, body)


def _api_error(status: int, number: int, kind: str, message: str) -> tuple:
	return _json_resp(status, {"ErrorNumber": number, "Type": kind, "Message": message})


class _AccountingMixin:
	"""Accounting endpoints and their controls (state: ``_books`` per tenant, ``_faults``, ``_delays``,
	``_limits``, ``_usage``). Needs the sibling mixins of :class:`XeroTestServer`: ``_quotes_dispatch``
	(quotes.py), ``_payments_dispatch`` / ``_invoice_payments`` / ``_invoice_credits`` (payments.py) and
	``_event`` (webhooks.py)."""

	# -- per-tenant books ---------------------------------------------------------------------------
	def _book(self, tid: str) -> dict:
		book = self._books.get(tid)
		if book is None:
			currency = self._tenants[tid]["BaseCurrency"]
			book = {
				"contacts": {},
				"invoices": {},
				"credit_notes": {},
				"allocations": [],
				"quotes": {},  # quotes.py
				"payments": {},  # payments.py: payments, and over/prepayments applied to invoices
				"overpayments": {},
				"prepayments": {},
				"tax_rates": [copy.deepcopy(t) for t in DEFAULT_TAX_RATES],
				"accounts": [_account(*a, currency) for a in DEFAULT_ACCOUNTS],
				"items": [_item(*i) for i in DEFAULT_ITEMS],
				"requests": [],
				"idempotency": {},
				"invoice_seq": 0,
				"credit_note_seq": 0,
				"quote_seq": 0,
			}
			self._books[tid] = book
		return book

	# -- controls -----------------------------------------------------------------------------------
	def set_tax_rates(self, tenant: str, rates) -> None:
		"""Replace a tenant's tax rate table: ``{"OUTPUT2": 15, "NONE": 0}`` or a list of TaxRate records
		(``GET /TaxRates`` shape; ``EffectiveRate`` is the rate used for invoice totals)."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			if isinstance(rates, dict):
				rates = [_tax_rate(f"{k} {v}%", k, k, v) for k, v in rates.items()]
			book["tax_rates"] = [copy.deepcopy(r) for r in rates]

	def set_accounts(self, tenant: str, accounts: list) -> None:
		"""Replace a tenant's chart of accounts (``GET /Accounts`` records; ``Code``, ``Type``,
		``TaxType`` matter; a missing ``AccountID`` is generated)."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			book["accounts"] = [
				dict({"AccountID": str(uuid.uuid4()), "Status": "ACTIVE"}, **a) for a in accounts
			]

	def set_items(self, tenant: str, items: list) -> None:
		"""Replace a tenant's items (``GET /Items`` records; ``Code`` and ``SalesDetails`` matter)."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			book["items"] = [dict({"ItemID": str(uuid.uuid4())}, **i) for i in items]

	def add_contact(self, tenant: str, name: str, **fields) -> str:
		"""Store a contact directly (no request, no validation; a CONTACT CREATE webhook event as for any
		contact made in Xero); returns its ContactID."""
		with self._lock:
			tid = self._tenant_id(tenant)
			contact = self._new_contact(dict(fields, Name=name))
			self._book(tid)["contacts"][contact["ContactID"]] = contact
			self._event(tid, "CONTACT", contact["ContactID"], "CREATE")
			return contact["ContactID"]

	def contacts(self, tenant: str) -> list[dict]:
		"""Copies of a tenant's stored contacts (every status), in creation order."""
		with self._lock:
			return copy.deepcopy(list(self._book(self._tenant_id(tenant))["contacts"].values()))

	def invoices(self, tenant: str) -> list[dict]:
		"""Copies of a tenant's stored invoices (every status), in creation order."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			return [self._render_invoice(book, i) for i in book["invoices"].values()]

	def credit_notes(self, tenant: str) -> list[dict]:
		"""A tenant's stored credit notes (every status) as the API renders them, in creation order."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			return [self._render_credit_note(book, n) for n in book["credit_notes"].values()]

	def allocations(self, tenant: str) -> list[dict]:
		"""A tenant's credit note allocations, oldest first, as ``PUT /CreditNotes/{id}/Allocations``
		renders them (``AllocationID``, ``Amount``, ``Date``, ``Invoice``, ``CreditNote``)."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			return [self._render_allocation(book, a) for a in book["allocations"]]

	def fail_next(self, path_prefix: str, status: int = 429, headers=None, count: int = 1, body=None,
				method: str | None = None) -> None:
		"""The next ``count`` Accounting requests whose path starts with ``path_prefix`` (case-insensitive;
		``"Invoices"`` means ``/api.xro/2.0/Invoices``) answer ``status`` without being applied. Headers
		default, for 429, to ``Retry-After: 1`` + ``X-Rate-Limit-Problem: minute``; ``body`` (a JSON
		object) defaults to a problem body. ``method`` limits it to one HTTP method."""
		if headers is None:
			headers = {"Retry-After": "1", "X-Rate-Limit-Problem": "minute"} if status == 429 else {}
		with self._lock:
			self._faults.append(
				{
					"prefix": self._api_path(path_prefix),
					"status": int(status),
					"headers": dict(headers),
					"count": int(count),
					"body": body,
					"method": method.upper() if method else None,
				}
			)

	def delay_next(self, path_prefix: str, seconds: float, count: int = 1, method: str | None = None) -> None:
		"""The next ``count`` matching Accounting requests are applied, then answered only after
		``seconds`` (a client with a shorter timeout sees a timeout although the server did the work)."""
		with self._lock:
			self._delays.append(
				{
					"prefix": self._api_path(path_prefix),
					"seconds": float(seconds),
					"count": int(count),
					"method": method.upper() if method else None,
				}
			)

	def clear_faults(self) -> None:
		with self._lock:
			self._faults.clear()
			self._delays.clear()

	def set_rate_limits(self, day: int | None = None, minute: int | None = None,
						app_minute: int | None = None) -> None:
		"""Set the budgets (per tenant per day, per tenant per minute, per app per minute) and restart
		counting. Omitted ones keep their value. An exhausted budget answers 429 with ``Retry-After`` and
		``X-Rate-Limit-Problem`` (``day`` / ``minute`` / ``appminute``)."""
		with self._lock:
			for key, value in (("day", day), ("minute", minute), ("app_minute", app_minute)):
				if value is not None:
					self._limits[key] = int(value)
			self._usage.clear()

	def rate_limit_remaining(self, tenant: str, client_id: str | None = None) -> dict:
		"""``{"day": n, "minute": n, "app_minute": n}`` as the next response's headers would count from."""
		with self._lock:
			tid = self._tenant_id(tenant)
			day, minute, app = self._used(tid, client_id or "")
			return {
				"day": self._limits["day"] - day,
				"minute": self._limits["minute"] - minute,
				"app_minute": self._limits["app_minute"] - app,
			}

	def requests_received(self, tenant: str | None = None, path_prefix: str | None = None) -> list[dict]:
		"""Accounting requests received (after authentication), oldest first: dicts with ``method``,
		``path``, ``query`` (dict of lists), ``headers`` (lower-case keys), ``json`` (parsed body or None),
		``tenant``, ``at`` (epoch seconds it arrived)."""
		with self._lock:
			tids = [self._tenant_id(tenant)] if tenant is not None else list(self._books)
			out = []
			for tid in tids:
				out.extend(self._book(tid)["requests"])
			out.sort(key=lambda r: r["seq"])
			if path_prefix is not None:
				prefix = self._api_path(path_prefix).lower()
				out = [r for r in out if r["path"].lower().startswith(prefix)]
			return copy.deepcopy(out)

	def clear_requests(self) -> None:
		with self._lock:
			for book in self._books.values():
				book["requests"].clear()

	# -- plumbing -------------------------------------------------------------------------------------
	@staticmethod
	def _api_path(prefix: str) -> str:
		if prefix.lower().startswith(API_PREFIX.lower()):
			return prefix
		return API_PREFIX + "/" + prefix.lstrip("/")

	def _used(self, tid: str, client_id: str) -> tuple[int, int, int]:
		now = self.now()
		day_key, minute_key = int(now // 86400), int(now // 60)
		return (
			self._usage.get(("day", tid, day_key), 0),
			self._usage.get(("minute", tid, minute_key), 0),
			self._usage.get(("app", client_id, minute_key), 0),
		)

	def _consume(self, tid: str, client_id: str) -> tuple[list, tuple | None]:
		"""Count one call; (rate-limit headers, 429 response or None)."""
		now = self.now()
		day, minute, app = self._used(tid, client_id)
		problem = None
		if day >= self._limits["day"]:
			problem, retry = "day", 86400 - now % 86400
		elif minute >= self._limits["minute"]:
			problem, retry = "minute", 60 - now % 60
		elif app >= self._limits["app_minute"]:
			problem, retry = "appminute", 60 - now % 60
		if problem is None:
			day_key, minute_key = int(now // 86400), int(now // 60)
			for key in (("day", tid, day_key), ("minute", tid, minute_key), ("app", client_id, minute_key)):
				self._usage[key] = self._usage.get(key, 0) + 1
			day, minute, app = day + 1, minute + 1, app + 1
		headers = [
			("X-DayLimit-Remaining", str(max(self._limits["day"] - day, 0))),
			("X-MinLimit-Remaining", str(max(self._limits["minute"] - minute, 0))),
			("X-AppMinLimit-Remaining", str(max(self._limits["app_minute"] - app, 0))),
		]
		if problem is None:
			return headers, None
		extra = [("Retry-After", str(max(int(retry + 0.999), 1))), ("X-Rate-Limit-Problem", problem)]
		return headers, _problem(429, "Rate limit exceeded", headers + extra)

	def _take(self, queue: list, method: str, path: str) -> dict | None:
		for entry in queue:
			if entry["method"] not in (None, method) or not path.lower().startswith(entry["prefix"].lower()):
				continue
			entry["count"] -= 1
			if entry["count"] <= 0:
				queue.remove(entry)
			return entry
		return None

	def _batch_answer(self, tid: str, headers, key: str, results: list, render, summarize: bool):
		"""The 200 answer of a batch write: elements with errors as they are, the others rendered by
		``render(record)`` (with ``StatusAttributeString: OK`` when ``summarizeErrors=false``)."""
		out = []
		for r in results:
			if "ValidationErrors" in r and r.get("StatusAttributeString") == "ERROR":
				out.append(r)
			else:
				out.append(dict(render(r), **({} if summarize else {"StatusAttributeString": "OK"})))
		return _json_resp(200, self._envelope(tid, headers, key, out))

	def _envelope(self, tid: str, headers, key: str, items: list) -> dict:
		grant, _ = self._bearer(headers)
		return {
			"Id": str(uuid.uuid4()),
			"Status": "OK",
			"ProviderName": self._clients[grant["client_id"]]["name"],
			"DateTimeUTC": ms_date(self.now()),
			key: items,
		}

	# -- HTTP entry -----------------------------------------------------------------------------------
	def _accounting(self, method: str, path: str, query: str, headers, body: bytes) -> tuple:
		"""Every ``/api.xro/2.0/...`` request except Organisation."""
		delay = 0.0
		with self._lock:
			tid, err = self._tenant_access(headers)
			if err is not None:
				self._calls["accounting_unauthorised"] += 1
				return err
			grant, _ = self._bearer(headers)
			book = self._book(tid)
			try:
				parsed = json.loads(body.decode("utf-8")) if body else None
				bad_json = False
			except (UnicodeDecodeError, ValueError):
				parsed, bad_json = None, True
			self._seq += 1
			book["requests"].append(
				{
					"seq": self._seq,
					"at": time.time(),  # wall-clock seconds the request arrived
					"tenant": tid,
					"method": method,
					"path": path,
					"query": urllib.parse.parse_qs(query, keep_blank_values=True),
					"headers": dict(headers),
					"json": parsed,
				}
			)
			limit_headers, limited = self._consume(tid, grant["client_id"])
			if limited is not None:
				return limited
			fault = self._take(self._faults, method, path)
			if fault is not None:
				hdrs = limit_headers + list(fault["headers"].items())
				if fault["body"] is not None:
					return _json_resp(fault["status"], fault["body"], hdrs)
				return _problem(fault["status"], "Injected fault", hdrs)
			idem = (headers.get("idempotency-key") or "").strip()
			idem_key = (path.rstrip("/").lower(), idem)
			if idem and method in ("POST", "PUT"):
				stored = book["idempotency"].get(idem_key)
				if stored is not None and stored[0] + IDEMPOTENCY_TTL > self.now():
					self._calls["idempotent_replay"] += 1
					status, _, payload = stored[1]
					hdrs = [("Content-Type", "application/json; charset=UTF-8")] + limit_headers
					return status, hdrs, payload
			if bad_json:
				resp = _api_error(400, 14, "PostDataInvalidException", "Invalid Json data")
			else:
				resp = self._dispatch(tid, book, grant, method, path, query, headers, parsed)
			if idem and method in ("POST", "PUT") and 200 <= resp[0] < 300:
				book["idempotency"][idem_key] = (self.now(), resp)
			hit = self._take(self._delays, method, path)
			if hit is not None:
				delay = hit["seconds"]
			resp = (resp[0], list(resp[1]) + limit_headers, resp[2])
		if delay:
			time.sleep(delay)
		return resp

	def _dispatch(self, tid, book, grant, method, path, query, headers, parsed) -> tuple:
		rel = path[len(API_PREFIX):].rstrip("/") or "/"
		low = rel.lower()
		q = {k.lower(): v[0] for k, v in urllib.parse.parse_qs(query, keep_blank_values=True).items()}
		scopes = set(grant["scope"].split())
		resource = low.split("/")[1] if "/" in low else low
		needed = {
			"contacts": CONTACT_SCOPES,
			"invoices": INVOICE_SCOPES,
			"creditnotes": INVOICE_SCOPES,
			"accounts": SETTINGS_SCOPES,
			"taxrates": SETTINGS_SCOPES,
			"items": SETTINGS_SCOPES,
			"quotes": INVOICE_SCOPES,
			"payments": INVOICE_SCOPES,
			"overpayments": INVOICE_SCOPES,
			"prepayments": INVOICE_SCOPES,
		}.get(resource)
		if needed is None:
			self._calls["not_found"] += 1
			return _problem(404, f"The resource {path} was not found.")
		self._calls[resource] += 1
		allowed = needed if method == "GET" else needed[:1]
		if not set(allowed) & scopes:
			return _problem(401, "AuthorizationUnsuccessful")
		by_id = _ID_RE.match(rel)
		try:
			if resource == "quotes":
				return self._quotes_dispatch(tid, book, method, rel, q, headers, parsed)
			if resource in ("payments", "overpayments", "prepayments"):
				return self._payments_dispatch(tid, book, method, rel, q, headers, parsed)
			if low in ("/accounts", "/taxrates", "/items") and method == "GET":
				key = {"/accounts": "accounts", "/taxrates": "tax_rates", "/items": "items"}[low]
				records = copy.deepcopy(book[key])
				if q.get("where"):
					records = _where(records, q["where"])
				name = {"accounts": "Accounts", "tax_rates": "TaxRates", "items": "Items"}[key]
				return _json_resp(200, self._envelope(tid, headers, name, records))
			if low == "/contacts" and method == "GET":
				return self._contacts_get(tid, book, headers, q)
			if low == "/invoices" and method == "GET":
				return self._invoices_get(tid, book, headers, q)
			if low == "/creditnotes" and method == "GET":
				return self._credit_notes_get(tid, book, headers, q)
			if low in ("/contacts", "/invoices", "/creditnotes") and method in ("POST", "PUT"):
				return self._batch(tid, book, headers, q, low[1:], parsed, None)
			allocations = _ALLOCATIONS_RE.match(rel)
			if allocations and method == "PUT":
				return self._allocate(tid, book, headers, q, allocations.group(1), parsed)
			if by_id and method == "GET":
				return self._get_one(tid, book, headers, by_id.group(1).lower(), by_id.group(2))
			if by_id and method == "POST":
				return self._batch(tid, book, headers, q, by_id.group(1).lower(), parsed, by_id.group(2))
		except ValueError as exc:
			return _api_error(400, 16, "QueryParseException", f"Unsupported query: {exc}")
		return _problem(405, f"The method {method} is not allowed for {path}.")

	# -- reads ----------------------------------------------------------------------------------------
	@staticmethod
	def _page(records: list, q: dict) -> list:
		if not q.get("page"):
			return records
		page = max(int(q["page"]), 1)
		size = min(max(int(q.get("pagesize") or PAGE_SIZE), 1), 1000)
		return records[(page - 1) * size : page * size]

	@staticmethod
	def _modified(records: list, headers, q: dict, id_field: str) -> list:
		"""``If-Modified-Since`` (only records whose ``UpdatedDateUTC`` is strictly later, compared to the
		microsecond) and ``order=UpdatedDateUTC [ASC|DESC]`` (ties by id) over rendered records; any other
		order keeps creation order."""
		since = _modified_since(headers.get("if-modified-since"))
		if since is not None:
			records = [r for r in records if (_stamp_ms(r.get("UpdatedDateUTC")) or 0) * 1000 > since]
		order = " ".join((q.get("order") or "").lower().split())
		if order in ("updateddateutc", "updateddateutc asc", "updateddateutc desc"):
			records = sorted(
				records,
				key=lambda r: (_stamp_ms(r.get("UpdatedDateUTC")) or 0, str(r.get(id_field) or "")),
				reverse=order.endswith("desc"),
			)
		return records

	def _listing(self, tid, headers, q: dict, key: str, id_field: str, records: list) -> tuple:
		"""A list read's answer: If-Modified-Since and order, then ``page`` / ``pageSize`` (with Xero's
		``pagination`` block on the envelopes that have one)."""
		records = self._modified(records, headers, q, id_field)
		body = self._envelope(tid, headers, key, self._page(records, q))
		if q.get("page") and key in PAGINATED:
			size = min(max(int(q.get("pagesize") or PAGE_SIZE), 1), 1000)
			items = body.pop(key)
			body["pagination"] = {
				"page": max(int(q["page"]), 1),
				"pageSize": size,
				"pageCount": math.ceil(len(records) / size),
				"itemCount": len(records),
			}
			body[key] = items
		return _json_resp(200, body)

	@staticmethod
	def _ids(q: dict, name: str) -> set | None:
		raw = q.get(name.lower())
		return None if not raw else {x.strip().lower() for x in raw.split(",") if x.strip()}

	def _contacts_get(self, tid, book, headers, q) -> tuple:
		records = [copy.deepcopy(c) for c in book["contacts"].values()]
		if not _bool_param(q, "includeArchived", False):
			records = [c for c in records if c["ContactStatus"] != "ARCHIVED"]
		ids = self._ids(q, "IDs")
		if ids is not None:
			records = [c for c in records if c["ContactID"] in ids]
		if q.get("where"):
			records = _where(records, q["where"])
		if q.get("searchterm"):
			term = q["searchterm"].lower()
			fields = ("Name", "FirstName", "LastName", "ContactNumber", "EmailAddress")
			records = [c for c in records if any(term in _lower(c.get(f)) for f in fields)]
		return self._listing(tid, headers, q, "Contacts", "ContactID", records)

	def _invoices_get(self, tid, book, headers, q) -> tuple:
		records = [self._render_invoice(book, i) for i in book["invoices"].values()]
		filters = (("IDs", "InvoiceID"), ("InvoiceNumbers", "InvoiceNumber"), ("Statuses", "Status"))
		for param, field in filters:
			wanted = self._ids(q, param)
			if wanted is not None:
				records = [r for r in records if _lower(r.get(field)) in wanted]
		contacts = self._ids(q, "ContactIDs")
		if contacts is not None:
			records = [r for r in records if r["Contact"]["ContactID"] in contacts]
		if q.get("where"):
			records = _where(records, q["where"])
		return self._listing(tid, headers, q, "Invoices", "InvoiceID", records)

	def _credit_notes_get(self, tid, book, headers, q) -> tuple:
		records = [self._render_credit_note(book, n) for n in book["credit_notes"].values()]
		if q.get("where"):
			records = _where(records, q["where"])
		return self._listing(tid, headers, q, "CreditNotes", "CreditNoteID", records)

	def _get_one(self, tid, book, headers, kind: str, key: str) -> tuple:
		key = urllib.parse.unquote(key).lower()
		if kind == "contacts":
			contact = book["contacts"].get(key) or next(
				(c for c in book["contacts"].values() if _lower(c.get("ContactNumber")) == key), None
			)
			if contact is None:
				return _problem(404, "Resource not found")
			return _json_resp(200, self._envelope(tid, headers, "Contacts", [copy.deepcopy(contact)]))
		if kind == "creditnotes":
			note = self._find_credit_note(book, key)
			if note is None:
				return _problem(404, "Resource not found")
			rendered = self._render_credit_note(book, note)
			return _json_resp(200, self._envelope(tid, headers, "CreditNotes", [rendered]))
		inv = self._find_invoice(book, key)
		if inv is None:
			return _problem(404, "Resource not found")
		return _json_resp(200, self._envelope(tid, headers, "Invoices", [self._render_invoice(book, inv)]))

	@staticmethod
	def _find_invoice(book, key: str) -> dict | None:
		key = key.lower()
		return book["invoices"].get(key) or next(
			(i for i in book["invoices"].values() if _lower(i.get("InvoiceNumber")) == key), None
		)

	@staticmethod
	def _find_credit_note(book, key: str) -> dict | None:
		key = key.lower()
		return book["credit_notes"].get(key) or next(
			(n for n in book["credit_notes"].values() if key and _lower(n.get("CreditNoteNumber")) == key),
			None,
		)

	# -- batch writes -----------------------------------------------------------------------------------
	def _batch(self, tid, book, headers, q, kind: str, parsed, path_id: str | None) -> tuple:
		key, id_field = _DOCS[kind]
		if isinstance(parsed, dict) and isinstance(parsed.get(key), list):
			elements = parsed[key]
		elif isinstance(parsed, dict) and key not in parsed:
			elements = [parsed]  # Xero also takes a single object
		else:
			return _api_error(400, 14, "PostDataInvalidException", f"Expected a {key} collection")
		if path_id is not None:
			elements = [dict(e, **{id_field: path_id}) for e in elements]
		summarize = _bool_param(q, "summarizeErrors", True)
		# validate and build everything against a scratch copy, so a failed summarised batch stores nothing
		scratch = {k: dict(book[k]) for k in ("contacts", "invoices", "credit_notes")}
		shared = ("tax_rates", "accounts", "items", "allocations", "payments", "overpayments", "prepayments")
		scratch.update({k: book[k] for k in shared})
		scratch.update({k: book[k] for k in ("invoice_seq", "credit_note_seq")})
		results, bad = [], []
		for element in elements:
			if not isinstance(element, dict):
				element = {}
			if kind == "contacts":
				record, errors = self._apply_contact(scratch, element)
			elif kind == "creditnotes":
				record, errors = self._apply_credit_note(tid, scratch, element)
			else:
				record, errors = self._apply_invoice(tid, scratch, element)
			if errors:
				failed = copy.deepcopy(element)
				failed.update(
					{
						"HasValidationErrors": True,
						"ValidationErrors": [{"Message": m} for m in errors],
						"StatusAttributeString": "ERROR",
					}
				)
				if kind != "contacts":
					failed.pop("HasValidationErrors")
					failed["HasErrors"] = True
				results.append(failed)
				bad.append(failed)
			else:
				results.append(record)
		if bad and summarize:
			return _validation_400(bad)
		store = {"contacts": "contacts", "invoices": "invoices", "creditnotes": "credit_notes"}[kind]
		existed = set(book[store])
		for name in ("contacts", "invoices", "credit_notes", "invoice_seq", "credit_note_seq"):
			book[name] = scratch[name]
		category = {"contacts": "CONTACT", "invoices": "INVOICE", "creditnotes": "CREDITNOTE"}[kind]
		for r in results:  # one webhook event per stored element
			if r.get("StatusAttributeString") != "ERROR":
				self._event(tid, category, r[id_field], "UPDATE" if r[id_field] in existed else "CREATE", r)
				existed.add(r[id_field])
		if kind == "contacts":
			render = copy.deepcopy
		else:
			by_kind = self._render_credit_note if kind == "creditnotes" else self._render_invoice
			render = lambda r: by_kind(book, r)  # noqa: E731
		return self._batch_answer(tid, headers, key, results, render, summarize)

	# -- contacts -------------------------------------------------------------------------------------
	def _new_contact(self, fields: dict) -> dict:
		contact = {
			"ContactID": str(uuid.uuid4()),
			"ContactStatus": "ACTIVE",
			"Name": "",
			"EmailAddress": "",
			"BankAccountDetails": "",
			"Addresses": [],
			"Phones": [],
			"UpdatedDateUTC": _ms_stamp(self.now()),
			"ContactGroups": [],
			"IsSupplier": False,
			"IsCustomer": False,
			"SalesTrackingCategories": [],
			"PurchasesTrackingCategories": [],
			"ContactPersons": [],
			"HasAttachments": False,
			"HasValidationErrors": False,
		}
		contact.update(self._writable(fields, ("ContactID", "UpdatedDateUTC", "HasValidationErrors")))
		contact["ContactID"] = contact["ContactID"].lower()
		return contact

	@staticmethod
	def _writable(fields: dict, readonly=()) -> dict:
		drop = set(readonly) | {"ValidationErrors", "StatusAttributeString", "Warnings"}
		return {k: copy.deepcopy(v) for k, v in fields.items() if k not in drop and v is not None}

	def _apply_contact(self, scratch: dict, element: dict) -> tuple[dict | None, list]:
		contacts = scratch["contacts"]
		cid = _lower(element.get("ContactID"))
		existing = contacts.get(cid) if cid else None
		if existing is None and element.get("ContactNumber"):
			num = _lower(element["ContactNumber"])
			existing = next((c for c in contacts.values() if _lower(c.get("ContactNumber")) == num), None)
		errors = []
		if cid and existing is None:
			errors.append(f"The contact with ContactID {element.get('ContactID')} could not be found.")
		name = element.get("Name", existing["Name"] if existing else None)
		if not isinstance(name, str) or not name.strip():
			if not errors:
				errors.append("The contact name must be specified.")
		else:
			if len(name) > 255:
				errors.append("The contact name must not exceed 255 characters.")
			own = existing["ContactID"] if existing else None
			clash = any(
				c["ContactID"] != own and c["ContactStatus"] == "ACTIVE" and _lower(c["Name"]) == _lower(name)
				for c in contacts.values()
			)
			if clash:
				errors.append(
					f"The contact name {name} is already assigned to another contact. "
					"The contact name must be unique across all active contacts."
				)
		status = element.get("ContactStatus")
		if status is not None and status not in ("ACTIVE", "ARCHIVED", "GDPRREQUEST"):
			errors.append(f"ContactStatus {status} is not valid.")
		if errors:
			return None, errors
		if existing is None:
			record = self._new_contact(element)
		else:
			record = copy.deepcopy(existing)
			record.update(self._writable(element, ("ContactID", "UpdatedDateUTC", "HasValidationErrors")))
			record["UpdatedDateUTC"] = _ms_stamp(self.now())
		contacts[record["ContactID"]] = record
		return record, []

	# -- invoices -------------------------------------------------------------------------------------
	@staticmethod
	def _rates(book) -> dict:
		return {r["TaxType"].upper(): Decimal(str(r.get("EffectiveRate", 0))) for r in book["tax_rates"]}

	def _lines(self, book, inv: dict) -> list:
		"""Line items with LineAmount / TaxAmount (and defaults) worked out."""
		rates = self._rates(book)
		accounts = {a.get("Code"): a for a in book["accounts"]}
		mode = inv.get("LineAmountTypes") or "Exclusive"
		out = []
		for line in inv.get("LineItems") or []:
			line = copy.deepcopy(line)
			qty = _num(line.get("Quantity"), Decimal(1))
			unit = _num(line.get("UnitAmount"), Decimal(0))
			disc = _num(line.get("DiscountRate"), Decimal(0))
			if line.get("LineAmount") is not None and line.get("UnitAmount") is None:
				amount = _money(line["LineAmount"])
			else:
				amount = _money(qty * unit * (Decimal(100) - disc) / Decimal(100))
			tax_type = line.get("TaxType")
			if not tax_type:
				acc = accounts.get(line.get("AccountCode"))
				tax_type = acc.get("TaxType") if acc else None
			if mode == "NoTax":
				tax_type = tax_type or "NONE"
				tax = Decimal(0)
			elif line.get("TaxAmount") is not None:  # "can be overriden if the calculated TaxAmount is
				tax = _money(line["TaxAmount"])  # not correct" (Xero's LineItem docs)
			else:
				rate = rates.get((tax_type or "NONE").upper(), Decimal(0))
				if mode == "Inclusive":
					tax = _money(amount * rate / (Decimal(100) + rate))
				else:
					tax = _money(amount * rate / Decimal(100))
			line.update(
				{
					"LineItemID": line.get("LineItemID") or "00000000-0000-0000-0000-000000000000",
					"Quantity": float(qty),
					"UnitAmount": float(unit),
					"LineAmount": float(amount),
					"TaxAmount": float(tax),
					"Tracking": line.get("Tracking") or [],
				}
			)
			if tax_type:
				line["TaxType"] = tax_type
			out.append(line)
		return out

	def _totals(self, book, inv: dict) -> dict:
		lines = self._lines(book, inv)
		amounts = sum((_money(li["LineAmount"]) for li in lines), Decimal(0))
		tax = sum((_money(li["TaxAmount"]) for li in lines), Decimal(0))
		if (inv.get("LineAmountTypes") or "Exclusive") == "Inclusive":
			sub, total = amounts - tax, amounts
		else:
			sub, total = amounts, amounts + tax
		gross = sum(
			(
				_money(_num(li.get("Quantity"), Decimal(1)) * _num(li.get("UnitAmount"), Decimal(0)))
				for li in lines
				if li.get("DiscountRate")
			),
			Decimal(0),
		)
		discounted = sum((_money(li["LineAmount"]) for li in lines if li.get("DiscountRate")), Decimal(0))
		return {
			"lines": lines,
			"SubTotal": sub,
			"TotalTax": tax,
			"Total": total,
			"TotalDiscount": gross - discounted,
		}

	@staticmethod
	def _allocated(book, field: str, key: str) -> Decimal:
		"""Sum of the allocations whose ``field`` (``InvoiceID`` / ``CreditNoteID``) is ``key``."""
		return sum((_money(a["Amount"]) for a in book["allocations"] if a[field] == key), Decimal(0))

	def _credit_summaries(self, book, inv: dict) -> list:
		"""The invoice's ``CreditNotes``: one summary per credit note allocated to it (shape of the
		recorded GET /Invoices), ``AppliedAmount`` = what that credit note applied to this invoice."""
		applied: dict[str, Decimal] = {}
		for a in book["allocations"]:
			if a["InvoiceID"] == inv["InvoiceID"]:
				applied[a["CreditNoteID"]] = applied.get(a["CreditNoteID"], Decimal(0)) + _money(a["Amount"])
		out = []
		for note_id, amount in applied.items():
			note = book["credit_notes"][note_id]
			summary = {
				"CreditNoteID": note_id,
				"CreditNoteNumber": note.get("CreditNoteNumber", ""),
				"ID": note_id,
				"HasErrors": False,
				"AppliedAmount": float(amount),
			}
			summary.update(_date_fields("Date", note.get("Date")))
			summary.update({"LineItems": [], "Total": float(self._totals(book, note)["Total"])})
			out.append(summary)
		return out

	def _render_invoice(self, book, inv: dict) -> dict:
		totals = self._totals(book, inv)
		payments = self._invoice_payments(book, inv["InvoiceID"])
		paid = sum((_money(p["Amount"]) for p in payments), Decimal(0))
		overpayments = self._invoice_credits(book, "overpayments", inv["InvoiceID"])
		prepayments = self._invoice_credits(book, "prepayments", inv["InvoiceID"])
		# AmountCredited: "Sum of all credit notes, over-payments and pre-payments applied to invoice"
		credited = self._allocated(book, "InvoiceID", inv["InvoiceID"]) + sum(
			(_money(c["AppliedAmount"]) for c in overpayments + prepayments), Decimal(0)
		)
		due = totals["Total"] - paid - credited
		contact = book["contacts"].get(inv["Contact"]["ContactID"]) or inv["Contact"]
		hidden = ("Date", "DueDate")
		out = {k: copy.deepcopy(v) for k, v in inv.items() if not k.startswith("_") and k not in hidden}
		out.update(
			{
				"Contact": copy.deepcopy(contact),
				"LineItems": totals["lines"],
				"LineAmountTypes": inv.get("LineAmountTypes") or "Exclusive",
				"SubTotal": float(totals["SubTotal"]),
				"TotalTax": float(totals["TotalTax"]),
				"Total": float(totals["Total"]),
				"AmountDue": 0.0 if inv["Status"] in ("VOIDED", "DELETED") else float(due),
				"AmountPaid": float(paid),
				"AmountCredited": float(credited),
				"IsDiscounted": totals["TotalDiscount"] > 0,
				"Payments": payments,
				"Prepayments": prepayments,
				"Overpayments": overpayments,
				"CreditNotes": self._credit_summaries(book, inv),
				"HasErrors": False,
			}
		)
		if totals["TotalDiscount"] > 0:
			out["TotalDiscount"] = float(totals["TotalDiscount"])
		out.update(_date_fields("Date", inv.get("Date")))
		out.update(_date_fields("DueDate", inv.get("DueDate")))
		if inv["Status"] == "PAID":
			out["FullyPaidOnDate"] = f"/Date({self._fully_paid_on(book, inv)}+0000)/"
		return out

	def _settlements(self, book, invoice_id: str) -> list[tuple[int, Decimal]]:
		"""(date ms, amount) of everything settling an invoice: its AUTHORISED payments, credit note
		allocations and the over/prepayment allocations applied to it."""
		out = [(p["Date"], _money(p["Amount"])) for p in book["payments"].values()
			   if p["InvoiceID"] == invoice_id and p["Status"] == "AUTHORISED"]
		out += [(a["Date"], _money(a["Amount"])) for a in book["allocations"] if a["InvoiceID"] == invoice_id]
		for store in ("overpayments", "prepayments"):
			for credit in book[store].values():
				mine = [a for a in credit["Allocations"] if a["InvoiceID"] == invoice_id]
				out += [(a["Date"], _money(a["Amount"])) for a in mine]
		return out

	def _fully_paid_on(self, book, inv: dict) -> int:
		"""``FullyPaidOnDate`` of a PAID invoice: the date of the latest settlement (as Xero: the date of
		the payment / allocation that settled it)."""
		dates = [d for d, _ in self._settlements(book, inv["InvoiceID"]) if d is not None]
		return max(dates) if dates else _today_ms(self.now())

	def _settle(self, tid: str, book, inv: dict) -> None:
		"""After a payment, allocation or deleted payment: an AUTHORISED invoice with nothing due becomes
		PAID, a PAID one with something due again is AUTHORISED; ``UpdatedDateUTC`` is bumped and an INVOICE
		UPDATE webhook event recorded."""
		if inv["Status"] in ("AUTHORISED", "PAID"):
			due = _money(self._render_invoice(book, inv)["AmountDue"])
			inv["Status"] = "PAID" if due <= 0 else "AUTHORISED"
		inv["UpdatedDateUTC"] = _ms_stamp(self.now())
		self._event(tid, "INVOICE", inv["InvoiceID"], "UPDATE", inv)

	def _apply_invoice(self, tid: str, scratch: dict, element: dict) -> tuple[dict | None, list]:
		invoices = scratch["invoices"]
		iid = _lower(element.get("InvoiceID"))
		existing = self._find_invoice(scratch, iid) if iid else None
		if iid and existing is None:
			return None, [f"The invoice with InvoiceID {element.get('InvoiceID')} could not be found."]
		errors = []
		if existing is not None:
			return self._update_invoice(scratch, existing, element)
		kind = element.get("Type")
		if kind not in INVOICE_TYPES:
			errors.append(f"Invoice Type {kind} is not valid." if kind else "Invoice Type must be specified")
		contact = self._invoice_contact(scratch, element.get("Contact"), errors)
		status = element.get("Status") or "DRAFT"
		if status not in CREATE_STATUSES:
			errors.append(f"Invoice status {status} is not valid for a new invoice.")
		readonly = ("InvoiceID", "SubTotal", "TotalTax", "Total", "AmountDue", "AmountPaid")
		record = self._writable(element, readonly)
		record.update({"Type": kind, "Status": status})
		errors += self._check_invoice_fields(scratch, record, None)
		if errors:
			return None, errors
		if not record.get("InvoiceNumber") and kind == "ACCREC":
			scratch["invoice_seq"] += 1
			record["InvoiceNumber"] = f"INV-{scratch['invoice_seq']:04d}"
		record["InvoiceID"] = str(uuid.uuid4())
		record["Contact"] = {"ContactID": contact["ContactID"]}
		record["CurrencyCode"] = record.get("CurrencyCode") or self._tenants[tid]["BaseCurrency"]
		record.setdefault("CurrencyRate", 1.0)
		record.setdefault("SentToContact", False)
		record.setdefault("Reference", "")
		record.setdefault("HasAttachments", False)
		record["Date"] = record.get("Date")
		if record["Date"] is None:
			record["Date"] = calendar.timegm(time.gmtime(self.now())[:3] + (0, 0, 0)) * 1000
		self._fill_from_items(scratch, record)
		self._stamp_lines(record)
		record["UpdatedDateUTC"] = _ms_stamp(self.now())
		invoices[record["InvoiceID"]] = record
		self._mark_customer(scratch, record)
		return record, []

	def _invoice_contact(self, scratch, ref, errors: list) -> dict | None:
		if not isinstance(ref, dict) or not any(ref.get(f) for f in ("ContactID", "Name", "ContactNumber")):
			errors.append("A Contact must be specified for this type of transaction")
			return None
		contacts = scratch["contacts"]
		found = contacts.get(_lower(ref.get("ContactID")))
		if found is None and not ref.get("ContactID"):
			for field in ("ContactNumber", "Name"):
				if ref.get(field):
					want = _lower(ref[field])
					found = next((c for c in contacts.values() if _lower(c.get(field)) == want), None)
					if found:
						break
		if found is None:
			label = ref.get("ContactID") or ref.get("ContactNumber") or ref.get("Name")
			errors.append(f"The contact {label} could not be found.")
		return found

	def _check_invoice_fields(self, scratch, record: dict, own_id, kind: str = "invoices") -> list:
		"""Field rules shared by invoices, (``kind="creditnotes"``) credit notes and (``kind="quotes"``, no
		number rule: quotes.py checks QuoteNumber) quotes."""
		errors = []
		mode = record.get("LineAmountTypes")
		if mode is not None and mode not in LINE_AMOUNT_TYPES:
			errors.append(f"LineAmountTypes {mode} is not valid.")
		for field in ("Date", "DueDate"):
			try:
				if not isinstance(record.get(field), int):
					record[field] = _parse_date(record.get(field))
			except (ValueError, TypeError):
				errors.append(f"{field} {record.get(field)} is not a valid date.")
		lines = record.get("LineItems")
		if not isinstance(lines, list) or not lines:
			label = {"creditnotes": "Credit notes", "quotes": "Quotes"}.get(kind, "Invoices")
			errors.append(f"{label} must have at least one line item.")
			lines = []
		accounts = {a.get("Code") for a in scratch["accounts"]}
		items = {i.get("Code") for i in scratch["items"]}
		rates = self._rates(scratch)
		for line in lines:
			if not isinstance(line, dict):
				errors.append("Line items must be objects.")
				continue
			for num in ("Quantity", "UnitAmount", "DiscountRate", "LineAmount", "TaxAmount"):
				try:
					_num(line.get(num))
				except (ValueError, ArithmeticError):
					errors.append(f"{num} {line.get(num)!r} is not a number.")
			code = line.get("ItemCode")
			if code and code not in items:
				errors.append(f"Item code '{code}' is not valid")
			account = line.get("AccountCode")
			if account and account not in accounts:
				errors.append(f"Account code '{account}' is not a valid code for this document.")
			if not account and not code and record.get("Status") in ("SUBMITTED", "AUTHORISED"):
				errors.append("Account code '' is not a valid code for this document.")
			tax = line.get("TaxType")
			if tax and tax.upper() not in rates:
				errors.append(
					f"The TaxType code '{tax}' does not exist or cannot be used for this type of transaction."
				)
		if kind == "quotes":
			return errors
		if kind == "creditnotes":
			store, id_field, field = "credit_notes", "CreditNoteID", "CreditNoteNumber"
			numbered = "ACCRECCREDIT"
			message = "Credit Note # must be unique."
		else:
			store, id_field, field, numbered = "invoices", "InvoiceID", "InvoiceNumber", "ACCREC"
			message = "Invoice # must be unique."
		number = record.get(field)
		taken = number and self._number_taken(scratch[store], id_field, field, numbered, number, own_id)
		if taken and record.get("Type") == numbered:
			errors.append(message)
		return errors

	@staticmethod
	def _number_taken(records: dict, id_field: str, field: str, kind: str, number: str, own_id) -> bool:
		"""Is ``number`` used by another non-deleted document of Type ``kind`` (case-insensitive)?"""
		return any(
			r[id_field] != own_id
			and r.get("Type") == kind
			and r["Status"] != "DELETED"
			and _lower(r.get(field)) == _lower(number)
			for r in records.values()
		)

	@staticmethod
	def _fill_from_items(scratch, record: dict) -> None:
		items = {i.get("Code"): i for i in scratch["items"]}
		for line in record.get("LineItems") or []:
			item = items.get(line.get("ItemCode"))
			if not item:
				continue
			sales = item.get("SalesDetails") or {}
			line.setdefault("Description", item.get("Description"))
			if line.get("UnitAmount") is None and sales.get("UnitPrice") is not None:
				line["UnitAmount"] = sales["UnitPrice"]
			if not line.get("AccountCode") and sales.get("AccountCode"):
				line["AccountCode"] = sales["AccountCode"]
			if not line.get("TaxType") and sales.get("TaxType"):
				line["TaxType"] = sales["TaxType"]

	@staticmethod
	def _stamp_lines(record: dict) -> None:
		for line in record.get("LineItems") or []:
			if not line.get("LineItemID"):
				line["LineItemID"] = str(uuid.uuid4())

	@staticmethod
	def _mark_customer(scratch, record: dict) -> None:
		contact = scratch["contacts"].get(record["Contact"]["ContactID"])
		if contact is None:
			return
		field = "IsCustomer" if record.get("Type") in ("ACCREC", "ACCRECCREDIT") else "IsSupplier"
		if not contact.get(field):
			scratch["contacts"][contact["ContactID"]] = dict(contact, **{field: True})

	def _apply_changes(self, scratch, existing: dict, record: dict, changes: dict, target: str, id_field: str,
					   store: str, kind: str | None = None) -> tuple[dict | None, list]:
		"""The end of an invoice or credit note update: contact, new status, field checks (dates kept as
		they were for a void / delete), totals from items, stamps; stored in ``scratch[store]``."""
		errors = []
		if "Contact" in changes:
			contact = self._invoice_contact(scratch, changes["Contact"], errors)
			if contact is not None:
				changes["Contact"] = {"ContactID": contact["ContactID"]}
		record.update(changes)
		record["Status"] = target
		if target not in ("VOIDED", "DELETED"):
			errors += (self._check_invoice_fields(scratch, record, record[id_field], kind) if kind
					   else self._check_invoice_fields(scratch, record, record[id_field]))
		else:
			for field in ("Date", "DueDate"):
				if isinstance(record.get(field), str):
					record[field] = existing.get(field)
		if errors:
			return None, errors
		self._fill_from_items(scratch, record)
		self._stamp_lines(record)
		record["UpdatedDateUTC"] = _ms_stamp(self.now())
		scratch[store][record[id_field]] = record
		return record, []

	def _update_invoice(self, scratch, existing: dict, element: dict) -> tuple[dict | None, list]:
		current = existing["Status"]
		target = element.get("Status") or current
		paid = bool(self._settlements(scratch, existing["InvoiceID"]))
		if current in ("VOIDED", "DELETED", "PAID"):
			return None, ["This document cannot be edited as it is " + current.lower() + "."]
		if target == "DELETED" and current not in ("DRAFT", "SUBMITTED"):
			return None, ["Invoice not of valid status for modification"]
		if target == "VOIDED":
			if current != "AUTHORISED":
				return None, ["Invoice not of valid status for modification"]
			if paid:
				return None, [VOID_ALLOCATED]
		if target not in CREATE_STATUSES + ("VOIDED", "DELETED"):
			return None, [f"Invoice status {target} is not valid."]
		if current == "AUTHORISED" and target in ("DRAFT", "SUBMITTED"):
			return None, ["Invoice not of valid status for modification"]
		record = copy.deepcopy(existing)
		readonly = ("InvoiceID", "SubTotal", "TotalTax", "Total", "AmountDue", "AmountPaid", "Type")
		changes = self._writable(element, readonly)
		return self._apply_changes(scratch, existing, record, changes, target, "InvoiceID", "invoices")


	# -- credit notes ---------------------------------------------------------------------------------
	def _render_credit_note(self, book, note: dict) -> dict:
		"""A credit note as Xero renders it (spec CreditNote; GET_CreditNotes / PUT_CreditNotes examples)."""
		totals = self._totals(book, note)
		allocated = self._allocated(book, "CreditNoteID", note["CreditNoteID"])
		contact = book["contacts"].get(note["Contact"]["ContactID"]) or note["Contact"]
		hidden = ("Date", "DueDate", "FullyPaidOnDate")
		out = {k: copy.deepcopy(v) for k, v in note.items() if not k.startswith("_") and k not in hidden}
		void = note["Status"] in ("VOIDED", "DELETED")
		own = [a for a in book["allocations"] if a["CreditNoteID"] == note["CreditNoteID"]]
		out.update(
			{
				"ID": note["CreditNoteID"],
				"Contact": copy.deepcopy(contact),
				"LineItems": totals["lines"],
				"LineAmountTypes": note.get("LineAmountTypes") or "Exclusive",
				"SubTotal": float(totals["SubTotal"]),
				"TotalTax": float(totals["TotalTax"]),
				"Total": float(totals["Total"]),
				"RemainingCredit": 0.0 if void else float(totals["Total"] - allocated),
				"AppliedAmount": float(allocated),
				"Allocations": [self._render_allocation(book, a, with_credit_note=False) for a in own],
				"Payments": [],
				"HasErrors": False,
			}
		)
		out.update(_date_fields("Date", note.get("Date")))
		out.update(_date_fields("DueDate", note.get("DueDate")))
		if note.get("FullyPaidOnDate") is not None:
			out["FullyPaidOnDate"] = f"/Date({note['FullyPaidOnDate']}+0000)/"
		return out

	def _apply_credit_note(self, tid: str, scratch: dict, element: dict) -> tuple[dict | None, list]:
		nid = _lower(element.get("CreditNoteID"))
		existing = self._find_credit_note(scratch, nid) if nid else None
		if nid and existing is None:
			return None, ["An existing Credit Note with the specified CreditNoteID could not be found"]
		if existing is not None:
			return self._update_credit_note(scratch, existing, element)
		errors = []
		kind = element.get("Type")
		if kind not in CREDIT_NOTE_TYPES:
			errors.append(
				f"Credit Note Type {kind} is not valid." if kind else "Credit Note Type must be specified"
			)
		contact = self._invoice_contact(scratch, element.get("Contact"), errors)
		status = element.get("Status") or "DRAFT"
		if status not in CREATE_STATUSES:
			errors.append(f"Credit Note status {status} is not valid for a new credit note.")
		record = self._writable(element, self._CREDIT_NOTE_READONLY)
		record.update({"Type": kind, "Status": status})
		errors += self._check_invoice_fields(scratch, record, None, "creditnotes")
		if errors:
			return None, errors
		if not record.get("CreditNoteNumber"):
			record["CreditNoteNumber"] = ""  # ACCPAYCREDIT: none (as the recorded responses)
			while kind == "ACCRECCREDIT" and not record["CreditNoteNumber"]:
				scratch["credit_note_seq"] += 1
				number = f"CN-{scratch['credit_note_seq']:04d}"
				notes = scratch["credit_notes"]
				if not self._number_taken(notes, "CreditNoteID", "CreditNoteNumber", kind, number, None):
					record["CreditNoteNumber"] = number
		record["CreditNoteID"] = str(uuid.uuid4())
		record["Contact"] = {"ContactID": contact["ContactID"]}
		record["CurrencyCode"] = record.get("CurrencyCode") or self._tenants[tid]["BaseCurrency"]
		record.setdefault("CurrencyRate", 1.0)
		record.setdefault("SentToContact", False)
		record.setdefault("Reference", "")
		record.setdefault("HasAttachments", False)
		if record.get("Date") is None:
			record["Date"] = calendar.timegm(time.gmtime(self.now())[:3] + (0, 0, 0)) * 1000
		self._fill_from_items(scratch, record)
		self._stamp_lines(record)
		record["UpdatedDateUTC"] = _ms_stamp(self.now())
		scratch["credit_notes"][record["CreditNoteID"]] = record
		self._mark_customer(scratch, record)
		return record, []

	# read-only on create / update (Allocations are made through PUT /CreditNotes/{id}/Allocations only:
	# Xero ignores allocations sent inline with a credit note)
	_CREDIT_NOTE_READONLY = (
		"CreditNoteID",
		"ID",
		"SubTotal",
		"TotalTax",
		"Total",
		"RemainingCredit",
		"AppliedAmount",
		"Allocations",
		"Payments",
		"FullyPaidOnDate",
		"UpdatedDateUTC",
		"UpdatedDateUTCString",
		"HasErrors",
	)

	def _update_credit_note(self, scratch, existing: dict, element: dict) -> tuple[dict | None, list]:
		"""Status rules as for invoices: DELETED only from DRAFT / SUBMITTED, VOIDED only from AUTHORISED
		without allocations; VOIDED / DELETED / PAID are final; an allocated credit note keeps its lines,
		contact and currency."""
		current = existing["Status"]
		target = element.get("Status") or current
		allocated = self._allocated(scratch, "CreditNoteID", existing["CreditNoteID"]) > 0
		invalid = "Credit Note not of valid status for modification"
		if current in ("VOIDED", "DELETED", "PAID"):
			return None, ["This document cannot be edited as it is " + current.lower() + "."]
		if target == "DELETED" and current not in ("DRAFT", "SUBMITTED"):
			return None, [invalid]
		if target == "VOIDED":
			if current != "AUTHORISED":
				return None, [invalid]
			if allocated:
				return None, [VOID_ALLOCATED]
		if target not in CREATE_STATUSES + ("VOIDED", "DELETED"):
			return None, [f"Credit Note status {target} is not valid."]
		if current == "AUTHORISED" and target in ("DRAFT", "SUBMITTED"):
			return None, [invalid]
		changes = self._writable(element, self._CREDIT_NOTE_READONLY + ("Type",))
		fixed = ("LineItems", "LineAmountTypes", "Contact", "CurrencyCode")
		if allocated and any(f in changes for f in fixed):
			return None, [EDIT_ALLOCATED]
		record = copy.deepcopy(existing)
		return self._apply_changes(scratch, existing, record, changes, target, "CreditNoteID", "credit_notes",
								   "creditnotes")

	# -- credit note allocations ----------------------------------------------------------------------
	def _render_allocation(self, book, alloc: dict, with_credit_note: bool = True) -> dict:
		"""An allocation as ``PUT /CreditNotes/{id}/Allocations`` answers it (the spec's example)."""
		inv = book["invoices"].get(alloc["InvoiceID"], {})
		invoice = {"InvoiceID": alloc["InvoiceID"]}
		if inv.get("InvoiceNumber"):
			invoice["InvoiceNumber"] = inv["InvoiceNumber"]
		invoice.update(
			{
				"Payments": [],
				"CreditNotes": [],
				"Prepayments": [],
				"Overpayments": [],
				"HasErrors": False,
				"IsDiscounted": False,
				"LineItems": [],
				"ValidationErrors": [],
			}
		)
		out = {
			"AllocationID": alloc["AllocationID"],
			"Amount": alloc["Amount"],
			"Date": f"/Date({alloc['Date']}+0000)/",
			"Invoice": invoice,
		}
		if with_credit_note:
			note = book["credit_notes"].get(alloc["CreditNoteID"], {})
			out["CreditNote"] = {
				"CreditNoteID": alloc["CreditNoteID"],
				"CreditNoteNumber": note.get("CreditNoteNumber", ""),
				"ID": alloc["CreditNoteID"],
				"LineItems": [],
			}
		out["ValidationErrors"] = []
		return out

	def _allocation_errors(self, book, note: dict, element: dict, remaining: Decimal, dues: dict) -> tuple:
		"""(errors, invoice, amount, date ms) of one allocation element. ``remaining`` is the credit left
		and ``dues`` the invoices' amounts due as this request's earlier allocations leave them."""
		errors = []
		if note["Status"] != "AUTHORISED":
			errors.append("Credit Note not of valid status for allocation")
		ref = element.get("Invoice")
		inv = None
		if not isinstance(ref, dict) or not (ref.get("InvoiceID") or ref.get("InvoiceNumber")):
			errors.append("An Invoice must be specified for this allocation")
		else:
			inv = self._find_invoice(book, _lower(ref.get("InvoiceID") or ref.get("InvoiceNumber")))
			if inv is None:
				label = ref.get("InvoiceID") or ref.get("InvoiceNumber")
				errors.append(f"The invoice with InvoiceID {label} could not be found.")
		due = None
		if inv is not None:
			due = dues.get(inv["InvoiceID"])
			if due is None:
				due = _money(self._render_invoice(book, inv)["AmountDue"])
			if inv.get("Type") != CREDIT_NOTE_INVOICE_TYPE.get(note.get("Type")):
				errors.append("Credit Note cannot be allocated to an incorrect invoice type")
			if inv["Status"] == "PAID" or (inv["Status"] == "AUTHORISED" and due <= 0):
				errors.append("The invoice you are trying to allocate to has already been paid off")
			elif inv["Status"] != "AUTHORISED":
				errors.append("Invoice not of valid status for allocation")
			if inv["Contact"]["ContactID"] != note["Contact"]["ContactID"]:
				errors.append("The Credit Note and the Invoice must be for the same contact")
			if _lower(inv.get("CurrencyCode")) != _lower(note.get("CurrencyCode")):
				errors.append("The Credit Note and the Invoice must be in the same currency")
		try:
			amount = _num(element.get("Amount"))
		except (ValueError, ArithmeticError):
			amount = None
		if amount is None:
			errors.append("Amount must be a number.")
		else:
			amount = _money(amount)
			if amount <= 0:
				errors.append("Amount must be greater than zero.")
			elif amount > remaining:
				errors.append("Credit Note cannot be allocated as amount is greater than amount outstanding")
			elif due is not None and 0 < due < amount:
				errors.append("The amount allocated is greater than the amount due on the invoice")
		date = None
		try:
			date = _parse_date(element.get("Date"))
		except (ValueError, TypeError):
			errors.append(f"Date {element.get('Date')} is not a valid date.")
		if date is None and inv is not None:  # unspecified: the later of the two documents' dates
			dates = [d for d in (note.get("Date"), inv.get("Date")) if d is not None]
			today = calendar.timegm(time.gmtime(self.now())[:3] + (0, 0, 0)) * 1000
			date = max(dates) if dates else today
		return errors, inv, amount, date

	def _allocate(self, tid, book, headers, q, note_key: str, parsed) -> tuple:
		"""``PUT /CreditNotes/{CreditNoteID}/Allocations``: apply an AUTHORISED credit note to AUTHORISED
		invoices of the matching Type, contact and currency (``0 < Amount <= RemainingCredit`` and ``<=``
		the invoice's AmountDue). Batch semantics as elsewhere (``summarizeErrors``); a credit note with
		no credit left becomes PAID, an invoice with nothing left due becomes PAID (``FullyPaidOnDate`` =
		the allocation's date); both get a new ``UpdatedDateUTC`` and a webhook UPDATE event."""
		note = self._find_credit_note(book, urllib.parse.unquote(note_key))
		if note is None:
			return _problem(404, "Resource not found")
		if isinstance(parsed, dict) and isinstance(parsed.get("Allocations"), list):
			elements = parsed["Allocations"]
		elif isinstance(parsed, dict) and "Allocations" not in parsed:
			elements = [parsed]
		else:
			return _api_error(400, 14, "PostDataInvalidException", "Expected an Allocations collection")
		summarize = _bool_param(q, "summarizeErrors", True)
		note_id = note["CreditNoteID"]
		remaining = self._totals(book, note)["Total"] - self._allocated(book, "CreditNoteID", note_id)
		dues: dict[str, Decimal] = {}
		results, bad, new = [], [], []
		for element in elements:
			if not isinstance(element, dict):
				element = {}
			errors, inv, amount, date = self._allocation_errors(book, note, element, remaining, dues)
			if errors:
				failed = _failed_element(element, errors)
				results.append(failed)
				bad.append(failed)
				continue
			due = dues.get(inv["InvoiceID"])
			if due is None:
				due = _money(self._render_invoice(book, inv)["AmountDue"])
			record = {
				"AllocationID": str(uuid.uuid4()),
				"CreditNoteID": note_id,
				"InvoiceID": inv["InvoiceID"],
				"Amount": float(amount),
				"Date": date,
			}
			new.append(record)
			results.append(record)
			remaining -= amount
			dues[inv["InvoiceID"]] = due - amount
		if bad and summarize:
			return _validation_400(bad)
		book["allocations"].extend(new)
		if new:
			note["UpdatedDateUTC"] = _ms_stamp(self.now())
			if remaining <= 0:
				note["Status"] = "PAID"
				note["FullyPaidOnDate"] = max(a["Date"] for a in new)
			self._event(tid, "CREDITNOTE", note_id, "UPDATE", note)
			for iid in dues:  # PAID (with FullyPaidOnDate) when nothing is left due; stamped either way
				self._settle(tid, book, book["invoices"][iid])
		return self._batch_answer(tid, headers, "Allocations", results, lambda r: self._render_allocation(book, r),
								  summarize)
