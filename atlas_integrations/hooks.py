app_name = "atlas_integrations"
app_title = "Atlas Integrations"
app_publisher = "Atlas Integrations"
app_description = "Smart Inbox from Gmail and Outlook, and Xero accounting sync, for ERPNext"
app_email = "dev@atlas-integrations.invalid"
app_license = "mit"
required_apps = ["frappe", "erpnext"]

after_install = "atlas_integrations.setup.install.after_install"
before_migrate = "atlas_integrations.setup.install.before_migrate"
after_migrate = "atlas_integrations.setup.install.after_migrate"

# Row-level rules for every doctype that holds mail (atlas_integrations/permissions.py)
permission_query_conditions = {
	"Gmail Account": "atlas_integrations.permissions.mailbox_query",
	"Outlook Account": "atlas_integrations.permissions.mailbox_query",
	"Inbox Thread": "atlas_integrations.permissions.inbox_thread_query",
	"Communication": "atlas_integrations.permissions.communication_query",
	"File": "atlas_integrations.permissions.file_query",
	"Outgoing Mail": "atlas_integrations.permissions.outgoing_mail_query",
}

# Pub/Sub's "Authorization: Bearer <Google JWT>" would make Frappe answer 401 before the push endpoint runs
before_request = ["atlas_integrations.api.push.set_aside_push_authorization"]

has_permission = {
	"Gmail Account": "atlas_integrations.permissions.mailbox_has_permission",
	"Outlook Account": "atlas_integrations.permissions.mailbox_has_permission",
	"Inbox Thread": "atlas_integrations.permissions.inbox_thread_has_permission",
	"Communication": "atlas_integrations.permissions.communication_has_permission",
	"File": "atlas_integrations.permissions.file_has_permission",
	"Outgoing Mail": "atlas_integrations.permissions.outgoing_mail_has_permission",
}

_MAIL_ROW_EVENTS = {
	"validate": [
		"atlas_integrations.permissions.validate_mail_row",
		"atlas_integrations.inbox.text.escape_changed_fields",
	]
}
doc_events = {
	"Communication": _MAIL_ROW_EVENTS,
	"Inbox Thread": _MAIL_ROW_EVENTS,
	"File": _MAIL_ROW_EVENTS,
	"Outgoing Mail": {"validate": "atlas_integrations.permissions.validate_mail_row"},
	# a share or an assignment would override the row-level rule: refused for users outside the mailbox
	"DocShare": {"validate": "atlas_integrations.permissions.validate_share"},
	"ToDo": {"validate": "atlas_integrations.permissions.validate_todo"},
	# the Smart Inbox's matching index follows the records it matches (atlas_integrations/inbox/match.py)
	**{dt: {"on_update": "atlas_integrations.inbox.match.on_record_change",
			"on_trash": "atlas_integrations.inbox.match.on_record_change"}
	   for dt in ("Contact", "Customer", "Supplier", "Lead", "User")},
	"Inbox Rule": {"validate": "atlas_integrations.inbox.rules.validate_rule_doc"},
	# a Contact's / Address's link to mail is the user's to make, and never copies the mail's title
	"Address": {"validate": "atlas_integrations.overrides.clear_mail_link_titles"},
	# Sales Invoices reach Xero through the Sync Job queue, after commit (atlas_integrations/xero/invoices.py)
	"Sales Invoice": {"before_insert": "atlas_integrations.xero.invoices.before_insert",
					  "on_submit": "atlas_integrations.xero.invoices.on_submit",
					  "before_cancel": "atlas_integrations.xero.invoices.before_cancel",
					  "on_cancel": "atlas_integrations.xero.invoices.on_cancel"},
	# Quotations become Xero Quotes the same way (atlas_integrations/xero/quotes.py)
	"Quotation": {"before_insert": "atlas_integrations.xero.quotes.before_insert",
				  "on_submit": "atlas_integrations.xero.quotes.on_submit",
				  "before_cancel": "atlas_integrations.xero.quotes.before_cancel",
				  "on_cancel": "atlas_integrations.xero.quotes.on_cancel"},
	# an amended Payment Entry is not the Xero payment's entry
	"Payment Entry": {"before_insert": "atlas_integrations.xero.payments.before_insert"},
}
doc_events["Contact"] = {**doc_events["Contact"], "validate": "atlas_integrations.overrides.clear_mail_link_titles"}
# a Customer in Xero whose name, email, address or tax id changed updates its Xero Contact
doc_events["Customer"] = {**doc_events["Customer"],
						  "on_update": [doc_events["Customer"]["on_update"], "atlas_integrations.xero.contacts.on_customer_update"]}

# a document's timeline shows mail only to users who may read its mailbox (atlas_integrations/inbox/timeline.py)
override_whitelisted_methods = {
	"frappe.desk.form.load.getdoc": "atlas_integrations.inbox.timeline.getdoc",
	"frappe.desk.form.load.get_docinfo": "atlas_integrations.inbox.timeline.get_docinfo",
	"frappe.desk.form.load.get_communications": "atlas_integrations.inbox.timeline.get_communications",
	"frappe.desk.form.save.savedocs": "atlas_integrations.inbox.timeline.savedocs",
	"frappe.desk.form.save.cancel": "atlas_integrations.inbox.timeline.cancel",
	# mail read past the row rules by Frappe's and ERPNext's own methods (atlas_integrations/overrides.py)
	"frappe.desk.search.search_link": "atlas_integrations.overrides.search_link",
	"frappe.desk.search.search_widget": "atlas_integrations.overrides.search_widget",
	"frappe.desk.listview.get_group_by_count": "atlas_integrations.overrides.get_group_by_count",
	"frappe.desk.form.document_follow.follow_document": "atlas_integrations.overrides.follow_document",
	"run_doc_method": "atlas_integrations.overrides.run_doc_method",
	"frappe.handler.run_doc_method": "atlas_integrations.overrides.run_doc_method",
	"erpnext.crm.doctype.utils.get_last_interaction": "atlas_integrations.overrides.get_last_interaction",
	"frappe.desk.search.get_link_title": "atlas_integrations.overrides.get_link_title",
	"frappe.desk.like.toggle_like": "atlas_integrations.overrides.toggle_like",
}

