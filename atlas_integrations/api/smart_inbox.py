"""Whitelisted methods of the Smart Inbox desk page (``/api/method/atlas_integrations.api.smart_inbox.<name>``).

Every method applies the same server-side permissions as REST (the Inbox Thread / Communication / Outgoing
Mail row rules of :mod:`atlas_integrations.permissions`).
"""

from __future__ import annotations

import json

import frappe

from atlas_integrations.gmail import send


def _list(value) -> list:
	if value in (None, ""):
		return []
	if isinstance(value, str):
		try:
			parsed = json.loads(value)
		except ValueError:
			return [value]
		return parsed if isinstance(parsed, list) else [parsed]
	return list(value)


@frappe.whitelist(methods=["POST"])
def send_reply(thread: str, to, body: str, client_key: str, cc=None, bcc=None, subject: str | None = None,
			   attachments=None, from_address: str | None = None) -> dict:
	"""Reply (or reply all: the client fills To/Cc) in ``thread`` through its Gmail mailbox, exactly once
	per ``client_key`` (:func:`atlas_integrations.gmail.send.reply`).

	Args:
		to, cc, bcc: addresses, a JSON list or comma separated.
		body: the message (HTML from the editor, or text).
		client_key: idempotency key made by the client per composed message (at most 200 characters).
		attachments: File names (JSON list) the user may read.
		from_address: a verified send-as address of the mailbox (default the mailbox's own).

	Returns:
		``{"name", "status", "message_id", "gmail_message_id", "gmail_thread_id", "communication", "error"}``.

	Raises:
		frappe.PermissionError: no Atlas role ("Only Atlas users can send mail from the Smart Inbox"); not the
			user's mailbox ("You cannot use this mailbox").
		frappe.ValidationError: "Workspace changes are temporarily unavailable"; "Add at least one To
			recipient"; "Write a message before sending"; "The mailbox … is not healthy …"; "You are sending
			too fast: at most N messages a minute"; Gmail refused or did not take the message.
	"""
	return send.reply(thread, _list(to), body, client_key, cc=_list(cc), bcc=_list(bcc), subject=subject,
					  attachments=_list(attachments), from_addr=from_address)


@frappe.whitelist(methods=["POST"])
def reconcile_send(outgoing_mail: str) -> dict:
	"""The Reconcile action of an Outgoing Mail: finish recording a message Gmail accepted, or find out it
	was never sent; never sends (:func:`atlas_integrations.gmail.send.reconcile`). Returns its state.

	Raises:
		frappe.PermissionError: the user may not read it, or did not send it (admins may reconcile any).
	"""
	from atlas_integrations.permissions import is_admin

	doc = frappe.get_doc(send.DOCTYPE, outgoing_mail)
	doc.check_permission("read")
	if doc.user != frappe.session.user and not is_admin():
		frappe.throw(send.NOT_YOUR_MAILBOX, frappe.PermissionError)
	return send.reconcile(outgoing_mail)


@frappe.whitelist(methods=["GET"])
def from_addresses(thread: str) -> list[dict]:
	"""The addresses a reply in ``thread`` may come From: the mailbox's and its verified send-as aliases
	(Gmail ``users.settings.sendAs``) -> ``[{"address", "display_name", "primary"}]`` (display names as
	HTML text)."""
	from atlas_integrations.gmail import accounts
	from atlas_integrations.inbox.text import mail_text

	thread_doc = frappe.get_doc("Inbox Thread", thread)
	thread_doc.check_permission("read")
	account = send._usable_account(thread_doc)
	out = [{"address": account.email_address, "display_name": "", "primary": True}]
	for alias in accounts.client_for(account.name).list_send_as():
		address = alias.get("sendAsEmail") or ""
		if address.lower() == (account.email_address or "").lower():
			continue
		if alias.get("verificationStatus") == "accepted":
			out.append({"address": address, "display_name": mail_text(alias.get("displayName") or ""), "primary": False})
	return out
