// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_labels.js" %}

const ATLAS_INBOX_API = "atlas_integrations.api.inbox";

frappe.ui.form.on("Inbox Thread", {
	refresh(frm) {
		// outcome and match state in words (public/js/atlas_labels.js), the stored values unchanged
		window.atlas_labels.apply_to_form(frm);
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
		atlas_smart_inbox_buttons(frm);
	},
});

// Smart Inbox actions: the pipeline again ("Match again", or "Retry" after a failure) and mail becomes work.
function atlas_smart_inbox_buttons(frm) {
	const group = __("Smart Inbox");
	frm.add_custom_button(frm.doc.outcome === "failed" ? __("Retry") : __("Match again"), () =>
		frappe.call({
			method: `${ATLAS_INBOX_API}.process_again`,
			args: { thread: frm.doc.name },
			freeze: true,
			callback: () => frm.reload_doc(),
		}), group);
	if (frm.doc.reference_doctype && frm.doc.reference_name) {
		frm.add_custom_button(__("Open {0}", [__(frm.doc.reference_doctype)]), () =>
			frappe.set_route("Form", frm.doc.reference_doctype, frm.doc.reference_name), group);
		return;
	}
	frm.add_custom_button(__("Create work"), () => {
		const dialog = new frappe.ui.Dialog({
			title: __("Create from this thread"),
			fields: [
				{ fieldname: "doctype", fieldtype: "Select", label: __("Document"), reqd: 1,
				  options: ["ToDo", "Task", "Issue"], default: "Task" },
				{ fieldname: "assign_to", fieldtype: "Link", options: "User", label: __("Assign To") },
			],
			primary_action_label: __("Create"),
			primary_action(values) {
				frappe.call({
					method: `${ATLAS_INBOX_API}.create_work`,
					args: { thread: frm.doc.name, doctype: values.doctype, assign_to: values.assign_to || "" },
					freeze: true,
					callback: (r) => {
						dialog.hide();
						frm.reload_doc();
						if (r.message) frappe.show_alert({ message: frappe.utils.escape_html(`${__(r.message.doctype)} ${r.message.name}`), indicator: "green" });
					},
				});
			},
		});
		dialog.show();
	}, group);
}

// Each message body is shown in a sandboxed iframe (no scripts, no same-origin access, no forms; links
// open in a new tab without access to the desk), on top of the server-side nh3 sanitizing. Remote images
// stay off (and the iframe's Content-Security-Policy forbids them) until the user asks for them. Every
// text value from the message is escaped once (atlas_mail.escape): the API returns the exact text.
const ATLAS_READER_CSP_BLOCKED = "default-src 'none'; img-src data:; style-src 'unsafe-inline'";
const ATLAS_READER_CSP_IMAGES = "default-src 'none'; img-src data: https: http:; style-src 'unsafe-inline'";

function atlas_render_messages(frm, show_images) {
	const $wrapper = frm.fields_dict.messages_html.$wrapper;
	const esc = (v) => window.atlas_mail.escape(v);
	$wrapper.html(`<div class="text-muted">${__("Loading messages…")}</div>`);
	frappe.call({
		method: `${ATLAS_INBOX_API}.open_thread`,
		args: { thread: frm.doc.name, show_images: show_images ? 1 : 0 },
		callback: (r) => {
			$wrapper.empty();
			const messages = (r.message && r.message.messages) || [];
			if (!show_images && messages.some((m) => m.remote_images)) {
				const $bar = $(`<div class="atlas-remote-images alert alert-warning" style="display:flex;justify-content:space-between;align-items:center;">
					<span>${__("Remote images are hidden to protect your privacy.")}</span>
					<button class="btn btn-xs btn-default atlas-show-images">${__("Show images")}</button></div>`);
				$bar.find(".atlas-show-images").on("click", () => atlas_render_messages(frm, true));
				$wrapper.append($bar);
			}
			for (const m of messages) {
				const who = esc(m.sender_full_name || m.sender || "");
				const address = m.sender && m.sender_full_name ? ` <span class="text-muted">&lt;${esc(m.sender)}&gt;</span>` : "";
				const when = frappe.datetime.str_to_user(m.communication_date);
				const $card = $(`<div class="atlas-message" data-communication="${esc(m.name)}" style="border:1px solid var(--border-color);border-radius:8px;margin-bottom:12px;">
					<div style="padding:8px 12px;border-bottom:1px solid var(--border-color);">
						<b class="atlas-sender">${who}</b>${address} <span class="text-muted">${esc(when || "")}</span>
						<span class="indicator-pill ${m.sent_or_received === "Sent" ? "blue" : "gray"}" style="float:right">${esc(__(m.sent_or_received))}</span>
						<div class="text-muted small atlas-recipients">${__("To")}: ${esc(m.recipients || "")}${m.cc ? " · " + __("Cc") + ": " + esc(m.cc) : ""}</div>
						<div class="atlas-subject">${esc(m.subject || "")}</div>
					</div></div>`);
				const iframe = document.createElement("iframe");
				// allow-popups: links open in a new tab; -to-escape-sandbox: that tab is a normal page. No
				// allow-scripts, no allow-same-origin: the body can neither run script nor reach the desk.
				iframe.setAttribute("sandbox", "allow-popups allow-popups-to-escape-sandbox");
				iframe.setAttribute("referrerpolicy", "no-referrer");
				iframe.style.cssText = "width:100%;border:0;min-height:120px;";
				const csp = show_images ? ATLAS_READER_CSP_IMAGES : ATLAS_READER_CSP_BLOCKED;
				iframe.srcdoc = `<meta http-equiv="Content-Security-Policy" content="${csp}"><base target="_blank"><style>body{font-family:sans-serif;font-size:13px}</style>${m.html || ""}`;
				$card.append(iframe);
				if ((m.attachments || []).length) {
					const $list = $(`<div class="atlas-attachments" style="padding:6px 12px;border-top:1px solid var(--border-color);"></div>`);
					for (const a of m.attachments) {
						// a download link: the server sends attachments as downloads, never as pages
						$list.append(`<a class="atlas-attachment small" href="${esc(a.file_url)}" download rel="noopener noreferrer" style="margin-right:12px;">${frappe.utils.icon("attachment", "xs")} ${esc(a.file_name)}</a>`);
					}
					$card.append($list);
				}
				$wrapper.append($card);
			}
		},
	});
}
