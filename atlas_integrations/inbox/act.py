"""Mail becomes work: a ToDo, Task, Issue (or another configured doctype) made from a thread, linked both
ways and assigned with Frappe's own assignment.

Linked both ways: the thread's ``reference_doctype`` / ``reference_name`` name the document, and every
message of the thread gets a Communication Link (timeline link) to it, so the document's timeline shows
the mail as Frappe shows any email. Assignment is Frappe's ``assign_to`` (ToDo + share + notification);
Inbox Threads are assigned by Frappe's Assignment Rules (:func:`apply_assignment_rules`). A thread never
gets two documents: creation happens under a row lock of the thread, and a thread that already has one
is only linked.
"""

from __future__ import annotations

import frappe
from frappe.utils import cstr, escape_html, now_datetime

from atlas_integrations import messages
from atlas_integrations.inbox import text as mailtext

#: doctypes work can be created as, and the field each pre-fills
BUILT_IN = ("ToDo", "Task", "Issue")
_PRIORITY = {  # triage priority -> the target's own priority values
	"ToDo": {"Low": "Low", "Normal": "Medium", "High": "High", "Urgent": "High"},
	"Task": {"Low": "Low", "Normal": "Medium", "High": "High", "Urgent": "Urgent"},
	"Issue": {"Low": "Low", "Normal": "Medium", "High": "High", "Urgent": "High"},  # ERPNext's Issue Priority
}
ALREADY_HAS_WORK = "This thread already has {0} {1}"


def allowed_doctypes() -> list[str]:
	"""ToDo, Task, Issue and the doctypes listed in Atlas Settings (``work_doctypes``, one per line) that
	exist on the site."""
	extra = cstr(frappe.db.get_single_value("Atlas Settings", "work_doctypes") or "")
	names = list(BUILT_IN) + [d.strip() for d in extra.splitlines() if d.strip()]
	return [d for d in dict.fromkeys(names) if frappe.db.exists("DocType", d)]


def _description(thread: frappe._dict, summary: str, body: str) -> str:
	"""HTML for a Text Editor field: the summary and the cleaned new text, escaped (mail is text)."""
	parts = [f"<p><strong>{escape_html(summary)}</strong></p>"] if summary else []
	if body:
		parts.append("<p>" + escape_html(body[:5000]).replace("\n", "<br>") + "</p>")
	parts.append(f"<p>From Inbox Thread {escape_html(thread.name)}</p>")
	return "".join(parts)


def build_values(doctype: str, thread: frappe._dict, *, subject: str, summary: str, body: str, priority: str,
				 party_type: str = "", party: str = "", contact: str = "", sender: str = "",
				 company: str = "") -> dict:
	"""The pre-filled values of a new ``doctype`` document made from ``thread``.

	``subject``, ``summary`` and ``body`` are exact text; they are stored escaped once, as HTML text: the
	subject / title (a Data field the desk shows as HTML) with :func:`~atlas_integrations.inbox.text.mail_text`,
	the description (a Text Editor field) as escaped paragraphs."""
	values: dict = {"doctype": doctype}
	meta = frappe.get_meta(doctype)
	title = mailtext.mail_text(subject or "(no subject)", 140)
	description = _description(thread, summary, body)
	if doctype == "ToDo":
		values.update(description=description, reference_type="Inbox Thread", reference_name=thread.name,
					  priority=_PRIORITY["ToDo"].get(priority, "Medium"))
		return values
	for field in ("subject", "title"):
		if meta.has_field(field):
			values[field] = title
			break
	if meta.has_field("description"):
		values["description"] = description
	if doctype == "Task":
		values["priority"] = _PRIORITY["Task"].get(priority, "Medium")
	elif doctype == "Issue":
		values["raised_by"] = sender or None
		wanted = _PRIORITY["Issue"].get(priority, "Medium")
		if frappe.db.exists("Issue Priority", wanted):
			values["priority"] = wanted
	if party_type and party:
		field = party_type.lower().replace(" ", "_")
		if meta.has_field(field):
			values[field] = party
	if contact and meta.has_field("contact"):
		values["contact"] = contact
	if company and meta.has_field("company"):
		values["company"] = company
	return values


def create_for_thread(thread_name: str, doctype: str, values: dict, assign_to: str = "",
					  message_names: list[str] | None = None) -> tuple[str, str, bool]:
	"""Create ``doctype`` from ``values`` for a thread, once.

	Args:
		thread_name: Inbox Thread name.
		doctype: the document type (one of :func:`allowed_doctypes`).
		values: its field values (see :func:`build_values`).
		assign_to: a user to assign the new document to ("" for none).
		message_names: the thread's Communications to link on the document's timeline (default: all).

	Returns:
		``(doctype, name, created)``; ``created`` is False when the thread already had a document (that
		one is returned and only linked).

	Raises:
		frappe.ValidationError: ``doctype`` is not allowed, or the document's own validation failed.
	"""
	if doctype not in allowed_doctypes():
		messages.throw("Documents of type {0} cannot be created from mail (see Atlas Settings)", doctype)
	# the row lock makes concurrent attempts (retries, two workers) wait and then find the first document
	row = frappe.db.sql("""select reference_doctype, reference_name from `tabInbox Thread` where name=%s
		for update""", thread_name, as_dict=True)
	if row and row[0].reference_name and frappe.db.exists(row[0].reference_doctype, row[0].reference_name):
		link_documents(thread_name, row[0].reference_doctype, row[0].reference_name, message_names)
		return row[0].reference_doctype, row[0].reference_name, False
	if doctype == "ToDo" and assign_to:  # a ToDo is itself the assignment
		values = {**values, "allocated_to": assign_to}
		assign_to = ""
	doc = frappe.get_doc(values)
	doc.flags.ignore_permissions = True  # the pipeline or the API decided; the worker runs as a defined user
	doc.insert()
	frappe.db.set_value("Inbox Thread", thread_name, {"reference_doctype": doctype, "reference_name": doc.name},
						update_modified=False)
	link_documents(thread_name, doctype, doc.name, message_names)
	if assign_to:
		assign(doctype, doc.name, assign_to, values.get("subject") or "")
	return doctype, doc.name, True


