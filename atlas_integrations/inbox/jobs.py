"""The Smart Inbox's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`)
through the ``atlas_job_types`` hook. Plain data (it imports nothing), like ``gmail/jobs.py``."""

from __future__ import annotations

MAILBOX_ERASE = "Mailbox Erase"

JOB_TYPES: list[dict] = [
	{
		# an admin erases a mailbox's synced data (atlas_integrations/inbox/erase.py); one per mailbox
		"name": MAILBOX_ERASE,
		"method": "atlas_integrations.inbox.erase.run_erase_job",
		"queue": "long",
		"timeout": 60 * 60,
		"one_at_a_time": "reference",
		"max_attempts": 3,
	},
]
