"""Quotes of :class:`XeroTestServer` (:class:`_QuotesMixin`): ``GET /Quotes`` (``QuoteNumber``, ``Status``,
``ContactID``, ``DateFrom`` / ``DateTo``, ``ExpiryDateFrom`` / ``ExpiryDateTo``, ``order``, ``page``,
``If-Modified-Since``), ``GET /Quotes/{id}`` (JSON, or the quote's PDF with ``Accept: application/pdf``, as
xero-python's ``get_quote_as_pdf`` asks for it), ``GET /Quotes/{id}/pdf``, ``PUT`` / ``POST /Quotes`` and
``POST /Quotes/{id}`` (batches as for invoices, ``summarizeErrors``); plus the controls :meth:`quotes` and
:meth:`set_quote_status`.

Rules (Xero's Quotes docs): a Contact, a Date and line items are required; AccountCode / TaxType /
ItemCode must be known; totals are worked out exactly as for invoices (``LineAmountTypes`` EXCLUSIVE /
INCLUSIVE / NOTAX, Xero's quote spelling); ``QuoteNumber`` is unique among the tenant's quotes that are
not DELETED (``QU-0001``.. generated). Statuses: new quotes are DRAFT or SENT; DRAFT -> SENT / DELETED;
SENT -> ACCEPTED / DECLINED / DRAFT / DELETED; ACCEPTED -> INVOICED / SENT; DECLINED, INVOICED and DELETED
are final (nothing about them can change). Xero's docs list the statuses, not every allowed change: the
moves are this server's reading of the quote workflow in Xero (a sent quote can be un-sent, an accepted
one un-accepted)."""

from __future__ import annotations

import copy
import re
import urllib.parse
import uuid

from atlas_integrations.testing.xero.accounting import (
	API_PREFIX,
	_api_error,
	_bool_param,
	_date_fields,
	_lower,
	_ms_stamp,
	_parse_date,
	_validation_400,
)
from atlas_integrations.testing.xero.common import _failed_element, _json_resp, _problem

QUOTE_STATUSES = ("DRAFT", "SENT", "DECLINED", "ACCEPTED", "INVOICED", "DELETED")
QUOTE_CREATE_STATUSES = ("DRAFT", "SENT")
# current status -> the statuses it can move to
QUOTE_MOVES = {
	"DRAFT": ("SENT", "DELETED"),
	"SENT": ("ACCEPTED", "DECLINED", "DRAFT", "DELETED"),
	"ACCEPTED": ("INVOICED", "SENT"),
	"DECLINED": (),
	"INVOICED": (),
	"DELETED": (),
}
QUOTE_FINAL = ("DECLINED", "INVOICED", "DELETED")
# QuoteLineAmountTypes -> the invoice spelling the totals work with
QUOTE_LINE_AMOUNT_TYPES = {"EXCLUSIVE": "Exclusive", "INCLUSIVE": "Inclusive", "NOTAX": "NoTax"}
_QUOTE_READONLY = (
	"QuoteID",
	"SubTotal",
	"TotalTax",
	"Total",
	"TotalDiscount",
	"UpdatedDateUTC",
	"DateString",
	"ExpiryDateString",
)
_QUOTE_RE = re.compile(r"(?i)^/quotes/([^/]+?)(/pdf)?/?$")
NUMBER_TAKEN = "Quote # must be unique."


def _pdf_text(value: str) -> str:
	"""A PDF string literal's content: Latin-1 (others -> ``?``), with ``\\``, ``(`` and ``)`` escaped."""
	text = str(value).encode("latin-1", "replace").decode("latin-1")
	return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _pdf(lines: list[str]) -> bytes:
	"""A minimal valid PDF 1.4: one A4 page showing ``lines`` in Helvetica, an xref table with each
	object's byte offset and a trailer (what a PDF reader needs to open it)."""
	ops = ["BT", "/F1 11 Tf", "56 780 Td", "16 TL"] + [f"({_pdf_text(s)}) Tj T*" for s in lines] + ["ET"]
	stream = "\n".join(ops).encode("latin-1")
	objects = [
		b"<< /Type /Catalog /Pages 2 0 R >>",
		b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 5 0 R >> >> "
		b"/Contents 4 0 R >>",
		b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
		b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
	]
	out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets = []
	for number, body in enumerate(objects, 1):
		offsets.append(len(out))
		out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
	xref = len(out)
	out += f"xref\n0 {len(objects) + 1}\n".encode() + b"0000000000 65535 f \n"
	out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
	out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n".encode() + b"%%EOF\n"
	return bytes(out)


