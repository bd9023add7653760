"""The shared modules import no provider package, and every provider's job-type registrations (hook
``atlas_job_types``) point at code that exists. Source is read with ``ast``: no Frappe site needed."""

from __future__ import annotations

import ast
import importlib

import pytest
from tests.pure.source_checks import (  # noqa: F401 - fixtures and helpers
	APP,
	PROVIDERS,
	ROOT,
	SHARED_MODULES,
	SHARED_PACKAGES,
	_docstring_nodes,
	provider_imports,
)


def _provider_doctypes() -> set[str]:
	"""The doctypes the provider packages define (``<provider>/doctype/*/*.json``)."""
	import json

	names = set()
	for provider in PROVIDERS:
		for path in (APP / provider).glob("doctype/*/*.json"):
			doc = json.loads(path.read_text())
			if doc.get("doctype") == "DocType" and path.stem == path.parent.name:
				names.add(doc["name"])
	return names


#: how provider columns are named: ``gmail_account``, ``atlas_gmail_key``, ``atlas_xero_status`` ...
PROVIDER_FIELD_PREFIXES = tuple(f"{prefix}{p}_" for p in PROVIDERS for prefix in ("", "atlas_"))


def provider_names(source: str, doctypes: set[str] | None = None) -> list[str]:
	"""Every string in ``source`` (docstrings aside; f-strings and SQL included) that names a provider's
	doctype or column, as ``"line N: what"``: shared code reaches a mailbox's columns through the mailbox
	registry, never by name."""
	import re

	doctypes = _provider_doctypes() if doctypes is None else doctypes
	tree = ast.parse(source)
	docstrings = _docstring_nodes(tree)
	field = re.compile(r"(?<![A-Za-z0-9_])(?:" + "|".join(PROVIDER_FIELD_PREFIXES) + r")[a-z0-9_]+")
	found = []
	for node in ast.walk(tree):
		if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
			text = node.value
			hits = [d for d in doctypes if d in text] + field.findall(text)
			found += [f"line {node.lineno}: {hit!r}" for hit in hits]
		elif isinstance(node, (ast.Attribute,)) and field.fullmatch(node.attr or ""):
			found.append(f"line {node.lineno}: .{node.attr}")
		elif isinstance(node, ast.keyword) and node.arg and field.fullmatch(node.arg):
			found.append(f"line {node.lineno}: {node.arg}=")
	return sorted(set(found))


#: shared modules exempt from the name check, and why: endpoints.py is the table of site-config keys of every
#: provider's endpoint (keys, not doctypes or columns)
NAME_CHECK_EXEMPT = ("endpoints.py",)


def _registered_setting_names() -> set[str]:
	"""Atlas Settings fields a provider registers in the ``atlas_settings_urls`` hook (their own names)."""
	return set(_hooks().get("atlas_settings_urls") or {})


def _unregistered(found: list[str]) -> list[str]:
	allowed = _registered_setting_names()
	return [f for f in found if not any(f.endswith(f"'{name}'") for name in allowed)]


@pytest.mark.parametrize("module", [m for m in SHARED_MODULES if m not in NAME_CHECK_EXEMPT])
def test_shared_module_names_no_provider_doctype_or_column(module):
	found = _unregistered(provider_names((APP / module).read_text()))
	assert found == [], f"atlas_integrations/{module} names a provider's doctype or columns: {found}"


@pytest.mark.parametrize("package", SHARED_PACKAGES)
def test_shared_package_names_no_provider_doctype_or_column(package):
	found = {str(f.relative_to(APP)): _unregistered(provider_names(f.read_text()))
			 for f in sorted((APP / package).rglob("*.py"))}
	assert {f: v for f, v in found.items() if v} == {}


