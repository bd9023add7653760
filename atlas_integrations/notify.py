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
