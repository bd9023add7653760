// Copyright (c) 2026, Atlas Integrations and contributors
// "Accepted, not recorded" (and a Sending record whose process died) is finished with Reconcile: it never sends.
frappe.ui.form.on("Outgoing Mail", {
	refresh(frm) {
		if (["Accepted, not recorded", "Sending", "Failed"].includes(frm.doc.status)) {
			frm.add_custom_button(__("Reconcile"), () => frappe.call({
				method: "atlas_integrations.api.smart_inbox.reconcile_send",
				args: { outgoing_mail: frm.doc.name }, freeze: true,
				callback: () => frm.reload_doc(),
			}));
		}
	},
});