@pytest.mark.parametrize(
	"source",
	[
		'X = "select name from `tabGmail Account`"',
		'def f(t):\n\treturn f"ifnull({t}.`atlas_gmail_account`, \'\') != \'\'"',
		'FILTERS = {"gmail_account": "a"}',
		'def f(doc):\n\treturn doc.gmail_thread_id',
		'def f():\n\treturn frappe.get_all("Communication", filters=dict(atlas_gmail_key="k"))',
		'def f(row):\n\treturn row.atlas_xero_status',
	],
)
def test_the_name_check_catches_provider_doctypes_and_columns(source):
	assert provider_names(source, {"Gmail Account", "Xero Connection"}), source


@pytest.mark.parametrize(
	"source",
	[
		'"""Docstrings may name the Gmail Account doctype and atlas_gmail_account."""',
		'X = "select name from `tabInbox Thread` where mailbox = %s"',
		'LABEL = "Gmail"',
		'def f(t):\n\treturn t.thread_field',
	],
)
def test_the_name_check_lets_neutral_code_through(source):
	assert provider_names(source, {"Gmail Account", "Xero Connection"}) == [], source


@pytest.mark.parametrize("module", SHARED_MODULES)
def test_shared_module_imports_no_provider_package(module):
	source = (APP / module).read_text()
	assert provider_imports(source) == [], f"atlas_integrations/{module} must not import a provider package"


@pytest.mark.parametrize("package", SHARED_PACKAGES)
def test_shared_package_imports_no_provider_package(package):
	files = sorted((APP / package).rglob("*.py"))
	assert files, package
	found = {str(f.relative_to(APP)): provider_imports(f.read_text()) for f in files}
	assert {f: v for f, v in found.items() if v} == {}


def test_doctypes_live_in_the_module_of_their_package():
	"""Atlas Core (settings, Sync Job), Inbox (threads, rules, routes), Gmail, Xero: each doctype's
	folder is in the package of its module, and modules.txt lists exactly those modules."""
	import json

	modules = [m.strip() for m in (APP / "modules.txt").read_text().splitlines() if m.strip()]
	assert modules == ["Atlas Core", "Inbox", "Gmail", "Xero", "Outlook"]
	folders = {m: m.lower().replace(" ", "_") for m in modules}
	seen = {}
	for path in APP.glob("*/doctype/*/*.json"):
		doc = json.loads(path.read_text())
		if doc.get("doctype") != "DocType" or path.stem != path.parent.name:
			continue
		package = path.relative_to(APP).parts[0]
		assert folders.get(doc["module"]) == package, f"{doc['name']}: module {doc['module']} in {package}/"
		seen[doc["name"]] = doc["module"]
	assert {"Atlas Settings": "Atlas Core", "Sync Job": "Atlas Core", "Inbox Thread": "Inbox",
			"Gmail Account": "Gmail", "Xero Connection": "Xero"}.items() <= seen.items()
	assert not (APP / "atlas_integrations").exists(), "the old single-module folder is gone"


@pytest.mark.parametrize(
	"source",
	[
		"import atlas_integrations.gmail.sync",
		"import atlas_integrations.xero as x",
		"from atlas_integrations.gmail.sync import release_lock",
		"from atlas_integrations.gmail import sync",
		"from atlas_integrations import gmail",
		"from atlas_integrations import settings, xero",
		"from .gmail import accounts",
		"from . import gmail",
		"def f():\n\tfrom atlas_integrations.gmail.sync import release_lock\n\treturn release_lock",
		"def f():\n\timport importlib\n\treturn importlib.import_module('atlas_integrations.gmail.sync')",
		"import frappe\ndef f():\n\treturn frappe.get_attr('atlas_integrations.xero.pull.run')",
		"RUNNERS = {'Gmail Sync': ('atlas_integrations.gmail.sync.run_sync_job', 'long')}",
	],
)
def test_the_check_catches_every_kind_of_provider_import(source):
	assert provider_imports(source), source


