// Atlas mail text in the desk: the client half of atlas_integrations/inbox/text.py.
//
// Mail-derived values in Data / Small Text fields are stored as HTML text (entity-encoded), which
// Frappe's formatters render as exactly the decoded text. Where Frappe puts a value into textContent
// or escapes once more (read-only Data fields) or where Atlas's own JS shows a value, these helpers give the exact text and
// escape it once. Nothing here ever turns mail into markup.
window.atlas_mail = window.atlas_mail || {
	// stored HTML text -> the exact decoded text (DOMParser documents are inert: no script, no loads)
	text(stored) {
		if (stored === null || stored === undefined || stored === "") return "";
		return new DOMParser().parseFromString(String(stored), "text/html").documentElement.textContent;
	},
	// the exact text -> HTML safe to insert
	escape(value) {
		return frappe.utils.escape_html(value === null || value === undefined ? "" : String(value));
	},
};
