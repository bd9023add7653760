"""Whitelisted methods of the Smart Inbox desk page (``/api/method/atlas_integrations.api.smart_inbox.<name>``).

Every method applies the same server-side permissions as REST (the Inbox Thread / Communication / Outgoing
Mail row rules of :mod:`atlas_integrations.permissions`).
"""

from __future__ import annotations

import json

import frappe

from atlas_integrations import messages
from atlas_integrations.inbox import mailboxes, outbox


NO_ROLE = "Only Atlas users can send mail from the Smart Inbox"


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
	"""Reply (or reply all: the client fills To/Cc) in ``thread`` through its mailbox, exactly once per
	``client_key`` (the mailbox type's ``send_reply`` entry point, e.g. :func:`atlas_integrations.gmail.send.reply`).

	Args:
		to, cc, bcc: addresses, a JSON list or comma separated.
		body: the message (HTML from the editor, or text).
		client_key: idempotency key made by the client per composed message (at most 200 characters).
		attachments: File names (JSON list) the user may read.
		from_address: a verified send-as address of the mailbox (default the mailbox's own).

	Returns:
		the Outgoing Mail's state (:func:`atlas_integrations.inbox.outbox.result`: ``{"name", "status",
		"message_id", "provider_message_id", "provider_thread_id", "communication", "error"}``).

	Raises:
		frappe.PermissionError: no Atlas role ("Only Atlas users can send mail from the Smart Inbox"); not the
			user's mailbox ("You cannot use this mailbox").
		frappe.ValidationError: "Workspace changes are temporarily unavailable"; "Add at least one To
			recipient"; "Write a message before sending"; "The mailbox … is not healthy …"; the provider refused
			or did not take the message; another request of the same key is delivering it right now; the
			thread's mailbox cannot send (an inbound route).
		atlas_integrations.inbox.send_limit.SendRateLimited: HTTP 429, "You are sending too fast: at most N
			messages a minute" (Atlas Settings ``reply_rate_limit``, one budget with Send quote).
	"""
	from atlas_integrations.permissions import has_atlas_role

	if not has_atlas_role():  # first: a user without an Atlas role learns nothing about the thread
		frappe.throw(frappe._(NO_ROLE), frappe.PermissionError)
	reply = _thread_mailbox_type(thread).entry("send_reply", mailboxes.CANNOT_SEND)
	return reply(thread, _list(to), body, client_key, cc=_list(cc), bcc=_list(bcc), subject=subject,
				 attachments=_list(attachments), from_addr=from_address)


def _thread_mailbox_type(thread: str) -> mailboxes.MailboxType:
	"""The registered type of ``thread``'s mailbox, after a read check (the entry point checks the rest).

	Raises:
		frappe.PermissionError, frappe.DoesNotExistError: the thread is not the user's to read, or unknown.
		atlas_integrations.inbox.mailboxes.NotSupported: the thread names no mailbox.
	"""
	doc = messages.get_doc("Inbox Thread", thread)
	doc.check_permission("read")
	return mailboxes.get(mailboxes.of_thread_doc(doc)[0])


@frappe.whitelist(methods=["POST"])
def reconcile_send(outgoing_mail: str) -> dict:
	"""The Reconcile action of an Outgoing Mail: finish recording a message the provider accepted, or find
	out it was never sent; never sends (:func:`atlas_integrations.inbox.outbox.reconcile`, which asks the
	mailbox type's ``send_find`` / ``send_store`` steps). Returns its state.

	Raises:
		frappe.PermissionError: the user may not read it, or did not send it (admins may reconcile any).
	"""
	from atlas_integrations.permissions import NOT_YOUR_MAILBOX, is_admin

	doc = messages.get_doc("Outgoing Mail", outgoing_mail)
	doc.check_permission("read")
	if doc.user != frappe.session.user and not is_admin():
		frappe.throw(frappe._(NOT_YOUR_MAILBOX), frappe.PermissionError)
	mailbox = mailboxes.of_outgoing_row(doc)
	if not mailbox:
		frappe.throw(frappe._(NOT_YOUR_MAILBOX), frappe.PermissionError)
	return outbox.reconcile(outgoing_mail)


@frappe.whitelist(methods=["GET"])
def from_addresses(thread: str) -> list[dict]:
	"""The addresses a reply in ``thread`` may come From: the mailbox's and its verified send-as aliases
	(the mailbox type's ``send_as`` entry point; Gmail ``users.settings.sendAs``) -> ``[{"address",
	"display_name", "primary", "default"}]`` (display names as HTML text). The mailbox's own address comes
	first; ``default`` marks what the composer's From starts with: the alias the provider marks default,
	else the mailbox's address. When the provider cannot list the aliases right now, the mailbox's address
	alone (the composer still has its From).

	Raises:
		frappe.PermissionError: the user may not read the thread or use its mailbox.
		atlas_integrations.inbox.mailboxes.NotSupported: the thread's mailbox cannot send.
		frappe.ValidationError: the mailbox is not healthy (the type's ``usable`` entry point).
	"""
	from atlas_integrations.inbox.text import mail_text
	from atlas_integrations.permissions import NOT_YOUR_MAILBOX, can_read_mailbox

	thread_doc = messages.get_doc("Inbox Thread", thread)
	thread_doc.check_permission("read")
	doctype, name = mailboxes.of_thread_doc(thread_doc)
	mailbox_type = mailboxes.get(doctype)
	usable = mailbox_type.entry("usable", mailboxes.CANNOT_SEND)
	if not can_read_mailbox((doctype, name)):
		frappe.throw(frappe._(NOT_YOUR_MAILBOX), frappe.PermissionError)
	account = usable(name)
	own_address = mailboxes.address((doctype, name)) or account.get("email_address") or ""
	own = {"address": own_address, "display_name": "", "primary": True, "default": False}
	out = [own]
	aliases = mailbox_type.entry("send_as")(name) if mailbox_type.send_as else []
	for alias in aliases:
		address = alias.get("address") or ""
		if not address or address.lower() == own_address.lower():
			continue
		out.append({"address": address, "display_name": mail_text(alias.get("display_name") or ""), "primary": False,
					"default": bool(alias.get("default"))})
	if not any(entry["default"] for entry in out):
		own["default"] = True
	return out


