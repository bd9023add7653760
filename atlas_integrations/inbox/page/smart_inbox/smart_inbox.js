// The Smart Inbox desk page: a Vue 3 component bundled by Frappe's esbuild (public/js/smart_inbox.bundle.js),
// loaded with frappe.require as Frappe's Workflow Builder does.
frappe.pages["smart-inbox"].on_page_load = function (wrapper) {
	const page = frappe.ui.make_app_page({ parent: wrapper, title: __("Smart Inbox"), single_column: true });
	frappe.require("smart_inbox.bundle.js").then(() => {
		frappe.atlas_inbox = new frappe.atlas.SmartInbox({ wrapper: page.main, page });
	});
};

frappe.pages["smart-inbox"].on_page_show = function () {
	if (frappe.atlas_inbox) frappe.atlas_inbox.route_changed();
};
