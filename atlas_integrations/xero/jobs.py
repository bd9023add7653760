"""Xero's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`) through the
``atlas_job_types`` hook. Plain data (it imports nothing), like ``gmail/jobs.py``."""

from __future__ import annotations

XERO_INVOICE = "Xero Invoice"

JOB_TYPES: list[dict] = [
	{
		# one Sales Invoice to push or void; the rq job drains its Company's pending jobs in batches of 50
		"name": XERO_INVOICE,
		"method": "atlas_integrations.xero.sync.run_sync_job",
		"queue": "short",
		"timeout": 15 * 60,
		"one_at_a_time": "job",
		"max_attempts": 3,
	},
]
