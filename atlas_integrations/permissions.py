"""Atlas roles and who may see what: row-level rules for every doctype that holds mail.

Roles: **Atlas Owner** (everything, incl. workspace state), **Atlas Admin** (configure, connect shared
mailboxes, see every account), **Atlas Dispatcher** (works the inbox; sees their own personal mailbox and
the shared workspace mailboxes, never another user's personal mailbox).

A *mail row* is a document that belongs to a mailbox: every Inbox Thread; a Communication with an Atlas
mailbox, thread, or an Inbox Thread reference; a File attached to such a Communication or to an Inbox
Thread. For mail rows the rule is the mailbox's, for every permission type, and it **denies by default**
when the mailbox cannot be determined. Frappe's own emails and files (no Atlas mailbox) keep Frappe's
rules. Frappe semantics this module works with (frappe/permissions.py, frappe/model/db_query.py):

* ``has_permission`` hooks can only narrow role permissions: the first hook (apps in reverse order) that
  returns a non-None value decides, so returning ``False`` denies and ``None`` defers.
* ``permission_query_conditions`` of every app are ANDed.
* A DocShare overrides a controller's denial (and is ORed into list conditions), so no mail row may be
  shared with, or assigned to, a user who may not read its mailbox (:func:`validate_share`,
  :func:`validate_todo`).

This module imports no provider package: the mailbox doctype (Gmail Account) is read with SQL.
"""

from __future__ import annotations

import frappe

from atlas_integrations import messages

OWNER = "Atlas Owner"
ADMIN = "Atlas Admin"
DISPATCHER = "Atlas Dispatcher"
ROLES = (OWNER, ADMIN, DISPATCHER)
#: host roles that count as Atlas admins
ADMIN_ROLES = frozenset({OWNER, ADMIN, "System Manager"})

SHARED = "Shared workspace mailbox"
PERSONAL = "Personal"
MAILBOX_DOCTYPE = "Gmail Account"
#: doctypes whose rows can hold mail
MAIL_DOCTYPES = ("Inbox Thread", "Communication", "File", "Outgoing Mail")
#: every permission type a hook may be asked about
PTYPES = ("read", "select", "write", "create", "delete", "submit", "cancel", "amend", "print", "email",
		  "report", "import", "export", "share")

#: SQL: the Communication aliased ``c`` is mail (belongs to a mailbox)
MAIL_COMMUNICATION_SQL = ("(ifnull(c.`atlas_gmail_account`, '') != '' or ifnull(c.`atlas_inbound_route`, '') != ''"
						  " or ifnull(c.`atlas_inbox_thread`, '') != '' or c.`reference_doctype` = 'Inbox Thread')")
#: SQL: the File aliased ``f`` is a mail attachment (of a mail Communication or an Inbox Thread)
MAIL_FILE_SQL = ("(f.`attached_to_doctype` = 'Inbox Thread' or ifnull(f.`atlas_original_name`, '') != ''"
				 " or (f.`attached_to_doctype` = 'Communication' and exists (select 1 from `tabCommunication` c"
				 f" where c.`name` = f.`attached_to_name` and {MAIL_COMMUNICATION_SQL})))")

NOT_YOUR_MAILBOX = "You cannot use this mailbox"
OWNERSHIP_FIXED = "The mailbox of {0} {1} cannot be changed"


def is_admin(user: str | None = None) -> bool:
	"""True when ``user`` (default: session user) is Administrator or has Atlas Owner/Admin or System Manager."""
	user = user or frappe.session.user
	if user == "Administrator":
		return True
	return bool(ADMIN_ROLES.intersection(frappe.get_roles(user)))


def has_atlas_role(user: str | None = None) -> bool:
	"""True when ``user`` holds any Atlas role (or is an admin)."""
	user = user or frappe.session.user
	return is_admin(user) or DISPATCHER in frappe.get_roles(user)


def allowed_companies(user: str | None = None) -> list[str] | None:
	"""The Companies a user is restricted to by Frappe User Permissions (those applying to all doctypes or
	to Inbox Thread), or None when unrestricted. Administrator is never restricted (as in Frappe)."""
	user = user or frappe.session.user
	if user == "Administrator":
		return None
	from frappe.permissions import get_user_permissions

	rows = get_user_permissions(user).get("Company") or []
	names = sorted({r.get("doc") for r in rows if r.get("doc") and (
		not r.get("applicable_for") or r.get("applicable_for") == "Inbox Thread")})
	return names or None


