"""What the desk's boot carries for the app (``boot_session`` hook)."""

from __future__ import annotations

import frappe


def boot_session(bootinfo) -> None:
	"""``bootinfo.atlas_doctypes``: the app's doctypes a person opens (not child tables), so the desk can
	answer a route to one the user may not read with Frappe's "Not permitted" page
	(``public/js/atlas_routes.js``)."""
	bootinfo.atlas_doctypes = frappe.get_all("DocType", filters={"module": ["in", _modules()], "istable": 0},
											 pluck="name", order_by="name asc")


def _modules() -> list[str]:
	return [m for m in frappe.get_module_list("atlas_integrations")] or [""]
