// The Xero column of the Quotation list as an indicator pill (ERPNext's own list settings are kept).
(function () {
	const settings = (frappe.listview_settings["Quotation"] = frappe.listview_settings["Quotation"] || {});
	const colors = { "Queued in Xero": "orange", "Synced to Xero": "green", "Xero send failed": "red" };
	settings.add_fields = [...(settings.add_fields || []), "atlas_xero_status"];
	settings.formatters = settings.formatters || {};
	settings.formatters.atlas_xero_status = (value) =>
		value ? `<span class="indicator-pill ${colors[value] || "gray"}">${frappe.utils.escape_html(__(value))}</span>` : "";
})();
