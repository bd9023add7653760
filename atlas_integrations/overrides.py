"""Frappe's and ERPNext's whitelisted methods that read mail past the row rules, replaced at the root.

Each function here is registered in hooks.py ``override_whitelisted_methods`` under the original's dotted
path, takes the original's arguments and returns its answer shape; what changes is only that mail the
caller may not read (:mod:`atlas_integrations.permissions`) is never read for them:

* link search (``frappe.desk.search.search_link`` / ``search_widget``): for a guarded doctype no custom
  ``query``, no ``filter_fields`` and no ``ignore_user_permissions`` (which made Frappe read with
  ``ignore_permissions``): the list goes through ``frappe.get_list`` and its row rules;
* ``frappe.desk.listview.get_group_by_count``: Frappe counts "Assigned To" over a query built without
  any permission check; here the records counted are the caller's ``frappe.get_list``;
* ``frappe.desk.form.document_follow.follow_document``: only the caller follows, and only a document
  they may read (a follow mails its changes every day);
* ``run_doc_method``: for a guarded doctype the permission is checked on the stored row, not on the
  client's copy of it (``docs``), whose mailbox fields the client chooses;
* ERPNext ``erpnext.crm.doctype.utils.get_last_interaction``: the Contact / Lead must be readable and the
  last Communication / Issue is one the caller may read.

The timeline's own overrides (``getdoc``, ``get_docinfo``, ``savedocs``, ``cancel`` ...) are in
:mod:`atlas_integrations.inbox.timeline`.
"""

from __future__ import annotations

import frappe
from frappe import _

from atlas_integrations.guard import guarded_doctypes


def _guarded(doctype) -> bool:
	return isinstance(doctype, str) and doctype.strip().lower() in {d.lower() for d in guarded_doctypes()}


def _known(doctype) -> None:
	"""Refuse an unknown doctype with its name as text (Frappe's "DocType … not found" echoes it as markup).

	Raises:
		frappe.DoesNotExistError
	"""
	from atlas_integrations import messages

	if not isinstance(doctype, str) or not doctype or not frappe.db.exists("DocType", doctype):
		messages.throw("DocType {0} not found", doctype, exc=frappe.DoesNotExistError)


@frappe.whitelist()
def search_link(doctype: str, txt: str, query: str | None = None, filters=None, page_length: int = 10,
				searchfield: str | None = None, reference_doctype: str | None = None,
				ignore_user_permissions: bool = False) -> list[dict]:
	"""Frappe's ``search_link`` (a Link field's search); see :func:`search_widget` for what changes.
	Returns ``[{"value", "description", "label"?}]``."""
	_known(doctype)
	from frappe.desk import search

	if _guarded(doctype):
		query, ignore_user_permissions = _guarded_search(query)
	return search.search_link(doctype, txt, query=query, filters=filters, page_length=page_length,
							  searchfield=searchfield, reference_doctype=reference_doctype,
							  ignore_user_permissions=ignore_user_permissions)


@frappe.whitelist()
def search_widget(doctype: str, txt: str, query: str | None = None, searchfield: str | None = None,
				  start: int = 0, page_length: int = 10, filters=None, filter_fields=None, as_dict: bool = False,
				  reference_doctype: str | None = None, ignore_user_permissions: bool = False):
	"""Frappe's ``search_widget``. For a guarded doctype (mail): no custom ``query`` (a custom query reads
	with its own SQL), only the doctype's own search fields (``filter_fields`` dropped) and the row rules
	applied (``ignore_user_permissions`` dropped: Frappe then reads with ``ignore_permissions``).

	Returns:
		Frappe's rows (lists, or dicts with ``as_dict``).

	Raises:
		frappe.PermissionError: a custom ``query`` for a guarded doctype.
	"""
	_known(doctype)
	from frappe.desk import search

	if _guarded(doctype):
		query, ignore_user_permissions = _guarded_search(query)
		filter_fields = None
	return search.search_widget(doctype, txt, query=query, searchfield=searchfield, start=start,
								page_length=page_length, filters=filters, filter_fields=filter_fields, as_dict=as_dict,
								reference_doctype=reference_doctype, ignore_user_permissions=ignore_user_permissions)


