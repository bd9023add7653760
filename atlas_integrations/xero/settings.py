"""What a Xero Connection says about the Company's books in Xero: the account / tax / item mapping and its
defaults read from the organisation (``GET /Accounts``, ``GET /TaxRates``), the start date for invoices
submitted before connecting, and the Sync Job counts shown on the form (the operator guide's integration
card).
"""

from __future__ import annotations

import frappe
from frappe.utils import getdate, now_datetime

from atlas_integrations import jobs, messages
from atlas_integrations.inbox.text import mail_text
from atlas_integrations.xero import ledger, oauth
from atlas_integrations.xero.client import accounting_api, session_for
from atlas_integrations.xero.jobs import XERO_JOB_TYPES

RECENT_JOBS = 10


def maps(company: str) -> dict:
	"""The mapping keywords of :func:`atlas_integrations.xero.mappers.line_items` for ``company``:
	``account_codes``, ``item_codes``, ``tax_types`` (dicts) and ``default_account``,
	``adjustment_account``, ``untaxed_type`` (Xero codes), from its Xero Connection."""
	conn = messages.get_doc(oauth.CONNECTION, company)
	out = {"account_codes": {r.erpnext_account: r.xero_account_code.strip() for r in conn.account_map},
		   "item_codes": {r.item_code: r.xero_item_code.strip() for r in conn.item_map},
		   "tax_types": {r.erpnext_account: r.xero_tax_type.strip() for r in conn.tax_map}}
	if conn.default_account_code:
		out["default_account"] = conn.default_account_code.strip()
	if conn.adjustment_account_code:
		out["adjustment_account"] = conn.adjustment_account_code.strip()
	if conn.untaxed_tax_type:
		out["untaxed_type"] = conn.untaxed_tax_type.strip()
	return out


def load_from_xero(company: str) -> dict:
	"""Read the organisation's active revenue Accounts and TaxRates (xero-python ``get_accounts`` /
	``get_tax_rates``), list them on the connection and fill the defaults that are empty: the first
	REVENUE account (Xero's default chart: 200 Sales), the first OTHERINCOME/REVENUE account after it for
	adjustments (260 Other Revenue), and a 0 % revenue TaxType for untaxed lines. Commits.

	Returns:
		``{"accounts": [{"code", "name", "type"}], "tax_rates": [{"tax_type", "name", "rate"}]}``.

	Raises:
		frappe.ValidationError: the Company has no connected organisation.
	"""
	conn = messages.get_doc(oauth.CONNECTION, company)
	session = session_for(company)
	accounts = [{"code": a.code, "name": a.name, "type": str(getattr(a.type, "value", a.type))}
				for a in (session.call("get_accounts", where='Status=="ACTIVE"').accounts or [])
				if a.code and str(getattr(a.type, "value", a.type)) in ("REVENUE", "SALES", "OTHERINCOME")]
	rates = [{"tax_type": r.tax_type, "name": r.name, "rate": float(r.effective_rate or 0)}
			 for r in (session.call("get_tax_rates").tax_rates or [])
			 if r.tax_type and str(getattr(r.status, "value", r.status) or "ACTIVE") == "ACTIVE"
			 and r.can_apply_to_revenue is not False]
	values = {"xero_accounts": mail_text("\n".join(f"{a['code']} {a['name']} ({a['type']})" for a in accounts)[:2000]),
			  "xero_tax_rates": mail_text("\n".join(f"{r['tax_type']} {r['name']} ({r['rate']:g} %)" for r in rates)[:2000])}
	revenue = [a for a in accounts if a["type"] in ("REVENUE", "SALES")]
	codes = {a["code"] for a in accounts}
	if revenue and (not conn.default_account_code or conn.default_account_code not in codes):
		values["default_account_code"] = revenue[0]["code"]
	other = [a for a in accounts if a["code"] != (values.get("default_account_code") or conn.default_account_code)]
	if other and (not conn.adjustment_account_code or conn.adjustment_account_code not in codes):
		values["adjustment_account_code"] = next((a["code"] for a in other if a["type"] == "OTHERINCOME"), other[0]["code"])
	zero = [r for r in rates if r["rate"] == 0]
	if zero and conn.untaxed_tax_type not in {r["tax_type"] for r in rates}:
		values["untaxed_tax_type"] = next((r["tax_type"] for r in zero if r["tax_type"] == "NONE"), zero[0]["tax_type"])
	frappe.db.set_value(oauth.CONNECTION, company, values)
	frappe.db.commit()
	return {"accounts": accounts, "tax_rates": rates}


