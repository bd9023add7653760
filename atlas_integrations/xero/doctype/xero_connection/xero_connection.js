// Copyright (c) 2026, Atlas Integrations and contributors
// For license information, please see license.txt

{% include "atlas_integrations/public/js/atlas_progress.js" %}

const ATLAS_XERO_API = "atlas_integrations.api.xero";

frappe.ui.form.on("Xero Connection", {
	setup(frm) {
		// "Send Quotes Through": the registered mailbox types that can send; "Send Quotes From": their shared mailboxes
		const types = () => (frm.doc.__onload || {}).quote_mailbox_types || {};
		frm.set_query("quote_mailbox_type", () => ({ filters: { name: ["in", Object.keys(types())] } }));
		frm.set_query("quote_mailbox", () => ({ filters: types()[frm.doc.quote_mailbox_type] || {} }));
	},
	quote_mailbox_type(frm) {
		frm.set_value("quote_mailbox", null);
	},
	refresh(frm) {
		if (frm.is_new()) return;
		atlas_xero_card(frm);
		// "Push existing invoices" running: invoices finished of those queued, the rate and the time left
		window.atlas_progress.attach_form(frm);
		const admin = frappe.user.has_role(["Atlas Owner", "Atlas Admin", "System Manager"]);
		if (!admin) return;  // dispatchers see the state; only admins connect
		const connected = frm.doc.status === "connected";
		if (connected) {
			const call = (method, done) => frappe.call({ method: `${ATLAS_XERO_API}.${method}`, args: { company: frm.doc.company },
				freeze: true, callback: (r) => { done(r.message || {}); frm.reload_doc(); } });
			frm.add_custom_button(__("Sync now"), () => call("sync_now", (m) =>
				frappe.show_alert({ message: __("{0} pending jobs queued", [m.pending || 0]), indicator: "green" })), __("Xero"));
			frm.add_custom_button(__("Retry failed"), () => call("retry_failed", (m) =>
				frappe.show_alert({ message: __("{0} failed jobs retried", [m.retried || 0]), indicator: "green" })), __("Xero"));
			frm.add_custom_button(__("Load from Xero"), () => call("load_from_xero", (m) =>
				frappe.show_alert({ message: __("{0} accounts and {1} tax rates read", [(m.accounts || []).length, (m.tax_rates || []).length]),
									indicator: "green" })), __("Xero"));
			frm.add_custom_button(__("Push existing invoices"), () => call("push_existing", (m) =>
				frappe.show_alert({ message: __("{0} invoices queued", [cint(m.queued)]), indicator: "green" })), __("Xero"));
		}
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
		type: "GET",
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

// The integration card: counts and recent Sync Jobs. Xero's words (last errors) are stored as HTML text:
// decoded to text, then escaped once (atlas_text.js); every other value is escaped too.
function atlas_xero_card(frm) {
	const field = frm.get_field("recent_jobs_html");
	if (!field) return;
	frappe.call({
		method: `${ATLAS_XERO_API}.summary`,
		type: "GET",
		args: { company: frm.doc.company },
		callback: (r) => {
			const m = r.message || {};
			const esc = (v) => window.atlas_mail.escape(v);
			const colors = { pending: "orange", processing: "blue", succeeded: "green", failed: "red" };
			const rows = (m.recent_jobs || []).map((j) => `<tr>
				<td><a href="/app/sync-job/${encodeURIComponent(j.name)}">${esc(j.name)}</a></td>
				<td>${esc(j.job_type)}</td>
				<td><a href="/app/${frappe.router.slug(j.reference_doctype || "")}/${encodeURIComponent(j.reference_name || "")}">${esc(j.reference_name)}</a></td>
				<td><span class="indicator-pill ${colors[j.status] || "gray"}">${esc(__(j.status))}</span></td>
				<td>${esc(j.attempts)}</td>
				<td>${esc(j.next_retry_at ? frappe.datetime.str_to_user(j.next_retry_at) : "")}</td>
				<td class="text-muted small">${esc(window.atlas_mail.text(j.last_error))}</td></tr>`).join("");
			const c = m.counts || {};
			field.$wrapper.html(`<div class="atlas-xero-card">
				<p><b>${esc(__("Pending"))}</b> <span data-count="pending">${esc(c.pending || 0)}</span> &middot;
				   <b>${esc(__("Succeeded"))}</b> <span data-count="succeeded">${esc(c.succeeded || 0)}</span> &middot;
				   <b>${esc(__("Failed"))}</b> <span data-count="failed">${esc(c.failed || 0)}</span></p>
				${rows ? `<table class="table table-sm table-bordered"><thead><tr><th>${esc(__("Sync Job"))}</th><th>${esc(__("Type"))}</th>
					<th>${esc(__("Document"))}</th><th>${esc(__("Status"))}</th><th>${esc(__("Attempts"))}</th>
					<th>${esc(__("Next Retry"))}</th><th>${esc(__("Last Error"))}</th></tr></thead><tbody>${rows}</tbody></table>`
					: `<p class="text-muted">${esc(__("No Sync Jobs yet"))}</p>`}</div>`);
		},
	});
}