def _company_condition(user: str, thread_table: str = "`tabInbox Thread`") -> str:
	"""SQL condition on an Inbox Thread table for the user's allowed Companies ("" when unrestricted).
	Strict for mail: a thread without a Company is not shown to a restricted user."""
	allowed = allowed_companies(user)
	if allowed is None:
		return ""
	return f"{thread_table}.`company` in ({', '.join(frappe.db.escape(c) for c in allowed)})"


def thread_company_allowed(thread: str | None, user: str | None = None) -> bool:
	"""True when ``user`` may see mail of ``thread`` by Company (always, when unrestricted)."""
	allowed = allowed_companies(user)
	if allowed is None:
		return True
	return bool(thread) and frappe.db.get_value("Inbox Thread", thread, "company") in allowed


def visible_account_condition(user: str | None = None) -> str:
	"""SQL condition on ``tabGmail Account`` limiting a non-admin to their own and (with an Atlas role)
	shared accounts ("" for admins)."""
	user = user or frappe.session.user
	if is_admin(user):
		return ""
	if not has_atlas_role(user):  # the shared mailboxes are the Atlas roles' workspace
		return "`tabGmail Account`.`user` = {user}".format(user=frappe.db.escape(user))
	return "(`tabGmail Account`.`user` = {user} or `tabGmail Account`.`account_type` = {shared})".format(
		user=frappe.db.escape(user), shared=frappe.db.escape(SHARED)
	)


def _visible_accounts_subquery(user: str) -> str:
	return f"select `name` from `tabGmail Account` where {visible_account_condition(user)}"


def can_see_account(account_type: str, account_user: str, user: str | None = None) -> bool:
	"""Row-level rule behind every hook: admins see all; users their own personal mailbox; holders of an
	Atlas role also the shared workspace mailboxes (someone with no Atlas role, e.g. a Sales User who
	may read Customers, never reads the workspace's mail)."""
	user = user or frappe.session.user
	return is_admin(user) or account_user == user or (account_type == SHARED and has_atlas_role(user))


ROUTE_DOCTYPE = "Inbound Route"


def can_read_mailbox(account: str | tuple | None, user: str | None = None) -> bool:
	"""True when ``user`` may read the mail of a mailbox: a Gmail Account name, or ``("Inbound Route",
	name)`` for a managed inbound route (a workspace mailbox: readable with an Atlas role).

	False for an empty or unknown mailbox (deny by default).
	"""
	user = user or frappe.session.user
	if not account:
		return False
	if isinstance(account, tuple):
		doctype, name = account
		return doctype == ROUTE_DOCTYPE and bool(name) and bool(frappe.db.exists(ROUTE_DOCTYPE, name)) and (
			is_admin(user) or has_atlas_role(user))
	row = frappe.db.get_value(MAILBOX_DOCTYPE, account, ["account_type", "user"], as_dict=True)
	if not row:
		return False
	return can_see_account(row.account_type, row.user, user)


def mailbox_readers(account: str | tuple | None) -> list[str]:
	"""Every enabled user who may read the mail of a mailbox (see :func:`can_read_mailbox`): admins
	(Administrator, Atlas Owner/Admin, System Manager), the mailbox's own user, and for a shared workspace
	mailbox or an inbound route the holders of an Atlas role. [] for an unknown mailbox."""
	if not account:
		return []
	if isinstance(account, tuple):
		shared, owner = account[0] == ROUTE_DOCTYPE and bool(frappe.db.exists(*account)), None
		if not shared:
			return []
	else:
		row = frappe.db.get_value(MAILBOX_DOCTYPE, account, ["account_type", "user"], as_dict=True)
		if not row:
			return []
		shared, owner = row.account_type == SHARED, row.user
	roles = [*ADMIN_ROLES, *([DISPATCHER] if shared else [])]
	users = set(frappe.get_all("Has Role", filters={"role": ["in", roles], "parenttype": "User"}, pluck="parent"))
	users.update({"Administrator", *([owner] if owner else [])})
	return sorted(frappe.get_all("User", filters={"name": ["in", list(users)], "enabled": 1}, pluck="name"))


