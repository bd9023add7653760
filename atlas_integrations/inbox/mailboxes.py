"""The mailbox registry: every source of mail (a Gmail Account, the managed Inbound Route, the next provider)
is a registered *mailbox type*, and shared code refers to a mailbox as ``(mailbox type, name)`` through it.

Mailbox types are registered by their provider app, never named here, as job types are
(:mod:`atlas_integrations.jobs`): each app lists its registrations in the ``atlas_mailbox_types`` hook
(``hooks.py``: ``atlas_mailbox_types = ["<app>.<provider>.mailbox_type.MAILBOX_TYPES"]``), read with
``frappe.get_hooks``. A registration gives the doctype, the fields every shared place reads (address, owner,
personal/shared kind, Company) and the provider's entry points (bodies on open, send, state write-back).
See :class:`MailboxType`. Mail rows name their mailbox the same way for every type, in one Dynamic Link pair
(:data:`COLUMNS`): Communication ``atlas_mailbox_type`` + ``atlas_mailbox``, Inbox Thread and Outgoing Mail
``mailbox_type`` + ``mailbox``.

A *mailbox* in shared code is the tuple ``(doctype, name)``, e.g. ``("Inbound Route", "support")``.
This module imports no provider package.
"""

from __future__ import annotations

from dataclasses import dataclass

import frappe

#: the hook every provider app registers its mailbox types in
HOOK = "atlas_mailbox_types"
#: the Dynamic Link pair (type column, name column) that names a row's mailbox, by the row's doctype
COLUMNS = {"thread": ("mailbox_type", "mailbox"), "communication": ("atlas_mailbox_type", "atlas_mailbox"),
		   "outgoing": ("mailbox_type", "mailbox")}
#: the values of a mailbox type's ``kind_field``
PERSONAL, SHARED = "Personal", "Shared workspace mailbox"
#: entry points a registration may name (dotted paths; None when the type cannot do it)
ENTRY_POINTS = ("hydrate_thread", "send_reply", "send_new", "send_submit", "send_find", "send_store", "send_prepare",
				"usable", "send_as", "modify_tags", "mark_read", "errors")


#: what a user reads when a mailbox's type lacks an action
CANNOT = "A mailbox of type {0} cannot do this"
CANNOT_SEND = "Replies go through a mailbox that can send: this thread's mailbox ({0}) cannot"
NO_MAILBOX = "This thread belongs to no mailbox"


class UnknownMailboxType(frappe.ValidationError):
	"""No installed app registers this doctype as a mailbox type (hook ``atlas_mailbox_types``)."""


class InvalidMailboxType(frappe.ValidationError):
	"""A registration in the ``atlas_mailbox_types`` hook is malformed or registers a doctype twice."""


class NotSupported(frappe.ValidationError):
	"""The mailbox's type does not offer this action (e.g. replying through an inbound route)."""


