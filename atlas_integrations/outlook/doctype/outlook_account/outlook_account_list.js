// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

frappe.listview_settings["Outlook Account"] = {
	add_fields: ["status", "health", "last_error"],
	get_indicator(doc) {
		const colour = { healthy: "green", unhealthy: "red", disabled: "gray" }[doc.health] || "gray";
		return [`${__(doc.status)} · ${__(doc.health)}`, colour, `health,=,${doc.health}`];
	},
};
