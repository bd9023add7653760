"""Deny by default for mail: every whitelisted method of the site is an entry point to mail.

The row rules of :mod:`atlas_integrations.permissions` hold wherever Frappe applies them (REST, ``getdoc``,
``frappe.get_list``). Many whitelisted methods of Frappe, ERPNext and other apps do not: they read with
``ignore_permissions=True``, ``frappe.get_all`` or raw SQL and take the doctype, the fields, the filters,
a chart definition or a file URL from the caller (link search with ``ignore_user_permissions``, chart
previews, group-by counts, ...). This module closes that class of hole in one place:

**A call whose arguments name mail** — a guarded doctype (:func:`guarded_doctypes`: the doctypes that hold
mail or its traces, registered by the ``atlas_mail_doctypes`` hook) by name or as a ``tab<DocType>``
table, the name of a mail row (a mailbox, a thread, a message of a mailbox, a send, a mail attachment),
the URL of a mail attachment, or a Dashboard Chart / Number Card / Report defined on a guarded doctype —
**through a method that is not known to apply the row rules is refused** with 403 before the method runs,
whatever app the method belongs to. The methods known to apply the rules are the explicit
:data:`ALLOWED` table (each with the reason it is safe) and the app's own API (``atlas_integrations.api.*``,
whose every method checks the row rules itself). REST (``/api/resource``, ``/api/v2/document``,
``/api/v2/doctype/<doctype>/count|meta``) applies the rules and is not an RPC call.

It runs as an ``auth_hooks`` entry (``frappe.auth.validate_auth``), i.e. after Frappe has resolved the
session cookie, API key/secret or OAuth bearer token, so every kind of caller is covered; server-script
APIs (``/api/method/<script api>``) and ``/api/v2/method/<doctype>/<method>`` are RPC calls like any
other. A refused call is logged (``frappe.logger("atlas_integrations.guard")``) with the method and the
kind of reference, never the arguments.

Methods reached *through another document* (a Customer's save response carries its timeline; a Contact's
last interaction) do not name mail at all: those are overridden where they are defined
(``override_whitelisted_methods`` in hooks.py; :mod:`atlas_integrations.inbox.timeline`).
"""

from __future__ import annotations

import json
import re

import frappe
from frappe import _

