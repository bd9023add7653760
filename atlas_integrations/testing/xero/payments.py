"""Payments, overpayments and prepayments of :class:`XeroTestServer` (:class:`_PaymentsMixin`): the
payments made "in Xero" by a test (:meth:`_PaymentsMixin.pay_invoice`, :meth:`_PaymentsMixin.delete_payment`)
and over/prepayments applied to invoices (:meth:`_PaymentsMixin.apply_overpayment`,
:meth:`_PaymentsMixin.apply_prepayment`), their reads (``GET /Payments``, ``/Payments/{id}``,
``/Overpayments``, ``/Prepayments``) and Xero's delete (``POST /Payments/{id}`` with ``{"Status":
"DELETED"}``); plus the invoice's ``Payments`` / ``Overpayments`` / ``Prepayments`` arrays.

Shapes from the spec's GET_Payments / POST_Payments_PaymentID / GET_Overpayments / GET_Prepayments examples
and the recorded GET_Invoices (invoice ``Payments`` entries). State: the tenant book's ``payments``,
``overpayments`` and ``prepayments`` (accounting.py's ``_book``)."""

from __future__ import annotations

import copy
import datetime
import re
import urllib.parse
import uuid
from decimal import Decimal

from atlas_integrations.testing.xero.accounting import (
	API_PREFIX,
	_api_error,
	_date_fields,
	_money,
	_ms_stamp,
	_parse_date,
	_today_ms,
	_utc_string,
	_validation_400,
	_where,
)
from atlas_integrations.testing.xero.common import _json_resp, _problem

_PAYMENT_RE = re.compile(r"(?i)^/payments/([^/]+)/?$")
_CREDIT_RE = re.compile(r"(?i)^/(overpayments|prepayments)/([^/]+)/?$")
# store in the book -> (Type, id field, envelope key)
CREDIT_KINDS = {
	"overpayments": ("RECEIVE-OVERPAYMENT", "OverpaymentID", "Overpayments"),
	"prepayments": ("RECEIVE-PREPAYMENT", "PrepaymentID", "Prepayments"),
}
PAYMENT_TYPES = {"ACCREC": "ACCRECPAYMENT", "ACCPAY": "ACCPAYPAYMENT"}


def _day_ms(date) -> int | None:
	"""Epoch ms (UTC midnight) of a ``datetime.date`` / ``datetime`` / string date, None for None."""
	if date is None:
		return None
	if isinstance(date, datetime.datetime):
		date = date.date()
	if isinstance(date, datetime.date):
		date = date.isoformat()
	return _parse_date(str(date))


