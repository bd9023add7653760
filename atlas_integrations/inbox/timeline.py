"""Timelines show a mailbox's mail only to users who may read that mailbox.

Frappe's form load (``frappe.desk.form.load.getdoc`` / ``get_docinfo`` / ``get_communications``) reads a
document's Communications with raw SQL and checks no row: anyone who may read a Customer would see every
mail linked to it. These wrappers (``override_whitelisted_methods`` in hooks.py) call Frappe's own method
and then drop, from ``docinfo.communications`` and ``docinfo.automated_messages``, every mail row the
user may not read (:func:`atlas_integrations.permissions.readable_communications`, one query). What the
timeline shows of a row it keeps is safe as stored: mail subjects are HTML text (inbox/text.py) and bodies
are nh3-sanitized with remote images disabled (inbox/html.py).
"""

from __future__ import annotations

import frappe
from frappe.desk.form import load

from atlas_integrations import messages
from atlas_integrations.inbox.text import plain
from atlas_integrations.permissions import readable_communications


def _filter(rows: list | None) -> list:
	if not rows:
		return rows or []
	allowed = readable_communications([r.get("name") for r in rows])
	kept = [r for r in rows if r.get("name") in allowed]
	_mark_source(kept)
	return kept


def _mark_source(rows: list) -> None:
	"""Mail rows show where they came from (Gmail, Inbound Route) above their body, as text, and the
	sender's address as the message writes it when it is not a valid email address (``sender`` is then
	empty and Frappe's timeline would name no address)."""
	mail = [r.get("name") for r in rows if r.get("reference_doctype") == "Inbox Thread"]
	if not mail:
		return
	found = {name: (source, as_written) for name, source, as_written in frappe.db.sql(
		"select name, atlas_source, atlas_sender_as_written from `tabCommunication` where name in %(n)s",
		{"n": mail})}
	for row in rows:
		source, as_written = found.get(row.get("name")) or (None, None)
		if source:
			line = messages.text("via {0}", source)  # each value escaped once
			if as_written and not row.get("sender"):  # stored as HTML text (inbox/text.py): passed decoded
				line += " · " + messages.text("from {0} (address as written)", plain(as_written))
			row["content"] = f'<div class="atlas-mail-source text-muted small">{line}</div>{row.get("content") or ""}'



def _filter_docinfo() -> None:
	from atlas_integrations.overrides import readable_link_titles

	docinfo = frappe.response.get("docinfo")
	if docinfo:
		docinfo["communications"] = _filter(docinfo.get("communications"))
		docinfo["automated_messages"] = _filter(docinfo.get("automated_messages"))
	if frappe.response.get("_link_titles"):
		frappe.response["_link_titles"] = readable_link_titles(frappe.response["_link_titles"])


@frappe.whitelist()
def getdoc(doctype, name):
	"""Frappe's ``frappe.desk.form.load.getdoc`` with mail rows the user may not read removed from the
	timeline, and their titles from the linked titles (``_link_titles``). Same arguments, response and
	errors."""
	load.getdoc(doctype, name)
	_filter_docinfo()


@frappe.whitelist()
def get_docinfo(doc=None, doctype=None, name=None):
	"""Frappe's ``get_docinfo`` with unreadable mail rows removed (see :func:`getdoc`)."""
	load.get_docinfo(doc=doc, doctype=doctype, name=name)
	_filter_docinfo()


@frappe.whitelist()
def get_communications(doctype, name, start=0, limit=20):
	"""Frappe's ``get_communications`` (the timeline's "load more") with unreadable mail rows removed."""
	return _filter(load.get_communications(doctype, name, start=start, limit=limit))


@frappe.whitelist(methods=["POST", "PUT"])
def savedocs(doc, action):
	"""Frappe's ``frappe.desk.form.save.savedocs`` (a form's Save / Submit / Update): the saved document's
	timeline in the answer (``docinfo.communications``) without mail rows the user may not read. Frappe's
	own calls its ``load.get_docinfo`` directly, past the overridden one. Same arguments and answer."""
	from frappe.desk.form import save

	save.savedocs(doc, action)
	_filter_docinfo()


@frappe.whitelist(methods=["POST", "PUT"])
def cancel(doctype=None, name=None, workflow_state_fieldname=None, workflow_state=None):
	"""Frappe's ``frappe.desk.form.save.cancel`` with the answer's timeline filtered (see :func:`savedocs`)."""
	from frappe.desk.form import save

	save.cancel(doctype=doctype, name=name, workflow_state_fieldname=workflow_state_fieldname,
				workflow_state=workflow_state)
	_filter_docinfo()
