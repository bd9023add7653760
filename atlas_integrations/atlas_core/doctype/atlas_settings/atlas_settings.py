# Copyright (c) 2026, Atlas Integrations and contributors
# For license information, please see license.txt

import frappe
from frappe.model.document import Document


def provider_url(fieldname: str) -> str:
	"""The value of a read-only URL field a provider registers (hook ``atlas_settings_urls``:
	``{fieldname: "dotted.path.to.function"}``), e.g. the OAuth redirect URI to enter at Google. Keeps
	this Atlas Core doctype free of provider imports. Returns "" when no provider registered it."""
	paths = frappe.get_hooks("atlas_settings_urls") or {}
	return frappe.get_attr(paths[fieldname][-1])() if fieldname in paths else ""


class AtlasSettings(Document):
	"""Workspace-wide configuration. Logic lives in :mod:`atlas_integrations.settings`."""

	@property
	def google_redirect_uri(self) -> str:
		return provider_url("google_redirect_uri")

	@property
	def xero_redirect_uri(self) -> str:
		return provider_url("xero_redirect_uri")

	@property
	def microsoft_redirect_uri(self) -> str:
		return provider_url("microsoft_redirect_uri")