@dataclass(frozen=True)
class MailboxType:
	"""One registered mailbox type.

	Attributes:
		doctype: the mailbox doctype (e.g. ``"Gmail Account"``); unique across apps.
		label: the source's name as users read it (``"Gmail"``, ``"Inbound route"``), untranslated.
		address_field: the mailbox's e-mail address (what an admin types to confirm erasing it).
		owner_field: the User a personal mailbox belongs to; None when every mailbox of the type belongs
			to the workspace.
		kind_field: ``"Personal"`` / ``"Shared workspace mailbox"``; None when every mailbox of the type is
			a shared workspace mailbox.
		company_field, enabled_field, create_contacts_field: the default Company of its mail, whether it is
			on, whether unknown senders become Contacts.
		require_known_sender_field: the check that holds mail of unknown senders for review; None: always.
		locked_fields: ``"<DocType>.<field>"`` of the provider's ids on mail rows (message and thread ids,
			unique keys): written by the sync, never changed through the ORM.
		hydrate_thread: ``fn(thread) -> int``, bodies not stored yet fetched on open (None: all stored).
		send_reply: ``fn(thread, to, body, client_key, cc, bcc, subject, attachments, from_addr) -> dict``.
		send_new: ``fn(mailbox, user, request_key, to, subject, body, ...)``, a new message (quotes).
		send_submit, send_find, send_store: the provider's three steps of the outbox's state machine
			(:mod:`atlas_integrations.inbox.outbox`): hand over the RFC 822 bytes, find a sent message by its
			Message-ID, store the accepted message through the sync's writer. A type that names them can
			send (:attr:`sends`).
		send_prepare: optional fourth step, ``fn(mailbox, doc, raw) -> {field: value}``: the provider's draft,
			made and committed before ``send_submit`` sends it (Outlook).
		usable: ``fn(mailbox) -> frappe._dict``, the mailbox when it can send now, else raises.
		send_as: ``fn(mailbox) -> [{"address", "display_name", "default"}]``, verified From aliases.
		modify_tags: ``fn(thread, add, remove) -> dict``, tags (labels) changed in the desk and written back.
		mark_read: ``fn(thread, read: bool) -> dict``.
		errors: the provider's error base class: a passing provider failure that shared code reports in
			words instead of failing the request.
	"""

	doctype: str
	label: str
	address_field: str = "email_address"
	owner_field: str | None = None
	kind_field: str | None = None
	company_field: str = "company"
	enabled_field: str = "enabled"
	create_contacts_field: str = "create_contacts"
	require_known_sender_field: str | None = None
	locked_fields: tuple[str, ...] = ()
	hydrate_thread: str | None = None
	send_reply: str | None = None
	send_new: str | None = None
	send_submit: str | None = None
	send_find: str | None = None
	send_store: str | None = None
	send_prepare: str | None = None
	usable: str | None = None
	send_as: str | None = None
	modify_tags: str | None = None
	mark_read: str | None = None
	errors: str | None = None

	@classmethod
	def from_registration(cls, entry: dict | MailboxType, source: str = "") -> MailboxType:
		"""A validated :class:`MailboxType` from one hook entry (a ``MailboxType`` or a dict of its
		attributes; ``doctype`` and ``label`` required).

		Raises:
			InvalidMailboxType: unknown or missing keys, a field name that is not an identifier, an entry
				point that is not a dotted path.
		"""
		where = f" (registered in {source})" if source else ""
		if isinstance(entry, cls):
			mailbox_type = entry
		elif isinstance(entry, dict):
			from atlas_integrations.jobs import key_problems

			problems = key_problems(entry, cls, {"doctype", "label"})
			if problems:
				raise InvalidMailboxType(f"Mailbox type registration {entry.get('doctype')!r}{where}: {problems}")
			mailbox_type = cls(**{**entry, "locked_fields": tuple(entry.get("locked_fields") or ())})
		else:
			raise InvalidMailboxType(f"Mailbox type registration{where} is not a dict: {entry!r}")
		problems = []
		for attr in ("doctype", "label"):
			if not isinstance(getattr(mailbox_type, attr), str) or not getattr(mailbox_type, attr).strip():
				problems.append(f"{attr} must be a non-empty string")
		for attr in ("address_field", "owner_field", "kind_field", "company_field", "enabled_field",
					 "create_contacts_field", "require_known_sender_field"):
			value = getattr(mailbox_type, attr)
			if value is None and attr != "address_field":
				continue
			if not isinstance(value, str) or not value.isidentifier():
				problems.append(f"{attr} must be a column name, got {value!r}")
		for locked in mailbox_type.locked_fields:
			doctype, _, field = str(locked).partition(".")
			if not doctype or not field.isidentifier():
				problems.append(f"locked_fields entries are '<DocType>.<field>', got {locked!r}")
		for attr in ENTRY_POINTS:
			value = getattr(mailbox_type, attr)
			if value is not None and (not isinstance(value, str) or "." not in value
									  or not all(p.isidentifier() for p in value.split("."))):
				problems.append(f"{attr} must be a dotted path, got {value!r}")
		sending = [a for a in ("send_submit", "send_find", "send_store") if getattr(mailbox_type, a)]
		if sending and len(sending) < 3:
			missing = [a for a in ("send_submit", "send_find", "send_store") if a not in sending]
			problems.append(f"a type that sends needs all three outbox steps; missing {', '.join(missing)}")
		if problems:
			raise InvalidMailboxType(f"Mailbox type registration {mailbox_type.doctype!r}{where}: " + "; ".join(problems))
		return mailbox_type

	@property
	def sends(self) -> bool:
		"""True when mail can be sent through mailboxes of this type (it names the outbox's steps)."""
		return bool(self.send_submit)

	def entry(self, name: str, refusal: str = CANNOT):
		"""The callable of entry point ``name`` (see :data:`ENTRY_POINTS`).

		Raises:
			NotSupported: the type does not register it (``refusal``, with the type's label as ``{0}``).
		"""
		path = getattr(self, name)
		if not path:
			from atlas_integrations import messages

			messages.throw(refusal, self.label, exc=NotSupported, title="Smart Inbox")
		return frappe.get_attr(path)