def in_scope(company: str, posting_date) -> bool:
	"""True when a Sales Invoice of ``company`` posted on ``posting_date`` goes to Xero: the Company has a
	Xero organisation (connected, or revoked / in error: its jobs wait for the reconnect) and the date is
	not before the connection's "Push Invoices From"."""
	conn = frappe.db.get_value(oauth.CONNECTION, company, ["status", "sync_from", "tenant_id"], as_dict=True)
	if not conn or not conn.tenant_id or conn.status not in (oauth.CONNECTED, oauth.REVOKED, "error"):
		return False
	return not conn.sync_from or getdate(posting_date) >= getdate(conn.sync_from)


def refresh_counts(company: str) -> dict:
	"""Count the Company's Xero Sync Jobs (pending and processing count as pending) into the connection's
	``pending_jobs`` / ``succeeded_jobs`` / ``failed_jobs``; does not commit. Returns the counts."""
	rows = frappe.db.sql(
		f"""select status, count(*) from `tabSync Job` where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))})
		and company=%s group by status""", (*XERO_JOB_TYPES, company))
	by = dict(rows)
	counts = {"pending_jobs": int(by.get(jobs.PENDING, 0)) + int(by.get(jobs.PROCESSING, 0)),
			  "succeeded_jobs": int(by.get(jobs.SUCCEEDED, 0)), "failed_jobs": int(by.get(jobs.FAILED, 0))}
	if frappe.db.exists(oauth.CONNECTION, company):
		frappe.db.set_value(oauth.CONNECTION, company, {**counts, "counts_updated_at": now_datetime()},
							update_modified=False)
	return counts


def recent_jobs(company: str, limit: int = RECENT_JOBS) -> list[dict]:
	"""The Company's latest Xero Sync Jobs, newest first: ``name``, ``job_type``, ``reference_doctype``,
	``reference_name``, ``status``, ``attempts``, ``next_retry_at``, ``modified``, ``last_error`` (HTML text)."""
	return frappe.db.sql(
		f"""select name, job_type, reference_doctype, reference_name, status, attempts, next_retry_at, modified,
		left(last_error, 300) as last_error from `tabSync Job`
		where job_type in ({", ".join(["%s"] * len(XERO_JOB_TYPES))}) and company=%s
		order by modified desc limit %s""", (*XERO_JOB_TYPES, company, int(limit)), as_dict=True)


def after_connect(company: str) -> None:
	"""The organisation is linked (connect or reconnect): read its defaults, have a worker queue the
	pre-connection invoices when the admin asked for them (:func:`push_existing`), and resume the jobs a
	revoked connection paused. Run by the API after :func:`atlas_integrations.xero.oauth.complete` or
	:func:`~atlas_integrations.xero.oauth.choose` linked it. Commits."""
	load_organisation(company)
	try:
		load_from_xero(company)
	except Exception as exc:  # the connection stands; the admin can "Load from Xero" later
		frappe.db.rollback()
		frappe.db.set_value(oauth.CONNECTION, company, "last_error",
							mail_text(f"Accounts and TaxRates not read: {type(exc).__name__}"))
		frappe.db.commit()
	conn = frappe.db.get_value(oauth.CONNECTION, company, ["push_existing", "sync_from"], as_dict=True)
	if conn.push_existing and conn.sync_from:  # possibly thousands: queued by a worker, not in the callback
		frappe.enqueue("atlas_integrations.xero.push_existing.request", queue="long", company=company,
					   trigger="connect", job_id=f"atlas::xero-push-existing::{company}", deduplicate=True,
					   enqueue_after_commit=True)
	ledger.resume(company)
	frappe.db.commit()


def load_organisation(company: str) -> None:
	"""Short code and base currency of the linked organisation (xero-python ``get_organisations``); a
	failure is recorded as the connection's last error (the details follow on the next use). Commits."""
	tenant = frappe.db.get_value(oauth.CONNECTION, company, "tenant_id")
	try:
		orgs = accounting_api(company).get_organisations(tenant).organisations or []
	except Exception as exc:  # the connection stands; the details follow on the next use
		frappe.db.set_value(oauth.CONNECTION, company, "last_error", f"Organisation not read: {type(exc).__name__}")
		frappe.db.commit()
		return
	if orgs:
		currency = orgs[0].base_currency
		frappe.db.set_value(oauth.CONNECTION, company, {"short_code": mail_text(orgs[0].short_code),
													   "base_currency": str(getattr(currency, "value", currency))})
		frappe.db.commit()
