"""Atlas roles and who may see what.

Roles: **Atlas Owner** (everything, incl. workspace state), **Atlas Admin** (configure, connect shared
mailboxes, see every account), **Atlas Dispatcher** (works the inbox; sees their own personal mailbox and
the shared workspace mailboxes, never another user's personal mailbox).
"""

from __future__ import annotations

import frappe

OWNER = "Atlas Owner"
ADMIN = "Atlas Admin"
DISPATCHER = "Atlas Dispatcher"
ROLES = (OWNER, ADMIN, DISPATCHER)
#: host roles that count as Atlas admins
ADMIN_ROLES = frozenset({OWNER, ADMIN, "System Manager"})

SHARED = "Shared workspace mailbox"
PERSONAL = "Personal"


def is_admin(user: str | None = None) -> bool:
	"""True when ``user`` (default: session user) is Administrator or has Atlas Owner/Admin or System Manager."""
	user = user or frappe.session.user
	if user == "Administrator":
		return True
	return bool(ADMIN_ROLES.intersection(frappe.get_roles(user)))


def visible_account_condition(user: str | None = None) -> str:
	"""SQL condition on ``tabGmail Account`` limiting a non-admin to their own and shared accounts."""
	user = user or frappe.session.user
	if is_admin(user):
		return ""
	return "(`tabGmail Account`.`user` = {user} or `tabGmail Account`.`account_type` = {shared})".format(
		user=frappe.db.escape(user), shared=frappe.db.escape(SHARED)
	)


def gmail_account_query(user: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Gmail Account."""
	return visible_account_condition(user)


def inbox_thread_query(user: str | None = None) -> str:
	"""``permission_query_conditions`` hook for Inbox Thread: threads of the accounts the user can see."""
	cond = visible_account_condition(user)
	if not cond:
		return ""
	return f"`tabInbox Thread`.`gmail_account` in (select `name` from `tabGmail Account` where {cond})"


def can_see_account(account_type: str, account_user: str, user: str | None = None) -> bool:
	"""Row-level rule behind both hooks: admins see all; others their own or shared mailboxes."""
	user = user or frappe.session.user
	return is_admin(user) or account_user == user or account_type == SHARED


def gmail_account_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for Gmail Account (returns False to deny; None defers to role permissions)."""
	if not can_see_account(doc.account_type, doc.user, user):
		return False
	if ptype in ("write", "delete", "submit", "cancel") and not is_admin(user):
		# dispatchers may edit only their own personal mailbox
		return bool(doc.account_type == PERSONAL and doc.user == (user or frappe.session.user))
	return None


def inbox_thread_has_permission(doc, ptype: str | None = None, user: str | None = None) -> bool | None:
	"""``has_permission`` hook for Inbox Thread: follows the thread's Gmail Account."""
	if is_admin(user) or not doc.gmail_account:
		return None
	row = frappe.db.get_value("Gmail Account", doc.gmail_account, ["account_type", "user"], as_dict=True)
	if not row or not can_see_account(row.account_type, row.user, user):
		return False
	return None