def load(hook_values: list[str] | None = None) -> dict[str, MailboxType]:
	"""Every registered mailbox type by doctype, validated (for the site's installed apps unless
	``hook_values``, dotted paths to lists of registrations, are given).

	Raises:
		InvalidMailboxType: a malformed registration, or a doctype registered twice.
	"""
	paths = frappe.get_hooks(HOOK) if hook_values is None else hook_values
	out: dict[str, MailboxType] = {}
	for path in paths:
		for entry in frappe.get_attr(path) if isinstance(path, str) else path:
			mailbox_type = MailboxType.from_registration(entry, source=str(path))
			if mailbox_type.doctype in out:
				raise InvalidMailboxType(f"Mailbox type {mailbox_type.doctype!r} is registered twice ({path})")
			out[mailbox_type.doctype] = mailbox_type
	return out


def types() -> dict[str, MailboxType]:
	"""The registered mailbox types by doctype (cached for the request / job)."""
	cache = getattr(frappe.local, "atlas_mailbox_types", None)
	if cache is None:
		cache = frappe.local.atlas_mailbox_types = load()
	return cache


def get(doctype: str) -> MailboxType:
	"""The registered type of mailbox doctype ``doctype``.

	Raises:
		UnknownMailboxType: not a registered mailbox doctype.
	"""
	found = types().get(doctype or "")
	if found is None:
		raise UnknownMailboxType(f"{doctype!r} is not a registered mailbox type (hook {HOOK})")
	return found


def is_mailbox_doctype(doctype: str | None) -> bool:
	"""True when ``doctype`` is a registered mailbox type."""
	return bool(doctype) and doctype in types()


def doctypes() -> list[str]:
	"""The registered mailbox doctypes."""
	return list(types())


def sending_types() -> list[MailboxType]:
	"""The mailbox types that can send (:attr:`MailboxType.sends`)."""
	return [t for t in types().values() if t.sends]


# -- a row's mailbox ---------------------------------------------------------------------------------------
def _pair(row, column_of: str) -> tuple[str, str] | None:
	type_column, name_column = COLUMNS[column_of]
	doctype, name = row.get(type_column), row.get(name_column)
	# a half-set pair, or a type no app registers, names no mailbox (and is denied to everyone)
	return (str(doctype), str(name)) if doctype and name and is_mailbox_doctype(str(doctype)) else None


def of_thread_row(row) -> tuple[str, str] | None:
	"""The mailbox of an Inbox Thread (a document or dict with its ``mailbox_type`` / ``mailbox`` columns):
	``(doctype, name)``; None when it names none (or half of one, or a type that is not registered)."""
	return _pair(row, "thread")


def of_communication_row(row) -> tuple[str, str] | None:
	"""The mailbox a Communication names (``atlas_mailbox_type`` / ``atlas_mailbox``), as :func:`of_thread_row`."""
	return _pair(row, "communication")


def of_outgoing_row(row) -> tuple[str, str] | None:
	"""The mailbox an Outgoing Mail sends through, as :func:`of_thread_row`."""
	return _pair(row, "outgoing")


def thread_columns() -> list[str]:
	"""The Inbox Thread columns that name a mailbox (type, name)."""
	return list(COLUMNS["thread"])


def communication_columns() -> list[str]:
	"""The Communication columns that name a mailbox (type, name)."""
	return list(COLUMNS["communication"])


def outgoing_columns() -> list[str]:
	"""The Outgoing Mail columns that name a mailbox (type, name)."""
	return list(COLUMNS["outgoing"])


def filters_for(mailbox: tuple[str, str], column_of: str) -> dict[str, str]:
	"""Frappe filters: the rows (``column_of``: ``"thread"``, ``"communication"`` or ``"outgoing"``) of
	``mailbox`` = ``(doctype, name)``."""
	type_column, name_column = COLUMNS[column_of]
	return {type_column: mailbox[0], name_column: mailbox[1]}


def of_thread(thread: str | None) -> tuple[str, str] | None:
	"""The mailbox ``(doctype, name)`` of Inbox Thread ``thread``; None when it has none (or is unknown)."""
	if not thread:
		return None
	row = frappe.db.get_value("Inbox Thread", thread, thread_columns(), as_dict=True)
	return of_thread_row(row) if row else None


def row_names_sql(table: str, column_of: str, mailbox_type: MailboxType) -> str:
	"""SQL: the row of ``table`` (an alias or quoted table) names a mailbox of ``mailbox_type``.
	``column_of``: ``"thread"``, ``"communication"`` or ``"outgoing"``."""
	type_column, name_column = COLUMNS[column_of]
	return (f"({table}.`{type_column}` = {frappe.db.escape(mailbox_type.doctype)} "
			f"and ifnull({table}.`{name_column}`, '') != '')")


