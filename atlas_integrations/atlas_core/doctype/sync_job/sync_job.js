// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_labels.js" %}
{% include "atlas_integrations/public/js/atlas_progress.js" %}

frappe.ui.form.on("Sync Job", {
	refresh(frm) {
		window.atlas_labels.apply_to_form(frm);  // status and mode in words
		window.atlas_progress.attach_sync_job_form(frm);  // done of total, rate, time left: live while it runs
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