#: why each allowed method is safe for mail. "rules": it reads through ``frappe.get_list`` /
#: ``has_permission`` (the Atlas row rules apply); "meta": it reads doctype metadata or the user's own
#: settings, never rows; "atlas": replaced by an Atlas method that applies the rules (hooks.py
#: ``override_whitelisted_methods``); "own": writes only the caller's own rows and checks the document.
ALLOWED: dict[str, str] = {
	# ---- the desk's form and list (frappe/public/js/frappe/form, list, views)
	"frappe.desk.form.load.getdoc": "atlas",
	"frappe.desk.form.load.get_docinfo": "atlas",
	"frappe.desk.form.load.get_communications": "atlas",
	"frappe.desk.form.load.getdoctype": "meta",
	"frappe.desk.form.save.savedocs": "atlas",
	"frappe.desk.form.save.cancel": "atlas",
	"frappe.desk.form.utils.get_next": "rules",
	"frappe.desk.reportview.get": "rules",
	"frappe.desk.reportview.get_list": "rules",
	"frappe.desk.reportview.get_count": "rules",
	"frappe.desk.reportview.get_sidebar_stats": "rules",
	"frappe.desk.reportview.get_stats": "rules",
	"frappe.desk.reportview.get_filter_dashboard_data": "rules",
	"frappe.desk.reportview.export_query": "rules",
	"frappe.desk.reportview.delete_items": "rules",
	"frappe.desk.like.toggle_like": "atlas",
	"frappe.desk.form.utils.add_comment": "rules",
	"frappe.desk.form.document_follow.unfollow_document": "own",
	# assignments: the document's permission is checked, and a mail row's ToDo by permissions.validate_todo
	"frappe.desk.form.assign_to.add": "rules",
	"frappe.desk.form.assign_to.add_multiple": "rules",
	"frappe.desk.form.assign_to.remove": "rules",
	"frappe.desk.form.assign_to.remove_multiple": "rules",
	"frappe.desk.form.assign_to.close": "rules",
	# attaching checks write permission on the document (a named private file: permissions.claimed_private_file)
	"upload_file": "rules",
	# socket.io asks before a browser joins a document's / doctype's room (read permission checked)
	"frappe.realtime.can_subscribe_doc": "rules",
	"frappe.realtime.can_subscribe_doctype": "meta",
	"frappe.handler.upload_file": "rules",
	"frappe.desk.listview.get_list_settings": "meta",
	"frappe.desk.listview.set_list_settings": "meta",
	"frappe.desk.listview.get_group_by_count": "atlas",
	"frappe.desk.search.search_link": "atlas",
	"frappe.desk.search.search_widget": "atlas",
	"frappe.desk.search.get_link_title": "atlas",
	"frappe.desk.form.document_follow.follow_document": "atlas",
	"frappe.model.utils.user_settings.save": "meta",
	"frappe.model.utils.user_settings.get": "meta",
	"frappe.handler.run_doc_method": "atlas",
	"run_doc_method": "atlas",
	"frappe.client.validate_link": "rules",
	# ---- frappe.client: each reads through frappe.get_list or checks the document's permission
	"frappe.client.get": "rules",
	"frappe.client.get_list": "rules",
	"frappe.client.get_count": "rules",
	"frappe.client.get_value": "rules",
	"frappe.client.set_value": "rules",
	"frappe.client.insert": "rules",
	"frappe.client.save": "rules",
	"frappe.client.delete": "rules",
	"frappe.client.has_permission": "rules",
	"frappe.client.get_doc_permissions": "rules",
	# ---- printing checks print/read permission of the stored document
	"frappe.utils.print_format.download_pdf": "rules",
	"frappe.www.printview.get_html_and_style": "rules",
	# ---- workspaces: the layout and the widgets the user may see (no rows, only "has any record")
	"frappe.desk.desktop.get_desktop_page": "meta",
	# the Atlas Inbox chart counts threads through frappe.get_list
	"atlas_integrations.inbox.dashboard_chart_source.atlas_inbound_threads.atlas_inbound_threads.get": "rules",
	# ---- the workspace's number cards count with frappe.get_list
	"frappe.desk.doctype.number_card.number_card.get_result": "rules",
	"frappe.desk.doctype.number_card.number_card.get_percentage_difference": "rules",
}
#: prefixes of methods that check the row rules themselves (the app's own API)
ALLOWED_PREFIXES = ("atlas_integrations.api.",)
#: request paths of REST (not RPC): Frappe applies the row rules to documents and lists
_RPC = re.compile(r"^/api(?:/v[12])?/method/(?P<method>.+?)/?$")
_V2_DOCTYPE_METHOD = re.compile(r"^/api/v2/method/(?P<doctype>[^/]+)/(?P<method>[^/]+)/?$")
_UPLOAD = ("upload_file", "frappe.handler.upload_file")
#: bounds on what the guard reads of the arguments (a request can carry megabytes of JSON)
MAX_DEPTH = 12
MAX_STRINGS = 2000
MAX_NAME_LENGTH = 240

REFUSED = "This request names mail, which it cannot read"


def guarded_doctypes() -> tuple[str, ...]:
	"""Doctypes that hold mail or its traces, from every app's ``atlas_mail_doctypes`` hook (Atlas's:
	Communication, Communication Link, File, Inbox Thread, Outgoing Mail and the mailbox doctypes), and every
	registered mailbox type's doctype (:mod:`atlas_integrations.inbox.mailboxes`): a provider that registers a
	mailbox is guarded by default, also when it forgets the hook."""
	from atlas_integrations.inbox import mailboxes

	return tuple(dict.fromkeys([*(frappe.get_hooks("atlas_mail_doctypes") or ()), *mailboxes.doctypes()]))


def is_allowed(method: str) -> bool:
	"""True when ``method`` (a dotted whitelisted method, as requested or as overridden) is known to apply
	the Atlas row rules (:data:`ALLOWED`, :data:`ALLOWED_PREFIXES`)."""
	if not method:
		return False
	targets = {method, frappe.override_whitelisted_method(method)}
	return any(m in ALLOWED or m.startswith(ALLOWED_PREFIXES) for m in targets)


def requested_method(path: str, form_dict: dict) -> tuple[str | None, list[str]]:
	"""The whitelisted method an HTTP request calls, and the doctype it names in its path.

	Args:
		path: the request path, e.g. ``/api/method/frappe.desk.search.search_link`` or
			``/api/v2/method/Communication/get_contacts``.
		form_dict: the request's arguments (``cmd`` of the deprecated RPC form counts).

	Returns:
		``(method, path_doctypes)``: ``method`` is None for a request that is not an RPC call (REST,
		pages, files); for ``/api/v2/method/<doctype>/<method>`` it is the doctype module's function.
	"""
	if form_dict.get("cmd"):
		method = str(form_dict.get("cmd"))
		return (str(form_dict.get("method")) if method in _UPLOAD and form_dict.get("method") else method), []
	match = _V2_DOCTYPE_METHOD.match(path)
	if match:
		doctype = match.group("doctype")
		try:
			from frappe.modules.utils import load_doctype_module

			module = load_doctype_module(doctype).__name__
		except Exception:
			module = doctype
		return f"{module}.{match.group('method')}", [doctype]
	match = _RPC.match(path)
	if match:
		method = match.group("method")
		# upload_file calls the whitelisted ``method`` it is given, with the request's arguments
		return (str(form_dict.get("method")) if method in _UPLOAD and form_dict.get("method") else method), []
	return None, []


