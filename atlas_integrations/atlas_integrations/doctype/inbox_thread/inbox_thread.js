// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

const ATLAS_INBOX_API = "atlas_integrations.api.inbox";

frappe.ui.form.on("Inbox Thread", {
	refresh(frm) {
		if (frm.is_new()) return;
		atlas_render_messages(frm);
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

// Each message body is shown in a sandboxed iframe (no scripts, no same-origin access, no forms or
// popups), on top of the server-side nh3 sanitizing.
function atlas_render_messages(frm) {
	const $wrapper = frm.fields_dict.messages_html.$wrapper;
	$wrapper.html(`<div class="text-muted">${__("Loading messages…")}</div>`);
	frappe.call({
		method: `${ATLAS_INBOX_API}.open_thread`,
		args: { thread: frm.doc.name },
		callback: (r) => {
			$wrapper.empty();
			for (const m of (r.message && r.message.messages) || []) {
				const who = frappe.utils.escape_html(m.sender_full_name || m.sender || "");
				const when = frappe.datetime.str_to_user(m.communication_date);
				const $card = $(`<div class="atlas-message" style="border:1px solid var(--border-color);border-radius:8px;margin-bottom:12px;">
					<div style="padding:8px 12px;border-bottom:1px solid var(--border-color);">
						<b>${who}</b> <span class="text-muted">${frappe.utils.escape_html(when || "")}</span>
						<span class="indicator-pill ${m.sent_or_received === "Sent" ? "blue" : "gray"}" style="float:right">${__(m.sent_or_received)}</span>
					</div></div>`);
				const iframe = document.createElement("iframe");
				iframe.setAttribute("sandbox", "");
				iframe.setAttribute("referrerpolicy", "no-referrer");
				iframe.style.cssText = "width:100%;border:0;min-height:120px;";
				iframe.srcdoc = `<base target="_blank"><style>body{font-family:sans-serif;font-size:13px}</style>${m.html || ""}`;
				$card.append(iframe);
				$wrapper.append($card);
			}
		},
	});
}
