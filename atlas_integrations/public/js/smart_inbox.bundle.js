// Smart Inbox page bundle (built by `bench build --app atlas_integrations`, loaded by the desk page
// inbox/page/smart_inbox). Mail-derived values arrive as stored HTML text: they are decoded to text and
// shown with Vue's text interpolation (never v-html); bodies go only into the sandboxed reader iframe.
import { createApp } from "vue";
import SmartInbox from "./smart_inbox/SmartInbox.vue";

frappe.provide("frappe.atlas");

frappe.atlas.SmartInbox = class {
	constructor({ wrapper, page }) {
		this.page = page;
		this.app = createApp(SmartInbox, { page });
		this.vm = this.app.mount($(wrapper).get(0));
	}
	route_changed() {
		if (this.vm && this.vm.open_from_route) this.vm.open_from_route();
	}
};