# ------------------------------------------------------------------ which mailbox a row belongs to ---

def _thread_mailbox(thread: str | None):
	"""The mailbox of an Inbox Thread: its Gmail Account, or ``("Inbound Route", name)``; None if none."""
	if not thread:
		return None
	row = frappe.db.get_value("Inbox Thread", thread, ["gmail_account", "inbound_route"], as_dict=True)
	if not row:
		return None
	return row.gmail_account or ((ROUTE_DOCTYPE, row.inbound_route) if row.inbound_route else None)


def communication_mailbox(doc) -> tuple[bool, str | tuple | None]:
	"""``(is_mail_row, mailbox)`` of a Communication (a document or a dict of its fields)."""
	account = doc.get("atlas_gmail_account")
	route = doc.get("atlas_inbound_route")
	thread = doc.get("atlas_inbox_thread") or (
		doc.get("reference_name") if doc.get("reference_doctype") == "Inbox Thread" else None)
	if not (account or route or thread or doc.get("reference_doctype") == "Inbox Thread"):
		return False, None
	mailbox = account or ((ROUTE_DOCTYPE, route) if route else None)
	if not mailbox or (account and route):
		return True, None  # mail whose mailbox cannot be determined: deny
	if thread and _thread_mailbox(thread) != mailbox:
		return True, None  # inconsistent links: deny
	return True, mailbox


def file_mailbox(doc) -> tuple[bool, str | tuple | None]:
	"""``(is_mail_row, mailbox)`` of a File: follows the Communication or Inbox Thread it is attached to."""
	doctype, name = doc.get("attached_to_doctype"), doc.get("attached_to_name")
	if doctype == "Inbox Thread":
		return True, _thread_mailbox(name)
	if doctype == "Communication" and name:
		row = frappe.db.get_value(
			"Communication", name,
			["atlas_gmail_account", "atlas_inbound_route", "atlas_inbox_thread", "reference_doctype",
			 "reference_name"], as_dict=True)
		if row:
			return communication_mailbox(row)
	if doc.get("atlas_original_name"):
		return True, None  # an Atlas attachment that lost its message: deny
	return False, None


def mailbox_of(doc) -> tuple[bool, str | tuple | None]:
	"""``(is_mail_row, mailbox)`` of an Inbox Thread, Communication or File; the mailbox is a Gmail
	Account name or ``("Inbound Route", name)``."""
	if doc.doctype == "Inbox Thread":
		if doc.get("gmail_account") and doc.get("inbound_route"):
			return True, None
		return True, doc.get("gmail_account") or (
			(ROUTE_DOCTYPE, doc.get("inbound_route")) if doc.get("inbound_route") else None)
	if doc.doctype == "Communication":
		return communication_mailbox(doc)
	if doc.doctype == "File":
		return file_mailbox(doc)
	if doc.doctype == "Outgoing Mail":  # a send through Gmail (atlas_integrations/gmail/send.py)
		return True, doc.get("gmail_account")
	return False, None


def _mail_row_rule(doc, user: str | None) -> bool | None:
	"""False when ``doc`` is a mail row the user may not read; None (defer to Frappe) otherwise."""
	user = user or frappe.session.user
	is_mail, account = mailbox_of(doc)
	if not is_mail:
		return None
	if not account:
		return False  # deny by default, admins included: nothing to show for a row without a mailbox
	if not thread_company_allowed(_thread_of(doc), user):
		return False  # restricted to other Companies by User Permissions
	if is_admin(user):
		return None
	return None if can_read_mailbox(account, user) else False


def _thread_of(doc) -> str | None:
	"""The Inbox Thread a mail row belongs to."""
	if doc.doctype == "Inbox Thread":
		return doc.name
	if doc.doctype == "Communication":
		return doc.get("atlas_inbox_thread") or (
			doc.get("reference_name") if doc.get("reference_doctype") == "Inbox Thread" else None)
	if doc.doctype == "Outgoing Mail":
		return doc.get("inbox_thread")
	if doc.doctype == "File":
		if doc.get("attached_to_doctype") == "Inbox Thread":
			return doc.get("attached_to_name")
		if doc.get("attached_to_doctype") == "Communication" and doc.get("attached_to_name"):
			return frappe.db.get_value("Communication", doc.get("attached_to_name"), "atlas_inbox_thread")
	return None


