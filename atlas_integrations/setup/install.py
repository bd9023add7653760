"""Install-time setup: roles, role mapping, custom fields, defaults. Idempotent; reused by migrate."""

from __future__ import annotations

import frappe
from frappe.custom.doctype.custom_field.custom_field import create_custom_fields

from atlas_integrations.permissions import ADMIN, DISPATCHER, OWNER, ROLES
from atlas_integrations.settings import DEFAULT_PROCESSING_LABEL_DELAY

#: Custom fields Atlas adds to Frappe's Communication (one Communication per Gmail message).
COMMUNICATION_FIELDS = [
	{"fieldname": "atlas_mailbox_section", "fieldtype": "Section Break", "label": "Mailbox", "collapsible": 1,
	 "insert_after": "send_after"},
	# the mailbox (of any registered mailbox type: Gmail Account, Inbound Route ...) the message belongs to
	{"fieldname": "atlas_mailbox_type", "fieldtype": "Link", "label": "Mailbox Type", "options": "DocType",
	 "read_only": 1, "insert_after": "atlas_mailbox_section"},
	{"fieldname": "atlas_mailbox", "fieldtype": "Dynamic Link", "label": "Mailbox", "options": "atlas_mailbox_type",
	 "read_only": 1, "insert_after": "atlas_mailbox_type", "search_index": 1},
	{"fieldname": "atlas_inbox_thread", "fieldtype": "Link", "label": "Inbox Thread", "options": "Inbox Thread",
	 "read_only": 1, "insert_after": "atlas_mailbox", "search_index": 1},
	{"fieldname": "atlas_provider_message_id", "fieldtype": "Data", "label": "Provider Message ID", "read_only": 1,
	 "insert_after": "atlas_inbox_thread"},
	{"fieldname": "atlas_provider_thread_id", "fieldtype": "Data", "label": "Provider Thread ID", "read_only": 1,
	 "insert_after": "atlas_provider_message_id"},
	# mailbox + provider message id: the unique key that makes every write idempotent (an inbound route's
	# provider message id is the SHA-256 of the raw message: a replayed delivery stores nothing twice)
	{"fieldname": "atlas_mailbox_key", "fieldtype": "Data", "label": "Mailbox Key", "read_only": 1, "hidden": 1,
	 "unique": 1, "insert_after": "atlas_provider_thread_id"},
	{"fieldname": "atlas_mailbox_column", "fieldtype": "Column Break", "insert_after": "atlas_mailbox_key"},
	{"fieldname": "atlas_tags", "fieldtype": "Small Text", "label": "Tags (provider ids)", "read_only": 1,
	 "insert_after": "atlas_mailbox_column"},
	{"fieldname": "atlas_snippet", "fieldtype": "Small Text", "label": "Snippet", "read_only": 1,
	 "insert_after": "atlas_tags"},
	{"fieldname": "atlas_in_reply_to", "fieldtype": "Small Text", "label": "In-Reply-To (header)", "read_only": 1,
	 "insert_after": "atlas_snippet"},
	{"fieldname": "atlas_body_stored", "fieldtype": "Check", "label": "Body Stored", "read_only": 1,
	 "insert_after": "atlas_in_reply_to"},
	{"fieldname": "atlas_skipped_attachments", "fieldtype": "Small Text", "label": "Attachments Not Stored",
	 "read_only": 1, "insert_after": "atlas_body_stored", "description": "JSON: attachments over the size cap"},
	{"fieldname": "atlas_parse_error", "fieldtype": "Small Text", "label": "Parse Errors", "read_only": 1,
	 "insert_after": "atlas_skipped_attachments"},
	{"fieldname": "atlas_labels_pending", "fieldtype": "Check", "label": "Label Change Pending", "read_only": 1,
	 "insert_after": "atlas_parse_error", "description": "A desk change of labels/read state not yet written to Gmail"},
	{"fieldname": "atlas_deleted", "fieldtype": "Check", "label": "Deleted in Gmail", "read_only": 1,
	 "insert_after": "atlas_parse_error", "description": "Deleted in Gmail: kept here, hidden from the thread"},
	{"fieldname": "atlas_processed_pending", "fieldtype": "Check", "label": "Processing Label Pending",
	 "read_only": 1, "insert_after": "atlas_deleted", "search_index": 1,
	 "description": "Stored here; the Gmail processing label is not yet applied (applied in batches)"},
	# the Smart Inbox pipeline (atlas_integrations/inbox/pipeline.py): inputs kept at store time ...
	{"fieldname": "atlas_inbox_section", "fieldtype": "Section Break", "label": "Smart Inbox", "collapsible": 1,
	 "insert_after": "atlas_processed_pending"},
	{"fieldname": "atlas_source", "fieldtype": "Data", "label": "Source", "read_only": 1,
	 "insert_after": "atlas_inbox_section", "description": "Gmail or Inbound Route"},
	# the sender's address exactly as the From header writes it when Frappe's Email field refuses it (no
	# domain: "nsb"); `sender` is then empty. HTML text (inbox/text.py); Small Text: up to 254 characters
	# as written, never cut, and shown unescaped by Frappe's read-only display
	{"fieldname": "atlas_sender_as_written", "fieldtype": "Small Text", "label": "From (as written)",
	 "read_only": 1, "insert_after": "atlas_source",
	 "description": "The sender's address as the message writes it, when it is not a valid email address (e.g. no domain)"},
	{"fieldname": "atlas_backfill", "fieldtype": "Check", "label": "Imported by Backfill", "read_only": 1,
	 "insert_after": "atlas_sender_as_written"},
	{"fieldname": "atlas_reply_to", "fieldtype": "Code", "label": "Reply-To", "read_only": 1,
	 "insert_after": "atlas_backfill"},
	{"fieldname": "atlas_references", "fieldtype": "Code", "label": "References", "read_only": 1, "hidden": 1,
	 "insert_after": "atlas_reply_to"},
	{"fieldname": "atlas_signal_headers", "fieldtype": "Code", "label": "Signal Headers", "read_only": 1,
	 "hidden": 1, "insert_after": "atlas_references", "description": "JSON: the headers triage reads"},
	# ... and what it decided: exactly one outcome per inbound message
	{"fieldname": "atlas_inbox_column", "fieldtype": "Column Break", "insert_after": "atlas_signal_headers"},
	{"fieldname": "atlas_outcome", "fieldtype": "Select", "label": "Outcome", "read_only": 1, "search_index": 1,
	 "options": "\ncreated\nlinked\npending_review\nunknown_sender\nduplicate\nskipped\nfailed",
	 "insert_after": "atlas_inbox_column"},
	{"fieldname": "atlas_outcome_reason", "fieldtype": "Small Text", "label": "Why", "read_only": 1,
	 "insert_after": "atlas_outcome"},
	{"fieldname": "atlas_message_key", "fieldtype": "Data", "label": "Message-ID (normalised)", "read_only": 1,
	 "hidden": 1, "search_index": 1, "insert_after": "atlas_outcome_reason",
	 "description": "Finds the same message received by another mailbox or route"},
]


