frappe.provide("frappe.dashboards.chart_sources");

frappe.dashboards.chart_sources["Atlas Inbound Threads"] = {
	method: "atlas_integrations.inbox.dashboard_chart_source.atlas_inbound_threads.atlas_inbound_threads.get",
	filters: [],
};
