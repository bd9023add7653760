"""Whitelisted methods of the Smart Inbox desk page (``/api/method/atlas_integrations.api.smart_inbox.<name>``).

Every method applies the same server-side permissions as REST (the Inbox Thread / Communication / Outgoing
Mail row rules of :mod:`atlas_integrations.permissions`).
"""

from __future__ import annotations

import json

import frappe

from atlas_integrations import messages
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
			recipient"; "Write a message before sending"; "The mailbox … is not healthy …"; Gmail refused or
			did not take the message; another request of the same key is delivering it right now.
		atlas_integrations.inbox.send_limit.SendRateLimited: HTTP 429, "You are sending too fast: at most N
			messages a minute" (Atlas Settings ``reply_rate_limit``, one budget with Send quote).
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

	doc = messages.get_doc(send.DOCTYPE, outgoing_mail)
	doc.check_permission("read")
	if doc.user != frappe.session.user and not is_admin():
		frappe.throw(frappe._(send.NOT_YOUR_MAILBOX), frappe.PermissionError)
	return send.reconcile(outgoing_mail)


@frappe.whitelist(methods=["GET"])
def from_addresses(thread: str) -> list[dict]:
	"""The addresses a reply in ``thread`` may come From: the mailbox's and its verified send-as aliases
	(Gmail ``users.settings.sendAs``) -> ``[{"address", "display_name", "primary", "default"}]`` (display
	names as HTML text). The mailbox's own address comes first; ``default`` marks what the composer's From
	starts with: the verified alias Gmail marks ``isDefault``, else the mailbox's address. When Gmail cannot
	list the aliases right now, the mailbox's address alone (the composer still has its From)."""
	from atlas_integrations.gmail import accounts
	from atlas_integrations.gmail.errors import GmailError
	from atlas_integrations.inbox.text import mail_text

	thread_doc = messages.get_doc("Inbox Thread", thread)
	thread_doc.check_permission("read")
	account = send._usable_account(thread_doc)
	own = {"address": account.email_address, "display_name": "", "primary": True, "default": False}
	out = [own]
	try:
		aliases = accounts.client_for(account.name).list_send_as()
	except GmailError:
		aliases = []
	for alias in aliases:
		address = alias.get("sendAsEmail") or ""
		if address.lower() == (account.email_address or "").lower():
			continue
		if alias.get("verificationStatus") == "accepted":
			out.append({"address": address, "display_name": mail_text(alias.get("displayName") or ""), "primary": False,
						"default": bool(alias.get("isDefault"))})
	if not any(entry["default"] for entry in out):
		own["default"] = True
	return out


# -- the thread list -----------------------------------------------------------------------------------------
LIST_FIELDS = ["name", "subject", "participants", "sender_address", "snippet", "last_message_at", "unread", "labels",
			   "category", "priority", "outcome", "party_type", "party", "_assign", "gmail_account", "inbound_route",
			   "company", "message_count", "match_state", "reference_doctype", "reference_name"]
MAX_PAGE = 100
STATIC_VIEWS = ("mine", "shared", "unassigned", "pending_review", "unknown_sender", "all")


def _view_filters(view: str, user: str) -> tuple[list, list]:
	"""``(filters, or_filters)`` of a view: ``mine``, ``shared``, ``unassigned``, ``pending_review``,
	``unknown_sender``, ``all``, ``category:<Category>``, ``mailbox:<Gmail Account>``, ``company:<Company>``."""
	if view == "mine":
		personal = frappe.get_all("Gmail Account", filters={"user": user, "account_type": "Personal"}, pluck="name")
		return [], [["_assign", "like", f'%"{user}"%'], ["gmail_account", "in", personal or [""]]]
	if view == "shared":
		shared = frappe.get_all("Gmail Account", filters={"account_type": "Shared workspace mailbox"}, pluck="name")
		return [["gmail_account", "in", shared or [""]]], []
	if view == "unassigned":
		return [], [["_assign", "is", "not set"], ["_assign", "=", "[]"]]
	if view == "pending_review":
		return [["outcome", "=", "pending_review"]], []
	if view == "unknown_sender":
		return [["match_state", "=", "unknown_sender"]], []
	if view == "all":
		return [], []
	kind, _, value = view.partition(":")
	field = {"category": "category", "mailbox": "gmail_account", "company": "company"}.get(kind)
	if not field or not value:
		messages.throw("Unknown view {0}", view, exc=frappe.DoesNotExistError)
	return [[field, "=", value]], []


