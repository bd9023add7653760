# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class SyncJob(Document):
	"""Ledger row of one unit of sync work. Semantics live in :mod:`atlas_integrations.jobs`."""
