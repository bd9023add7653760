// Progress of long work in the desk (atlas_integrations/progress.py): a bar with "done of total", the rate
// and the time left, fed by the realtime event "atlas_progress" (sent to each user who may see the job, at
// most every 1-2 s, and once more at the end) and restored from the Sync Job on load, so a reload mid-run
// shows the current figures.
//
// Used by the forms of Gmail Account, Inbound Route, Xero Connection and Sync Job, the Sync Job list
// (pulled in with Frappe's include directive when it serves their scripts) and the Smart Inbox page bundle
// (imported). So it is a plain script: no module syntax, no top-level const/let (it may be evaluated more
// than once in one desk), and never the include directive itself in its text. Every value is shown as
// text (textContent, or escaped), every word through __().
(function () {
	if (window.atlas_progress) return;
	var EVENT = "atlas_progress";
	var API = "atlas_integrations.api.progress";
	// what each job type counts and how its bar is titled (English; __() translates where shown)
	var KINDS = {
		"Gmail Sync": { title: "Syncing mail", unit: "messages" },
		"Mailbox Erase": { title: "Deleting synced data", unit: "records" },
		"Xero Push Existing": { title: "Pushing existing invoices to Xero", unit: "invoices" },
		"Match Index Rebuild": { title: "Rebuilding the matching index", unit: "index rows" },
	};
	var listeners = [];
	var subscribed = false;

	function subscribe() {
		if (subscribed || !frappe.realtime || !frappe.realtime.on) return;
		subscribed = true;
		frappe.realtime.on(EVENT, function (m) {
			if (!m || typeof m !== "object") return;
			listeners.slice().forEach(function (fn) {
				try {
					fn(m);
				} catch (e) {
					console.error(e);
				}
			});
		});
	}

	// fn(message) for every progress event this user gets; returns a function that stops it
	function on(fn) {
		subscribe();
		listeners.push(fn);
		return function () {
			listeners = listeners.filter(function (x) {
				return x !== fn;
			});
		};
	}

	function number(value) {
		return Number(value || 0).toLocaleString();
	}

	// seconds -> "45 s", "17 min", "2 h 5 min" (text)
	function duration(seconds) {
		var s = Math.max(0, Math.round(Number(seconds) || 0));
		if (s < 90) return __("{0} s", [s]);
		var minutes = Math.round(s / 60);
		if (minutes < 90) return __("{0} min", [minutes]);
		return __("{0} h {1} min", [Math.floor(minutes / 60), minutes % 60]);
	}

	function kind(m) {
		return KINDS[m.job_type] || { title: m.job_type || "Working", unit: "items" };
	}

	function finished(m) {
		return m.status === "succeeded" || m.status === "failed";
	}

	// 0-100, or null when no total is known (an indeterminate bar)
	function percent(m) {
		if (!m.total) return m.status === "succeeded" ? 100 : null;
		return Math.max(0, Math.min(100, Math.floor((100 * (m.done || 0)) / m.total)));
	}

	// "1,200 of 50,000 messages · 2,941 a minute · about 17 min left" (text, translated)
	function describe(m) {
		var unit = __(kind(m).unit);
		var parts = [
			m.total ? __("{0} of {1} {2}", [number(m.done), number(m.total), unit]) : __("{0} {1} so far", [number(m.done), unit]),
		];
		if (m.rate_per_minute) parts.push(__("{0} a minute", [number(Math.round(m.rate_per_minute))]));
		if (m.status === "succeeded") parts.push(__("Done"));
		else if (m.status === "failed") parts.push(__("Failed"));
		else if (m.eta_seconds !== null && m.eta_seconds !== undefined && m.total && m.rate_per_minute)
			parts.push(__("about {0} left", [duration(m.eta_seconds)]));
		return parts.join(" · ");
	}

	function el(tag, cls, text) {
		var node = document.createElement(tag);
		if (cls) node.className = cls;
		if (text !== undefined) node.textContent = text;
		return node;
	}

	// one bar: a DOM element showing message m (update it with render_bar(node, m))
	function make_bar(m) {
		var node = el("div", "atlas-progress");
		node.style.margin = "0 0 12px 0";
		var head = el("div", "atlas-progress-head");
		head.appendChild(el("b", "atlas-progress-title"));
		head.appendChild(document.createTextNode(" "));
		head.appendChild(el("span", "atlas-progress-stage text-muted"));
		node.appendChild(head);
		var outer = el("div", "progress");
		outer.style.height = "8px";
		outer.style.margin = "4px 0";
		var bar = el("div", "progress-bar atlas-progress-bar");
		bar.setAttribute("role", "progressbar");
		bar.setAttribute("aria-valuemin", "0");
		bar.setAttribute("aria-valuemax", "100");
		outer.appendChild(bar);
		node.appendChild(outer);
		node.appendChild(el("div", "atlas-progress-text text-muted small"));
		render_bar(node, m);
		return node;
	}

	function render_bar(node, m) {
		var p = percent(m);
		node.setAttribute("data-sync-job", m.sync_job || "");
		node.setAttribute("data-done", String(m.done || 0));
		node.setAttribute("data-total", String(m.total || 0));
		node.setAttribute("data-status", m.status || "");
		node.querySelector(".atlas-progress-title").textContent = m.title_text || __(kind(m).title);
		node.querySelector(".atlas-progress-stage").textContent = m.stage ? __(m.stage) : "";
		var bar = node.querySelector(".atlas-progress-bar");
		bar.classList.toggle("progress-bar-striped", p === null || !finished(m));
		bar.classList.toggle("progress-bar-animated", p === null);
		bar.classList.toggle("bg-danger", m.status === "failed");
		bar.classList.toggle("bg-success", m.status === "succeeded");
		bar.style.width = (p === null ? 100 : p) + "%";
		if (p === null) bar.removeAttribute("aria-valuenow");
		else bar.setAttribute("aria-valuenow", String(p));
		node.querySelector(".atlas-progress-text").textContent = describe(m);
	}

	// A set of bars in `container` (a DOM element), one per Sync Job; a finished job's bar stays a few
	// seconds (its final figures), then goes.
	function Bars(container) {
		this.container = container;
		this.nodes = {};
	}
	Bars.prototype.show = function (m) {
		var node = this.nodes[m.sync_job];
		if (!node || !node.isConnected) {
			node = this.nodes[m.sync_job] = make_bar(m);
			this.container.appendChild(node);
		} else {
			// events may arrive out of order across workers: never move a running bar backwards
			var before = Number(node.getAttribute("data-done") || 0);
			if (!finished(m) && (m.done || 0) < before && node.getAttribute("data-status") === m.status) return;
			render_bar(node, m);
		}
		if (finished(m)) {
			var me = this;
			setTimeout(function () {
				me.remove(m.sync_job);
			}, 5000);
		}
	};
	Bars.prototype.remove = function (sync_job) {
		var node = this.nodes[sync_job];
		if (node && node.parentNode) node.parentNode.removeChild(node);
		delete this.nodes[sync_job];
	};
	Bars.prototype.keep_only = function (sync_jobs) {
		var me = this;
		Object.keys(this.nodes).forEach(function (name) {
			if (sync_jobs.indexOf(name) < 0) me.remove(name);
		});
	};

	// A form: bars at the top of `frm` for the open Sync Jobs of its document (restored from the server on
	// every refresh), kept current by the realtime event. On a job's end the document is reloaded (unless
	// it has unsaved changes), e.g. a mailbox whose initial sync finished shows its new state.
	//   options.match(m, frm): which events belong to this form (default: the event's reference is it)
	//   options.initial(frm): the figures to show on load (default: api.progress.current of the document)
	function attach_form(frm, options) {
		options = options || {};
		var match = options.match || function (m, f) {
			return m.reference_doctype === f.doctype && m.reference_name === f.doc.name;
		};
		if (!frm.__atlas_progress) {
			var area = el("div", "atlas-progress-area");
			area.style.padding = "0 var(--padding-md, 15px)";
			frm.__atlas_progress = { bars: new Bars(area), area: area };
			on(function (m) {
				if (!frm.doc || frm.is_new() || !match(m, frm)) return;
				frm.__atlas_progress.bars.show(m);
				if (finished(m) && !frm.is_dirty()) setTimeout(function () { frm.reload_doc(); }, 1500);
			});
		}
		var state = frm.__atlas_progress;
		var wrapper = frm.layout && frm.layout.wrapper && $(frm.layout.wrapper).get(0);
		if (wrapper && state.area.parentNode !== wrapper) wrapper.insertBefore(state.area, wrapper.firstChild);
		if (frm.is_new()) return state.bars.keep_only([]);
		var name = frm.doc.name;
		var show = function (rows) {
			if (!frm.doc || frm.doc.name !== name) return;
			rows = (rows || []).filter(function (m) { return m.status === "processing" || m.status === "pending"; });
			state.bars.keep_only(rows.map(function (m) { return m.sync_job; }));
			rows.forEach(function (m) { state.bars.show(m); });
		};
		if (options.initial) return show(options.initial(frm));
		frappe.call({
			method: API + ".current",
			type: "GET",
			args: { doctype: frm.doctype, name: name },
			callback: function (r) { show(r.message); },
		});
	}

	// The Sync Job form: its own figures (fields) on load, then the events of this job.
	function attach_sync_job_form(frm) {
		attach_form(frm, {
			match: function (m, f) { return m.sync_job === f.doc.name; },
			initial: function (f) {
				var d = f.doc;
				if (d.status !== "processing") return [];
				return [from_row(d)];
			},
		});
	}

	// a Sync Job row (form doc or list row) as an event message
	function from_row(d) {
		var total = Number(d.progress_total || 0) || null;
		var rate = Number(d.rate_per_minute || 0) || null;
		var done = Number(d.progress_done || 0);
		return {
			sync_job: d.name, job_type: d.job_type, reference_doctype: d.reference_doctype,
			reference_name: d.reference_name, status: d.status, done: done, total: total,
			rate_per_minute: rate, stage: d.progress_stage || "",
			eta_seconds: total && done >= total ? 0 : total && rate ? Number(d.eta_seconds || 0) : null,
		};
	}

	// "120/276 · 540/min · 16 s left": the figures in a list column's width (text, translated)
	function short(m) {
		var parts = [m.total ? number(m.done) + "/" + number(m.total) : number(m.done)];
		if (m.rate_per_minute) parts.push(__("{0}/min", [number(Math.round(m.rate_per_minute))]));
		if (m.status === "processing" && m.eta_seconds && m.total && m.rate_per_minute)
			parts.push(__("{0} left", [duration(m.eta_seconds)]));
		return parts.join(" · ");
	}

	// the Sync Job list's Progress column (HTML: every value escaped); the whole sentence as its tooltip
	function list_cell(d) {
		var m = from_row(d);
		if (!m.done && !m.total) return "";
		var e = frappe.utils.escape_html;
		return '<span class="atlas-progress-cell" data-sync-job="' + e(d.name) + '" title="' + e(describe(m)) + '">'
			+ e(short(m)) + "</span>";
	}

	// The Sync Job list: rows of running jobs follow the events (figures in place; a finished job reloads
	// the list, for its new status).
	function attach_list(listview) {
		if (listview.__atlas_progress) return;
		listview.__atlas_progress = true;
		var pending_refresh = null;
		var refresh_soon = function (ms) {
			if (pending_refresh) return;
			pending_refresh = setTimeout(function () { pending_refresh = null; listview.refresh(); }, ms);
		};
		on(function (m) {
			var row = (listview.data || []).find(function (d) { return d.name === m.sync_job; });
			if (!row) return;
			if (finished(m)) return refresh_soon(1000);  // its new status
			row.progress_done = m.done;
			row.progress_total = m.total || 0;
			row.rate_per_minute = m.rate_per_minute || 0;
			row.eta_seconds = m.eta_seconds || 0;
			row.progress_stage = m.stage || "";
			var cell = listview.$result && listview.$result.find('.atlas-progress-cell[data-sync-job="' + CSS.escape(m.sync_job) + '"]');
			if (cell && cell.length) cell.text(short(from_row(row))).attr("title", describe(from_row(row)));
			else refresh_soon(3000);  // no cell yet (nothing was done when the list was drawn)
		});
	}

	window.atlas_progress = {
		EVENT: EVENT, KINDS: KINDS, on: on, describe: describe, short: short, duration: duration, percent: percent,
		make_bar: make_bar, render_bar: render_bar, Bars: Bars, attach_form: attach_form,
		attach_sync_job_form: attach_sync_job_form, attach_list: attach_list, list_cell: list_cell, from_row: from_row,
	};
})();
