// Xero state on the Sales Invoice form (atlas_integrations/xero/invoices.py): an indicator and "Open in Xero".
const ATLAS_XERO_COLORS = { "Xero Pending": "orange", "Xero Synced": "green", "Xero Error": "red" };

frappe.ui.form.on("Sales Invoice", {
	refresh(frm) {
		const state = frm.doc.atlas_xero_status;
		if (!state) return;
		// Xero's words are stored as HTML text: shown as text, escaped once
		const error = state === "Xero Error" && frm.doc.atlas_xero_error
			? ": " + frappe.utils.escape_html(new DOMParser().parseFromString(frm.doc.atlas_xero_error, "text/html")
				.documentElement.textContent) : "";
		frm.dashboard.add_comment(`${__(state)}${error}`, ATLAS_XERO_COLORS[state] || "gray", true);
		const id = frm.doc.atlas_xero_invoice_id;
		if (id && /^[0-9a-f-]{36}$/i.test(id)) {
			const path = frm.doc.is_return ? "AccountsReceivable/ViewCreditNote.aspx?creditNoteID="
				: "AccountsReceivable/View.aspx?InvoiceID=";
			frm.add_custom_button(__("Open in Xero"), () => window.open(`https://go.xero.com/${path}${id}`, "_blank", "noopener"));
		}
	},
});
