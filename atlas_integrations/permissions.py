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

This module imports no provider package: a mailbox is ``(mailbox doctype, name)`` of a type registered in
the ``atlas_mailbox_types`` hook (:mod:`atlas_integrations.inbox.mailboxes`), read with SQL.
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
#: doctypes whose rows can hold mail
MAIL_DOCTYPES = ("Inbox Thread", "Communication", "File", "Outgoing Mail")
#: every permission type a hook may be asked about
PTYPES = ("read", "select", "write", "create", "delete", "submit", "cancel", "amend", "print", "email",
		  "report", "import", "export", "share")



def mail_communication_sql(alias: str = "c") -> str:
	"""SQL: the Communication aliased ``alias`` is mail (names a registered mailbox, an Inbox Thread, or
	has an Inbox Thread reference)."""
	from atlas_integrations.inbox import mailboxes

	return (f"({mailboxes.any_column_sql(alias, 'communication')} or ifnull({alias}.`atlas_inbox_thread`, '') != ''"
			f" or {alias}.`reference_doctype` = 'Inbox Thread')")


def mail_file_sql(alias: str = "f") -> str:
	"""SQL: the File aliased ``alias`` is a mail attachment (of a mail Communication or an Inbox Thread)."""
	return (f"({alias}.`attached_to_doctype` = 'Inbox Thread' or ifnull({alias}.`atlas_original_name`, '') != ''"
			f" or ({alias}.`attached_to_doctype` = 'Communication' and exists (select 1 from `tabCommunication` c"
			f" where c.`name` = {alias}.`attached_to_name` and {mail_communication_sql('c')})))")


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


def visible_condition(mailbox_type, user: str | None = None, table: str | None = None) -> str:
	"""SQL condition on the table of a mailbox type (``mailbox_type``: a registered
	:class:`atlas_integrations.inbox.mailboxes.MailboxType`) limiting ``user`` to the mailboxes they may read:
	everything for admins (""), their own personal mailboxes, and with an Atlas role the shared workspace
	mailboxes. A type with no owner is the workspace's: readable with an Atlas role only."""
	user = user or frappe.session.user
	if is_admin(user):
		return ""
	table = table or f"`tab{mailbox_type.doctype}`"
	mine = (f"{table}.`{mailbox_type.owner_field}` = {frappe.db.escape(user)}" if mailbox_type.owner_field else "0")
	if not has_atlas_role(user):  # the shared mailboxes are the Atlas roles' workspace
		return mine
	if not mailbox_type.kind_field:
		return "1"
	return f"({mine} or {table}.`{mailbox_type.kind_field}` = {frappe.db.escape(SHARED)})"


