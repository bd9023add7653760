// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_progress.js" %}

const ATLAS_GMAIL_API = "atlas_integrations.api.gmail";

frappe.ui.form.on("Gmail Account", {
	refresh(frm) {
		if (window.atlas_erase_button) window.atlas_erase_button(frm, "email_address");
		// a running sync (or erase): a bar with messages done of the estimate, the rate and the time left,
		// restored from its Sync Job now and moved by the realtime event (atlas_progress.js)
		window.atlas_progress.attach_form(frm);
		if (frm.is_new()) return;
		const connected = ["SYNCING", "ACTIVE"].includes(frm.doc.status);
		frm.add_custom_button(connected ? __("Reconnect Gmail") : __("Connect Gmail"), () => {
			frappe.call({
				method: `${ATLAS_GMAIL_API}.connect`,
				args: { account: frm.doc.name },
				callback: (r) => r.message && (window.location.href = r.message.authorization_url),
			});
		});
		if (connected) {
			frm.add_custom_button(__("Sync now"), () => {
				frappe.call({
					method: `${ATLAS_GMAIL_API}.sync_now`,
					args: { account: frm.doc.name },
					callback: (r) => {
						frappe.show_alert({ message: __("Sync queued: {0}", [frappe.utils.escape_html(r.message.sync_job)]),
											indicator: "blue" });
						frm.reload_doc();
					},
				});
			});
			frm.add_custom_button(__("Disconnect"), () => {
				frappe.confirm(__("Revoke Atlas's access to this mailbox? Synced mail is kept."), () =>
					frappe.call({
						method: `${ATLAS_GMAIL_API}.disconnect`,
						args: { account: frm.doc.name },
						callback: () => frm.reload_doc(),
					})
				);
			});
		}
		const colour = { healthy: "green", unhealthy: "red", disabled: "grey" }[frm.doc.health] || "grey";
		frm.dashboard.set_headline_alert(
			`<span class="indicator ${colour}">${__(frm.doc.status)} · ${__(frm.doc.health)}</span>` +
				(frm.doc.last_error ? ` <span class="text-muted">${frappe.utils.escape_html(frm.doc.last_error)}</span>` : "")
		);
	},
});
