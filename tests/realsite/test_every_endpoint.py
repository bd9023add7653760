"""Every whitelisted method of the site is an entry point to mail: this test calls them all.

It imports every module of frappe, erpnext, payments and this app (so ``frappe.whitelisted`` is complete),
then calls, over HTTP on the site's own web server, every whitelisted method that takes an argument that
can aim at mail — a doctype (``doctype``, ``reference_doctype``, ``parent``, ``dt`` …), a name, filters,
fields, a chart, a file URL, a search text, a document (``doc``, ``docs``, ``args``) or a record mail is
linked to (``contact``, ``lead``, ``customer``, ``communication``, ``thread`` …) — as a **Sales User** (no
Atlas role) and as a **dispatcher**, with arguments aimed at another user's personal mail
(:mod:`tests.realsite.privacy`): each mail doctype with its row, and each document the mail is on the
timeline of. Doctype controllers' whitelisted methods run through ``run_doc_method`` on those rows;
``/api/v2/method`` (also ``/api/v2/method/<doctype>/<method>``) carries every other call; a Server Script
API that reads with ``frappe.get_all`` is called too.

It fails when an answer carries one of the mail's markers (body, subject, recipient, attachment bytes,
mailbox, send) or when an answer differs, repeatably, between filters/search texts that match the hidden
mail and ones that match nothing (a count or chart that reads mail), or when the victim's mail changed.
It prints how many methods it called, how many answered 2xx, how many the mail guard refused and how many
errored. New methods in a Frappe update are checked without anyone remembering to.
"""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.realsite.conftest import TEST_PASSWORD, login
from tests.realsite.outlook_fixtures import graph  # noqa: F401 - the victim's Outlook mailbox
from tests.realsite.privacy import (  # noqa: F401 - fixtures
	ATTACKERS, PREFIX, SALES, VICTIM, leaked, untouched, victim_mail)

APPS = ("frappe", "erpnext", "payments", "atlas_integrations")
#: never called: they end or change the caller's session, or reach the network / the whole bench
SKIP = re.compile(r"logout|login|sign_up|reset_password|update_password|impersonat|two_?factor|setup_wizard|"
				  r"setup_complete|frappe\.auth\.|frappe\.sessions|clear_cache|oauth2|payment_gateways|recorder|"
				  r"backups|google_|dropbox|s3_backup|ldap|push_notification|send_welcome|frappe\.realtime|"
				  r"get_google|authorize_access|callback|\.testing\.|install_app|update_password|generate_keys|"
				  r"frappe\.desk\.page\.setup_wizard|frappe\.core\.doctype\.data_import|"
				  r"frappe\.utils\.change_log|restore|run_tests|frappe\.email\.oauth")
#: a document the mail is linked to is not destroyed by a call meant to read through it
DESTRUCTIVE = re.compile(r"delete|remove|rename|merge|trash|discard|amend|bulk|unlink|submit|close|reopen|"
						 r"make_|create_|update_|set_|cancel_all", re.I)

DOCTYPE_PARAMS = {"doctype", "_doctype", "reference_doctype", "parent", "parenttype", "parent_doctype", "dt",
				  "ref_doctype", "for_doctype", "from_doctype", "to_doctype", "child_doctype", "child_type",
				  "document_type", "doc_type", "master_doctype", "order_doctype", "reminder_doctype", "select_doctype",
				  "goal_doctype", "reference_type", "doctype_name"}
NAME_PARAMS = {"name", "docname", "doc_name", "dn", "reference_name", "reference_docname", "ref_docname", "ref_name",
			   "document_name", "master_name", "reminder_docname", "child_docname", "source_name", "prev_doc",
			   "reply_name", "parent_doctype_name"}
NAMES_PARAMS = {"names", "docnames", "source_names", "items", "selected_items", "selected_rows", "file_list",
				"files", "vouchers", "entries"}
