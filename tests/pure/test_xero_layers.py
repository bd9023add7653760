"""``xero/`` has no import circle: every module imports only modules below it, at module level.

Issue 18: six xero modules imported each other (20 in-function imports). The drain dispatches from a table
of handlers; the domain modules import the client and each other downward. Read with ast (no site)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter

import pytest

from tests.pure.source_checks import APP

PACKAGE = "atlas_integrations.xero"


def xero_imports(source: str) -> tuple[set[str], list[str]]:
	"""(modules of ``xero/`` imported at module level, those imported inside a function or class) by one
	module's source. ``from atlas_integrations.xero import a, b``, ``from atlas_integrations.xero.a import x``
	and ``import atlas_integrations.xero.a`` all count."""
	tree = ast.parse(source)
	top: set[str] = set()
	nested: list[str] = []

	def names(node) -> list[str]:
		if isinstance(node, ast.ImportFrom) and node.module == PACKAGE:
			return [a.name for a in node.names]
		if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(PACKAGE + "."):
			return [node.module.split(".")[2]]
		if isinstance(node, ast.Import):
			return [a.name.split(".")[2] for a in node.names if a.name.startswith(PACKAGE + ".")]
		return []

	for node in tree.body:
		if isinstance(node, (ast.Import, ast.ImportFrom)):
			top.update(names(node))
	for node in ast.walk(tree):
		if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
			for inner in ast.walk(node):
				nested.extend(names(inner))
	return top, nested


def graph(sources: dict[str, str]) -> dict[str, set[str]]:
	"""module → the ``xero/`` modules it imports at module level (each must be among ``sources``)."""
	return {name: xero_imports(text)[0] for name, text in sources.items()}


def layers(sources: dict[str, str]) -> list[str]:
	"""The modules bottom-up. Raises graphlib.CycleError on an import circle."""
	return list(TopologicalSorter(graph(sources)).static_order())


def _sources() -> dict[str, str]:
	return {p.stem: p.read_text() for p in sorted((APP / "xero").glob("*.py")) if p.stem != "__init__"}


def test_no_module_imports_another_inside_a_function():
	found = {name: nested for name, text in _sources().items() if (nested := xero_imports(text)[1])}
	assert found == {}, f"in-function imports of xero modules (import at the top, downward): {found}"


def test_xero_has_no_import_circle_and_the_drain_is_on_top():
	sources = _sources()
	order = layers(sources)
	assert set(order) == set(sources)
	for name, imported in graph(sources).items():
		assert imported <= set(sources), f"{name} imports a xero module that does not exist: {imported - set(sources)}"
	# the drain dispatches to the domain modules; none of them (nor the client) knows it
	importers = {name for name, imported in graph(sources).items() if "drain" in imported}
	assert importers == set(), importers
	assert {"contacts", "invoices", "quotes", "payments"} <= graph(sources)["drain"]
	# the error family and the job types are at the bottom: they import no other xero module
	assert graph(sources)["errors"] == set() and graph(sources)["jobs"] == set()
	for domain in ("contacts", "invoices", "quotes", "payments"):
		assert "rate_limit" not in graph(sources)[domain], f"{domain} must call Xero through the client only"


def test_the_check_finds_a_circle_and_a_nested_import():
	circle = {"a": "from atlas_integrations.xero import b\n", "b": "from atlas_integrations.xero.a import x\n"}
	with pytest.raises(CycleError):
		layers(circle)
	nested = "def f():\n\tfrom atlas_integrations.xero import a\n\timport atlas_integrations.xero.b\n"
	assert xero_imports(nested) == (set(), ["a", "b"])
	fine = {"a": "import frappe\n", "b": "from atlas_integrations.xero import a\nfrom atlas_integrations import jobs\n"}
	assert layers(fine) == ["a", "b"]


def test_only_the_client_and_errors_know_xero_pythons_http_exception():
	"""Xero's HTTP errors become the family once, in the client: nobody else catches the SDK's exception."""
	users = {name for name, text in _sources().items() if "HTTPStatusException" in text}
	assert users <= {"client", "errors"}, users


def test_the_client_maps_xero_http_answers_to_one_family():
	"""401 → TokenRejected (a Temporary using no attempt), 403 → Revoked, 5xx → Temporary, other 4xx →
	Permanent with Xero's ValidationErrors; hostile bodies give bounded words, never an exception."""
	from xero_python.exceptions import HTTPStatusException

	from atlas_integrations.xero import errors

	class Answer:  # what xero-python's rest client hands HTTPStatusException
		def __init__(self, status, body=b"", reason=""):
			self.status, self.data, self.reason = status, body, reason

		def getheaders(self):
			return {}

	def http(status, body="", reason=""):
		return HTTPStatusException(http_resp=Answer(status, body.encode(), reason))

	rejected = errors.from_http(http(401))
	assert isinstance(rejected, errors.TokenRejected) and isinstance(rejected, errors.Temporary)
	assert (rejected.retry_after, rejected.count_attempt) == (5, False)
	assert isinstance(errors.from_http(http(403)), errors.Revoked)
	assert isinstance(errors.from_http(http(503, reason="Service Unavailable")), errors.Temporary)
	body = '{"Elements": [{"ValidationErrors": [{"Message": "Account code 999 is not valid"}, {"Message": "No contact"}]}]}'
	refused = errors.from_http(http(400, body))
	assert isinstance(refused, errors.Permanent) and not isinstance(refused, errors.Temporary)
	assert refused.status == 400 and refused.reason == "Account code 999 is not valid; No contact"
	assert str(refused) == "Xero answered 400: Account code 999 is not valid; No contact"
	assert errors.from_http(http(404, '{"Message": "Not found"}')).reason == "Not found"
	for hostile in ("[1, 2]", '{"Elements": "x"}', '{"Elements": [1, {"ValidationErrors": [null]}]}', "x" * 10_000_000):
		words = errors.from_http(http(400, hostile, reason="Bad Request")).reason
		assert len(words) <= 300
	assert issubclass(errors.XeroAuthError, errors.Revoked) and issubclass(errors.Revoked, errors.XeroError)