@pytest.mark.parametrize(
	"source",
	[
		'"""Docstrings may say atlas_integrations.gmail.sync is where Gmail lives."""',
		"import frappe\nfrom atlas_integrations.redact import scrub",
		"from atlas_integrations import redact, settings",
		"import atlas_integrations.gmailish",
		"HOOK = 'atlas_job_types'",
	],
)
def test_the_check_lets_shared_code_through(source):
	assert provider_imports(source) == []


# -- the registrations -------------------------------------------------------------------------------------
def _hooks() -> dict:
	"""The literal assignments of hooks.py."""
	values = {}
	for node in ast.parse((APP / "hooks.py").read_text()).body:
		if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
			try:
				values[node.targets[0].id] = ast.literal_eval(node.value)
			except ValueError:
				continue
	return values


def _module_names(dotted_module: str) -> set[str]:
	"""Top-level names (functions, classes, assignments) defined in an app module, read from source."""
	path = ROOT.joinpath(*dotted_module.split(".")).with_suffix(".py")
	assert path.exists(), f"no module {dotted_module} ({path})"
	names = set()
	for node in ast.parse(path.read_text()).body:
		if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
			names.add(node.name)
		elif isinstance(node, (ast.Assign, ast.AnnAssign)):
			for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
				if isinstance(target, ast.Name):
					names.add(target.id)
	return names


def _assert_resolves(dotted: str) -> None:
	module, _, name = dotted.rpartition(".")
	assert name in _module_names(module), f"{dotted} does not exist"


def _registrations() -> list[tuple[str, dict]]:
	paths = _hooks().get("atlas_job_types")
	assert paths, "hooks.py registers no job types (atlas_job_types)"
	out = []
	for path in paths:
		_assert_resolves(path)
		module, _, name = path.rpartition(".")
		out.extend((path, entry) for entry in getattr(importlib.import_module(module), name))
	return out


def test_hook_registers_gmail_job_types_from_the_gmail_package():
	paths = _hooks()["atlas_job_types"]
	assert "atlas_integrations.gmail.jobs.JOB_TYPES" in paths
	assert "atlas_integrations.inbox.jobs.JOB_TYPES" in paths
	names = [entry["name"] for _, entry in _registrations()]
	assert "atlas_integrations.xero.jobs.JOB_TYPES" in paths
	assert sorted(names) == [
		"Gmail Modify",
		"Gmail Sync",
		"Mailbox Erase",
		"Match Index Rebuild",
		"Outlook Modify",
		"Outlook Sync",
		"Xero Contact",
		"Xero Invoice",
		"Xero Payment",
		"Xero Pull",
		"Xero Push Existing",
		"Xero Quote",
		"Xero Quote Send",
	]
	assert len(names) == len(set(names))
	gmail = [entry["name"] for path, entry in _registrations() if path.startswith("atlas_integrations.gmail.")]
	assert sorted(gmail) == ["Gmail Modify", "Gmail Sync"]
	outlook = [entry["name"] for path, entry in _registrations() if path.startswith("atlas_integrations.outlook.")]
	assert sorted(outlook) == ["Outlook Modify", "Outlook Sync"]


def test_every_registered_entry_point_and_hook_exists():
	for _, entry in _registrations():
		for key in ("method", "release", "on_give_up"):
			if entry.get(key):
				_assert_resolves(entry[key])


def test_registered_names_are_the_ones_the_provider_code_uses():
	def constant(module: str, name: str) -> str:
		path = ROOT.joinpath(*module.split(".")).with_suffix(".py")
		for node in ast.parse(path.read_text()).body:
			if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
				return ast.literal_eval(node.value)
		raise AssertionError(f"{module}.{name} missing")

	by_method = {entry["method"]: entry["name"] for _, entry in _registrations()}
	assert by_method["atlas_integrations.gmail.sync.run_sync_job"] == constant("atlas_integrations.gmail.sync", "JOB_TYPE")
	assert by_method["atlas_integrations.gmail.labels.run_modify_job"] == constant("atlas_integrations.gmail.labels", "JOB_TYPE")