@frappe.whitelist(methods=["GET"])
def list_threads(view: str = "mine", search: str | None = None, start: int = 0, page_length: int = 50) -> dict:
	"""One page of the Smart Inbox thread list, newest first, with the same row rules as REST
	(``frappe.get_list``: the Inbox Thread permission query applies).

	Args:
		view: see :func:`_view_filters`.
		search: words matched (substring) in subject, participants or snippet.
		start, page_length: offset and page size (at most 100).

	Returns:
		``{"threads": [{LIST_FIELDS..., "assignees": [user], "has_attachment": bool}], "start", "page_length",
		"more": bool}``. Mail-derived text (subject, participants, snippet, labels) is HTML text: the page
		decodes it and shows it as text.
	"""
	start, page_length = max(int(start or 0), 0), min(max(int(page_length or 50), 1), MAX_PAGE)
	filters, or_filters = _view_filters(view or "mine", frappe.session.user)
	if search and search.strip():
		from frappe.utils import escape_html

		# stored values are HTML text: search for the text as it is stored
		needle = f"%{escape_html(search.strip())}%"
		if or_filters:  # both a view OR and a search OR: match the search on the view's rows with a subquery
			names = frappe.get_list("Inbox Thread", filters=filters, or_filters=or_filters, pluck="name", limit_page_length=0)
			filters = [*filters, ["name", "in", names or [""]]]
		or_filters = [["subject", "like", needle], ["participants", "like", needle], ["snippet", "like", needle]]
	rows = frappe.get_list("Inbox Thread", fields=LIST_FIELDS, filters=filters, or_filters=or_filters,
						   order_by="last_message_at desc, name desc", limit_start=start, limit_page_length=page_length + 1)
	more = len(rows) > page_length
	rows = rows[:page_length]
	names = [r.name for r in rows]
	with_files = set(frappe.db.sql_list(
		"""select distinct atlas_inbox_thread from `tabCommunication` where atlas_inbox_thread in %(names)s
		and has_attachment=1""", {"names": names})) if names else set()
	for row in rows:
		row["assignees"] = json.loads(row.pop("_assign") or "[]")
		row["has_attachment"] = row.name in with_files
	return {"threads": rows, "start": start, "page_length": page_length, "more": more}


@frappe.whitelist(methods=["GET"])
def views() -> dict:
	"""The page's left pane: counts per view the user can see, and the categories, mailboxes and Companies
	to filter by. Returns ``{"counts": {view: int}, "my_unread": int, "categories": [str],
	"mailboxes": [{"name", "label" (HTML text)}], "companies": [str]}``."""
	user = frappe.session.user

	def count(view: str, extra: list | None = None) -> int:
		filters, or_filters = _view_filters(view, user)
		return int(frappe.get_list("Inbox Thread", fields=["count(name) as n"], filters=[*filters, *(extra or [])],
								   or_filters=or_filters)[0].n or 0)

	mailboxes = frappe.get_list("Gmail Account", fields=["name", "account_name", "email_address"], order_by="account_name asc")
	meta = frappe.get_meta("Inbox Thread")
	return {
		"counts": {v: count(v) for v in STATIC_VIEWS},
		"my_unread": count("mine", [["unread", "=", 1]]),
		"categories": [c for c in (meta.get_field("category").options or "").split("\n") if c],
		"mailboxes": [{"name": m.name, "label": m.email_address or m.account_name} for m in mailboxes],
		"companies": _companies(user),
	}


def _companies(user: str) -> list[str]:
	"""Companies the user's mail may belong to (their Company User Permissions, else every Company)."""
	from atlas_integrations.permissions import allowed_companies

	allowed = allowed_companies(user)
	return sorted(allowed) if allowed is not None else frappe.get_all("Company", pluck="name", order_by="name asc")


def _writable_thread(thread: str):
	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("write")
	return doc


@frappe.whitelist(methods=["POST"])
def archive(thread: str) -> dict:
	"""Archive a thread: INBOX removed in Gmail (a queued label change, as :func:`api.inbox.set_labels`).
	Returns ``{"thread", "labels"}``."""
	from atlas_integrations.api.inbox import set_labels

	return set_labels(thread, remove=["INBOX"])


@frappe.whitelist(methods=["POST"])
def set_party(thread: str, party_type: str, party: str) -> dict:
	"""Set the thread's party (Customer, Supplier, Lead or Contact) by hand; its messages join that
	party's timeline. Returns ``{"thread", "party_type", "party"}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread or read the party.
		frappe.ValidationError: another doctype, or an unknown party.
	"""
	if party_type not in ("Customer", "Supplier", "Lead", "Contact"):
		frappe.throw(frappe._("The party is a Customer, Supplier, Lead or Contact"))
	doc = _writable_thread(thread)
	messages.get_doc(party_type, party).check_permission("read")
	frappe.db.set_value("Inbox Thread", thread, {"party_type": party_type, "party": party, "match_state": "matched",
												 "match_reason": f"set by {frappe.session.user}"})
	_timeline(thread, party_type, party)
	return {"thread": doc.name, "party_type": party_type, "party": party}


@frappe.whitelist(methods=["POST"])
def link_document(thread: str, doctype: str, name: str) -> dict:
	"""Link the thread to a document (e.g. a Sales Order): its messages join that document's timeline and
	the thread shows it. Returns ``{"thread", "doctype", "name"}``.

	Raises:
		frappe.PermissionError: the user cannot write the thread or read the document.
	"""
	_writable_thread(thread)
	if not frappe.db.exists("DocType", doctype) or frappe.get_meta(doctype).istable:
		messages.throw("Unknown document type {0}", doctype)
	messages.get_doc(doctype, name).check_permission("read")
	frappe.db.set_value("Inbox Thread", thread, {"reference_doctype": doctype, "reference_name": name})
	_timeline(thread, doctype, name)
	return {"thread": thread, "doctype": doctype, "name": name}


def _timeline(thread: str, doctype: str, name: str) -> None:
	from atlas_integrations.inbox.act import add_timeline_links

	comms = frappe.get_all("Communication", filters={"atlas_inbox_thread": thread}, pluck="name")
	add_timeline_links({c: {(doctype, name)} for c in comms})
