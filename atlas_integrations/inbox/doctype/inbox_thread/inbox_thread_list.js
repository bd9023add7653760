// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_labels.js" %}

// Subjects are mail, stored as HTML text (atlas_integrations/inbox/text.py): Frappe shows a Small Text
// title through html2text, i.e. exactly the decoded text, so no formatter is needed (or safe) here.
// The indicator is the Smart Inbox outcome (what needs a person first), else read/unread. Outcomes and
// match states are stored as identifiers (pending_review, unknown_sender, ...): the list, its filters and
// its columns show the words of public/js/atlas_labels.js.
const ATLAS_OUTCOME_COLORS = {
	pending_review: "orange",
	unknown_sender: "yellow",
	failed: "red",
	created: "green",
	linked: "blue",
	duplicate: "gray",
	skipped: "gray",
};

window.atlas_labels.apply_formatters("Inbox Thread");

frappe.listview_settings["Inbox Thread"] = {
	add_fields: ["unread", "message_count", "labels", "outcome", "category", "priority", "match_state"],
	onload(listview) {
		window.atlas_labels.apply_to_list(listview);
	},
	formatters: window.atlas_labels.list_formatters("Inbox Thread"),  // outcome, match_state
	get_indicator(doc) {
		if (doc.outcome && ATLAS_OUTCOME_COLORS[doc.outcome]) {
			return [window.atlas_labels.label("outcome", doc.outcome), ATLAS_OUTCOME_COLORS[doc.outcome],
					`outcome,=,${doc.outcome}`];
		}
		return doc.unread ? [__("Unread"), "blue", "unread,=,1"] : [__("Read"), "gray", "unread,=,0"];
	},
};
