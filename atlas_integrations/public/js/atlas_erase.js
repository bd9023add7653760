// "Delete synced data" on a mailbox (Gmail Account, Inbound Route): a queued Mailbox Erase Sync Job after
// the admin types the mailbox's address. Threads, messages and attachments go; documents made from them stay.
window.atlas_erase_button = function (frm, address_field) {
	if (frm.is_new() || !frappe.user.has_role(["Atlas Owner", "Atlas Admin", "System Manager"])) return;
	frm.add_custom_button(__("Delete synced data"), () => {
		const address = frm.doc[address_field] || "";
		frappe.prompt(
			[{ fieldname: "confirm", fieldtype: "Data", reqd: 1,
			   label: __("Type {0} to delete this mailbox's threads, messages and attachments", [frappe.utils.escape_html(address)]) }],
			(values) => frappe.call({
				method: "atlas_integrations.api.inbox.erase_mailbox_data",
				args: { doctype: frm.doctype, name: frm.doc.name, confirm: values.confirm },
				callback: (r) => r.message && frappe.set_route("Form", "Sync Job", r.message.sync_job),
			}),
			__("Delete synced data"), __("Delete")
		);
	}, __("Actions"));
};