class _PaymentsMixin:
	"""Payments and over/prepayments of :class:`XeroTestServer` (routed by ``_AccountingMixin._dispatch``)."""

	# -- controls -------------------------------------------------------------------------------------
	def pay_invoice(self, tenant: str, invoice_id: str, amount=None, account_code: str = "090", date=None,
					reference: str = "") -> dict:
		"""A payment made in Xero against an AUTHORISED invoice: ``amount`` (default: the amount due,
		``0 < amount <= AmountDue``) into the bank account ``account_code`` (a BANK account of the
		tenant's chart, or one with ``EnablePaymentsToAccount``) on ``date`` (default: today, UTC).

		The invoice's AmountPaid / AmountDue follow; fully settled it is PAID with ``FullyPaidOnDate``;
		its ``UpdatedDateUTC`` moves and an INVOICE UPDATE webhook event is recorded. An invoice with a
		payment can no longer be VOIDED.

		Returns:
			the Payment as ``GET /Payments`` renders it (``PaymentID``, ``Status`` AUTHORISED, ...).

		Raises:
			KeyError: unknown tenant or invoice. ValueError: not AUTHORISED, a bad amount or account.
		"""
		with self._lock:
			tid = self._tenant_id(tenant)
			book = self._book(tid)
			inv = self._invoice_for_payment(book, invoice_id)
			due = _money(self._render_invoice(book, inv)["AmountDue"])
			paid = due if amount is None else _money(amount)
			if paid <= 0 or paid > due:
				raise ValueError(f"payment {paid} must be more than 0 and at most the amount due {due}")
			account = next((a for a in book["accounts"] if a.get("Code") == account_code), None)
			bank = account is not None and account.get("Type") == "BANK"
			if not bank and not (account or {}).get("EnablePaymentsToAccount"):
				raise ValueError(f"account {account_code!r} is not a bank account of this organisation")
			payment = {
				"PaymentID": str(uuid.uuid4()),
				"InvoiceID": inv["InvoiceID"],
				"Amount": float(paid),
				"Date": _day_ms(date) if date is not None else _today_ms(self.now()),
				"Reference": reference or "",
				"Status": "AUTHORISED",
				"Account": {"AccountID": account["AccountID"], "Code": account_code},
				"CurrencyRate": float(inv.get("CurrencyRate") or 1.0),
				"UpdatedDateUTC": _ms_stamp(self.now()),
			}
			book["payments"][payment["PaymentID"]] = payment
			self._settle(tid, book, inv)
			return self._render_payment(book, payment)

	def delete_payment(self, tenant: str, payment_id: str) -> dict:
		"""Delete a payment in Xero (as ``POST /Payments/{id}`` ``{"Status": "DELETED"}`` does): the payment
		stays, DELETED; its amount is due again on the invoice (PAID -> AUTHORISED, no FullyPaidOnDate);
		both get a new ``UpdatedDateUTC`` (INVOICE UPDATE webhook event). Returns the Payment as rendered.

		Raises:
			KeyError: unknown tenant or payment. ValueError: already deleted.
		"""
		with self._lock:
			tid = self._tenant_id(tenant)
			book = self._book(tid)
			payment = book["payments"][payment_id.lower()]
			if payment["Status"] == "DELETED":
				raise ValueError(f"payment {payment_id} is already deleted")
			return self._delete_payment(tid, book, payment)

	def apply_overpayment(self, tenant: str, invoice_id: str, amount) -> dict:
		"""A RECEIVE-OVERPAYMENT of ``amount`` from the invoice's contact, made in Xero and fully allocated
		to the AUTHORISED invoice (``0 < amount <= AmountDue``): it counts in the invoice's AmountCredited
		and ``Overpayments``. Returns the Overpayment as ``GET /Overpayments`` renders it."""
		return self._apply_credit(tenant, invoice_id, amount, "overpayments")

	def apply_prepayment(self, tenant: str, invoice_id: str, amount) -> dict:
		"""As :meth:`apply_overpayment`, a RECEIVE-PREPAYMENT (``Prepayments`` on the invoice). Returns the
		Prepayment as ``GET /Prepayments`` renders it."""
		return self._apply_credit(tenant, invoice_id, amount, "prepayments")

	def payments(self, tenant: str) -> list[dict]:
		"""A tenant's payments (DELETED ones too), oldest first, as ``GET /Payments`` renders them."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			return [self._render_payment(book, p) for p in book["payments"].values()]

	# -- internals ------------------------------------------------------------------------------------
	@staticmethod
	def _invoice_for_payment(book, invoice_id: str) -> dict:
		inv = book["invoices"][str(invoice_id).lower()]
		if inv["Status"] != "AUTHORISED":
			status = inv["Status"]
			raise ValueError(f"invoice {invoice_id} is {status}: Xero takes payments on AUTHORISED ones")
		return inv

	def _delete_payment(self, tid: str, book, payment: dict) -> dict:
		payment["Status"] = "DELETED"
		payment["UpdatedDateUTC"] = _ms_stamp(self.now())
		self._settle(tid, book, book["invoices"][payment["InvoiceID"]])
		return self._render_payment(book, payment)

	def _apply_credit(self, tenant: str, invoice_id: str, amount, store: str) -> dict:
		with self._lock:
			tid = self._tenant_id(tenant)
			book = self._book(tid)
			inv = self._invoice_for_payment(book, invoice_id)
			due = _money(self._render_invoice(book, inv)["AmountDue"])
			value = _money(amount)
			if value <= 0 or value > due:
				raise ValueError(f"{value} must be more than 0 and at most the amount due {due}")
			today = _today_ms(self.now())
			credit = {
				"ID": str(uuid.uuid4()),
				"Type": CREDIT_KINDS[store][0],
				"ContactID": inv["Contact"]["ContactID"],
				"Date": today,
				"Total": float(value),
				"CurrencyCode": inv.get("CurrencyCode"),
				"CurrencyRate": float(inv.get("CurrencyRate") or 1.0),
				"Allocations": [
					{"AllocationID": str(uuid.uuid4()), "InvoiceID": inv["InvoiceID"], "Amount": float(value),
					 "Date": today}
				],
				"UpdatedDateUTC": _ms_stamp(self.now()),
			}
			book[store][credit["ID"]] = credit
			self._settle(tid, book, inv)
			return self._render_credit(book, store, credit)

	# -- rendering ------------------------------------------------------------------------------------
	def _invoice_payments(self, book, invoice_id: str) -> list:
		"""An invoice's ``Payments`` (AUTHORISED ones), as Xero renders them on an invoice."""
		out = []
		for p in book["payments"].values():
			if p["InvoiceID"] == invoice_id and p["Status"] == "AUTHORISED":
				out.append(
					{
						"PaymentID": p["PaymentID"],
						"Date": f"/Date({p['Date']}+0000)/",
						"Amount": p["Amount"],
						"Reference": p["Reference"],
						"CurrencyRate": p["CurrencyRate"],
						"HasAccount": True,
						"HasValidationErrors": False,
					}
				)
		return out

	def _invoice_credits(self, book, store: str, invoice_id: str) -> list:
		"""An invoice's ``Overpayments`` / ``Prepayments``: one summary per over/prepayment applied to it,
		``AppliedAmount`` = what it applied to this invoice (the shape of the invoice's ``CreditNotes``)."""
		id_field = CREDIT_KINDS[store][1]
		out = []
		for credit in book[store].values():
			mine = [a for a in credit["Allocations"] if a["InvoiceID"] == invoice_id]
			applied = sum((_money(a["Amount"]) for a in mine), Decimal(0))
			if applied > 0:
				summary = {id_field: credit["ID"], "ID": credit["ID"], "Type": credit["Type"]}
				summary.update(_date_fields("Date", credit["Date"]))
				summary.update({"AppliedAmount": float(applied), "Total": credit["Total"]})
				summary.update({"LineItems": [], "HasErrors": False})
				out.append(summary)
		return out

	def _contact_summary(self, book, contact_id: str) -> dict:
		contact = book["contacts"].get(contact_id) or {}
		return {
			"ContactID": contact_id,
			"ContactNumber": contact.get("ContactNumber", ""),
			"Name": contact.get("Name", ""),
			"Addresses": [],
			"Phones": [],
			"ContactGroups": [],
			"ContactPersons": [],
			"HasValidationErrors": False,
		}

	def _invoice_stub(self, book, invoice_id: str) -> dict:
		"""The ``Invoice`` of a payment / allocation (GET_Payments example)."""
		inv = book["invoices"].get(invoice_id, {})
		return {
			"Type": inv.get("Type"),
			"InvoiceID": invoice_id,
			"InvoiceNumber": inv.get("InvoiceNumber", ""),
			"Payments": [],
			"CreditNotes": [],
			"Prepayments": [],
			"Overpayments": [],
			"HasErrors": False,
			"IsDiscounted": False,
			"Contact": self._contact_summary(book, inv.get("Contact", {}).get("ContactID", "")),
			"LineItems": [],
			"CurrencyCode": inv.get("CurrencyCode"),
		}

	def _render_payment(self, book, p: dict) -> dict:
		"""A payment as ``GET /Payments`` renders it (GET_Payments example)."""
		inv = book["invoices"].get(p["InvoiceID"], {})
		return {
			"PaymentID": p["PaymentID"],
			"Date": f"/Date({p['Date']}+0000)/",
			"BankAmount": p["Amount"],
			"Amount": p["Amount"],
			"Reference": p["Reference"],
			"CurrencyRate": p["CurrencyRate"],
			"PaymentType": PAYMENT_TYPES.get(inv.get("Type"), "ACCRECPAYMENT"),
			"Status": p["Status"],
			"UpdatedDateUTC": p["UpdatedDateUTC"],
			"UpdatedDateUTCString": _utc_string(p["UpdatedDateUTC"]),
			"HasAccount": True,
			"IsReconciled": False,
			"Account": copy.deepcopy(p["Account"]),
			"Invoice": self._invoice_stub(book, p["InvoiceID"]),
			"HasValidationErrors": False,
		}

	def _render_credit(self, book, store: str, c: dict) -> dict:
		"""An over/prepayment as ``GET /Overpayments`` / ``GET /Prepayments`` render them."""
		allocated = sum((_money(a["Amount"]) for a in c["Allocations"]), Decimal(0))
		remaining = _money(c["Total"]) - allocated
		out = {
			CREDIT_KINDS[store][1]: c["ID"],
			"ID": c["ID"],
			"Type": c["Type"],
			"Reference": "",
			"RemainingCredit": float(remaining),
			"Allocations": [
				{
					"AllocationID": a["AllocationID"],
					"Amount": a["Amount"],
					"Date": f"/Date({a['Date']}+0000)/",
					"Invoice": self._invoice_stub(book, a["InvoiceID"]),
				}
				for a in c["Allocations"]
			],
			"Payments": [],
			"HasAttachments": False,
			"Contact": self._contact_summary(book, c["ContactID"]),
		}
		out.update(_date_fields("Date", c["Date"]))
		out.update(
			{
				"Status": "PAID" if remaining <= 0 else "AUTHORISED",
				"LineAmountTypes": "NoTax",
				"LineItems": [],
				"SubTotal": c["Total"],
				"TotalTax": 0.0,
				"Total": c["Total"],
				"UpdatedDateUTC": c["UpdatedDateUTC"],
				"UpdatedDateUTCString": _utc_string(c["UpdatedDateUTC"]),
				"CurrencyCode": c["CurrencyCode"],
				"CurrencyRate": c["CurrencyRate"],
			}
		)
		return out

	# -- HTTP -----------------------------------------------------------------------------------------
	def _payments_dispatch(self, tid, book, method, rel, q, headers, parsed) -> tuple:
		"""``/Payments``, ``/Payments/{id}``, ``/Overpayments[/{id}]``, ``/Prepayments[/{id}]``."""
		low = rel.lower()
		if low == "/payments" and method == "GET":
			records = [self._render_payment(book, p) for p in book["payments"].values()]
			if q.get("where"):
				records = _where(records, q["where"])
			return self._listing(tid, headers, q, "Payments", "PaymentID", records)
		one = _PAYMENT_RE.match(rel)
		if one and method in ("GET", "POST"):
			payment = book["payments"].get(urllib.parse.unquote(one.group(1)).lower())
			if payment is None:
				return _problem(404, "Resource not found")
			if method == "GET":
				rendered = self._render_payment(book, payment)
				return _json_resp(200, self._envelope(tid, headers, "Payments", [rendered]))
			return self._payment_post(tid, book, headers, payment, parsed)
		if low in ("/overpayments", "/prepayments") and method == "GET":
			store = low[1:]
			records = [self._render_credit(book, store, c) for c in book[store].values()]
			if q.get("where"):
				records = _where(records, q["where"])
			_, id_field, key = CREDIT_KINDS[store]
			return self._listing(tid, headers, q, key, id_field, records)
		credit = _CREDIT_RE.match(rel)
		if credit and method == "GET":
			store = credit.group(1).lower()
			found = book[store].get(urllib.parse.unquote(credit.group(2)).lower())
			if found is None:
				return _problem(404, "Resource not found")
			rendered = self._render_credit(book, store, found)
			return _json_resp(200, self._envelope(tid, headers, CREDIT_KINDS[store][2], [rendered]))
		return _problem(405, f"The method {method} is not allowed for {API_PREFIX}{rel}.")

	def _payment_post(self, tid, book, headers, payment: dict, parsed) -> tuple:
		"""``POST /Payments/{id}``: the only change Xero takes is ``{"Status": "DELETED"}`` (the SDK's
		PaymentDelete; the spec's example wraps it as ``{"Payments": [{"Status": "DELETED"}]}``)."""
		if isinstance(parsed, dict) and isinstance(parsed.get("Payments"), list) and parsed["Payments"]:
			element = parsed["Payments"][0]
		else:
			element = parsed
		if not isinstance(element, dict):
			return _api_error(400, 14, "PostDataInvalidException", "Expected a Payment")
		errors = []
		if element.get("Status") != "DELETED":
			errors.append("Payments can only be deleted: send Status DELETED")
		elif payment["Status"] == "DELETED":
			errors.append("This payment has already been deleted")
		if errors:
			failed = dict(copy.deepcopy(element), ValidationErrors=[{"Message": m} for m in errors])
			return _validation_400([dict(failed, StatusAttributeString="ERROR")])
		deleted = self._delete_payment(tid, book, payment)
		return _json_resp(200, self._envelope(tid, headers, "Payments", [deleted]))