# ----------------------------------------------------------------------------- has_permission hooks ---

def gmail_account_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for Gmail Account (returns False to deny; None defers to role permissions)."""
	user = user or frappe.session.user
	if not can_see_account(doc.account_type, doc.user, user):
		return False
	if ptype not in ("read", "select", "print", "email", "report", "export") and not is_admin(user):
		# dispatchers may edit only their own personal mailbox
		if not (doc.account_type == PERSONAL and doc.user == user):
			return False
	return None


def inbox_thread_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for Inbox Thread: follows the thread's mailbox; no mailbox → denied."""
	return _mail_row_rule(doc, user)


def communication_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for Communication: mail rows follow their mailbox (every ptype); others defer."""
	return _mail_row_rule(doc, user)


def outgoing_mail_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for Outgoing Mail: follows its mailbox, like the thread it answers."""
	return _mail_row_rule(doc, user)


def outgoing_mail_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Outgoing Mail: sends of the mailboxes the user can see."""
	user = user or frappe.session.user
	if is_admin(user):
		condition = "ifnull(`tabOutgoing Mail`.`gmail_account`, '') != ''"
	else:
		condition = f"`tabOutgoing Mail`.`gmail_account` in ({_visible_accounts_subquery(user)})"
	company = _company_condition(user)
	if company:
		condition += (" and exists (select 1 from `tabInbox Thread` where `tabInbox Thread`.name = "
					  f"`tabOutgoing Mail`.`inbox_thread` and {company})")
	return f"({condition})"


def file_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for File: attachments of mail follow their mailbox; other files defer.

	Creating or re-pointing a File row at a private file the user may not already read is refused
	(:func:`claimed_private_file`): Frappe serves ``/private/files/<name>`` to anyone who may read *any*
	File row with that URL, so a row made by naming the URL would hand over the bytes."""
	if ptype in ("create", "write"):
		url = claimed_private_file(doc)
		if url and not may_read_private_file(url, user):
			return False
	return _mail_row_rule(doc, user)


def _private_url(url: str) -> str | None:
	"""``/private/files/<name>`` of a URL or path naming a private file, else None."""
	from urllib.parse import unquote, urlsplit

	url = unquote((url or "").strip())
	if url.startswith(("http://", "https://")):
		url = urlsplit(url).path
	marker = "/private/files/"
	if marker not in url:
		return None
	return marker + url.split(marker, 1)[1].split("?", 1)[0]


def claimed_private_file(doc) -> str | None:
	"""The private file a File row (new, or with a changed URL) names by URL or by file name, instead of
	Frappe computing the URL from uploaded content; None when it names none.

	Frappe's ``File.before_insert`` reads the named file from disk and keeps its URL (also when the
	uploaded content duplicates another file's), so the URL a caller names is what the row will serve.
	Returns ``"/private/files/<name>"``."""
	if doc.get("is_folder"):
		return None
	url = _private_url(doc.get("file_url") or "")
	if not url and not doc.get("file_url") and not doc.get("content") and doc.get("file_name") and \
			int(doc.get("is_private") or 0):
		url = _private_url("/private/files/" + str(doc.get("file_name")))
	if not url:
		return None
	if not doc.is_new() and doc.name:
		stored = frappe.db.get_value("File", doc.name, "file_url")
		if stored and _private_url(stored) == url:
			return None
	return url


def may_read_private_file(url: str, user: str | None = None) -> bool:
	"""True when ``user`` may already read the private file at ``url`` ("/private/files/<name>"): through
	at least one File row with that URL that they may read. A private file no row names is readable by
	Administrator only (nothing else can serve it)."""
	user = user or frappe.session.user
	if user == "Administrator":
		return True
	from urllib.parse import quote

	rows = frappe.get_all("File", filters={"file_url": ["in", list({url, quote(url)})]}, pluck="name")
	return any(frappe.has_permission("File", "read", doc=frappe.get_doc("File", r), user=user) for r in rows)


