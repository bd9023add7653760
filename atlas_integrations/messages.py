"""Server messages that name what a caller, a URL, mail or a provider sent: escaped here, once.

The desk shows the text of ``frappe.throw`` / ``frappe.msgprint`` as HTML (message dialogs, alerts, the
form's error banner). A message that echoes a value it did not write itself — a document name or a view
from the URL, an address, a label, a provider's words — would let that value become markup (a link in a
mail carrying ``?view=<img src=x onerror=…>`` ran script in an admin's desk). So every such message is
built by :func:`text`: the translated template is the app's own; every value is HTML-escaped
(``frappe.utils.escape_html``) exactly once. A value stored as HTML text (mail-derived fields,
:mod:`atlas_integrations.inbox.text`) is passed decoded (``plain``), so it is not escaped twice.
"""

from __future__ import annotations

import frappe
from frappe import _
from frappe.utils import cstr, escape_html


def text(template: str, *values) -> str:
	"""``_(template)`` with each ``{0}``, ``{1}`` … replaced by the HTML-escaped text of ``values``."""
	return _(template).format(*(escape_html(cstr(v)) for v in values))


def throw(template: str, *values, exc=frappe.ValidationError, title: str | None = None) -> None:
	"""``frappe.throw`` of :func:`text` (``template`` with escaped ``values``).

	Raises:
		``exc`` (default ``frappe.ValidationError``).
	"""
	frappe.throw(text(template, *values), exc, title=_(title) if title else None)


def get_doc(doctype: str, name, *, for_update: bool = False):
	"""``frappe.get_doc(doctype, name)``, with a not-found message that shows ``name`` as text (Frappe's own
	"{doctype} {name} not found" echoes the name as markup).

	Raises:
		frappe.DoesNotExistError: "Inbox Thread … not found".
	"""
	if not name or not isinstance(name, (str, int)) or not frappe.db.exists(doctype, name):
		throw("{0} {1} not found", _(doctype), name, exc=frappe.DoesNotExistError)
	return frappe.get_doc(doctype, name, for_update=for_update)
