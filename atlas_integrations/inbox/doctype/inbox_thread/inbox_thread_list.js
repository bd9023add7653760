// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

// Subjects are mail, stored as HTML text (atlas_integrations/inbox/text.py): Frappe shows a Small Text
// title through html2text, i.e. exactly the decoded text, so no formatter is needed (or safe) here.
frappe.listview_settings["Inbox Thread"] = {
	add_fields: ["unread", "message_count", "labels"],
	get_indicator(doc) {
		return doc.unread ? [__("Unread"), "blue", "unread,=,1"] : [__("Read"), "gray", "unread,=,0"];
	},
};
