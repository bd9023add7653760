"""ERPNext documents as Xero Accounting API payloads (plain dicts in Xero's JSON field names, which
xero-python models accept and tests validate against ../shared/xero/spec/xero_accounting.yaml).

Totals: the Xero invoice must total exactly ERPNext's grand total. Item lines go as they are (quantity,
unit amount, account code, item code); every document-level amount ERPNext adds or takes off — each tax
and charge row, the additional discount, the rounding adjustment — becomes its own line, and the invoice
is sent with ``LineAmountTypes: NoTax`` so Xero adds nothing on top. The sync checks Xero's ``Total``
after every write (:func:`total_matches`). Pure functions: no Frappe import at module level.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

DEFAULT_SALES_ACCOUNT = "200"  # Xero's default chart: Sales
DEFAULT_ADJUSTMENT_ACCOUNT = "260"  # Xero's default chart: Other Revenue (discounts, rounding, charges)


def money(value) -> Decimal:
	"""An amount rounded to cents (half up, as ERPNext rounds currency)."""
	return Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def contact(customer: dict, email: str | None = None, contact_id: str | None = None) -> dict:
	"""A Xero Contact for an ERPNext Customer (``name``, ``customer_name``, ``tax_id``).

	The Customer's name is the ContactNumber: it finds the contact again after a lost id or a
	re-install, so no contact is created twice."""
	out = {"Name": (customer.get("customer_name") or customer["name"])[:255], "ContactNumber": customer["name"][:50]}
	if email:
		out["EmailAddress"] = email[:255]
	if customer.get("tax_id"):
		out["TaxNumber"] = str(customer["tax_id"])[:50]
	if contact_id:
		out["ContactID"] = contact_id
	return out


def invoice(si: dict, items: list[dict], taxes: list[dict], contact_id: str, *, status: str = "AUTHORISED",
			account_codes: dict | None = None, item_codes: dict | None = None,
			adjustment_account: str = DEFAULT_ADJUSTMENT_ACCOUNT) -> dict:
	"""A Xero ACCREC Invoice for a submitted Sales Invoice.

	Args:
		si: the Sales Invoice fields ``name``, ``posting_date``, ``due_date``, ``currency``, ``po_no``,
			``discount_amount``, ``rounding_adjustment``, ``grand_total``, ``rounded_total``,
			``disable_rounded_total``, ``amended_from``.
		items: its item rows (``item_code``, ``item_name``, ``description``, ``qty``, ``rate``, ``amount``,
			``income_account``).
		taxes: its tax rows (``description``, ``account_head``, ``tax_amount_after_discount_amount``).
		contact_id: the Xero ContactID of its customer.
		status: ``AUTHORISED`` or ``DRAFT``.
		account_codes: ERPNext Income Account -> Xero account code (default :data:`DEFAULT_SALES_ACCOUNT`).
		item_codes: ERPNext Item -> Xero Item code (only mapped items carry an ItemCode).

	Returns:
		The Invoice dict; its lines sum to the amount ERPNext bills (rounded total when rounding is on).
	"""
	account_codes, item_codes = account_codes or {}, item_codes or {}
	lines = []
	for row in items:
		line = {"Description": (row.get("description") or row.get("item_name") or row["item_code"])[:4000],
				"Quantity": float(row.get("qty") or 0), "UnitAmount": float(money(row.get("rate"))),
				"LineAmount": float(money(row.get("amount"))),
				"AccountCode": account_codes.get(row.get("income_account")) or DEFAULT_SALES_ACCOUNT,
				"TaxType": "NONE"}
		if item_codes.get(row.get("item_code")):
			line["ItemCode"] = item_codes[row["item_code"]]
		lines.append(line)

	def adjustment(description: str, amount, account: str = adjustment_account):
		if money(amount) != 0:
			lines.append({"Description": description[:4000], "Quantity": 1.0, "UnitAmount": float(money(amount)),
						  "LineAmount": float(money(amount)), "AccountCode": account, "TaxType": "NONE"})

	for tax in taxes:
		adjustment(tax.get("description") or tax.get("account_head") or "Tax",
				   tax.get("tax_amount_after_discount_amount"),
				   account_codes.get(tax.get("account_head")) or adjustment_account)
	adjustment("Discount", -money(si.get("discount_amount")))
	if not si.get("disable_rounded_total"):
		adjustment("Rounding", si.get("rounding_adjustment"))
	out = {
		"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "InvoiceNumber": si["name"][:255],
		"Reference": (si.get("po_no") or (f"Amends {si['amended_from']}" if si.get("amended_from") else ""))[:255],
		"Date": str(si["posting_date"]), "DueDate": str(si.get("due_date") or si["posting_date"]),
		"CurrencyCode": si.get("currency"), "Status": status, "LineAmountTypes": "NoTax", "LineItems": lines,
	}
	if not out["Reference"]:
		out.pop("Reference")
	return out


def billed_total(si: dict) -> Decimal:
	"""What ERPNext bills: the rounded total when rounding is on, else the grand total."""
	if not si.get("disable_rounded_total") and si.get("rounded_total"):
		return money(si["rounded_total"])
	return money(si.get("grand_total"))


def total_matches(si: dict, xero_total) -> bool:
	"""True when Xero's ``Total`` equals what ERPNext bills, to the cent."""
	return money(xero_total) == billed_total(si)


def to_model(kind: str, data: dict):
	"""A xero-python model (``Contact`` or ``Invoice``) from a dict of this module (Xero field names).
	Dates are ``YYYY-MM-DD`` strings; the SDK serialises them as Xero expects."""
	import datetime

	from xero_python.accounting import Contact, CurrencyCode, Invoice, LineAmountTypes, LineItem

	if kind == "Contact":
		return Contact(contact_id=data.get("ContactID"), name=data.get("Name"), contact_number=data.get("ContactNumber"),
					   email_address=data.get("EmailAddress"), tax_number=data.get("TaxNumber"))

	def day(value):
		return datetime.date.fromisoformat(str(value)[:10]) if value else None

	lines = [LineItem(description=li.get("Description"), quantity=li.get("Quantity"), unit_amount=li.get("UnitAmount"),
					  line_amount=li.get("LineAmount"), account_code=li.get("AccountCode"), tax_type=li.get("TaxType"),
					  item_code=li.get("ItemCode")) for li in data.get("LineItems", [])]
	return Invoice(type=data["Type"], contact=Contact(contact_id=data["Contact"]["ContactID"]),
				   invoice_number=data.get("InvoiceNumber"), reference=data.get("Reference"), date=day(data.get("Date")),
				   due_date=day(data.get("DueDate")), status=data.get("Status"),
				   line_amount_types=LineAmountTypes(data.get("LineAmountTypes", "NoTax")),
				   currency_code=CurrencyCode(data["CurrencyCode"]) if data.get("CurrencyCode") else None,
				   line_items=lines)