# -- the thread list -----------------------------------------------------------------------------------------
LIST_FIELDS = ["name", "subject", "participants", "sender_address", "snippet", "last_message_at", "unread", "labels",
			   "category", "priority", "outcome", "party_type", "party", "_assign", "company", "message_count",
			   "match_state", "reference_doctype", "reference_name"]
MAX_PAGE = 100
STATIC_VIEWS = ("mine", "shared", "unassigned", "pending_review", "unknown_sender", "all")


def _in_mailboxes(boxes: list[tuple[str, str]]) -> list[list]:
	"""``or_filters`` on Inbox Thread: the thread's mailbox is one of ``boxes`` (``(doctype, name)``), matched
	by name (a view narrows the list; what a user may read is the row rule's, which checks the type too)."""
	names = sorted({name for _doctype, name in boxes})
	return [[mailboxes.COLUMNS["thread"][1], "in", names]] if names else [["name", "in", [""]]]


def _view_filters(view: str, user: str) -> tuple[list, list]:
	"""``(filters, or_filters)`` of a view: ``mine`` (assigned to the user, or in their personal mailboxes),
	``shared`` (the shared workspace mailboxes of every type), ``unassigned``, ``pending_review``,
	``unknown_sender``, ``all``, ``category:<Category>``, ``mailbox:<mailbox name>``, ``company:<Company>``.

	Raises:
		frappe.DoesNotExistError: an unknown view (named as text).
	"""
	if view == "mine":
		return [], [["_assign", "like", f'%"{user}"%'], *_in_mailboxes(mailboxes.personal_of(user))]
	if view == "shared":
		return [], _in_mailboxes(mailboxes.shared())
	if view == "unassigned":
		return [], [["_assign", "is", "not set"], ["_assign", "=", "[]"]]
	if view == "pending_review":
		return [["outcome", "=", "pending_review"]], []
	if view == "unknown_sender":
		return [["match_state", "=", "unknown_sender"]], []
	if view == "all":
		return [], []
	kind, _, value = view.partition(":")
	if kind == "mailbox" and value:
		return [[mailboxes.COLUMNS["thread"][1], "=", value]], []
	field = {"category": "category", "company": "company"}.get(kind)
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
		if or_filters:  # both a view OR and a search OR: match the search on the view's rows first
			names = frappe.get_list("Inbox Thread", filters=filters, or_filters=or_filters, pluck="name", limit_page_length=0)
			filters = [*filters, ["name", "in", names or [""]]]
		or_filters = [["subject", "like", needle], ["participants", "like", needle], ["snippet", "like", needle]]
	rows = frappe.get_list("Inbox Thread", fields=[*LIST_FIELDS, *mailboxes.thread_columns()], filters=filters, or_filters=or_filters,
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
		mailbox = mailboxes.of_thread_row(row) or ("", "")
		for column in mailboxes.thread_columns():
			row.pop(column, None)
		row["mailbox_type"], row["mailbox"] = mailbox
		row["source"] = mailboxes.get(mailbox[0]).label if mailbox[0] else ""
	return {"threads": rows, "start": start, "page_length": page_length, "more": more}


@frappe.whitelist(methods=["GET"])
def views() -> dict:
	"""The page's left pane: counts per view the user can see, and the categories, mailboxes and Companies
	to filter by. Returns ``{"counts": {view: int}, "my_unread": int, "categories": [str],
	"mailboxes": [{"name", "label" (HTML text), "mailbox_type", "source"}], "companies": [str]}``: the mailboxes
	of every registered type that has owners (personal / shared mailboxes the user may read)."""
	user = frappe.session.user

	def count(view: str, extra: list | None = None) -> int:
		filters, or_filters = _view_filters(view, user)
		return int(frappe.get_list("Inbox Thread", fields=["count(name) as n"], filters=[*filters, *(extra or [])],
								   or_filters=or_filters)[0].n or 0)

	from atlas_integrations.permissions import can_see_account

	boxes = []
	for t in mailboxes.types().values():
		if not t.owner_field:  # workspace routes are configuration, not a mailbox a user picks
			continue
		columns = list(dict.fromkeys(["name", t.address_field, t.owner_field, *([t.kind_field] if t.kind_field else [])]))
		for m in frappe.get_list(t.doctype, fields=columns, order_by="name asc"):
			kind = (m.get(t.kind_field) if t.kind_field else mailboxes.SHARED) or mailboxes.PERSONAL
			if not can_see_account(kind, m.get(t.owner_field), user):  # the row rule, also without its hooks
				continue
			boxes.append({"name": m.name, "label": m.get(t.address_field) or m.name, "mailbox_type": t.doctype,
						  "source": t.label})
	meta = frappe.get_meta("Inbox Thread")
	return {
		"counts": {v: count(v) for v in STATIC_VIEWS},
		"my_unread": count("mine", [["unread", "=", 1]]),
		"categories": [c for c in (meta.get_field("category").options or "").split("\n") if c],
		"mailboxes": boxes,
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
	"""Archive a thread: the INBOX tag removed (Gmail's label; a queued change, as :func:`api.inbox.set_labels`).
	Returns ``{"sync_job", "messages"}``."""
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