def visible_account_condition(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` of a mailbox doctype (see :func:`visible_condition`)."""
	from atlas_integrations.inbox import mailboxes

	return visible_condition(mailboxes.get(doctype), user)


def _visible_subquery(mailbox_type, user: str) -> str:
	condition = visible_condition(mailbox_type, user) or "1"
	return f"select `name` from `tab{mailbox_type.doctype}` where {condition}"


def _visible_rows_sql(table: str, column_of: str, user: str) -> str:
	"""SQL: the row of ``table`` (Inbox Thread, Communication or Outgoing Mail, per ``column_of``:
	``"thread"``, ``"communication"``, ``"outgoing"``) names a mailbox of a registered type and ``user`` may
	read it."""
	from atlas_integrations.inbox import mailboxes

	parts = []
	column = mailboxes.COLUMNS[column_of][1]
	for t in mailboxes.types().values():
		if column_of == "outgoing" and not t.sends:
			continue
		only = mailboxes.row_names_sql(table, column_of, t)
		if is_admin(user):
			parts.append(only)
		else:
			parts.append(f"({only} and {table}.`{column}` in ({_visible_subquery(t, user)}))")
	return "(" + " or ".join(parts) + ")" if parts else "0"


def can_see_account(account_type: str, account_user: str, user: str | None = None) -> bool:
	"""Row-level rule behind every hook: admins see all; users their own personal mailbox; holders of an
	Atlas role also the shared workspace mailboxes (someone with no Atlas role, e.g. a Sales User who
	may read Customers, never reads the workspace's mail)."""
	user = user or frappe.session.user
	return is_admin(user) or (bool(account_user) and account_user == user) or (
		account_type == SHARED and has_atlas_role(user))


def _as_mailbox(mailbox) -> tuple[str, str] | None:
	"""A mailbox as ``(doctype, name)``; None when it is not one."""
	if isinstance(mailbox, (tuple, list)) and len(mailbox) == 2 and all(isinstance(x, str) for x in mailbox):
		return (mailbox[0], mailbox[1])
	return None


def can_read_mailbox(mailbox, user: str | None = None) -> bool:
	"""True when ``user`` may read the mail of ``mailbox``, ``(mailbox doctype, name)`` of a registered
	mailbox type (:mod:`atlas_integrations.inbox.mailboxes`), by :func:`can_see_account`.

	False for an empty, malformed or unknown mailbox (deny by default).
	"""
	from atlas_integrations.inbox import mailboxes

	user = user or frappe.session.user
	mailbox = _as_mailbox(mailbox)
	found = mailboxes.owner_and_kind(mailbox) if mailbox else None
	if not found:
		return False
	owner, kind = found
	return can_see_account(kind, owner, user)


def mailbox_readers(mailbox) -> list[str]:
	"""Every enabled user who may read the mail of ``mailbox`` (``(doctype, name)``, see
	:func:`can_read_mailbox`): admins (Administrator, Atlas Owner/Admin, System Manager), the mailbox's own
	user, and for a shared workspace mailbox the holders of an Atlas role. [] for an unknown mailbox."""
	from atlas_integrations.inbox import mailboxes

	mailbox = _as_mailbox(mailbox)
	found = mailboxes.owner_and_kind(mailbox) if mailbox else None
	if not found:
		return []
	owner, kind = found
	roles = [*ADMIN_ROLES, *([DISPATCHER] if kind == SHARED else [])]
	users = set(frappe.get_all("Has Role", filters={"role": ["in", roles], "parenttype": "User"}, pluck="parent"))
	users.update({"Administrator", *([owner] if owner else [])})
	return sorted(frappe.get_all("User", filters={"name": ["in", list(users)], "enabled": 1}, pluck="name"))


# ------------------------------------------------------------------ which mailbox a row belongs to ---

def _thread_mailbox(thread: str | None):
	"""The mailbox ``(doctype, name)`` of an Inbox Thread; None if none."""
	from atlas_integrations.inbox import mailboxes

	return mailboxes.of_thread(thread)


def communication_mailbox(doc) -> tuple[bool, tuple | None]:
	"""``(is_mail_row, mailbox)`` of a Communication (a document or a dict of its fields)."""
	from atlas_integrations.inbox import mailboxes

	named = mailboxes.of_communication_row(doc)
	marked = any(doc.get(c) for c in mailboxes.communication_columns())
	thread = doc.get("atlas_inbox_thread") or (
		doc.get("reference_name") if doc.get("reference_doctype") == "Inbox Thread" else None)
	if not (marked or thread or doc.get("reference_doctype") == "Inbox Thread"):
		return False, None
	if not named:
		return True, None  # mail whose mailbox cannot be determined (a half-set pair, or none): deny
	if thread and _thread_mailbox(thread) != named:
		return True, None  # inconsistent links: deny
	return True, named


def file_mailbox(doc) -> tuple[bool, tuple | None]:
	"""``(is_mail_row, mailbox)`` of a File: follows the Communication or Inbox Thread it is attached to."""
	from atlas_integrations.inbox import mailboxes

	doctype, name = doc.get("attached_to_doctype"), doc.get("attached_to_name")
	if doctype == "Inbox Thread":
		return True, _thread_mailbox(name)
	if doctype == "Communication" and name:
		row = frappe.db.get_value(
			"Communication", name,
			[*mailboxes.communication_columns(), "atlas_inbox_thread", "reference_doctype", "reference_name"],
			as_dict=True)
		if row:
			return communication_mailbox(row)
	if doc.get("atlas_original_name"):
		return True, None  # an Atlas attachment that lost its message: deny
	return False, None


def mailbox_of(doc) -> tuple[bool, tuple | None]:
	"""``(is_mail_row, mailbox)`` of an Inbox Thread, Communication, File or Outgoing Mail; the mailbox is
	``(mailbox doctype, name)``, None when it cannot be determined (deny)."""
	from atlas_integrations.inbox import mailboxes

	if doc.doctype == "Inbox Thread":
		return True, mailboxes.of_thread_row(doc) or None
	if doc.doctype == "Communication":
		return communication_mailbox(doc)
	if doc.doctype == "File":
		return file_mailbox(doc)
	if doc.doctype == "Outgoing Mail":  # a send through a mailbox (the provider's send)
		return True, mailboxes.of_outgoing_row(doc) or None
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

def mailbox_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for a mailbox doctype with owners (a registered type with ``owner_field`` and
	``kind_field``, e.g. Gmail Account): returns False to deny, None to defer to role permissions.
	Dispatchers may edit only their own personal mailbox."""
	from atlas_integrations.inbox import mailboxes

	user = user or frappe.session.user
	t = mailboxes.get(doc.doctype)
	owner = doc.get(t.owner_field) if t.owner_field else None
	kind = (doc.get(t.kind_field) if t.kind_field else SHARED) or PERSONAL
	if not can_see_account(kind, owner, user):
		return False
	if ptype not in ("read", "select", "print", "email", "report", "export") and not is_admin(user):
		if not (kind == PERSONAL and owner == user):
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
	condition = _visible_rows_sql("`tabOutgoing Mail`", "outgoing", user)
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

def mailbox_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for a mailbox doctype with owners (e.g. Gmail Account)."""
	return visible_account_condition(user, doctype)


def inbox_thread_query(user: str | None = None, doctype: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Inbox Thread: threads of the mailboxes the user can see;
	a thread without a mailbox (or naming several) is listed to no one."""
	user = user or frappe.session.user
	condition = _visible_rows_sql("`tabInbox Thread`", "thread", user)
	company = _company_condition(user)
	return f"({condition} and {company})" if company else condition


def _communication_condition(user: str, table: str = "`tabCommunication`") -> str:
	from atlas_integrations.inbox import mailboxes

	not_mail = (f"(not {mailboxes.any_column_sql(table, 'communication')} and ifnull({table}.`atlas_inbox_thread`, '') = ''"
				f" and ifnull({table}.`reference_doctype`, '') != 'Inbox Thread')")
	visible = _visible_rows_sql(table, "communication", user)
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
	mail_comms = f"select c.`name` from `tabCommunication` c where {mail_communication_sql('c')}"
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


def validate_mailbox_ownership(doc) -> None:
	"""A mailbox doctype's ``validate`` (e.g. Gmail Account): a non-admin cannot re-home a mailbox (``user``, ``account_type``) —
	checked against the stored row, not the submitted one.

	Raises:
		frappe.PermissionError: the change would hand the mailbox to someone (or make it shared).
	"""
	if doc.is_new() or doc.flags.ignore_permissions or is_admin():
		return
	from atlas_integrations.inbox import mailboxes

	t = mailboxes.get(doc.doctype)
	changed = _changed(doc, tuple(f for f in (t.owner_field, t.kind_field) if f))
	if changed:
		messages.throw(OWNERSHIP_FIXED + " ({2})", doc.doctype, doc.name, ", ".join(changed), exc=frappe.PermissionError)


#: fields that tie a mail row to its mailbox besides its Dynamic Link pair (set by the writer, never
#: changed through the ORM); each type adds its ``locked_fields``
LINK_FIELDS = {
	"Inbox Thread": ("thread_key",),
	"Communication": ("atlas_inbox_thread", "reference_doctype", "reference_name"),
	"File": ("attached_to_doctype", "attached_to_name", "attached_to_field", "atlas_original_name"),
	"Outgoing Mail": ("inbox_thread", "user", "request_key", "message_id", "provider_message_id", "provider_thread_id"),
}


def mailbox_link_fields(doctype: str) -> tuple[str, ...]:
	"""The fields of a mail row of ``doctype`` that tie it to its mailbox (see :data:`LINK_FIELDS`)."""
	from atlas_integrations.inbox import mailboxes

	column_of = {"Inbox Thread": "thread", "Communication": "communication", "Outgoing Mail": "outgoing"}.get(doctype)
	out = list(LINK_FIELDS[doctype]) + (list(mailboxes.COLUMNS[column_of]) if column_of else [])
	for t in mailboxes.types().values():
		out += [f.split(".", 1)[1] for f in t.locked_fields if f.split(".", 1)[0] == doctype]
	return tuple(dict.fromkeys(out))


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
			changed = _changed(doc, mailbox_link_fields(doc.doctype))
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