# ------------------------------------------------------------------ permission_query_conditions hooks ---

def gmail_account_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Gmail Account."""
	return visible_account_condition(user)


def inbox_thread_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Inbox Thread: threads of the mailboxes the user can see;
	a thread without a mailbox is listed to no one."""
	user = user or frappe.session.user
	route = "ifnull(`tabInbox Thread`.`inbound_route`, '') != '' and ifnull(`tabInbox Thread`.`gmail_account`, '') = ''"
	if is_admin(user):
		condition = f"(ifnull(`tabInbox Thread`.`gmail_account`, '') != '' or ({route}))"
		company = _company_condition(user)
		return f"({condition} and {company})" if company else condition
	routes = f" or ({route})" if has_atlas_role(user) else ""
	condition = f"(`tabInbox Thread`.`gmail_account` in ({_visible_accounts_subquery(user)}){routes})"
	company = _company_condition(user)
	return f"({condition} and {company})" if company else condition


def _communication_condition(user: str, table: str = "`tabCommunication`") -> str:
	not_mail = (f"(ifnull({table}.`atlas_gmail_account`, '') = '' and ifnull({table}.`atlas_inbox_thread`, '') = ''"
				f" and ifnull({table}.`atlas_inbound_route`, '') = ''"
				f" and ifnull({table}.`reference_doctype`, '') != 'Inbox Thread')")
	route = (f"(ifnull({table}.`atlas_inbound_route`, '') != '' and ifnull({table}.`atlas_gmail_account`, '') = '')")
	if is_admin(user):
		visible = f"(ifnull({table}.`atlas_gmail_account`, '') != '' or {route})"
	else:
		visible = f"{table}.`atlas_gmail_account` in ({_visible_accounts_subquery(user)})"
		if has_atlas_role(user):
			visible = f"({visible} or {route})"
	company = _company_condition(user, "t")
	if company:
		visible = (f"({visible} and {table}.`atlas_inbox_thread` in (select t.`name` from `tabInbox Thread` t"
				   f" where {company}))")
	return f"({not_mail} or {visible})"


def readable_communications(names: list[str], user: str | None = None) -> set[str]:
	"""The subset of Communication ``names`` that ``user`` may read by the row-level rule (Frappe's own
	rows always; mail rows of mailboxes the user can see). One query."""
	names = [n for n in names if n]
	if not names:
		return set()
	condition = _communication_condition(user or frappe.session.user)
	return set(frappe.db.sql_list(
		f"select `name` from `tabCommunication` where `name` in %(names)s and {condition}", {"names": names}))


def communication_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Communication: Frappe's own rows untouched; mail rows only
	of visible mailboxes; mail rows without a mailbox listed to no one."""
	return _communication_condition(user or frappe.session.user)


def file_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for File: attachments of mail only of visible mailboxes."""
	user = user or frappe.session.user
	threads = f"select `name` from `tabInbox Thread` where {inbox_thread_query(user)}"
	comm = _communication_condition(user, "c")
	mail_comms = f"select c.`name` from `tabCommunication` c where {MAIL_COMMUNICATION_SQL}"
	return (
		"(case"
		" when `tabFile`.`attached_to_doctype` = 'Inbox Thread'"
		f"  then `tabFile`.`attached_to_name` in ({threads})"
		" when `tabFile`.`attached_to_doctype` = 'Communication'"
		f"  and `tabFile`.`attached_to_name` in ({mail_comms})"
		f"  then `tabFile`.`attached_to_name` in (select c.`name` from `tabCommunication` c where {comm})"
		" when ifnull(`tabFile`.`atlas_original_name`, '') != '' then 0"
		" else 1 end)"
	)


# ------------------------------------------------------------------------ ownership and sharing ---

def _changed(doc, fields: tuple[str, ...]) -> list[str]:
	before = doc.get_doc_before_save()
	if before is None:
		return []
	return [f for f in fields if (before.get(f) or None) != (doc.get(f) or None)]