def _strings(value, out: list[str], depth: int = 0) -> None:
	"""Every string in ``value`` (dict keys included), JSON strings parsed, into ``out`` (bounded)."""
	if len(out) >= MAX_STRINGS or depth > MAX_DEPTH:
		return
	if isinstance(value, str):
		text = value.strip()
		if text[:1] in ("[", "{") and len(text) <= 1_000_000:
			try:
				parsed = json.loads(text)
			except ValueError:
				parsed = None
			if isinstance(parsed, (list, dict)):
				_strings(parsed, out, depth + 1)
				return
		out.append(text)
	elif isinstance(value, dict):
		for key, item in value.items():
			_strings(key, out, depth + 1)
			_strings(item, out, depth + 1)
	elif isinstance(value, (list, tuple)):
		for item in value:
			_strings(item, out, depth + 1)


def named_mail(values: list[str]) -> str | None:
	"""What in ``values`` (argument strings) names mail, or None.

	Returns:
		e.g. ``"doctype Communication"``, ``"table tabInbox Thread"``, ``"a Gmail Account"`` (a row's name),
		``"a mail attachment's URL"``, ``"a Dashboard Chart on Communication"``.
	"""
	guarded = guarded_doctypes()
	lowered = {d.lower(): d for d in guarded}
	candidates = set()
	for value in values:
		low = value.lower()
		if low in lowered:
			return f"doctype {lowered[low]}"
		if "tab" in low:
			for name_low, name in lowered.items():
				if f"tab{name_low}" in low:
					return f"table tab{name}"
		if 0 < len(value) <= MAX_NAME_LENGTH:
			candidates.add(value)
			if "/files/" in value:  # a URL: its path is what File rows store
				candidates.add("/" + value.split("/", 3)[-1] if value.startswith("http") else value)
	if not candidates:
		return None
	return _named_rows(sorted(candidates), guarded)


def _named_rows(candidates: list[str], guarded: tuple[str, ...]) -> str | None:
	"""One query: is any candidate the name of a mail row, a mail attachment's URL, or a chart / card /
	report defined on a guarded doctype?"""
	from atlas_integrations.permissions import mail_communication_sql, mail_file_sql

	parts, params = [], {"c": candidates, "g": list(guarded)}
	for doctype in guarded:
		if doctype == "Communication":
			parts.append(f"select 'a message of a mailbox' from `tabCommunication` c where c.name in %(c)s "
						 f"and {mail_communication_sql('c')}")
		elif doctype == "File":
			parts.append("select 'a mail attachment' from `tabFile` f where (f.name in %(c)s or f.file_url in %(c)s) "
						 f"and {mail_file_sql('f')}")
		elif doctype == "Communication Link":
			parts.append("select 'a timeline link of mail' from `tabCommunication Link` l join `tabCommunication` c "
						 f"on c.name = l.parent where l.name in %(c)s and {mail_communication_sql('c')}")
		elif frappe.db.table_exists(doctype):
			parts.append(f"select {frappe.db.escape('a ' + doctype)} from `tab{doctype}` where name in %(c)s")
	for doctype, field in (("Dashboard Chart", "document_type"), ("Number Card", "document_type"),
						   ("Report", "ref_doctype")):
		parts.append(f"select concat({frappe.db.escape('a ' + doctype + ' on ')}, `{field}`) from `tab{doctype}` "
					 f"where name in %(c)s and `{field}` in %(g)s")
	row = frappe.db.sql(" union all ".join(f"({p} limit 1)" for p in parts) + " limit 1", params)
	return row[0][0] if row else None


def check_request() -> None:
	"""``auth_hooks`` entry: refuse (403) an RPC call that names mail through a method not known to apply
	the row rules (see the module docstring).

	Raises:
		frappe.PermissionError: "This request names mail, which it cannot read".
	"""
	request = getattr(frappe.local, "request", None)
	if request is None:
		return
	form_dict = frappe.local.form_dict or {}
	method, path_doctypes = requested_method(request.path or "", form_dict)
	if method is None or is_allowed(method):
		return
	values: list[str] = list(path_doctypes)
	_strings({k: v for k, v in form_dict.items() if k != "cmd"}, values)
	_strings(dict(request.args or {}), values)
	reason = named_mail(values)
	if reason:
		frappe.logger("atlas_integrations.guard").error(
			{"refused": method, "names": reason, "user": frappe.session.user})
		frappe.throw(_(REFUSED), frappe.PermissionError, title=_("Not permitted"))
