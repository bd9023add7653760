// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

frappe.ui.form.on("Inbound Route", {
	refresh(frm) {
		if (window.atlas_erase_button) window.atlas_erase_button(frm, "inbound_address");
	},
});
