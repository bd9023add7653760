"""Gmail's Sync Job types, registered with the shared job ledger (:mod:`atlas_integrations.jobs`).

``hooks.py`` names :data:`JOB_TYPES` in the ``atlas_job_types`` hook; the ledger reads every app's
registrations with ``frappe.get_hooks("atlas_job_types")`` and knows nothing else about Gmail. This module
is plain data (it imports nothing), so it loads without a Frappe site; each entry is validated by
:meth:`atlas_integrations.jobs.JobType.from_registration` (keys and meaning documented there).
"""

from __future__ import annotations

#: One entry per job type: what rq runs (called with ``sync_job=<Sync Job name>``), on which queue, for
#: how long at most (seconds), what is one at a time, and how the ledger cleans up after a dead run.
JOB_TYPES: list[dict] = [
	{
		# a sync run of one Gmail Account (initial, incremental or full resync); drains follow-ups
		"name": "Gmail Sync",
		"method": "atlas_integrations.gmail.sync.run_sync_job",
		"queue": "long",
		"timeout": 6 * 60 * 60,
		"one_at_a_time": "reference",  # one rq job per Gmail Account
		"release": "atlas_integrations.gmail.sync.release_lock",  # the account's run lock
		"on_give_up": "atlas_integrations.gmail.sync.give_up",  # the account's health records the failure
		"max_attempts": 3,
		"progress_audience": "readers",  # the mailbox's readers see its sync's progress
	},
	{
		# desk label/read changes written back to Gmail, in order, one at a time per account
		"name": "Gmail Modify",
		"method": "atlas_integrations.gmail.labels.run_modify_job",
		"queue": "short",
		"timeout": 300,
		"one_at_a_time": "reference",
		"release": "atlas_integrations.gmail.labels.release_modify_lock",
		"on_give_up": "atlas_integrations.gmail.labels.release_pending_labels",  # later history may update
		"max_attempts": 3,
	},
]
