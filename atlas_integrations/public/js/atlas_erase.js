// "Delete synced data" on a mailbox (Gmail Account, Inbound Route): a queued Mailbox Erase Sync Job after
// the admin types the mailbox's address. The dialog says what goes (threads, messages, attachments,
// assignments, the mail sent through it with its raw message, the notifications about them) and what
// stays (documents created from the mail, Contacts, Customers, the mailbox record); the server's answer
// says it again with the Sync Job (atlas_integrations/inbox/erase.py, summary()).
window.atlas_erase_button = function (frm, address_field) {
	if (frm.is_new() || !frappe.user.has_role(["Atlas Owner", "Atlas Admin", "System Manager"])) return;
	frm.add_custom_button(__("Delete synced data"), () => {
		const address = frm.doc[address_field] || "";
		const erases = __("Deletes this mailbox's threads, messages and attachments, the assignments of its threads, the mail sent through it (Outgoing Mail, with its raw message) and the notifications about them.");
		const keeps = __("Stays: documents created from its mail (ToDo, Task, Issue and others), Contacts, Customers and other parties (without their timeline links to the deleted mail), and this mailbox record with its connection.");
		frappe.prompt(
			[
				{ fieldname: "what", fieldtype: "HTML",
				  options: `<p>${frappe.utils.escape_html(erases)}</p><p>${frappe.utils.escape_html(keeps)}</p>` },
				{ fieldname: "confirm", fieldtype: "Data", reqd: 1,
				  label: __("Type {0} to confirm", [frappe.utils.escape_html(address)]) },
			],
			(values) => frappe.call({
				method: "atlas_integrations.api.inbox.erase_mailbox_data",
				args: { doctype: frm.doctype, name: frm.doc.name, confirm: values.confirm },
				callback: (r) => {
					if (!r.message) return;
					const job = r.message.sync_job;
					// the form shows the erase's progress from now on (atlas_progress.js)
					if (window.atlas_progress) window.atlas_progress.attach_form(frm);
					frappe.msgprint({
						title: __("Deleting synced data"),
						indicator: "orange",
						message: `<p>${__("Queued as Sync Job {0}.", [`<a href="/app/sync-job/${encodeURIComponent(job)}">${frappe.utils.escape_html(job)}</a>`])}</p>`
							+ `<p>${frappe.utils.escape_html(r.message.erases || "")}</p>`
							+ `<p>${frappe.utils.escape_html(r.message.keeps || "")}</p>`,
					});
				},
			}),
			__("Delete synced data"), __("Delete")
		);
	}, __("Actions"));
};