def validate_gmail_account_ownership(doc) -> None:
	"""Gmail Account ``validate``: a non-admin cannot re-home a mailbox (``user``, ``account_type``) —
	checked against the stored row, not the submitted one.

	Raises:
		frappe.PermissionError: the change would hand the mailbox to someone (or make it shared).
	"""
	if doc.is_new() or doc.flags.ignore_permissions or is_admin():
		return
	changed = _changed(doc, ("user", "account_type"))
	if changed:
		messages.throw(OWNERSHIP_FIXED + " ({2})", doc.doctype, doc.name, ", ".join(changed), exc=frappe.PermissionError)


#: fields that tie a mail row to its mailbox; set by the sync, never changed through the ORM
MAILBOX_LINK_FIELDS = {
	"Inbox Thread": ("gmail_account", "inbound_route", "gmail_thread_id", "thread_key"),
	"Communication": ("atlas_gmail_account", "atlas_inbound_route", "atlas_inbox_thread", "atlas_gmail_key", "atlas_gmail_message_id",
					  "atlas_gmail_thread_id", "reference_doctype", "reference_name"),
	"File": ("attached_to_doctype", "attached_to_name", "attached_to_field", "atlas_original_name"),
	"Outgoing Mail": ("gmail_account", "inbox_thread", "user", "request_key", "message_id", "gmail_message_id"),
}


def validate_mail_row(doc, method: str | None = None) -> None:
	"""``validate`` doc event for Inbox Thread, Communication and File.

	* Existing mail rows: the mailbox links (:data:`MAILBOX_LINK_FIELDS`) are compared with the stored
	  row and cannot change, for anyone (the sync writes them directly).
	* New rows that claim a mailbox (a Communication in a thread, a File attached to mail) must name a
	  mailbox the user may read, consistently.

	Raises:
		frappe.PermissionError: an ownership change, or a row planted in a mailbox that is not the user's.
	"""
	if doc.flags.ignore_permissions:  # a code path of Atlas or Frappe, not a user's ORM save
		return
	if not doc.is_new():
		before = doc.get_doc_before_save()
		if before is not None and mailbox_of(before)[0]:
			changed = _changed(doc, MAILBOX_LINK_FIELDS[doc.doctype])
			if changed:
				messages.throw(OWNERSHIP_FIXED + " ({2})", doc.doctype, doc.name, ", ".join(changed),
							   exc=frappe.PermissionError)
			return
	is_mail, account = mailbox_of(doc)
	if is_mail and not (account and (is_admin() or can_read_mailbox(account))):
		frappe.throw(frappe._(NOT_YOUR_MAILBOX), frappe.PermissionError)


def _mail_row_for(doctype: str | None, name: str | None):
	if doctype not in MAIL_DOCTYPES or not name:
		return None
	try:
		doc = frappe.get_doc(doctype, name)
	except frappe.DoesNotExistError:
		return None
	return doc if mailbox_of(doc)[0] else None


def _may_read(doc, user: str | None) -> bool:
	is_mail, account = mailbox_of(doc)
	return bool(account) and (is_admin(user) or can_read_mailbox(account, user))


def validate_share(doc, method: str | None = None) -> None:
	"""DocShare ``validate``: a mail row is never shared with everyone, nor with a user who may not read
	its mailbox (a share would override the row-level rule).

	Raises:
		frappe.PermissionError: "… may not read this mailbox".
	"""
	row = _mail_row_for(doc.share_doctype, doc.share_name)
	if row is None:
		return
	if doc.everyone:
		frappe.throw(frappe._("Mail cannot be shared with everyone"), frappe.PermissionError)
	if doc.user and not _may_read(row, doc.user):
		messages.throw("{0} may not read this mailbox", doc.user, exc=frappe.PermissionError)


def validate_todo(doc, method: str | None = None) -> None:
	"""ToDo ``validate``: assigning a mail row (``assign_to`` shares it with the assignee) to a user who
	may not read its mailbox is refused.

	Raises:
		frappe.PermissionError: "… may not read this mailbox".
	"""
	row = _mail_row_for(doc.reference_type, doc.reference_name)
	if row is not None and doc.allocated_to and not _may_read(row, doc.allocated_to):
		messages.throw("{0} may not read this mailbox", doc.allocated_to, exc=frappe.PermissionError)
