// "Open in Inbox" on a document made from mail (a Task, Issue or ToDo created from an Inbox Thread, which
// names it in reference_doctype / reference_name): opens the same thread in the Smart Inbox page.
window.atlas_open_in_inbox = window.atlas_open_in_inbox || new Set();
["Task", "Issue", "ToDo"].filter((d) => !window.atlas_open_in_inbox.has(d)).forEach((doctype) => {
	window.atlas_open_in_inbox.add(doctype);
	frappe.ui.form.on(doctype, {
		refresh(frm) {
			if (frm.is_new()) return;
			frappe.db.get_value("Inbox Thread", { reference_doctype: frm.doctype, reference_name: frm.doc.name }, "name")
				.then((r) => {
					const thread = r && r.message && r.message.name;
					if (!thread) return;
					frm.add_custom_button(__("Open in Inbox"), () => {
						window.location.href = `/app/smart-inbox?thread=${encodeURIComponent(thread)}&view=all`;
					});
				});
		},
	});
});
