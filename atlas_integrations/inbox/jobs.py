"""The Smart Inbox's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`)
through the ``atlas_job_types`` hook. Plain data (it imports nothing), like ``gmail/jobs.py``."""

from __future__ import annotations

MAILBOX_ERASE = "Mailbox Erase"
MATCH_INDEX_REBUILD = "Match Index Rebuild"
#: the reference of a matching index rebuild: the index's doctype
MATCH_INDEX_REFERENCE = ("DocType", "Inbox Address")

JOB_TYPES: list[dict] = [
	{
		# an admin erases a mailbox's synced data (atlas_integrations/inbox/erase.py); one per mailbox
		"name": MAILBOX_ERASE,
		"method": "atlas_integrations.inbox.erase.run_erase_job",
		"queue": "long",
		"timeout": 60 * 60,
		"one_at_a_time": "reference",
		"max_attempts": 3,
		"progress_audience": "admins",  # an admin action: its progress goes to the admins who may read the mailbox
	},
	{
		# an admin rebuilds the Smart Inbox's matching index (atlas_integrations/inbox/match.py); one at a time
		"name": MATCH_INDEX_REBUILD,
		"method": "atlas_integrations.inbox.match.run_rebuild_job",
		"queue": "long",
		"timeout": 60 * 60,
		"one_at_a_time": "reference",
		"max_attempts": 3,
		"progress_audience": "admins",
	},
]
