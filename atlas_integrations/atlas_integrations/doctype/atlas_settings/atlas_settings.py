# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

from frappe.model.document import Document


class AtlasSettings(Document):
	"""Workspace-wide configuration. Logic lives in :mod:`atlas_integrations.settings`."""

	@property
	def google_redirect_uri(self) -> str:
		from atlas_integrations.gmail.oauth import redirect_uri

		return redirect_uri()
