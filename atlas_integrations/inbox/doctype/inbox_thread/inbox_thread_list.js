// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

// Subjects are mail, stored as HTML text (atlas_integrations/inbox/text.py): Frappe shows a Small Text
// title through html2text, i.e. exactly the decoded text, so no formatter is needed (or safe) here.
// The indicator is the Smart Inbox outcome (what needs a person first), else read/unread.
const ATLAS_OUTCOME_COLORS = {
	pending_review: "orange",
	unknown_sender: "yellow",
	failed: "red",
	created: "green",
	linked: "blue",
	duplicate: "gray",
	skipped: "gray",
};

frappe.listview_settings["Inbox Thread"] = {
	add_fields: ["unread", "message_count", "labels", "outcome", "category", "priority"],
	get_indicator(doc) {
		if (doc.outcome && ATLAS_OUTCOME_COLORS[doc.outcome]) {
			return [__(frappe.unscrub(doc.outcome)), ATLAS_OUTCOME_COLORS[doc.outcome], `outcome,=,${doc.outcome}`];
		}
		return doc.unread ? [__("Unread"), "blue", "unread,=,1"] : [__("Read"), "gray", "unread,=,0"];
	},
};
