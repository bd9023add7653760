// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_progress.js" %}

frappe.ui.form.on("Inbound Route", {
	refresh(frm) {
		if (window.atlas_erase_button) window.atlas_erase_button(frm, "inbound_address");
		window.atlas_progress.attach_form(frm);  // a running erase: its bar (atlas_progress.js)
	},
});
