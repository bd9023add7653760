// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_progress.js" %}

const ATLAS_OUTLOOK_API = "atlas_integrations.api.outlook";

frappe.ui.form.on("Outlook Account", {
	refresh(frm) {
		if (window.atlas_erase_button) window.atlas_erase_button(frm, "email_address");
		// a running sync (or erase): its bar, restored from its Sync Job and moved by the realtime event
		window.atlas_progress.attach_form(frm);
		if (frm.is_new()) return;
		const connected = ["SYNCING", "ACTIVE"].includes(frm.doc.status);
		const shared = frm.doc.account_type === "Shared workspace mailbox";
		frm.add_custom_button(connected ? __("Reconnect Outlook") : __("Connect Outlook"), () => {
			frappe.call({
				method: `${ATLAS_OUTLOOK_API}.connect`,
				args: { account: frm.doc.name },
				callback: (r) => {
					if (!r.message) return;
					// a personal mailbox signs in at Microsoft; a shared one is connected at once
					if (r.message.authorization_url) window.location.href = r.message.authorization_url;
					else frm.reload_doc();
				},
			});
		});
		if (connected) {
			frm.add_custom_button(__("Sync now"), () => {
				frappe.call({
					method: `${ATLAS_OUTLOOK_API}.sync_now`,
					args: { account: frm.doc.name },
					callback: (r) => {
						frappe.show_alert({ message: __("Sync queued: {0}", [frappe.utils.escape_html(r.message.sync_job)]),
											indicator: "blue" });
						frm.reload_doc();
					},
				});
			});
			frm.add_custom_button(__("Disconnect"), () => {
				const words = shared
					? __("Stop syncing this shared mailbox? Synced mail is kept.")
					: __("Delete Atlas's stored sign-in for this mailbox? Synced mail is kept.");
				frappe.confirm(words, () =>
					frappe.call({
						method: `${ATLAS_OUTLOOK_API}.disconnect`,
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