# Deny by default for mail: an RPC call whose arguments name mail through a method not known to apply the
# row rules is refused, after login (atlas_integrations/guard.py)
auth_hooks = ["atlas_integrations.guard.check_request"]
#: doctypes that hold mail or its traces, guarded by atlas_integrations/guard.py (providers add theirs)
atlas_mail_doctypes = ["Communication", "Communication Link", "File", "Inbox Thread", "Outgoing Mail",
					   "Gmail Account", "Outlook Account", "Inbound Route"]

# a route to an Atlas doctype the user may not read shows Frappe's "Not permitted" page (public/js/atlas_routes.js)
app_include_js = ["/assets/atlas_integrations/js/atlas_routes.js"]
boot_session = "atlas_integrations.boot.boot_session"

# Mail attachments are downloads, never pages (atlas_integrations/downloads.py)
after_request = ["atlas_integrations.downloads.force_download"]

# mail text is shown as text everywhere (atlas_integrations/inbox/text.py, public/js/atlas_text.js)
doctype_js = {
	"Communication": ["public/js/atlas_text.js", "public/js/communication.js"],
	"Inbox Thread": ["public/js/atlas_text.js"],
	"Gmail Account": ["public/js/atlas_erase.js"],
	"Outlook Account": ["public/js/atlas_erase.js"],
	"Inbound Route": ["public/js/atlas_erase.js"],
	# the integration card's recent jobs show Xero's words as text
	"Xero Connection": ["public/js/atlas_text.js"],
	# Xero state and "Open in Xero" on the invoice (atlas_integrations/xero/invoices.py)
	"Sales Invoice": ["public/js/sales_invoice_xero.js"],
	# Xero state, "Send quote" and "Open in Xero" on the quotation (atlas_integrations/xero/quotes.py)
	"Quotation": ["public/js/quotation_xero.js"],
	# a document made from mail opens its thread in the Smart Inbox page
	"Task": ["public/js/open_in_inbox.js"],
	"Issue": ["public/js/open_in_inbox.js"],
	"ToDo": ["public/js/open_in_inbox.js"],
}
doctype_list_js = {"Sales Invoice": ["public/js/sales_invoice_xero_list.js"],
				   "Quotation": ["public/js/quotation_xero_list.js"]}
# (list rows need nothing: Frappe shows a Small Text title through html2text, i.e. exactly its text)

scheduler_events = {
	"cron": {
		# due accounts are enqueued every minute; each account's own poll interval decides if it is due
		"* * * * *": ["atlas_integrations.gmail.sync.enqueue_due_accounts",
					  "atlas_integrations.outlook.sync.enqueue_due_accounts",
					  # due retries (exponential backoff) and lost dispatches of every job type
					  "atlas_integrations.jobs.dispatch_due",
					  # each connected Company's due Xero jobs
					  "atlas_integrations.xero.drain.drain_all",
					  # reads of what changed in Xero (payments), each Company at its own interval
					  "atlas_integrations.xero.payments.schedule_pulls"],
	},
	"hourly": ["atlas_integrations.jobs.reap_stale_jobs",
			   # Outlook change-notification subscriptions renewed before half their lifetime is gone
			   "atlas_integrations.outlook.notify.renew_all"],
	# sends whose process died between the provider and the record (atlas_integrations/inbox/outbox.py)
	"all": ["atlas_integrations.inbox.outbox.reconcile_stale"],
	"daily": ["atlas_integrations.gmail.push.renew_watches"],
}

# mailbox types each provider registers with the mailbox registry (atlas_integrations/inbox/mailboxes.py)
atlas_mailbox_types = ["atlas_integrations.gmail.mailbox_type.MAILBOX_TYPES",
					   "atlas_integrations.outlook.mailbox_type.MAILBOX_TYPES",
					   "atlas_integrations.inbox.route_type.MAILBOX_TYPES"]

# Sync Job types each provider registers with the shared job ledger (atlas_integrations/jobs.py)
atlas_job_types = ["atlas_integrations.gmail.jobs.JOB_TYPES", "atlas_integrations.outlook.jobs.JOB_TYPES",
				   "atlas_integrations.inbox.jobs.JOB_TYPES",
				   "atlas_integrations.xero.jobs.JOB_TYPES"]

# read-only URL fields of Atlas Settings that a provider computes (atlas_core/doctype/atlas_settings)
atlas_settings_urls = {"google_redirect_uri": "atlas_integrations.gmail.oauth.redirect_uri",
					   "microsoft_redirect_uri": "atlas_integrations.outlook.oauth.redirect_uri",
					   "xero_redirect_uri": "atlas_integrations.xero.oauth.redirect_uri"}