@frappe.whitelist()
def get_link_title(doctype: str, docname: str) -> str | None:
	"""Frappe's ``get_link_title`` (the title a Link field shows): for a guarded doctype only of a row the
	caller may read (Frappe reads any row's title); otherwise the name as given. Returns the title or name."""
	_known(doctype)
	from frappe.desk import search

	if _guarded(doctype) and not (frappe.db.exists(doctype, docname)
								  and frappe.has_permission(doctype, "read", doc=docname)):
		return docname
	return search.get_link_title(doctype, docname)


def readable_link_titles(titles: dict) -> dict:
	"""``{"DocType::name": title}`` (a form's ``_link_titles``) without titles of guarded rows the caller
	may not read (Frappe fetches every linked row's title with ``frappe.db.get_value``)."""
	kept = {}
	for key, title in (titles or {}).items():
		doctype, _, name = str(key).partition("::")
		if _guarded(doctype) and not (frappe.db.exists(doctype, name) and frappe.has_permission(doctype, "read", doc=name)):
			continue
		kept[key] = title
	return kept


def clear_mail_link_titles(doc, method: str | None = None) -> None:
	"""``validate`` of documents with Dynamic Link rows (Contact, Address): a link to a mail row must be
	one the user may read, and its title (a thread's subject, a mailbox's name) is never copied into the
	row's ``link_title``, which every reader of the Contact would see; the name stands in.

	Raises:
		frappe.PermissionError: a link to a mail row the user may not read.
	"""
	from atlas_integrations import messages

	for link in doc.get("links") or []:
		if not _guarded(link.get("link_doctype")) or not link.get("link_name"):
			continue
		if not doc.flags.ignore_permissions and not frappe.has_permission(link.link_doctype, "read", doc=link.link_name):
			messages.throw("You cannot link {0} {1}", _(link.link_doctype), link.link_name, exc=frappe.PermissionError)
		link.link_title = link.link_name


def _guarded_search(query: str | None) -> tuple[None, bool]:
	if query:
		frappe.throw(_("Mail is searched without custom queries"), frappe.PermissionError)
	return None, False


@frappe.whitelist()
def get_group_by_count(doctype: str, current_filters: str, field: str) -> list[dict]:
	"""Frappe's list sidebar counts (``frappe.desk.listview.get_group_by_count``): ``[{"name", "count"}]``.

	For ``assigned_to`` Frappe counts open ToDos over every record matching the filters, read without a
	permission check; here the records are those ``frappe.get_list`` gives the caller (row rules
	applied), and only ToDos of ``doctype`` count. Other fields are Frappe's own (``frappe.get_list``).
	"""
	_known(doctype)
	from frappe.desk import listview

	if field != "assigned_to":
		return listview.get_group_by_count(doctype, current_filters, field)
	frappe.has_permission(doctype, "read", throw=True)
	records = frappe.get_list(doctype, filters=frappe.parse_json(current_filters) or [], fields=["name"],
							  limit_page_length=0, order_by="", run=0)
	return frappe.db.sql(
		f"""select t.allocated_to as name, count(*) as count from `tabToDo` t join `tabUser` u on u.name = t.allocated_to
		where t.status != 'Cancelled' and u.user_type = 'System User' and t.reference_type = %(doctype)s
		and t.reference_name in (select name from ({records}) atlas_records)
		group by t.allocated_to order by count desc limit 50""", {"doctype": doctype}, as_dict=True)


@frappe.whitelist()
def follow_document(doctype: str, doc_name: str, user: str | None = None):
	"""Frappe's ``follow_document``: the caller follows a document they may read (Frappe lets anyone make
	anyone follow anything, and a follow mails the document's changes).

	Returns:
		The Document Follow, or None (Frappe's answer).

	Raises:
		frappe.PermissionError: ``user`` is someone else, or the document is not readable.
	"""
	_known(doctype)
	from frappe.desk.form import document_follow

	user = user or frappe.session.user
	if user != frappe.session.user:
		frappe.throw(_("You can only follow documents yourself"), frappe.PermissionError)
	if not frappe.has_permission(doctype, "read", doc=doc_name, user=user):
		frappe.throw(_("You cannot follow a document you cannot read"), frappe.PermissionError)
	return document_follow.follow_document(doctype, doc_name, user)


