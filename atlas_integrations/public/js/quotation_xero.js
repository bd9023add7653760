// Xero state on the Quotation form (atlas_integrations/xero/quotes.py): an indicator, "Send quote" (the
// Xero quote PDF emailed through the workspace Gmail mailbox, exactly once) and "Open in Xero".
const ATLAS_QUOTE_COLORS = { "Queued in Xero": "orange", "Synced to Xero": "green", "Xero send failed": "red" };

function atlas_quote_text(html) {
	// Xero's and Gmail's words are stored as HTML text: shown as text, escaped once
	return frappe.utils.escape_html(new DOMParser().parseFromString(html || "", "text/html").documentElement.textContent);
}

frappe.ui.form.on("Quotation", {
	refresh(frm) {
		const state = frm.doc.atlas_xero_status;
		if (state) {
			const error = state === "Xero send failed" && frm.doc.atlas_xero_error ? ": " + atlas_quote_text(frm.doc.atlas_xero_error) : "";
			const xero = frm.doc.atlas_xero_quote_status ? ` (${__("Xero quote")} ${atlas_quote_text(frm.doc.atlas_xero_quote_status)})` : "";
			frm.dashboard.add_comment(`${__(state)}${xero}${error}`, ATLAS_QUOTE_COLORS[state] || "gray", true);
		}
		const id = frm.doc.atlas_xero_quote_id;
		if (id && /^[0-9a-f-]{36}$/i.test(id)) {
			frm.add_custom_button(__("Open in Xero"), () =>
				window.open(`https://go.xero.com/app/quotes/view/${id}`, "_blank", "noopener"), __("Xero"));
		}
		if (frm.doc.docstatus === 1 && state) {
			frm.add_custom_button(__("Send quote"), () => atlas_send_quote(frm), __("Xero"));
		}
	},
});

function atlas_send_quote(frm) {
	const key = (crypto.randomUUID && crypto.randomUUID()) || String(Date.now()) + Math.random();
	const dialog = new frappe.ui.Dialog({
		title: __("Send quote {0}", [frm.doc.name]),
		fields: [
			{ fieldname: "to", fieldtype: "Data", label: __("To"), reqd: 1, default: frm.doc.contact_email || "" },
			{ fieldname: "cc", fieldtype: "Data", label: __("CC") },
			{ fieldname: "subject", fieldtype: "Data", label: __("Subject"),
			  default: __("Quotation {0} from {1}", [frm.doc.name, frm.doc.company]) },
			{ fieldname: "message", fieldtype: "Text Editor", label: __("Message"),
			  description: __("Empty: a short note naming the quote and its total. The quote PDF from Xero is attached.") },
		],
		primary_action_label: __("Send"),
		primary_action(values) {
			dialog.disable_primary_action();
			frappe.call({
				method: "atlas_integrations.api.xero.send_quote",
				args: { quotation: frm.doc.name, client_key: key, to: values.to, cc: values.cc,
						subject: values.subject, message: values.message },
				freeze: true,
				callback(r) {
					if (r.message) {
						dialog.hide();
						frappe.show_alert({ message: __("Quote queued: it is emailed through Gmail, then marked SENT in Xero"),
											indicator: "orange" });
						frm.reload_doc();
					}
				},
				always() { dialog.enable_primary_action(); },
			});
		},
	});
	dialog.show();
}
