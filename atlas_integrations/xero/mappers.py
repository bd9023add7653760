"""ERPNext documents as Xero Accounting API payloads (plain dicts in Xero's JSON field names, which
xero-python models accept and tests validate against ../shared/xero/spec/xero_accounting.yaml).

Totals: the Xero document must total exactly what ERPNext bills. Taxes whose account the Xero Connection
maps to a Xero TaxType travel as each line's TaxType and TaxAmount (``Exclusive``); every other
document-level amount (unmapped tax and charge rows, the additional discount, the rounding adjustment)
becomes its own line (:func:`line_items`). The sync checks Xero's ``Total`` after every write
(:func:`total_matches`). Returns become ACCRECCREDIT Credit Notes (:func:`credit_note`). Pure functions:
no Frappe import at module level.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

DEFAULT_SALES_ACCOUNT = "200"  # Xero's default chart: Sales
DEFAULT_ADJUSTMENT_ACCOUNT = "260"  # Xero's default chart: Other Revenue (discounts, rounding, charges)


def money(value) -> Decimal:
	"""An amount rounded to cents (half up, as ERPNext rounds currency)."""
	return Decimal(str(value or 0)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def contact(customer: dict, email: str | None = None, contact_id: str | None = None,
			address: dict | None = None) -> dict:
	"""A Xero Contact for an ERPNext Customer (``name``, ``customer_name``, ``tax_id``), with its primary
	Address (``address_line1``, ``address_line2``, ``city``, ``state``, ``pincode``, ``country``) as Xero's
	POBOX (postal, printed on invoices) address.

	The Customer's name is the ContactNumber: it finds the contact again after a lost id or a
	re-install, so no contact is created twice."""
	out = {"Name": (customer.get("customer_name") or customer["name"])[:255], "ContactNumber": customer["name"][:50]}
	if email:
		out["EmailAddress"] = email[:255]
	if customer.get("tax_id"):
		out["TaxNumber"] = str(customer["tax_id"])[:50]
	if contact_id:
		out["ContactID"] = contact_id
	if address:
		fields = {"AddressLine1": address.get("address_line1"), "AddressLine2": address.get("address_line2"),
				  "City": address.get("city"), "Region": address.get("state"), "PostalCode": address.get("pincode"),
				  "Country": address.get("country")}
		limits = {"PostalCode": 50, "Country": 50}  # the spec's maxLength (500 for the address lines, 255 others)
		out["Addresses"] = [{"AddressType": "POBOX", **{k: str(v)[:limits.get(k, 255)] for k, v in fields.items() if v}}]
	return out


class MappingError(ValueError):
	"""An ERPNext document cannot be expressed as a Xero document with the same total."""


def _item_tax_shares(items: list[dict], mapped: list[dict], conversion_rate: float) -> list[tuple[Decimal, str | None]]:
	"""Per item row: (its tax from the mapped tax rows in transaction currency, unrounded; the account head
	that gave it the most tax). ERPNext keeps each tax row's ``item_wise_tax_detail`` as ``{item_code:
	[rate, amount in company currency]}`` summed per item code, so rows of the same item share it by
	net amount."""
	per_key: dict[str, Decimal] = {}
	by_head: dict[str, dict[str, Decimal]] = {}
	rate = Decimal(str(conversion_rate or 1))
	for tax in mapped:
		detail = tax.get("item_wise_tax_detail") or {}
		if isinstance(detail, str):
			detail = json.loads(detail or "{}")
		for key, value in detail.items():
			amount = Decimal(str((value[1] if isinstance(value, (list, tuple)) else value) or 0)) / rate
			per_key[key] = per_key.get(key, Decimal(0)) + amount
			by_head.setdefault(key, {})
			by_head[key][tax["account_head"]] = by_head[key].get(tax["account_head"], Decimal(0)) + amount
	net_per_key: dict[str, Decimal] = {}
	for row in items:
		key = row.get("item_code") or row.get("item_name")
		net_per_key[key] = net_per_key.get(key, Decimal(0)) + Decimal(str(row.get("net_amount") or 0))
	out = []
	for row in items:
		key = row.get("item_code") or row.get("item_name")
		total, net = per_key.get(key, Decimal(0)), net_per_key.get(key) or Decimal(0)
		share = total * Decimal(str(row.get("net_amount") or 0)) / net if net else Decimal(0)
		heads = by_head.get(key) or {}
		head = max(heads, key=lambda h: abs(heads[h])) if any(heads.values()) else None
		out.append((share, head))
	return out


def line_items(si: dict, items: list[dict], taxes: list[dict], *, account_codes: dict | None = None,
			   item_codes: dict | None = None, tax_types: dict | None = None,
			   default_account: str = DEFAULT_SALES_ACCOUNT, adjustment_account: str = DEFAULT_ADJUSTMENT_ACCOUNT,
			   untaxed_type: str = "NONE") -> tuple[str, list[dict]]:
	"""Xero LineItems (and their ``LineAmountTypes``) whose total is exactly what ERPNext bills.

	Without a mapped tax (no tax row's account in ``tax_types``): ``NoTax``; item lines at rate x qty,
	every tax or charge row, the additional discount and the rounding as their own lines.

	With mapped taxes: ``Exclusive``; item lines at their net amount (what ERPNext posts to the income
	account: after the additional discount, without inclusive tax) carrying the mapped ``TaxType`` and
	their own ``TaxAmount`` from ``item_wise_tax_detail`` (so "on previous row", inclusive and actual taxes
	all arrive as ERPNext computed them; the cent left by rounding goes on the line with the most tax);
	unmapped tax rows as lines with ``untaxed_type``. UnitAmount has up to 4 decimals (send ``unitdp=4``).

	A return (negative amounts) gives the same lines with signs flipped: a Credit Note's lines.

	Args:
		account_codes: ERPNext Account (income account or tax row account head) -> Xero account code.
		item_codes: ERPNext Item -> Xero Item code.
		tax_types: ERPNext tax account head -> Xero TaxType.

	Raises:
		MappingError: the lines would miss ERPNext's total by more than rounding.
	"""
	account_codes, item_codes, tax_types = account_codes or {}, item_codes or {}, tax_types or {}
	sign = Decimal(-1) if money(si.get("grand_total")) < 0 or si.get("is_return") else Decimal(1)
	mapped = [t for t in taxes if tax_types.get(t.get("account_head"))]
	lines: list[dict] = []

	def extra(description: str, amount, account: str = adjustment_account, tax_type: str = "NONE"):
		amount = money(amount) * sign
		if amount != 0:
			lines.append({"Description": description[:4000], "Quantity": 1.0, "UnitAmount": float(amount),
						  "LineAmount": float(amount), "AccountCode": account, "TaxType": tax_type,
						  **({"TaxAmount": 0.0} if mapped else {})})

	for index, row in enumerate(items):
		qty = Decimal(str(row.get("qty") or 0)) * sign
		if mapped:
			amount = money(row.get("net_amount")) * sign
			unit = (amount / qty).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP) if qty else amount
		else:
			amount = money(row.get("amount")) * sign
			unit = money(row.get("rate")) * (1 if qty else sign)
		if not qty:
			qty = Decimal(1)
		line = {"Description": (row.get("description") or row.get("item_name") or row["item_code"])[:4000],
				"Quantity": float(qty), "UnitAmount": float(unit), "LineAmount": float(money(qty * unit)),
				"AccountCode": account_codes.get(row.get("income_account")) or default_account, "TaxType": "NONE"}
		if item_codes.get(row.get("item_code")):
			line["ItemCode"] = item_codes[row["item_code"]]
		lines.append(line)

	if mapped:
		shares = _item_tax_shares(items, mapped, float(si.get("conversion_rate") or 1))
		for line, (tax, head) in zip(lines, shares):
			line["TaxAmount"] = float(money(tax) * sign)
			line["TaxType"] = tax_types[head] if head else untaxed_type
		wanted = sum((money(t.get("tax_amount_after_discount_amount")) for t in mapped), Decimal(0)) * sign
		residue = wanted - sum((Decimal(str(li["TaxAmount"])) for li in lines), Decimal(0))
		if residue and lines:
			biggest = max(lines, key=lambda li: abs(li["TaxAmount"]))
			biggest["TaxAmount"] = float(money(Decimal(str(biggest["TaxAmount"])) + residue))
			if biggest["TaxType"] == untaxed_type:  # no item-wise detail: the tax is still the mapped one
				biggest["TaxType"] = tax_types[mapped[0]["account_head"]]
	for tax in taxes:
		if tax in mapped or (not mapped and tax.get("included_in_print_rate")):
			continue  # without mapping, an inclusive tax is inside the item amounts already
		extra(tax.get("description") or tax.get("account_head") or "Tax", tax.get("tax_amount_after_discount_amount"),
			  account_codes.get(tax.get("account_head")) or adjustment_account,
			  untaxed_type if mapped else "NONE")
	if not mapped:
		# the additional discount as ERPNext applied it: what the item amounts lose on the way to their net
		# amounts (on "Grand Total" part of it comes off the taxes, which are sent after discount), less the
		# inclusive taxes inside the item amounts
		if items and all(row.get("net_amount") is not None for row in items):
			discount = (sum((money(r.get("amount")) for r in items), Decimal(0))
						- sum((money(r.get("net_amount")) for r in items), Decimal(0))
						- sum((money(t.get("tax_amount_after_discount_amount")) for t in taxes
							   if t.get("included_in_print_rate")), Decimal(0)))
		else:
			discount = money(si.get("discount_amount"))
		extra("Discount", -discount)
	# what is left is rounding: ERPNext's rounding adjustment and the cents of 4-decimal unit amounts
	billed = billed_total(si) * sign
	residue = billed - sum((money(li["LineAmount"]) + money(li.get("TaxAmount", 0)) for li in lines), Decimal(0))
	expected = money(si.get("rounding_adjustment")) * sign if not si.get("disable_rounded_total") else Decimal(0)
	if abs(residue - expected) > Decimal("0.01") * (len(items) + 1):
		raise MappingError(f"the lines total {billed - residue} but ERPNext bills {billed}: "
						   "check the invoice's taxes and the Xero Connection's tax mapping")
	if residue:
		extra("Rounding", residue * sign, tax_type=untaxed_type if mapped else "NONE")
	return ("Exclusive" if mapped else "NoTax"), lines


def invoice(si: dict, items: list[dict], taxes: list[dict], contact_id: str, *, status: str = "AUTHORISED",
			amends_invoice: str | None = None, **maps) -> dict:
	"""A Xero ACCREC Invoice for a submitted Sales Invoice.

	Args:
		si: the Sales Invoice fields ``name``, ``posting_date``, ``due_date``, ``currency``, ``po_no``,
			``discount_amount``, ``rounding_adjustment``, ``grand_total``, ``rounded_total``,
			``disable_rounded_total``, ``amended_from``, ``conversion_rate``.
		items: its item rows (``item_code``, ``item_name``, ``description``, ``qty``, ``rate``, ``amount``,
			``net_amount``, ``income_account``).
		taxes: its tax rows (``description``, ``account_head``, ``tax_amount_after_discount_amount``,
			``item_wise_tax_detail``).
		contact_id: the Xero ContactID of its customer.
		status: ``AUTHORISED`` or ``DRAFT``.
		amends_invoice: the Xero InvoiceNumber of the (voided) invoice this amendment replaces.
		maps: :func:`line_items`'s mapping keywords.

	Returns:
		The Invoice dict (Xero field names); its total is what ERPNext bills.
	"""
	kind, lines = line_items(si, items, taxes, **maps)
	reference = si.get("po_no") or (f"Amends {amends_invoice or si['amended_from']}" if si.get("amended_from") else "")
	out = {
		"Type": "ACCREC", "Contact": {"ContactID": contact_id}, "InvoiceNumber": si["name"][:255],
		"Reference": reference[:255],
		"Date": str(si["posting_date"]), "DueDate": str(si.get("due_date") or si["posting_date"]),
		"CurrencyCode": si.get("currency"), "Status": status, "LineAmountTypes": kind, "LineItems": lines,
	}
	if not out["Reference"]:
		out.pop("Reference")
	return out


def credit_note(si: dict, items: list[dict], taxes: list[dict], contact_id: str, *, status: str = "AUTHORISED",
				**maps) -> dict:
	"""A Xero ACCRECCREDIT Credit Note for a submitted return (Sales Invoice with ``is_return``; its
	negative amounts become the credit note's positive lines). ``si`` also needs ``return_against``."""
	kind, lines = line_items(si, items, taxes, **maps)
	out = {"Type": "ACCRECCREDIT", "Contact": {"ContactID": contact_id}, "CreditNoteNumber": si["name"][:255],
		   "Date": str(si["posting_date"]), "CurrencyCode": si.get("currency"), "Status": status,
		   "LineAmountTypes": kind, "LineItems": lines}
	if si.get("return_against"):
		out["Reference"] = f"Return against {si['return_against']}"[:255]
	return out


def quote(q: dict, items: list[dict], taxes: list[dict], contact_id: str, *, expiry_days: int = 30, **maps) -> dict:
	"""A Xero Quote (DRAFT) for a submitted Quotation: the same lines and total check as an invoice
	(:func:`line_items`; Quotes spell the line amount types ``EXCLUSIVE`` / ``NOTAX``).

	Args:
		q: the Quotation fields ``name``, ``transaction_date``, ``valid_till``, ``currency``, ``title``,
			``discount_amount``, ``rounding_adjustment``, ``grand_total``, ``rounded_total``,
			``disable_rounded_total``, ``amended_from``, ``conversion_rate``.
		items, taxes: its rows, as for :func:`invoice` (``income_account`` filled in by the caller from the
			item's defaults).
		contact_id: the Xero ContactID of its customer.
		expiry_days: days after the date when the Quotation has no Valid Till.

	Returns:
		The Quote dict (Xero field names).

	Raises:
		MappingError: as :func:`line_items`.
	"""
	import datetime

	kind, lines = line_items(q, items, taxes, **maps)
	# Quotes take no ``unitdp``: Xero keeps 2 decimals of UnitAmount, so the cents that go are one line
	residue = Decimal(0)
	for li in lines:
		unit = money(li["UnitAmount"])
		amount = money(Decimal(str(li["Quantity"])) * unit)
		residue += money(li["LineAmount"]) - amount
		li["UnitAmount"], li["LineAmount"] = float(unit), float(amount)
	if residue:
		tax = {"TaxAmount": 0.0} if kind == "Exclusive" else {}
		lines.append({"Description": "Rounding", "Quantity": 1.0, "UnitAmount": float(residue), "LineAmount": float(residue),
					  "AccountCode": maps.get("adjustment_account") or DEFAULT_ADJUSTMENT_ACCOUNT,
					  "TaxType": (maps.get("untaxed_type") or "NONE") if kind == "Exclusive" else "NONE", **tax})
	date = datetime.date.fromisoformat(str(q["transaction_date"])[:10])
	expiry = q.get("valid_till") or (date + datetime.timedelta(days=expiry_days))
	out = {"Contact": {"ContactID": contact_id}, "QuoteNumber": q["name"][:255], "Date": str(date),
		   "ExpiryDate": str(expiry)[:10], "CurrencyCode": q.get("currency"), "Status": "DRAFT",
		   "LineAmountTypes": kind.upper(), "LineItems": lines, "Title": str(q.get("title") or q["name"])[:100]}
	if q.get("amended_from"):
		out["Reference"] = f"Amends {q['amended_from']}"[:255]
	return out


def billed_total(si: dict) -> Decimal:
	"""What ERPNext bills: the rounded total when rounding is on, else the grand total (negative for a
	return)."""
	if not si.get("disable_rounded_total") and si.get("rounded_total"):
		return money(si["rounded_total"])
	return money(si.get("grand_total"))


def total_matches(si: dict, xero_total) -> bool:
	"""True when Xero's ``Total`` equals what ERPNext bills, to the cent (a credit note's Total is the
	return's amount without its minus sign)."""
	return money(xero_total) == abs(billed_total(si))


def to_model(kind: str, data: dict):
	"""A xero-python model (``Contact``, ``Invoice``, ``CreditNote`` or ``Quote``) from a dict of this module (Xero field names).
	Dates are ``YYYY-MM-DD`` strings; the SDK serialises them as Xero expects."""
	import datetime

	from xero_python.accounting import Contact, CreditNote, CurrencyCode, Invoice, LineAmountTypes, LineItem

	if kind == "Contact":
		from xero_python.accounting import Address

		addresses = [Address(address_type=a["AddressType"], address_line1=a.get("AddressLine1"),
							 address_line2=a.get("AddressLine2"), city=a.get("City"), region=a.get("Region"),
							 postal_code=a.get("PostalCode"), country=a.get("Country"))
					 for a in data.get("Addresses") or []] or None
		return Contact(contact_id=data.get("ContactID"), name=data.get("Name"), contact_number=data.get("ContactNumber"),
					   email_address=data.get("EmailAddress"), tax_number=data.get("TaxNumber"), addresses=addresses)

	def day(value):
		return datetime.date.fromisoformat(str(value)[:10]) if value else None

	lines = [LineItem(description=li.get("Description"), quantity=li.get("Quantity"), unit_amount=li.get("UnitAmount"),
					  line_amount=li.get("LineAmount"), account_code=li.get("AccountCode"), tax_type=li.get("TaxType"),
					  item_code=li.get("ItemCode"), tax_amount=li.get("TaxAmount")) for li in data.get("LineItems", [])]
	if kind == "Quote":
		from xero_python.accounting import Quote, QuoteLineAmountTypes, QuoteStatusCodes

		return Quote(contact=Contact(contact_id=data["Contact"]["ContactID"]), quote_number=data.get("QuoteNumber"),
					 reference=data.get("Reference"), title=data.get("Title"), date=day(data.get("Date")),
					 expiry_date=day(data.get("ExpiryDate")), status=QuoteStatusCodes(data.get("Status", "DRAFT")),
					 line_amount_types=QuoteLineAmountTypes(data.get("LineAmountTypes", "NOTAX")),
					 currency_code=CurrencyCode(data["CurrencyCode"]) if data.get("CurrencyCode") else None,
					 line_items=lines)
	if kind == "CreditNote":
		return CreditNote(type=data["Type"], contact=Contact(contact_id=data["Contact"]["ContactID"]),
						  credit_note_number=data.get("CreditNoteNumber"), reference=data.get("Reference"),
						  date=day(data.get("Date")), status=data.get("Status"),
						  line_amount_types=LineAmountTypes(data.get("LineAmountTypes", "NoTax")),
						  currency_code=CurrencyCode(data["CurrencyCode"]) if data.get("CurrencyCode") else None,
						  line_items=lines)
	return Invoice(type=data["Type"], contact=Contact(contact_id=data["Contact"]["ContactID"]),
				   invoice_number=data.get("InvoiceNumber"), reference=data.get("Reference"), date=day(data.get("Date")),
				   due_date=day(data.get("DueDate")), status=data.get("Status"),
				   line_amount_types=LineAmountTypes(data.get("LineAmountTypes", "NoTax")),
				   currency_code=CurrencyCode(data["CurrencyCode"]) if data.get("CurrencyCode") else None,
				   line_items=lines)
