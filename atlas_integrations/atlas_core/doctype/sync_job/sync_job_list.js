// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

frappe.listview_settings["Sync Job"] = {
	add_fields: ["status"],
	get_indicator(doc) {
		const colour = { pending: "orange", processing: "blue", succeeded: "green", failed: "red" }[doc.status];
		return [__(doc.status), colour || "gray", `status,=,${doc.status}`];
	},
};
