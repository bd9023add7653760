app_name = "atlas_integrations"
app_title = "Atlas Integrations"
app_publisher = "Atlas Integrations"
app_description = "Smart Inbox from Gmail and Xero accounting sync for ERPNext"
app_email = "dev@atlas-integrations.invalid"
app_license = "mit"
required_apps = ["frappe", "erpnext"]

after_install = "atlas_integrations.setup.install.after_install"
after_migrate = "atlas_integrations.setup.install.after_migrate"