def any_column_sql(table: str, column_of: str) -> str:
	"""SQL: the row of ``table`` names a mailbox, or half of one (type or name; ``column_of`` as in
	:func:`row_names_sql`): a mail row, whatever else it names."""
	type_column, name_column = COLUMNS[column_of]
	return f"(ifnull({table}.`{type_column}`, '') != '' or ifnull({table}.`{name_column}`, '') != '')"


def mailbox_sql(table: str, column_of: str) -> str:
	"""SQL expression: the name of the mailbox a row of ``table`` names (with :func:`mailbox_type_sql`)."""
	return f"nullif({table}.`{COLUMNS[column_of][1]}`, '')"


def mailbox_type_sql(table: str, column_of: str) -> str:
	"""SQL expression: the doctype of the mailbox a row of ``table`` names."""
	return f"nullif({table}.`{COLUMNS[column_of][0]}`, '')"


# -- facts about mailboxes ---------------------------------------------------------------------------------
def facts(mailboxes: set[tuple[str, str]] | list[tuple[str, str]]) -> dict[tuple[str, str], frappe._dict]:
	"""What the pipeline needs of each mailbox, read in one query per type: ``{(doctype, name): {email,
	enabled, company, require_known_sender, create_contacts}}``; unknown mailboxes are absent."""
	by_type: dict[str, set[str]] = {}
	for doctype, name in mailboxes:
		if is_mailbox_doctype(doctype):
			by_type.setdefault(doctype, set()).add(name)
	out = {}
	for doctype, names in by_type.items():
		t = get(doctype)
		known = f"`{t.require_known_sender_field}`" if t.require_known_sender_field else "1"
		for row in frappe.db.sql(
				f"""select name, `{t.address_field}` as email, `{t.enabled_field}` as enabled,
				`{t.company_field}` as company, {known} as require_known_sender,
				`{t.create_contacts_field}` as create_contacts
				from `tab{t.doctype}` where name in %(n)s""", {"n": list(names)}, as_dict=True):
			out[(doctype, row.name)] = row
	return out


def owner_and_kind(mailbox: tuple[str, str]) -> tuple[str | None, str] | None:
	"""``(owner user, kind)`` of a mailbox (kind :data:`PERSONAL` or :data:`SHARED`); None when unknown."""
	if not mailbox or not is_mailbox_doctype(mailbox[0]) or not mailbox[1]:
		return None
	t = get(mailbox[0])
	columns = [c for c in (t.owner_field, t.kind_field) if c]
	if not columns:
		return (None, SHARED) if frappe.db.exists(t.doctype, mailbox[1]) else None
	row = frappe.db.get_value(t.doctype, mailbox[1], columns, as_dict=True)
	if not row:
		return None
	return (row.get(t.owner_field) if t.owner_field else None,
			(row.get(t.kind_field) if t.kind_field else SHARED) or PERSONAL)


def address(mailbox: tuple[str, str]) -> str:
	"""The mailbox's e-mail address ("" when unknown)."""
	t = get(mailbox[0])
	return (frappe.db.get_value(t.doctype, mailbox[1], t.address_field) or "").strip()


def provider_errors() -> tuple[type[BaseException], ...]:
	"""The registered providers' error base classes (for ``except``: a passing provider failure)."""
	return tuple(frappe.get_attr(t.errors) for t in types().values() if t.errors)


def personal_of(user: str) -> list[tuple[str, str]]:
	"""The personal mailboxes of ``user``, every type."""
	out = []
	for t in types().values():
		if t.owner_field and t.kind_field:
			out += [(t.doctype, n) for n in frappe.get_all(
				t.doctype, filters={t.owner_field: user, t.kind_field: PERSONAL}, pluck="name")]
	return out


def shared(company: str | None = None, enabled_only: bool = False, sending: bool = False) -> list[tuple[str, str]]:
	"""The shared workspace mailboxes, every type (of ``company`` if given; enabled ones only if asked;
	only types that can send if ``sending``)."""
	out = []
	for t in (sending_types() if sending else types().values()):
		filters = {**({t.kind_field: SHARED} if t.kind_field else {}),
				   **({t.company_field: company} if company else {}),
				   **({t.enabled_field: 1} if enabled_only else {})}
		out += [(t.doctype, n) for n in frappe.get_all(t.doctype, filters=filters, pluck="name", order_by="name asc")]
	return out


def of_thread_doc(doc) -> tuple[str, str]:
	"""The mailbox of an Inbox Thread document.

	Raises:
		NotSupported: the thread names no mailbox (or several).
	"""
	found = of_thread_row(doc)
	if not found:
		from atlas_integrations import messages

		messages.throw(NO_MAILBOX, exc=NotSupported, title="Smart Inbox")
	return found
