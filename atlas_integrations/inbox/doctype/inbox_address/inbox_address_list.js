// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

// The matching index is kept current by doc events; admins can rebuild it as a queued Sync Job ("Match Index
// Rebuild", atlas_integrations/inbox/match.py). Its form shows the rows written of the rows read, the rate
// and the time left while it runs.
frappe.listview_settings["Inbox Address"] = {
	onload(listview) {
		if (!frappe.user.has_role(["Atlas Owner", "Atlas Admin", "System Manager"])) return;
		listview.page.add_inner_button(__("Rebuild index"), () =>
			frappe.call({
				method: "atlas_integrations.api.progress.rebuild_match_index",
				type: "POST",
				callback: (r) => {
					const job = r.message && r.message.sync_job;
					if (!job) return;
					frappe.show_alert({ message: __("Rebuilding the matching index: Sync Job {0}", [frappe.utils.escape_html(job)]),
										indicator: "blue" });
					frappe.set_route("Form", "Sync Job", job);
				},
			})
		);
	},
};
