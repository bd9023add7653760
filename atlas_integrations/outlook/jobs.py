"""Outlook's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`) through
the ``atlas_job_types`` hook. Plain data (it imports nothing); each entry is validated by
:meth:`atlas_integrations.jobs.JobType.from_registration` (keys and meaning documented there).
"""

from __future__ import annotations

JOB_TYPES: list[dict] = [
	{
		# a sync run of one Outlook Account: a delta round per followed folder; drains follow-ups
		"name": "Outlook Sync",
		"method": "atlas_integrations.outlook.sync.run_sync_job",
		"queue": "long",
		"timeout": 6 * 60 * 60,
		"one_at_a_time": "reference",  # one rq job per Outlook Account
		"release": "atlas_integrations.outlook.sync.release_lock",  # the account's run lock
		"on_give_up": "atlas_integrations.outlook.sync.give_up",  # the account's health records the failure
		"max_attempts": 3,
		"progress_audience": "readers",  # the mailbox's readers see its sync's progress
	},
	{
		# desk read / tag / archive changes written back to Graph, in order, one at a time per mailbox
		"name": "Outlook Modify",
		"method": "atlas_integrations.outlook.state.run_modify_job",
		"queue": "short",
		"timeout": 300,
		"one_at_a_time": "reference",
		"release": "atlas_integrations.outlook.state.release_lock",
		"on_give_up": "atlas_integrations.outlook.state.release_pending",  # later delta data may update them
		"max_attempts": 3,
	},
]