FILTER_PARAMS = {"filters", "or_filters", "current_filters", "extra_filters", "export_filters", "request_filter",
				 "for_filter", "jobs_filter", "filters_json"}
FIELDS_PARAMS = {"fields", "filter_fields", "select_columns", "columns", "export_fields"}
FIELD_PARAMS = {"field", "fieldname", "field_name", "searchfield", "group_by", "aggregation", "colname"}
TEXT_PARAMS = {"txt", "text", "search", "search_term", "search_value", "term", "like", "content", "subject",
			   "description", "message", "query_string"}
DOC_PARAMS = {"doc", "docs", "args", "arg", "kwargs", "params", "data", "values", "settings", "chart", "chart_data",
			  "config", "doc_data", "user_settings", "report_settings", "document"}
FILE_PARAMS = {"file_url", "url", "file_path", "path", "pathname", "library_file_name"}
EMAIL_PARAMS = {"email", "recipients", "sender", "to", "cc", "bcc", "recipient_email", "email_list", "emails",
				"receiver_list"}
USER_PARAMS = {"user", "to_user", "user_email", "allocated_to", "assign_to", "users"}
#: a parameter that names a row of one doctype: aimed at the mail row (or the linked record)
ROW_PARAMS = {"communication": "Communication", "communication_id": "Communication", "thread": "Inbox Thread",
			  "outgoing_mail": "Outgoing Mail", "file": "File", "file_doc": "File", "file_name": "File",
			  "fid": "File", "account": "Gmail Account", "email_account": "Gmail Account", "contact": "Contact",
			  "contact_name": "Contact", "lead": "Lead", "customer": "Customer", "customer_name": "Customer",
			  "party": "Customer", "quotation": "Quotation", "prospect": "Lead", "link": "Communication Link"}
AIMING = (DOCTYPE_PARAMS | NAME_PARAMS | NAMES_PARAMS | FILTER_PARAMS | FIELDS_PARAMS | TEXT_PARAMS | DOC_PARAMS
		  | FILE_PARAMS | set(ROW_PARAMS) | {"chart_name", "report_name", "field"})

#: per mail doctype: the row's key in the fixture, the fields that hold marked text, and a filter on them
MAIL_TARGETS = {
	"Communication": ("comm", ["content", "subject", "recipients", "text_content"], "content"),
	"Inbox Thread": ("thread", ["subject", "snippet", "participants"], "subject"),
	"File": ("file", ["file_url", "file_name", "atlas_original_name"], "file_name"),
	"Outgoing Mail": ("outgoing", ["subject", "raw", "to_addresses"], "subject"),
	"Gmail Account": ("account", ["account_name", "email_address"], "account_name"),
	"Outlook Account": ("outlook_account", ["account_name", "email_address"], "account_name"),
	"Communication Link": ("link", ["link_doctype", "link_name", "parent"], "parent"),
}
#: the mailbox doctypes: an ``account`` parameter names a mailbox of either
MAILBOX_DOCTYPES = ("Gmail Account", "Outlook Account")
LINKED_TARGETS = {"Customer": "customer", "Contact": "contact", "Lead": "lead", "Quotation": "quotation"}
GUARD_MESSAGE = "This request names mail"
#: markup a caller sends, which no message may show as markup
MARKUP = f'<img src=x onerror="atlas_echo_{PREFIX[-6:]}">' 


def _import_everything() -> list:
	import frappe

	for app in APPS:
		package = importlib.import_module(app)
		for info in pkgutil.walk_packages(package.__path__, app + "."):
			name = info.name
			if re.search(r"\.(tests?|patches|testing)(\.|$)|\.test_", name):
				continue
			try:
				importlib.import_module(name)
			except BaseException:  # a module of an optional integration that cannot import here
				continue
	return list(frappe.whitelisted)