class _QuotesMixin:
	"""Quotes (state: the tenant book's ``quotes`` and ``quote_seq``; routed by
	``_AccountingMixin._dispatch``)."""

	# -- controls -------------------------------------------------------------------------------------
	def quotes(self, tenant: str) -> list[dict]:
		"""A tenant's quotes (every status) as the API renders them, in creation order."""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			return [self._render_quote(book, x) for x in book["quotes"].values()]

	def set_quote_status(self, tenant: str, quote_id: str, status: str) -> dict:
		"""A status change made in Xero (the customer accepted it online, a user marked it sent, ...), by
		the same moves as the API; no request is logged. Returns the quote as rendered.

		Raises:
			KeyError: unknown tenant or quote. ValueError: a status Xero would not move to.
		"""
		with self._lock:
			book = self._book(self._tenant_id(tenant))
			quote = book["quotes"][str(quote_id).lower()]
			status = str(status).upper()
			if status != quote["Status"]:
				if status not in QUOTE_MOVES.get(quote["Status"], ()):
					raise ValueError(f"a {quote['Status']} quote cannot become {status}")
				quote["Status"] = status
				quote["UpdatedDateUTC"] = _ms_stamp(self.now())
			return self._render_quote(book, quote)

	# -- rendering ------------------------------------------------------------------------------------
	def _render_quote(self, book, quote: dict) -> dict:
		"""A quote as Xero renders it (spec ``Quote``; GET_Quotes_QuoteID / PUT_Quotes examples)."""
		mode = QUOTE_LINE_AMOUNT_TYPES[quote["LineAmountTypes"]]
		totals = self._totals(book, dict(quote, LineAmountTypes=mode))
		found = book["contacts"].get(quote["Contact"]["ContactID"]) or {}
		contact = {"ContactID": quote["Contact"]["ContactID"], "Name": found.get("Name", ""),
				   "EmailAddress": found.get("EmailAddress") or ""}
		contact.update({k: found[k] for k in ("FirstName", "LastName") if found.get(k)})
		out = {
			"QuoteID": quote["QuoteID"],
			"QuoteNumber": quote["QuoteNumber"],
			"Reference": quote.get("Reference", ""),
			"Terms": quote.get("Terms", ""),
			"Contact": contact,
			"LineItems": totals["lines"],
		}
		out.update(_date_fields("Date", quote.get("Date")))
		out.update(_date_fields("ExpiryDate", quote.get("ExpiryDate")))
		out.update(
			{
				"Status": quote["Status"],
				"CurrencyRate": quote.get("CurrencyRate", 1.0),
				"CurrencyCode": quote["CurrencyCode"],
				"SubTotal": float(totals["SubTotal"]),
				"TotalTax": float(totals["TotalTax"]),
				"Total": float(totals["Total"]),
				"TotalDiscount": float(totals["TotalDiscount"]),
				"Title": quote.get("Title", ""),
				"Summary": quote.get("Summary", ""),
			}
		)
		if quote.get("BrandingThemeID"):
			out["BrandingThemeID"] = quote["BrandingThemeID"]
		out.update({"UpdatedDateUTC": quote["UpdatedDateUTC"], "LineAmountTypes": quote["LineAmountTypes"]})
		return out

	def _quote_pdf(self, book, quote: dict) -> tuple:
		"""``application/pdf``: a one-page PDF naming the quote's number, contact, lines and Total."""
		q = self._render_quote(book, quote)
		lines = [
			f"QUOTE {q['QuoteNumber']}",
			f"To: {q['Contact']['Name']}",
			f"Date: {q.get('DateString', '')[:10]}",
		]
		if q.get("ExpiryDateString"):
			lines.append(f"Expires: {q['ExpiryDateString'][:10]}")
		if q.get("Reference"):
			lines.append(f"Reference: {q['Reference']}")
		lines.append("")
		for li in q["LineItems"]:
			label = li.get("Description") or li.get("ItemCode") or ""
			lines.append(f"{label}  {li['Quantity']:g} x {li['UnitAmount']:.2f} = {li['LineAmount']:.2f}")
		lines += [
			"",
			f"Subtotal: {q['SubTotal']:.2f}",
			f"Total tax: {q['TotalTax']:.2f}",
			f"Total: {q['CurrencyCode']} {q['Total']:.2f}",
		]
		if q.get("Terms"):
			lines.append(f"Terms: {q['Terms']}")
		headers = [("Content-Type", "application/pdf"), ("Xero-Correlation-Id", str(uuid.uuid4()))]
		return 200, headers, _pdf(lines)

	# -- HTTP -----------------------------------------------------------------------------------------
	def _quotes_dispatch(self, tid, book, method, rel, q, headers, parsed) -> tuple:
		low = rel.lower()
		if low == "/quotes" and method == "GET":
			return self._quotes_get(tid, book, headers, q)
		if low == "/quotes" and method in ("PUT", "POST"):
			return self._quote_batch(tid, book, headers, q, parsed, None)
		one = _QUOTE_RE.match(rel)
		if one and method == "GET":
			quote = book["quotes"].get(urllib.parse.unquote(one.group(1)).lower())
			if quote is None:
				return _problem(404, "Resource not found")
			if one.group(2) or "application/pdf" in (headers.get("accept") or "").lower():
				return self._quote_pdf(book, quote)
			return _json_resp(200, self._envelope(tid, headers, "Quotes", [self._render_quote(book, quote)]))
		if one and not one.group(2) and method == "POST":
			return self._quote_batch(tid, book, headers, q, parsed, urllib.parse.unquote(one.group(1)))
		return _problem(405, f"The method {method} is not allowed for {API_PREFIX}{rel}.")

	def _quotes_get(self, tid, book, headers, q) -> tuple:
		records = [self._render_quote(book, x) for x in book["quotes"].values()]
		for param, field in (("QuoteNumber", "QuoteNumber"), ("Status", "Status")):
			if q.get(param.lower()):
				records = [r for r in records if _lower(r.get(field)) == _lower(q[param.lower()])]
		if q.get("contactid"):
			records = [r for r in records if r["Contact"]["ContactID"] == _lower(q["contactid"])]
		bounds = (("datefrom", "Date", 1), ("dateto", "Date", -1), ("expirydatefrom", "ExpiryDate", 1),
				  ("expirydateto", "ExpiryDate", -1))
		for param, field, sign in bounds:
			if q.get(param):
				edge = _parse_date(q[param])
				days = {x["QuoteID"]: x.get(field) for x in book["quotes"].values()}
				kept = {k for k, day in days.items() if day is not None and (day - edge) * sign >= 0}
				records = [r for r in records if r["QuoteID"] in kept]
		return self._listing(tid, headers, q, "Quotes", "QuoteID", records)

	def _quote_batch(self, tid, book, headers, q, parsed, path_id: str | None) -> tuple:
		"""``PUT`` / ``POST /Quotes`` and ``POST /Quotes/{id}``: create or update by QuoteID, Xero's batch
		semantics (``summarizeErrors=false`` -> 200 with the bad elements marked, else any bad element ->
		400 and nothing stored)."""
		if isinstance(parsed, dict) and isinstance(parsed.get("Quotes"), list):
			elements = parsed["Quotes"]
		elif isinstance(parsed, dict) and "Quotes" not in parsed:
			elements = [parsed]
		else:
			return _api_error(400, 14, "PostDataInvalidException", "Expected a Quotes collection")
		elements = [e if isinstance(e, dict) else {} for e in elements]
		if path_id is not None:
			elements = [dict(e, QuoteID=path_id) for e in elements]
		summarize = _bool_param(q, "summarizeErrors", True)
		scratch = {"quotes": dict(book["quotes"]), "quote_seq": book["quote_seq"]}
		scratch.update({k: book[k] for k in ("contacts", "invoices", "tax_rates", "accounts", "items")})
		results, bad = [], []
		for element in elements:
			record, errors = self._apply_quote(tid, scratch, element)
			if errors:
				failed = _failed_element(element, errors)
				results.append(failed)
				bad.append(failed)
			else:
				results.append(record)
		if bad and summarize:
			return _validation_400(bad)
		book["quotes"], book["quote_seq"] = scratch["quotes"], scratch["quote_seq"]
		return self._batch_answer(tid, headers, "Quotes", results, lambda r: self._render_quote(book, r), summarize)

	def _apply_quote(self, tid: str, scratch: dict, element: dict) -> tuple[dict | None, list]:
		quotes = scratch["quotes"]
		qid = _lower(element.get("QuoteID"))
		existing = quotes.get(qid) if qid else None
		if qid and existing is None:
			return None, [f"The quote with QuoteID {element.get('QuoteID')} could not be found."]
		changes = self._writable(element, _QUOTE_READONLY)
		errors = []
		if existing is None:
			status = str(changes.get("Status") or "DRAFT").upper()
			if status not in QUOTE_CREATE_STATUSES:
				errors.append(f"Quote status {status} is not valid for a new quote.")
			record = {"QuoteID": str(uuid.uuid4())}
		else:
			current = existing["Status"]
			status = str(changes.get("Status") or current).upper()
			if status not in QUOTE_STATUSES:
				errors.append(f"Quote status {status} is not valid.")
			elif current in QUOTE_FINAL:
				errors.append(f"This quote cannot be edited as it is {current.lower()}.")
			elif status != current and status not in QUOTE_MOVES[current]:
				errors.append(f"A quote in {current} status cannot be changed to {status}.")
			if errors:
				return None, errors
			record = copy.deepcopy(existing)
		if existing is None or "Contact" in changes:
			contact = self._invoice_contact(scratch, changes.get("Contact"), errors)
			if contact is not None:
				record["Contact"] = {"ContactID": contact["ContactID"]}
		mode = str(changes.get("LineAmountTypes") or record.get("LineAmountTypes") or "EXCLUSIVE").upper()
		if mode not in QUOTE_LINE_AMOUNT_TYPES:
			errors.append(f"LineAmountTypes {changes.get('LineAmountTypes')} is not valid.")
		for field in ("Date", "ExpiryDate"):
			if field in changes:
				try:
					record[field] = _parse_date(changes[field])
				except (ValueError, TypeError):
					errors.append(f"{field} {changes[field]} is not a valid date.")
		if record.get("Date") is None and not any(m.startswith("Date ") for m in errors):
			errors.append("A Date must be specified for this quote.")
		for field in ("QuoteNumber", "Reference", "Terms", "Title", "Summary", "CurrencyCode", "CurrencyRate",
					  "BrandingThemeID", "LineItems"):
			if field in changes:
				record[field] = changes[field]
		record.update({"Status": status, "LineAmountTypes": mode})
		if status not in QUOTE_FINAL:  # a move to DELETED / DECLINED / INVOICED keeps the lines as they are
			probe = dict(record, LineAmountTypes=QUOTE_LINE_AMOUNT_TYPES.get(mode, "Exclusive"), DueDate=None,
						 Status="DRAFT")
			errors += self._check_invoice_fields(scratch, probe, record["QuoteID"], "quotes")
		number = record.get("QuoteNumber")
		if number and self._quote_number_taken(quotes, number, record["QuoteID"]):
			errors.append(NUMBER_TAKEN)
		if errors:
			return None, errors
		while not record.get("QuoteNumber"):
			scratch["quote_seq"] += 1
			candidate = f"QU-{scratch['quote_seq']:04d}"
			if not self._quote_number_taken(quotes, candidate, record["QuoteID"]):
				record["QuoteNumber"] = candidate
		record["CurrencyCode"] = record.get("CurrencyCode") or self._tenants[tid]["BaseCurrency"]
		record.setdefault("CurrencyRate", 1.0)
		for field in ("Reference", "Terms", "Title", "Summary"):
			record.setdefault(field, "")
		self._fill_from_items(scratch, record)
		self._stamp_lines(record)
		record["UpdatedDateUTC"] = _ms_stamp(self.now())
		quotes[record["QuoteID"]] = record
		return record, []

	@staticmethod
	def _quote_number_taken(quotes: dict, number: str, own_id: str) -> bool:
		"""Is ``number`` used by another quote that is not DELETED (case-insensitive)?"""
		return any(
			x["QuoteID"] != own_id
			and x["Status"] != "DELETED"
			and _lower(x.get("QuoteNumber")) == _lower(number)
			for x in quotes.values()
		)
