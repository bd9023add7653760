"""Desk notifications for the people who run the integrations (shared by every provider; imports none)."""

from __future__ import annotations

import frappe

ADMIN_ROLES = ("Atlas Owner", "Atlas Admin", "System Manager")


def notify_admins(subject: str, doctype: str, name: str, detail: str = "") -> list[str]:
	"""A Notification Log (desk bell, type Alert) about ``doctype``/``name`` for every enabled Atlas
	Owner/Admin and System Manager. ``subject`` and ``detail`` are plain text (they may carry a provider's
	words, e.g. an organisation name): they are HTML-escaped here, since the bell renders HTML. ``detail``
	is cut to 500 characters. Returns the users notified."""
	from frappe.desk.doctype.notification_log.notification_log import make_notification_logs
	from frappe.utils import escape_html

	users = frappe.get_all("Has Role", filters={"role": ["in", list(ADMIN_ROLES)], "parenttype": "User"},
						   pluck="parent", distinct=True)
	emails = [e for e in frappe.get_all("User", filters={"name": ["in", users or [""]], "enabled": 1}, pluck="email") if e]
	if emails:
		make_notification_logs({"type": "Alert", "subject": escape_html(subject),
								"email_content": escape_html((detail or "")[:500]),
								"document_type": doctype, "document_name": name}, emails)
	return emails


def admin_users() -> list[str]:
	"""The enabled users holding an admin role (Atlas Owner, Atlas Admin, System Manager), and
	Administrator; sorted."""
	users = set(frappe.get_all("Has Role", filters={"role": ["in", list(ADMIN_ROLES)], "parenttype": "User"},
							   pluck="parent", distinct=True))
	users.add("Administrator")
	return sorted(frappe.get_all("User", filters={"name": ["in", list(users)], "enabled": 1}, pluck="name"))


def publish_to_readers(event: str, message: dict, mailbox, after_commit: bool = False,
					   admins_only: bool = False) -> list[str]:
	"""``frappe.publish_realtime(event, message)`` to each user who may read ``mailbox`` (``(mailbox doctype,
	name)``, :mod:`atlas_integrations.inbox.mailboxes`), never to the whole site: the event names a mailbox, and a desk user who
	may not read it should not learn that it got mail. ``after_commit``: sent when the current transaction
	commits (default: at once, for rows already committed). ``admins_only``: only those readers who are
	admins (:func:`admin_users`), e.g. for the progress of an admin action on the mailbox. Returns the
	users it went to."""
	from atlas_integrations.permissions import mailbox_readers

	users = mailbox_readers(mailbox)
	if admins_only:
		admins = set(admin_users())
		users = [u for u in users if u in admins]
	for user in users:
		frappe.publish_realtime(event, message, user=user, after_commit=after_commit)
	return users


def publish_to_admins(event: str, message: dict, after_commit: bool = False) -> list[str]:
	"""``frappe.publish_realtime(event, message)`` to each admin (:func:`admin_users`), one room per user,
	never the whole site (for events that name no mailbox: Xero work, the matching index). Returns the
	users it went to."""
	users = admin_users()
	for user in users:
		frappe.publish_realtime(event, message, user=user, after_commit=after_commit)
	return users