class Call:
	"""One HTTP call: the method, its path, its arguments (``PREFIX`` where it aims at the marked text;
	``__DOC__:<doctype>:<name>`` for a document's JSON as the caller reads it, ``__QUOTATION__`` for the
	caller's own submitted Quotation linked to the mail), and what to look for in the answer."""

	def __init__(self, method: str, path: str, args: dict, verb: str, target: str, differential: bool,
				 echo: bool = False, as_json: bool = False):
		self.method, self.path, self.args, self.verb, self.target = method, path, args, verb, target
		self.differential, self.echo, self.as_json = differential, echo, as_json


def _probe(doctype: str, name: str, fields: list[str], field: str, needle: str) -> dict:
	"""One dict that fits the shapes ``doc`` / ``args`` / ``chart`` arguments take, all aimed at the row."""
	filters = [[doctype, field, "like", f"%{needle}%"]]
	return {"doctype": doctype, "name": name, "document_type": doctype, "ref_doctype": doctype,
			"reference_doctype": doctype, "reference_name": name, "parent": doctype, "function": "Count",
			"chart_type": "Count", "type": "Heatmap", "based_on": "creation", "timespan": "Last Year",
			"time_interval": "Daily", "filters_json": json.dumps(filters), "filters": filters, "fields": fields,
			"docname": name, "dt": doctype, "dn": name, "file_url": None}


def _args_for(params: dict, doctype: str, name: str, fields: list[str], field: str, mail: dict,
			  linked: bool, only_row: str | None = None) -> dict:
	"""Arguments for ``params`` aimed at ``doctype`` ``name`` (a mail row, or a record the mail is linked
	to when ``linked``). ``only_row``: of the row-naming parameters, set only this one."""
	args = {}
	needle = PREFIX
	for param, spec in params.items():
		value = None
		if param in ROW_PARAMS and only_row is not None and param != only_row:
			value = None
		elif param in DOCTYPE_PARAMS:
			value = doctype
		elif param in NAME_PARAMS:
			value = name
		elif param in NAMES_PARAMS:
			value = json.dumps([name])
		elif param in FILTER_PARAMS:
			value = json.dumps([[doctype, field, "like", f"%{needle}%"]])
		elif param in FIELDS_PARAMS:
			value = json.dumps(fields)
		elif param in FIELD_PARAMS:
			value = "assigned_to" if param == "field" else field
		elif param in TEXT_PARAMS:
			value = needle
		elif param in DOC_PARAMS:
			value = f"__DOC__:{doctype}:{name}" if linked else json.dumps(_probe(doctype, name, fields, field, needle))
		elif param in FILE_PARAMS:
			value = mail["file_url"]
		elif param in EMAIL_PARAMS:
			value = f"{needle}@victim-partner.example"
		elif param in USER_PARAMS:
			value = VICTIM
		elif param in ROW_PARAMS:
			row_doctype = ROW_PARAMS[param]
			mailbox_param = param in ("account", "email_account") and doctype in MAILBOX_DOCTYPES  # either type's
			value = name if row_doctype == doctype or mailbox_param else _row_name(mail, row_doctype)
		elif param == "chart_name" and "chart" not in params:
			value = mail["chart"]
		elif param == "report_name":
			value = mail["report"]
		elif param == "action":
			value = "Save"
		elif param == "party_type":
			value = "Customer"
		elif param in ("no_cache", "with_parent", "ignore_user_permissions", "as_dict", "refresh"):
			value = 1
		elif spec.default is inspect.Parameter.empty and spec.kind not in (inspect.Parameter.VAR_KEYWORD,
																		   inspect.Parameter.VAR_POSITIONAL):
			value = needle
		if value is not None:
			args[param] = value
	return args


def _kitchen_sink(doctype: str, name: str, fields: list[str], field: str, mail: dict) -> dict:
	"""For methods that read ``frappe.form_dict`` themselves (no parameters, or ``**kwargs``)."""
	return {"doctype": doctype, "name": name, "docname": name, "dt": doctype, "dn": name, "reference_doctype": doctype,
			"reference_name": name, "fields": json.dumps(fields), "filters": json.dumps([[doctype, field, "like", f"%{PREFIX}%"]]),
			"file_url": mail["file_url"], "is_private": 1, "txt": PREFIX, "items": json.dumps([name])}