@frappe.whitelist()
def toggle_like(doctype: str, name: str, add=False):
	"""Frappe's ``toggle_like`` (the list's and form's heart), for a document the caller may read (Frappe
	checks nothing: anyone could like, i.e. comment on and follow, any row).

	Raises:
		frappe.PermissionError: the document is not readable.
	"""
	_known(doctype)
	from frappe.desk import like

	if not frappe.has_permission(doctype, "read", doc=name):
		frappe.throw(_("You cannot like a document you cannot read"), frappe.PermissionError)
	return like.toggle_like(doctype, name, add=add)


@frappe.whitelist()
def run_doc_method(method: str, docs=None, dt: str | None = None, dn: str | None = None, arg=None, args=None):
	"""Frappe's ``run_doc_method`` (a form's button calling a controller method). For a guarded doctype
	the stored row must be readable by the caller: Frappe checks the client's copy (``docs``), whose
	mailbox fields the client chooses.

	Raises:
		frappe.PermissionError: the stored row is not readable (or does not exist).
	"""
	from frappe import handler

	doctype, name = dt, dn or dt
	if not dt and docs:
		parsed = frappe.parse_json(docs) or {}
		doctype, name = parsed.get("doctype"), parsed.get("name")
	if _guarded(doctype):
		if not name or not frappe.db.exists(doctype, name):
			frappe.throw(_("Save the document first"), frappe.PermissionError)
		frappe.get_doc(doctype, name).check_permission("read")
	return handler.run_doc_method(method, docs=docs, dt=dt, dn=dn, arg=arg, args=args)


@frappe.whitelist()
def get_last_interaction(contact: str | None = None, lead: str | None = None) -> dict | None:
	"""ERPNext's ``get_last_interaction`` (the call popup): the last received Communication of a Contact's
	links or of a Lead, and the last Issue of the Contact's Customer, as the caller may read them.

	ERPNext reads any Contact and every Communication linked to it by raw SQL (a Contact linked to an Inbox
	Thread returned that thread's mail); here the Contact / Lead is checked and the rows come through
	``frappe.get_list`` (row rules applied).

	Returns:
		``{"last_communication": {"name", "content"} | None, "last_issue": {"name"} | None}``, or None
		without a contact and a lead.

	Raises:
		frappe.PermissionError: the Contact or Lead is not readable.
	"""
	if not contact and not lead:
		return None
	last_communication, last_issue = None, None
	from atlas_integrations import messages

	if contact:
		doc = messages.get_doc("Contact", contact)
		doc.check_permission("read")
		links = [(link.link_doctype, link.link_name) for link in doc.links]
		customers = [name for dt, name in links if dt == "Customer"]
		if customers and frappe.has_permission("Issue", "read"):
			issues = frappe.get_list("Issue", filters={"customer": customers[-1]}, fields=["name", "subject", "customer"],
									 order_by="creation desc", limit_page_length=1)
			last_issue = issues[0] if issues else None
		if links and frappe.has_permission("Communication", "read"):
			or_filters = [["Communication", "reference_name", "=", name] for _, name in links]
			rows = frappe.get_list("Communication", fields=["name", "content", "reference_doctype", "reference_name"],
								   filters={"sent_or_received": "Received"}, or_filters=or_filters,
								   order_by="modified asc", limit_page_length=100)
			wanted = set(links)
			rows = [r for r in rows if (r.reference_doctype, r.reference_name) in wanted]
			last_communication = {"name": rows[0].name, "content": rows[0].content} if rows else None
	if lead:
		messages.get_doc("Lead", lead).check_permission("read")
		rows = [] if not frappe.has_permission("Communication", "read") else frappe.get_list("Communication", filters={"reference_doctype": "Lead", "reference_name": lead,
														 "sent_or_received": "Received"},
							   fields=["name", "content"], order_by="creation desc", limit_page_length=1)
		last_communication = rows[0] if rows else None
	return {"last_communication": last_communication, "last_issue": last_issue}