def link_documents(thread_name: str, doctype: str, name: str, message_names: list[str] | None = None) -> int:
	"""Timeline links from the thread's messages (or ``message_names``) to ``doctype`` ``name``, in bulk,
	skipping those that exist. Returns the number of links added."""
	names = message_names if message_names is not None else frappe.get_all(
		"Communication", filters={"atlas_inbox_thread": thread_name}, pluck="name")
	return add_timeline_links({n: {(doctype, name)} for n in names})


def add_timeline_links(targets: dict[str, set[tuple[str, str]]]) -> int:
	"""Write Communication Link rows (Frappe's timeline links) in bulk.

	Args:
		targets: Communication name -> ``{(link_doctype, link_name)}``.

	Returns:
		The number of rows inserted (existing links are kept, not duplicated).
	"""
	targets = {c: t for c, t in targets.items() if t}
	if not targets:
		return 0
	existing = {(r.parent, r.link_doctype, r.link_name) for r in frappe.db.sql(
		"""select parent, link_doctype, link_name from `tabCommunication Link`
		where parenttype='Communication' and parent in %(names)s""", {"names": list(targets)}, as_dict=True)}
	dates = dict(frappe.db.sql("select name, communication_date from `tabCommunication` where name in %(n)s",
							   {"n": list(targets)}))
	now, user = now_datetime(), frappe.session.user or "Administrator"
	rows = []
	for comm, links in targets.items():
		for dt, dn in sorted(links):
			if (comm, dt, dn) in existing or not dt or not dn:
				continue
			rows.append((frappe.generate_hash(length=10), now, now, user, user, comm, "Communication",
						 "timeline_links", 1, dt, dn, dates.get(comm)))
	if rows:
		frappe.db.bulk_insert(
			"Communication Link",
			["name", "creation", "modified", "owner", "modified_by", "parent", "parenttype", "parentfield",
			 "idx", "link_doctype", "link_name", "communication_date"], rows)
	return len(rows)


def remove_timeline_links(communications: list[str], doctype: str | None = None) -> int:
	"""Delete the timeline links of ``communications`` (to ``doctype`` only, when given)."""
	if not communications:
		return 0
	cond, params = "", {"names": communications}
	if doctype:
		cond, params["dt"] = " and link_doctype=%(dt)s", doctype
	frappe.db.sql(f"""delete from `tabCommunication Link` where parenttype='Communication'
		and parent in %(names)s{cond}""", params)
	return frappe.db.sql("select row_count()")[0][0]


def assign(doctype: str, name: str, user: str, description: str = "") -> None:
	"""Assign a document to ``user`` with Frappe's ``assign_to.add`` (refused for an Inbox Thread whose
	mailbox the user may not read: see :func:`atlas_integrations.permissions.validate_todo`).

	``description`` is HTML text (e.g. a subject as stored by :func:`build_values`): the ToDo's description
	and the assignment e-mail / notification show it as HTML, so it is passed as it is, never unescaped."""
	from frappe.desk.form import assign_to

	if frappe.db.exists("ToDo", {"reference_type": doctype, "reference_name": name, "allocated_to": user,
								 "status": "Open"}):
		return
	assign_to.add({"assign_to": [user], "doctype": doctype, "name": name,
				   "description": description or escape_html(name)}, ignore_permissions=True)


def apply_assignment_rules(thread_names: list[str]) -> int:
	"""Run Frappe's Assignment Rules (round robin, load balancing, based on field) for Inbox Threads that
	have no open assignment. Threads are written in bulk, so Frappe's ``on_update`` trigger never sees
	them: the rules are applied here explicitly (``assignment_rule.apply``). Returns the threads assigned."""
	from frappe.automation.doctype.assignment_rule.assignment_rule import apply

	if not thread_names or not frappe.db.exists("Assignment Rule", {"document_type": "Inbox Thread", "disabled": 0}):
		return 0
	assigned = set(frappe.get_all("ToDo", filters={"reference_type": "Inbox Thread", "status": "Open",
												   "reference_name": ["in", thread_names]}, pluck="reference_name"))
	count = 0
	for name in thread_names:
		if name in assigned:
			continue
		apply(doc=None, doctype="Inbox Thread", name=name)
		count += 1
	return count
