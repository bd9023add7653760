// The Xero column of the Sales Invoice list as an indicator pill (ERPNext's own list settings are kept).
(function () {
	const settings = (frappe.listview_settings["Sales Invoice"] = frappe.listview_settings["Sales Invoice"] || {});
	const colors = { "Xero Pending": "orange", "Xero Synced": "green", "Xero Error": "red" };
	settings.add_fields = [...(settings.add_fields || []), "atlas_xero_status"];
	settings.formatters = settings.formatters || {};
	settings.formatters.atlas_xero_status = (value) =>
		value ? `<span class="indicator-pill ${colors[value] || "gray"}">${frappe.utils.escape_html(__(value))}</span>` : "";
})();
