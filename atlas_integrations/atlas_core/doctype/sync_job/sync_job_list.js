// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_labels.js" %}
{% include "atlas_integrations/public/js/atlas_progress.js" %}

// The title column is the job's reference in words (reference_title: the mailbox's address or the
// document's title, atlas_integrations/jobs.py); status and mode are shown as words (atlas_labels.js).
window.atlas_labels.apply_formatters("Sync Job");

frappe.listview_settings["Sync Job"] = {
	add_fields: ["status", "reference_doctype", "reference_name", "job_type", "progress_done", "progress_total",
				 "rate_per_minute", "eta_seconds", "progress_stage"],
	onload(listview) {
		window.atlas_labels.apply_to_list(listview);
		window.atlas_progress.attach_list(listview);  // running jobs' figures follow the realtime event
	},
	formatters: {
		...window.atlas_labels.list_formatters("Sync Job"),  // status and mode in words
		// the Progress column: "done of total unit · rate a minute · about N left" (escaped text)
		progress_done: (value, df, doc) => window.atlas_progress.list_cell(doc),
	},
	get_indicator(doc) {
		const colour = { pending: "orange", processing: "blue", succeeded: "green", failed: "red" }[doc.status];
		return [window.atlas_labels.label("job_status", doc.status), colour || "gray", `status,=,${doc.status}`];
	},
};
