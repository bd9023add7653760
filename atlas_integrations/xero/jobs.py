"""Xero's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`) through the
``atlas_job_types`` hook. Plain data (it imports nothing), like ``gmail/jobs.py``."""

from __future__ import annotations

XERO_INVOICE = "Xero Invoice"
XERO_CONTACT = "Xero Contact"
XERO_JOB_TYPES = (XERO_INVOICE, XERO_CONTACT)

JOB_TYPES: list[dict] = [
	{
		# one Sales Invoice (or return) to push or void; the rq job drains its Company's pending jobs in
		# batches of 50. Passing failures (timeouts, 5xx) back off 30 s, 60 s, ... and fail after 6 attempts;
		# waiting for a rate limit or a paused connection uses no attempt.
		"name": XERO_INVOICE,
		"method": "atlas_integrations.xero.sync.run_sync_job",
		"queue": "short",
		"timeout": 15 * 60,
		"one_at_a_time": "job",
		"max_attempts": 6,
	},
	{
		# one Customer whose name, email, address or tax id changed: its Xero Contact is updated
		"name": XERO_CONTACT,
		"method": "atlas_integrations.xero.sync.run_sync_job",
		"queue": "short",
		"timeout": 15 * 60,
		"one_at_a_time": "job",
		"max_attempts": 6,
	},
]