#: Custom fields Atlas adds to Frappe's File (attachments of mail)
FILE_FIELDS = [
	# the readable original file name (HTML text, see atlas_integrations/inbox/text.py); file_name is the
	# safe stored name (werkzeug secure_filename)
	{"fieldname": "atlas_original_name", "fieldtype": "Small Text", "label": "Original File Name (mail)",
	 "read_only": 1, "insert_after": "file_name"},
	{"fieldname": "atlas_content_id", "fieldtype": "Data", "label": "Content-ID (mail)", "read_only": 1,
	 "insert_after": "atlas_original_name"},
]

#: role permissions Atlas roles need on Frappe's doctypes that hold mail. The row-level hooks in
#: atlas_integrations/permissions.py can only narrow these: they limit each role to its mailboxes.
#: (File is readable by Frappe's "All" role already; reading an attachment follows its Communication.)
HOST_DOCPERMS = {
	"Communication": ("read", "print", "email", "report", "export"),
}


def make_roles() -> None:
	"""Create the three Atlas roles (desk access) if missing."""
	for role in ROLES:
		if not frappe.db.exists("Role", role):
			frappe.get_doc({"doctype": "Role", "role_name": role, "desk_access": 1}).insert(ignore_permissions=True)


def map_host_roles() -> None:
	"""Give every enabled System Manager the Atlas Owner role (the install-time mapping).

	Atlas Admin and Atlas Dispatcher are granted by an admin on the User form (Roles), like any role.
	"""
	users = frappe.get_all(
		"Has Role", filters={"role": "System Manager", "parenttype": "User"}, pluck="parent", distinct=True
	)
	for user in users:
		if user in ("Guest",) or not frappe.db.get_value("User", user, "enabled"):
			continue
		if not frappe.db.exists("Has Role", {"parent": user, "role": OWNER, "parenttype": "User"}):
			frappe.get_doc("User", user).add_roles(OWNER)


