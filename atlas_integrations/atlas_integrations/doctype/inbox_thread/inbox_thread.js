// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

const ATLAS_INBOX_API = "atlas_integrations.api.inbox";

frappe.ui.form.on("Inbox Thread", {
	refresh(frm) {
		if (frm.is_new()) return;
		frm.add_custom_button(frm.doc.unread ? __("Mark read") : __("Mark unread"), () =>
			frappe.call({
				method: `${ATLAS_INBOX_API}.mark_read`,
				args: { thread: frm.doc.name, read: frm.doc.unread ? 1 : 0 },
				callback: () => frm.reload_doc(),
			})
		);
		frm.add_custom_button(__("Labels"), () => {
			const dialog = new frappe.ui.Dialog({
				title: __("Gmail labels"),
				fields: [
					{ fieldname: "add", fieldtype: "Data", label: __("Add (comma-separated)") },
					{ fieldname: "remove", fieldtype: "Data", label: __("Remove (comma-separated)") },
				],
				primary_action_label: __("Apply"),
				primary_action(values) {
					frappe.call({
						method: `${ATLAS_INBOX_API}.set_labels`,
						args: { thread: frm.doc.name, add: values.add || "", remove: values.remove || "" },
						callback: () => {
							dialog.hide();
							frm.reload_doc();
						},
					});
				},
			});
			dialog.show();
		});
	},
});
