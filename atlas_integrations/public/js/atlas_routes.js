// A user who may not read an Atlas doctype and opens its list or a form (a link in mail, a bookmark, a
// colleague's URL) gets Frappe's own "Not permitted" page. Without this, Frappe's router takes the unknown
// route for a Page and, for a user who may not read the Page doctype, answers with an error dialog.
// frappe.boot.atlas_doctypes comes from the boot_session hook (atlas_integrations/boot.py).
(function () {
	if (!frappe.views || !frappe.views.pageview) return;
	const show = frappe.views.pageview.show;
	frappe.views.pageview.show = function (name) {
		const doctype = (frappe.boot.atlas_doctypes || []).find((d) => frappe.router.slug(d) === name);
		if (doctype && !frappe.model.can_read(doctype)) {
			frappe.show_not_permitted(__(doctype));
			return;
		}
		return show.apply(this, arguments);
	};
})();