#: Xero state on ERPNext's documents (atlas_integrations/xero/invoices.py)
SALES_INVOICE_FIELDS = [
	{"fieldname": "atlas_xero_status", "fieldtype": "Select", "label": "Xero", "read_only": 1, "no_copy": 1,
	 "options": "\nXero Pending\nXero Synced\nXero Error", "in_standard_filter": 1, "in_list_view": 1,
	 "allow_on_submit": 1, "insert_after": "status", "search_index": 1},
	{"fieldname": "atlas_xero_invoice_id", "fieldtype": "Data", "label": "Xero InvoiceID", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_status"},
	{"fieldname": "atlas_xero_error", "fieldtype": "Small Text", "label": "Xero Error", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_invoice_id"},
	# what Xero says about the invoice once it is synced (Xero is the source of truth for payments)
	{"fieldname": "atlas_xero_payments_section", "fieldtype": "Section Break", "label": "Xero Payments",
	 "collapsible": 1, "depends_on": "eval:doc.atlas_xero_invoice_id", "insert_after": "atlas_xero_error"},
	{"fieldname": "atlas_xero_invoice_status", "fieldtype": "Data", "label": "Xero Invoice Status", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "in_standard_filter": 1, "insert_after": "atlas_xero_payments_section"},
	{"fieldname": "atlas_xero_fully_paid_on", "fieldtype": "Date", "label": "Fully Paid in Xero On", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_invoice_status"},
	{"fieldname": "atlas_xero_pulled_at", "fieldtype": "Datetime", "label": "Read from Xero At", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_fully_paid_on"},
	{"fieldname": "atlas_xero_payments_column", "fieldtype": "Column Break", "insert_after": "atlas_xero_pulled_at"},
	{"fieldname": "atlas_xero_amount_paid", "fieldtype": "Currency", "label": "Paid in Xero", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "options": "currency", "insert_after": "atlas_xero_payments_column"},
	{"fieldname": "atlas_xero_amount_credited", "fieldtype": "Currency", "label": "Credited in Xero", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "options": "currency", "insert_after": "atlas_xero_amount_paid",
	 "description": "Credit notes, overpayments and prepayments applied in Xero"},
	{"fieldname": "atlas_xero_amount_due", "fieldtype": "Currency", "label": "Due in Xero", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "options": "currency", "insert_after": "atlas_xero_amount_credited"},
]
#: Quotations as Xero Quotes, and their delivery (atlas_integrations/xero/quotes.py)
QUOTATION_FIELDS = [
	{"fieldname": "atlas_xero_status", "fieldtype": "Select", "label": "Xero", "read_only": 1, "no_copy": 1,
	 "options": "\nQueued in Xero\nSynced to Xero\nXero send failed", "in_standard_filter": 1, "in_list_view": 1,
	 "allow_on_submit": 1, "insert_after": "status", "search_index": 1},
	{"fieldname": "atlas_xero_quote_id", "fieldtype": "Data", "label": "Xero QuoteID", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_status"},
	{"fieldname": "atlas_xero_quote_status", "fieldtype": "Data", "label": "Xero Quote Status", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_quote_id"},
	{"fieldname": "atlas_xero_sent_at", "fieldtype": "Datetime", "label": "Quote Emailed At", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_quote_status"},
	{"fieldname": "atlas_xero_error", "fieldtype": "Small Text", "label": "Xero Error", "read_only": 1,
	 "no_copy": 1, "allow_on_submit": 1, "insert_after": "atlas_xero_sent_at"},
]
#: a Payment Entry posted from a Xero payment (atlas_integrations/xero/payments.py): one per PaymentID
PAYMENT_ENTRY_FIELDS = [
	{"fieldname": "atlas_xero_payment_id", "fieldtype": "Data", "label": "Xero PaymentID", "read_only": 1,
	 "no_copy": 1, "unique": 1, "allow_on_submit": 1, "insert_after": "reference_date"},
]
CUSTOMER_FIELDS = [
	{"fieldname": "atlas_xero_contact_id", "fieldtype": "Data", "label": "Xero ContactID", "read_only": 1,
	 "no_copy": 1, "insert_after": "customer_name"},
	# the organisation (tenant) that ContactID belongs to: an id from another organisation is looked up again
	{"fieldname": "atlas_xero_tenant_id", "fieldtype": "Data", "label": "Xero Tenant of the ContactID", "read_only": 1,
	 "no_copy": 1, "hidden": 1, "insert_after": "atlas_xero_contact_id"},
]


def make_custom_fields() -> None:
	"""Add Atlas's fields to Communication, File, Sales Invoice, Customer, Quotation and Payment Entry (idempotent:
	updates in place)."""
	create_custom_fields({"Communication": COMMUNICATION_FIELDS, "File": FILE_FIELDS,
						  "Sales Invoice": SALES_INVOICE_FIELDS, "Customer": CUSTOMER_FIELDS,
						  "Quotation": QUOTATION_FIELDS, "Payment Entry": PAYMENT_ENTRY_FIELDS},
						 ignore_validate=True, update=True)


def make_host_permissions() -> None:
	"""Give the Atlas roles :data:`HOST_DOCPERMS` on Frappe's doctypes, with Frappe's own
	``add_permission`` / ``update_permission_property`` (Custom DocPerm, as the Role Permission Manager
	does). Idempotent."""
	from frappe.permissions import add_permission, update_permission_property

	for doctype, ptypes in HOST_DOCPERMS.items():
		for role in ROLES:
			if not frappe.db.exists("Custom DocPerm", {"parent": doctype, "role": role, "permlevel": 0, "if_owner": 0}):
				add_permission(doctype, role, 0)
			for ptype in ptypes:
				update_permission_property(doctype, role, 0, ptype, 1, validate=False)
	frappe.clear_cache()


def make_indexes() -> None:
	"""Index File ``content_hash``: mail attachments are deduplicated by it (inbox/attachments.py) and
	Frappe ships no index on it. Idempotent."""
	frappe.db.add_index("File", ["content_hash"], index_name="atlas_content_hash")
	# the pipeline finds a Communication's unprocessed inbound siblings, and timelines by link
	frappe.db.add_index("Communication", ["atlas_inbox_thread", "atlas_outcome"], index_name="atlas_thread_outcome")
	frappe.db.add_index("Communication Link", ["link_doctype", "link_name"], index_name="atlas_link")


def set_defaults() -> None:
	"""Fill Atlas Settings defaults that are still empty."""
	settings = frappe.get_single("Atlas Settings")
	changed = False
	for field, value in (
		("workspace_state", "Active"),
		("default_backfill_days", 30),
		("poll_interval_minutes", 1),
		("body_storage_mode", "full"),
		("max_attachment_size_mb", 10),
		("processing_label", "Atlas/Processed"),
		("push_auth_mode", "OIDC token"),
	):
		if not settings.get(field):
			settings.set(field, value)
			changed = True
	# 0 is a meaningful value here ("label at the end of every run"), so only a never-set field is filled
	if not frappe.db.sql("select 1 from `tabSingles` where doctype='Atlas Settings' and field='processing_label_delay'"):
		settings.processing_label_delay = DEFAULT_PROCESSING_LABEL_DELAY
		changed = True
	if changed:
		settings.flags.ignore_permissions = True
		settings.save()


MB = 1024 * 1024
FRAPPE_DEFAULT_REQUEST_LIMIT = 25 * MB  # what Frappe reads of a request body when max_file_size is unset
#: the site's request limit Atlas sets when none is set: a 25 MB message (Gmail's and Mailgun's limit, an
#: Inbound Route's default) in a Mailgun ``forward()`` form (1 MB for its other fields, see
#: ``atlas_integrations.inbox.inbound.FORM_ALLOWANCE``)
REQUEST_LIMIT = 26 * MB


def site_request_limit() -> int:
	"""Bytes of a request body Frappe reads before any app code runs (site config ``max_file_size``,
	else Frappe's 25 MB); a larger request is answered 413 by Frappe itself."""
	from frappe.utils import cint

	return cint(frappe.conf.get("max_file_size")) or FRAPPE_DEFAULT_REQUEST_LIMIT


def set_request_limit() -> int:
	"""Write site config ``max_file_size`` = :data:`REQUEST_LIMIT` (bytes) when the site has none; a value
	already there is the admin's decision and is kept (it also bounds desk uploads when System Settings
	has no Max File Size, and every other app's requests). Idempotent. Returns the limit in force.

	Why: Frappe reads and keeps in memory the whole body of every request, guest requests included,
	before app code can refuse it, so this value, not an Inbound Route's limit, bounds what an
	unauthenticated sender can make the site read (README, "Inbound Route")."""
	from frappe.installer import update_site_config

	if not frappe.conf.get("max_file_size"):
		update_site_config("max_file_size", REQUEST_LIMIT)
		frappe.local.conf.max_file_size = REQUEST_LIMIT
	return site_request_limit()


APP = "atlas_integrations"


def make_module_defs() -> None:
	"""A Module Def for every module in modules.txt (Atlas Core, Inbox, Gmail, Xero); migrate needs them
	before it imports the doctypes of a module that is new to the site. Idempotent."""
	for module in frappe.get_module_list(APP):
		if not frappe.db.exists("Module Def", module):
			frappe.get_doc({"doctype": "Module Def", "module_name": module, "app_name": APP}).insert(
				ignore_permissions=True)


def remove_stale_module_defs() -> list[str]:
	"""Delete this app's Module Defs that modules.txt no longer lists (e.g. the single "Atlas
	Integrations" module the doctypes lived in before they were split by provider) once nothing refers
	to them. Returns the names removed."""
	current = set(frappe.get_module_list(APP))
	removed = []
	for name in frappe.get_all("Module Def", filters={"app_name": APP}, pluck="name"):
		if name in current:
			continue
		used = any(frappe.db.exists(dt, {"module": name}) for dt in
				   ("DocType", "Report", "Page", "Workspace", "Print Format", "Dashboard Chart", "Number Card",
					"Custom Field", "Property Setter", "Web Form", "Notification", "Server Script"))
		if not used:
			frappe.delete_doc("Module Def", name, ignore_permissions=True, force=True)
			removed.append(name)
	return removed


def before_migrate() -> None:
	"""``before_migrate`` hook: Module Defs exist before the doctypes of a new module are imported."""
	make_module_defs()


def after_install() -> None:
	"""``after_install`` hook."""
	make_roles()
	make_custom_fields()
	make_host_permissions()
	make_indexes()
	map_host_roles()
	set_defaults()
	set_request_limit()
	make_match_index()


def after_migrate() -> None:
	"""``after_migrate`` hook: the same steps, all idempotent."""
	make_module_defs()
	remove_stale_module_defs()
	make_roles()
	make_custom_fields()
	make_host_permissions()
	make_indexes()
	set_defaults()
	set_request_limit()
	make_match_index()


def make_match_index() -> None:
	"""Build the Smart Inbox's matching index (Inbox Address) when it is empty, e.g. right after install;
	doc events keep it current from then on."""
	from atlas_integrations.inbox.match import rebuild_index

	if not frappe.db.count("Inbox Address"):
		rebuild_index()


__all__ = ["after_install", "after_migrate", "ADMIN", "DISPATCHER", "OWNER"]
