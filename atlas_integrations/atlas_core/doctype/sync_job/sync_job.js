// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

frappe.ui.form.on("Sync Job", {
	refresh(frm) {
		if (frm.doc.status === "failed") {
			frm.add_custom_button(__("Retry"), () =>
				frappe.call({
					method: "atlas_integrations.api.jobs.retry",
					args: { sync_job: frm.doc.name },
					callback: () => frm.reload_doc(),
				})
			);
		}
	},
});
