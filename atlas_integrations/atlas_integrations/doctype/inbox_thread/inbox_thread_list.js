// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

frappe.listview_settings["Inbox Thread"] = {
	add_fields: ["unread", "message_count", "labels"],
	get_indicator(doc) {
		return doc.unread ? [__("Unread"), "blue", "unread,=,1"] : [__("Read"), "gray", "unread,=,0"];
	},
};
