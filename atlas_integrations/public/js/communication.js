// Communications that are Atlas mail (a message of a registered mailbox: Gmail, the inbound route, …) are records, not drafts: the form
// is read-only, and the body is Frappe's own (nh3-sanitized, remote images off) render. Text values are
// stored as HTML text (atlas_integrations/inbox/text.py), so Frappe's read-only fields show them exactly.
{% include "atlas_integrations/public/js/atlas_labels.js" %}

frappe.ui.form.on("Communication", {
	refresh(frm) {
		window.atlas_labels.apply_to_form(frm);  // the Smart Inbox outcome in words
		if (!frm.doc.atlas_mailbox && !frm.doc.atlas_inbox_thread) return;
		frm.disable_form();
		// Frappe escapes read-only *Data* values once more (base_input.set_disp_area) but not Small Text:
		// show the sender's name, stored as HTML text, as exactly its text
		const $name = frm.fields_dict.sender_full_name && frm.fields_dict.sender_full_name.disp_area;
		if ($name && frm.doc.sender_full_name) $($name).text(window.atlas_mail.text(frm.doc.sender_full_name));
		// the mailbox it came through, by its type's label ("Gmail Account", "Inbound Route", …) and name
		const mailbox = frm.doc.atlas_mailbox
			? `${__(frm.doc.atlas_mailbox_type || "")} ${frm.doc.atlas_mailbox}` : __("an Atlas mailbox");
		frm.set_intro(__("Mail from {0}: read-only here. Open the thread to read it in the sandboxed reader.",
			[frappe.utils.escape_html(mailbox)]), "blue");
		if (frm.doc.atlas_inbox_thread) {
			frm.add_custom_button(__("Open Inbox Thread"), () =>
				frappe.set_route("Form", "Inbox Thread", frm.doc.atlas_inbox_thread)
			);
		}
	},
});
