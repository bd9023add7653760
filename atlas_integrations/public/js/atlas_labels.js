// The words people read for the values Atlas stores as identifiers: the one label map of the desk.
//
// Stored values stay as they are (`pending_review`, `unknown_sender`, ...): filters, REST integrators and
// the data depend on them. Wherever a person reads one — the Smart Inbox page, the Inbox Thread list,
// filters and form — it is shown through this map, in the operator guide's words, translated with __().
//
// Used by the Smart Inbox page bundle (imported) and by the doctype scripts of Inbox Thread, Sync Job and
// Communication (pulled in with Frappe's include directive when it serves them), so this file is a plain
// script: no module syntax, no top-level const/let (it may be evaluated more than once in one desk), and
// never the include directive itself in its text (Frappe would try to resolve it).
(function () {
	// English words; __() translates them where they are shown
	const WORDS = {
		// Inbox Thread.outcome / Communication.atlas_outcome (atlas_integrations/inbox/pipeline.py)
		outcome: {
			created: "Created",
			linked: "Linked",
			pending_review: "Pending review",
			unknown_sender: "Unknown sender",
			duplicate: "Duplicate",
			skipped: "Skipped",
			failed: "Failed",
		},
		// Inbox Thread.match_state (atlas_integrations/inbox/match.py)
		match_state: {
			matched: "Matched",
			ambiguous: "Ambiguous",
			internal: "Internal",
			unknown_sender: "Unknown sender",
		},
		// Sync Job.status (atlas_integrations/jobs.py)
		job_status: {
			pending: "Pending",
			processing: "Processing",
			succeeded: "Succeeded",
			failed: "Failed",
		},
		// Sync Job.sync_mode (Gmail runs)
		sync_mode: {
			initial: "Initial",
			incremental: "Incremental",
			"full resync": "Full resync",
		},
	};
	// what each doctype's fields hold (the desk formatters and filters use it)
	const FIELDS = {
		"Inbox Thread": { outcome: "outcome", match_state: "match_state" },
		Communication: { atlas_outcome: "outcome" },
		"Sync Job": { status: "job_status", sync_mode: "sync_mode" },
	};

	function label(kind, value) {
		if (value === null || value === undefined || value === "") return "";
		const word = (WORDS[kind] || {})[value];
		// a value without a word (e.g. a category, already words) is shown as it is, translated
		return __(word || String(value));
	}

	function options(kind) {
		// Select options with the stored value and the word (frappe.ui.form.add_options translates labels)
		return Object.entries(WORDS[kind] || {}).map(([value, word]) => ({ value, label: word }));
	}

	// The desk: every place Frappe formats these fields (list and report columns, a read-only field in the
	// form) goes through frappe.form.formatters, which call the field's own formatter, if it has one.
	function apply_formatters(doctype) {
		const map = (frappe.meta.docfield_map || {})[doctype] || {};
		for (const [fieldname, kind] of Object.entries(FIELDS[doctype] || {})) {
			if (map[fieldname]) map[fieldname].formatter = (value) => label(kind, value);
		}
	}

	// A list view's Select columns: Frappe's filterable pill, with the word (filtering on the stored value).
	function list_formatters(doctype) {
		const out = {};
		for (const [fieldname, kind] of Object.entries(FIELDS[doctype] || {})) {
			out[fieldname] = (value) => {
				if (value === null || value === undefined || value === "") return "";
				const esc = frappe.utils.escape_html;
				const word = esc(label(kind, value));
				return `<span class="ellipsis" title="${word}"><span class="filterable indicator-pill ${
					frappe.utils.guess_colour(String(value))} ellipsis" data-filter="${fieldname},=,${esc(String(value))}">`
					+ `<span class="ellipsis">${word}</span></span></span>`;
			};
		}
		return out;
	}

	// A list view's standard filters (Select fields): the words, filtering on the stored values.
	function apply_to_list(listview) {
		const doctype = listview.doctype;
		apply_formatters(doctype);
		const fields = (listview.page && listview.page.fields_dict) || {};
		for (const [fieldname, kind] of Object.entries(FIELDS[doctype] || {})) {
			const field = fields[fieldname];
			if (!field || field.df.fieldtype !== "Select") continue;
			field.df.options = [{ value: "", label: "" }, ...options(kind)];
			field.set_options && field.set_options();
		}
	}

	// A form: read-only Selects show their formatter's text; editable ones get worded options.
	function apply_to_form(frm) {
		apply_formatters(frm.doctype);
		for (const [fieldname, kind] of Object.entries(FIELDS[frm.doctype] || {})) {
			const df = frappe.meta.get_docfield(frm.doctype, fieldname, frm.doc.name);
			if (df && df.fieldtype === "Select" && !df.read_only) {
				frm.set_df_property(fieldname, "options", [{ value: "", label: "" }, ...options(kind)]);
			} else if (frm.fields_dict[fieldname]) {
				frm.refresh_field(fieldname);
			}
		}
	}

	window.atlas_labels = { WORDS, FIELDS, label, options, apply_formatters, list_formatters, apply_to_list, apply_to_form };
})();