def test_gmail_job_types_are_one_at_a_time_per_account():
	by_name = {entry["name"]: entry for _, entry in _registrations()}
	assert by_name["Gmail Sync"]["one_at_a_time"] == "reference"
	assert by_name["Gmail Modify"]["one_at_a_time"] == "reference"  # desk changes are written in order
	assert (by_name["Gmail Sync"]["queue"], by_name["Gmail Sync"]["timeout"]) == ("long", 6 * 60 * 60)
	assert (by_name["Gmail Modify"]["queue"], by_name["Gmail Modify"]["timeout"]) == ("short", 300)
	assert all(by_name[n].get("release") for n in ("Gmail Sync", "Gmail Modify"))  # their run locks


# -- validation by the ledger (needs the frappe package, not a site) ---------------------------------------
@pytest.fixture
def ledger():
	pytest.importorskip("frappe")
	from atlas_integrations import jobs

	return jobs


def test_ledger_accepts_every_registration(ledger):
	for path, entry in _registrations():
		job_type = ledger.JobType.from_registration(entry, source=path)
		# Xero's jobs also count passing failures (timeouts, 5xx) against the cap: more room for backoff
		assert job_type.max_attempts == (6 if job_type.name.startswith("Xero") else 3)
		assert job_type.one_at_a_time in (ledger.PER_REFERENCE, ledger.PER_JOB)


@pytest.mark.parametrize(
	"change,message",
	[
		({"colour": "red"}, "unknown keys ['colour']"),
		({"timeout": 0}, "timeout must be a positive number of seconds"),
		({"timeout": "300"}, "timeout must be a positive number of seconds"),
		({"one_at_a_time": "account"}, "one_at_a_time must be 'reference' or 'job'"),
		({"method": "run_it"}, "method must be a dotted path"),
		({"release": "not a path"}, "release must be a dotted path"),
		({"max_attempts": 0}, "max_attempts must be an integer >= 1"),
		({"name": " "}, "name must be a non-empty string"),
		({"progress_audience": "everyone"}, "progress_audience must be one of ('readers', 'admins')"),
	],
)
def test_ledger_refuses_malformed_registrations_with_a_clear_message(ledger, change, message):
	entry = {"name": "Test Type", "method": "atlas_integrations.testing.x.run", "queue": "short", "timeout": 60}
	entry.update(change)
	with pytest.raises(ledger.InvalidJobType) as info:
		ledger.JobType.from_registration(entry, source="tests.pure.REGISTRY")
	assert message in str(info.value) and "tests.pure.REGISTRY" in str(info.value)


def test_ledger_refuses_a_registration_without_its_required_keys(ledger):
	with pytest.raises(ledger.InvalidJobType, match=r"missing keys \['method', 'queue', 'timeout'\]"):
		ledger.JobType.from_registration({"name": "Half"})


def test_rq_job_id_names_type_and_key(ledger):
	assert ledger.rq_job_id("Gmail Modify", "acc-1") == "atlas::Gmail Modify::acc-1"


def test_test_modules_share_helpers_through_fixture_modules_never_through_each_other():
	"""A test module imports helpers and fixtures from helper modules (``xero_fixtures``, ``reply_fixtures``,
	``browser``, ``source_checks`` ...), never from another test module: running one module alone, or in any
	order, then needs nothing but its own imports."""
	tests = ROOT / "tests"
	found = []
	for path in sorted(tests.rglob("*.py")):
		for node in ast.walk(ast.parse(path.read_text())):
			names = []
			if isinstance(node, ast.ImportFrom) and node.module:
				names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
			elif isinstance(node, ast.Import):
				names = [a.name for a in node.names]
			if any(n.split(".")[-1].startswith("test_") and n.startswith("tests.") for n in names):
				found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
	assert found == []
