app_name = "atlas_integrations"
app_title = "Atlas Integrations"
app_publisher = "Atlas Integrations"
app_description = "Smart Inbox from Gmail and Xero accounting sync for ERPNext"
app_email = "dev@atlas-integrations.invalid"
app_license = "mit"
required_apps = ["frappe", "erpnext"]

after_install = "atlas_integrations.setup.install.after_install"
after_migrate = "atlas_integrations.setup.install.after_migrate"

permission_query_conditions = {
	"Gmail Account": "atlas_integrations.permissions.gmail_account_query",
	"Inbox Thread": "atlas_integrations.permissions.inbox_thread_query",
}

# Pub/Sub's "Authorization: Bearer <Google JWT>" would make Frappe answer 401 before the push endpoint runs
before_request = ["atlas_integrations.api.push.set_aside_push_authorization"]

has_permission = {
	"Gmail Account": "atlas_integrations.permissions.gmail_account_has_permission",
	"Inbox Thread": "atlas_integrations.permissions.inbox_thread_has_permission",
}

scheduler_events = {
	"cron": {
		# due accounts are enqueued every minute; each account's own poll interval decides if it is due
		"* * * * *": ["atlas_integrations.gmail.sync.enqueue_due_accounts"],
	},
	"hourly": ["atlas_integrations.jobs.reap_stale_jobs"],
	"daily": ["atlas_integrations.gmail.push.renew_watches"],
}