def _echo_args(params: dict) -> list[dict]:
	"""One call per parameter: that one carries :data:`MARKUP` (through ``PREFIX``), the other required
	ones a plain word."""
	required = [p for p, spec in params.items() if spec.default is inspect.Parameter.empty
				and spec.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
	return [{**{q: "plain" for q in required}, p: PREFIX} for p, spec in params.items()
			if spec.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]


def _row_name(mail: dict, doctype: str) -> str:
	if doctype == "Quotation":
		return "__QUOTATION__"
	key = (MAIL_TARGETS.get(doctype) or (LINKED_TARGETS.get(doctype),))[0]
	return mail.get(key) or ""


def _calls(functions, mail: dict) -> list[Call]:
	import frappe

	calls = []
	for index, fn in enumerate(sorted(functions, key=lambda f: (f.__module__, f.__qualname__))):
		if "." in fn.__qualname__:
			continue  # controller methods: through run_doc_method below
		method = f"{fn.__module__}.{fn.__qualname__}"
		if SKIP.search(method):
			continue
		try:
			params = {k: v for k, v in inspect.signature(fn).parameters.items() if k not in ("self", "cmd")}
		except (TypeError, ValueError):
			continue
		verbs = frappe.allowed_http_methods_for_whitelisted_func.get(fn) or ["GET", "POST"]
		verb = "GET" if "GET" in verbs else ("POST" if "POST" in verbs else verbs[0])
		path = f"/api/v2/method/{method}" if index % 2 else f"/api/method/{method}"
		ours = method.startswith("atlas_integrations.")
		reads_form = not [p for p in params.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
		if reads_form or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
			for doctype, (key, fields, field) in MAIL_TARGETS.items():
				calls.append(Call(method, path, _kitchen_sink(doctype, mail[key], fields, field, mail), verb, doctype, True))
			if reads_form:
				continue
		if ours:  # the app's own methods: a value they echo in a message is text, parameter by parameter
			calls.extend(Call(method, f"/api/method/{method}", args, verb, "(echo)", False, echo=True)  # as the desk calls
						 for args in _echo_args(params))
		if not AIMING & set(params):
			continue
		aims_doctype = bool(DOCTYPE_PARAMS & set(params))
		differential = bool((FILTER_PARAMS | TEXT_PARAMS | DOC_PARAMS) & set(params))
		rows = [p for p in params if p in ROW_PARAMS]
		for doctype, (key, fields, field) in MAIL_TARGETS.items():
			if not aims_doctype and doctype != "Communication" and not rows:
				continue
			for only in [None, *rows] if len(rows) > 1 else [None]:
				args = _args_for(params, doctype, mail[key], fields, field, mail, False, only)
				calls.append(Call(method, path, args, verb, doctype, differential))
		if DESTRUCTIVE.search(fn.__name__):
			continue
		for doctype, key in LINKED_TARGETS.items():
			if not aims_doctype and not ({"doc", "docs", "contact", "lead", "customer", "party", "quotation"} & set(params)):
				continue
			name = "__QUOTATION__" if doctype == "Quotation" else mail[key]
			for only in [None, *rows] if len(rows) > 1 else [None]:
				args = _args_for(params, doctype, name, ["name"], "name", mail, True, only)
				calls.append(Call(method, path, args, verb, doctype, False))
	return calls


def _rest_calls(mail: dict) -> list[Call]:
	"""REST on the mail rows, and a File row that names the mail attachment's URL (then downloaded)."""
	calls = []
	for doctype, (key, fields, field) in MAIL_TARGETS.items():
		filters = json.dumps([[doctype, field, "like", f"%{PREFIX}%"]])
		calls.append(Call("REST list", f"/api/resource/{doctype}", {"fields": json.dumps(fields), "filters": filters,
																	 "limit_page_length": 0}, "GET", doctype, True))
		calls.append(Call("REST get", f"/api/resource/{doctype}/{mail[key]}", {}, "GET", doctype, False))
		calls.append(Call("REST v2 count", f"/api/v2/doctype/{doctype}/count", {"filters": filters}, "GET", doctype, True))
	for body in ({"file_url": mail["file_url"], "is_private": 1},
				 {"file_name": mail["file_url"].rsplit("/", 1)[1], "is_private": 1},
				 {"file_url": mail["file_url"], "is_private": 1, "content": "any bytes"}):
		calls.append(Call("REST insert File", "/api/resource/File", body, "POST", "File", False, as_json=True))
	return calls


def _controller_calls(functions, mail: dict) -> list[Call]:
	"""Whitelisted controller methods of the mail and linked doctypes, through ``run_doc_method`` on the
	mail's rows (by name, and as a client copy claiming the attacker's ownership)."""
	import frappe

	calls = []
	wanted = {**{dt: mail[k] for dt, (k, _, _) in MAIL_TARGETS.items()},
			  **{dt: ("__QUOTATION__" if dt == "Quotation" else mail[k]) for dt, k in LINKED_TARGETS.items()}}
	for fn in functions:
		if "." not in fn.__qualname__:
			continue
		cls = fn.__qualname__.split(".")[0]
		for doctype, name in wanted.items():
			if cls != doctype.replace(" ", ""):
				continue
			try:
				params = [p for p in inspect.signature(fn).parameters if p != "self"]
			except (TypeError, ValueError):
				params = []
			args = json.dumps({p: PREFIX for p in params})
			calls.append(Call(f"{doctype}.{fn.__name__}", "/api/method/run_doc_method",
							  {"dt": doctype, "dn": name, "method": fn.__name__, "args": args}, "POST", doctype, False))
			if doctype not in MAIL_TARGETS:
				continue
			forged = {"doctype": doctype, "name": name, "user": SALES, "owner": SALES, "account_type": "Personal",
					  "atlas_mailbox_type": "", "atlas_mailbox": "", "atlas_inbox_thread": "", "reference_doctype": "",
					  "attached_to_doctype": "", "modified": str(frappe.db.get_value(doctype, name, "modified"))}
			calls.append(Call(f"{doctype}.{fn.__name__} (client copy)", "/api/method/run_doc_method",
							  {"docs": json.dumps(forged), "method": fn.__name__, "args": args}, "POST", doctype, False))
	return calls


def _normalise(text: str, *needles: str) -> str:
	for needle in needles:
		text = text.replace(needle, "NEEDLE")
	text = re.sub(r'"exc":\s*"(?:[^"\\]|\\.)*"', '"exc": ""', text)  # tracebacks carry line details
	return re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?", "TIME", text)


@pytest.fixture(scope="module")
def probes(site, victim_mail):
	"""An admin's chart, number card and report defined on Communication (names callers may pass), and a
	Server Script API that reads with ``frappe.get_all`` (as an admin may write one)."""
	import frappe
	from frappe.installer import update_site_config

	mail = victim_mail
	tag = PREFIX[-6:]
	chart = frappe.get_doc({"doctype": "Dashboard Chart", "chart_name": f"Atlas Probe {tag}", "chart_type": "Count",
							"type": "Heatmap", "document_type": "Communication", "based_on": "creation",
							"timespan": "Last Year", "time_interval": "Daily", "is_public": 1,
							"filters_json": json.dumps([["Communication", "content", "like", f"%{PREFIX}%", False]])}
						   ).insert(ignore_permissions=True)
	report = frappe.get_doc({"doctype": "Report", "report_name": f"Atlas Probe {tag}", "ref_doctype": "Communication",
							 "report_type": "Report Builder", "is_standard": "No", "module": "Core",
							 "json": json.dumps({"fields": [["content", "Communication"], ["subject", "Communication"]],
												 "filters": []})}).insert(ignore_permissions=True)
	previous = frappe.conf.get("server_script_enabled")
	update_site_config("server_script_enabled", 1)
	script = frappe.get_doc({"doctype": "Server Script", "name": f"atlas-probe-{tag}", "script_type": "API",
							 "api_method": f"atlas_probe_{tag}", "allow_guest": 0,
							 "script": "frappe.response['message'] = frappe.get_all(frappe.form_dict.doctype, "
									   "fields=frappe.parse_json(frappe.form_dict.fields or '[\"name\"]'), "
									   "filters=frappe.parse_json(frappe.form_dict.filters or '[]'))"}
							).insert(ignore_permissions=True)
	frappe.db.commit()
	mail.update(chart=chart.name, report=report.name, script=script.api_method)
	yield mail
	frappe.db.rollback()
	for doctype, name in (("Server Script", script.name), ("Report", report.name), ("Dashboard Chart", chart.name)):
		frappe.delete_doc(doctype, name, force=True, ignore_permissions=True)
	update_site_config("server_script_enabled", previous if previous else "None")
	frappe.db.commit()


def test_no_whitelisted_method_reads_another_users_mail(site, web, probes):
	frappe = site
	mail = probes
	functions = _import_everything()
	calls = _calls(functions, mail) + _controller_calls(functions, mail) + _rest_calls(mail)
	for doctype, (key, fields, field) in MAIL_TARGETS.items():
		calls.append(Call("server script API", f"/api/method/{mail['script']}",
						  {"doctype": doctype, "fields": json.dumps(fields),
						   "filters": json.dumps([[doctype, field, "like", f"%{PREFIX}%"]])}, "GET", doctype, True))
	# a call that cancels gets a submitted Quotation of its own (each is on the mail's timeline)
	fresh = {}
	for user in ATTACKERS:
		for call in calls:
			if "cancel" in call.method.lower() and "__QUOTATION__" in json.dumps(call.args):
				fresh[(user, id(call))] = _linked_quotation(frappe, mail, user)
	frappe.db.commit()
	miss = "atlasmk" + "q" * (len(PREFIX) - 7)
	local = threading.local()
	findings: list[str] = []
	tally = {"2xx": 0, "refused by the mail guard": 0, "errored": 0}
	lock = threading.Lock()

	def session(user):
		sessions = getattr(local, "sessions", None)
		if sessions is None:
			sessions = local.sessions = {}
		if user not in sessions:
			sessions[user] = login(web, user, TEST_PASSWORD)
		return sessions[user]

	def resolve(user, call: Call, value):
		if not isinstance(value, str):
			return value
		if value.startswith("__DOC__:"):  # the document's JSON as this caller reads it now (a form's copy)
			_, doctype, name = value.split(":", 2)
			name = resolve(user, call, name)
			r = session(user).get(f"{web}/api/resource/{doctype}/{name}", timeout=60)
			return json.dumps(r.json().get("data") if r.status_code == 200 else {"doctype": doctype, "name": name})
		return value.replace("__QUOTATION__", fresh.get((user, id(call))) or mail["quotation"][user])

	def send(user, call: Call, needle: str, retried: bool = False):
		args = {k: resolve(user, call, v.replace(PREFIX, needle) if isinstance(v, str) else v)
				for k, v in call.args.items()}
		http = session(user)
		try:
			if call.as_json:
				r = http.request(call.verb, web + call.path, json=args, timeout=120)
			elif call.verb == "GET":
				r = http.get(web + call.path, params=args, timeout=120)
			else:
				r = http.request(call.verb, web + call.path, data=args, timeout=120)
		except Exception as exc:  # a method that never answers is a finding of its own
			return 599, f"no answer: {type(exc).__name__}".encode()
		if not retried and r.status_code in (401, 403):
			who = http.get(web + "/api/method/frappe.auth.get_logged_user", timeout=60)
			if who.status_code != 200:  # a method ended the session: log in again, once
				local.sessions.pop(user, None)
				return send(user, call, needle, retried=True)
		return r.status_code, r.content

	def downloads(user, body: bytes) -> list[str]:
		"""Private files an answer points at, fetched as the caller: a File row made or re-pointed by a call
		serves its bytes to its owner."""
		found = []
		for url in sorted(set(re.findall(rb"/private/files/[^\"'\\<>\s?]+", body)))[:5]:
			r = session(user).get(web + url.decode(), timeout=60)
			if r.status_code == 200 and leaked(r.content):
				found.append(url.decode())
		return found

	def echoed(body: bytes) -> bool:
		"""The answer's server messages (the desk shows them as HTML) carry the caller's markup unescaped."""
		try:
			data = json.loads(body)
		except ValueError:
			return False
		if not isinstance(data, dict):
			return False
		return MARKUP.split(" onerror")[0] + " onerror" in str(data.get("_server_messages") or "")

	def run(item):
		user, call = item
		note = None
		if call.echo:
			status, body = send(user, call, MARKUP)
			if echoed(body):
				note = f"{user}: {call.method} echoes its argument as markup in a message ({status})"
		else:
			status, body = send(user, call, PREFIX)
			found = leaked(body)
			files = downloads(user, body) if 200 <= status < 300 else []
			if found or files:
				note = (f"{user}: {call.method} on {call.target} answered {status} with the mail's {', '.join(found)}"
						+ (f"; its answer names {files}, which now serve the attachment's bytes" if files else ""))
			elif call.differential and status < 500:
				other = send(user, call, miss)
				first = (_normalise(body.decode(errors="replace"), PREFIX), _normalise(other[1].decode(errors="replace"), miss))
				if first[0] != first[1]:
					again, other_again = send(user, call, PREFIX), send(user, call, miss)
					second = (_normalise(again[1].decode(errors="replace"), PREFIX),
							  _normalise(other_again[1].decode(errors="replace"), miss))
					if first == second:
						note = (f"{user}: {call.method} on {call.target} answers differently when its filter matches "
								f"the hidden mail ({status}: {body[:160]!r} vs {other[1][:160]!r})")
		with lock:
			if 200 <= status < 300:
				tally["2xx"] += 1
			elif status == 403 and GUARD_MESSAGE.encode() in body:
				tally["refused by the mail guard"] += 1
			else:
				tally["errored"] += 1
			if note:
				findings.append(note)

	work = [(user, call) for user in ATTACKERS for call in calls]
	with ThreadPoolExecutor(max_workers=4) as pool:
		list(pool.map(run, work))
	methods = len({c.method for c in calls})
	print(f"\nwhitelisted methods on the site: {len(functions)}; called: {methods} methods in {len(work)} calls "
		  f"as {len(ATTACKERS)} users; answered 2xx: {tally['2xx']}; refused by the mail guard: "
		  f"{tally['refused by the mail guard']}; errored: {tally['errored']}; findings: {len(findings)}")
	for note in sorted(findings):
		print("  LEAK", note)
	frappe.db.rollback()
	for name in fresh.values():
		_drop_quotation(frappe, name)
	assert not findings, "\n".join(sorted(findings)[:80])
	assert untouched(frappe, mail) == []
	assert methods > 300, methods  # the enumeration itself works (Frappe + ERPNext have hundreds)


def _linked_quotation(frappe, mail: dict, owner: str) -> str:
	from atlas_integrations.inbox.act import add_timeline_links
	from tests.realsite.privacy import _quotation

	name = _quotation(frappe, mail["customer"], mail["company"], owner)
	add_timeline_links({mail["comm"]: {("Quotation", name)}})
	return name


def _drop_quotation(frappe, name: str) -> None:
	doc = frappe.get_doc("Quotation", name)
	if doc.docstatus == 1:
		doc.cancel()
	frappe.delete_doc("Quotation", name, force=True, ignore_permissions=True)
	frappe.db.commit()
