// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

const ATLAS_XERO_API = "atlas_integrations.api.xero";

frappe.ui.form.on("Xero Connection", {
	refresh(frm) {
		if (frm.is_new()) return;
		const admin = frappe.user.has_role(["Atlas Owner", "Atlas Admin", "System Manager"]);
		if (!admin) return;  // dispatchers see the state; only admins connect
		const connected = frm.doc.status === "connected";
		frm.add_custom_button(connected ? __("Reconnect Xero") : __("Connect Xero"), () =>
			frappe.call({
				method: `${ATLAS_XERO_API}.connect`,
				args: { company: frm.doc.company },
				callback: (r) => { if (r.message) window.location.href = r.message.authorization_url; },
			}));
		if (connected) {
			frm.add_custom_button(__("Disconnect"), () =>
				frappe.confirm(__("Stop syncing with Xero for {0}? History is kept.", [frappe.utils.escape_html(frm.doc.company)]), () =>
					frappe.call({ method: `${ATLAS_XERO_API}.disconnect`, args: { company: frm.doc.company },
								  callback: () => frm.reload_doc() })));
		}
		if (frappe.utils.get_url_arg("choose")) atlas_xero_choose(frm);
	},
});

// The consent authorised several organisations: the admin picks one (never silently the first).
function atlas_xero_choose(frm) {
	frappe.call({
		method: `${ATLAS_XERO_API}.pending_tenants`,
		args: { company: frm.doc.company },
		callback: (r) => {
			const tenants = r.message || [];
			if (!tenants.length) return;
			const dialog = new frappe.ui.Dialog({
				title: __("Choose the Xero organisation for {0}", [frappe.utils.escape_html(frm.doc.company)]),
				fields: [{ fieldname: "tenant_id", fieldtype: "Select", reqd: 1, label: __("Organisation"),
						   options: tenants.map((t) => ({ value: t.tenant_id, label: frappe.utils.escape_html(t.tenant_name) })) }],
				primary_action_label: __("Connect"),
				primary_action(values) {
					frappe.call({
						method: `${ATLAS_XERO_API}.choose_tenant`,
						args: { company: frm.doc.company, tenant_id: values.tenant_id },
						callback: () => { dialog.hide(); frappe.set_route("Form", "Xero Connection", frm.doc.company); frm.reload_doc(); },
					});
				},
			});
			dialog.show();
		},
	});
}
