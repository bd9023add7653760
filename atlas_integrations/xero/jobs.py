"""Xero's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`) through the
``atlas_job_types`` hook. Plain data (it imports nothing), like ``gmail/jobs.py``."""

from __future__ import annotations

XERO_INVOICE = "Xero Invoice"
XERO_CONTACT = "Xero Contact"
XERO_QUOTE = "Xero Quote"
XERO_QUOTE_SEND = "Xero Quote Send"
XERO_PULL = "Xero Pull"
XERO_PAYMENT = "Xero Payment"
XERO_JOB_TYPES = (XERO_INVOICE, XERO_CONTACT, XERO_QUOTE, XERO_QUOTE_SEND, XERO_PULL, XERO_PAYMENT)
#: "Push existing invoices" as one job whose parts are the Xero Invoice jobs it queued (``parent_job``); not
#: in XERO_JOB_TYPES: no drain claims it, the drain reports its progress as its parts finish
XERO_PUSH_EXISTING = "Xero Push Existing"


def _type(name: str, max_attempts: int = 6) -> dict:
	# every Xero job is run by its Company's drain (batches of 50, one drain per Company at a time);
	# passing failures (timeouts, 5xx) back off 30 s, 60 s, ... and fail after ``max_attempts``; waiting
	# for a rate limit or a paused connection uses no attempt
	return {"name": name, "method": "atlas_integrations.xero.drain.run_sync_job", "queue": "short",
			"timeout": 15 * 60, "one_at_a_time": "job", "max_attempts": max_attempts}


JOB_TYPES: list[dict] = [
	# one Sales Invoice (or return) to push or void
	_type(XERO_INVOICE),
	# one Customer whose name, email, address or tax id changed: its Xero Contact is updated
	_type(XERO_CONTACT),
	# one Quotation to push (a Xero Quote) or to delete / decline after a cancel
	_type(XERO_QUOTE),
	# one "Send quote": the Xero Quote's PDF emailed through the workspace Gmail mailbox, exactly once,
	# then the Xero Quote marked SENT
	_type(XERO_QUOTE_SEND),
	# one pull of a Company's invoices, credit notes and payments changed in Xero (If-Modified-Since), or of
	# the documents named by webhook events
	_type(XERO_PULL),
	# one Xero payment that could not be posted as a Payment Entry during a pull (kept with its payload:
	# Retry posts it again, never twice: the PaymentID is unique)
	_type(XERO_PAYMENT),
	# an admin's "Push existing invoices" (or "Also push invoices submitted before connecting"): queues the
	# Company's invoices as Xero Invoice jobs (its parts), then stays processing while the drains send them
	# and report its progress; finished by the drain when its last part finishes. One per Xero Connection
	# (the reference); the reaper runs it again if no drain touched it for its stale time (it counts again)
	{"name": XERO_PUSH_EXISTING, "method": "atlas_integrations.xero.push_existing.run", "queue": "long",
	 "timeout": 30 * 60, "one_at_a_time": "reference", "max_attempts": 6, "progress_audience": "admins"},
]
