"""Checks on the app's source, read with ast (no Frappe site): which modules import or name a provider."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


APP = ROOT / "atlas_integrations"


#: modules every provider uses; none of them may know a provider
SHARED_MODULES = ("jobs.py", "permissions.py", "redact.py", "settings.py", "endpoints.py", "downloads.py", "progress.py",
				  "notify.py", "api/smart_inbox.py", "api/inbox.py")


#: provider-neutral packages: the Atlas Core doctypes and the Smart Inbox pipeline
SHARED_PACKAGES = ("atlas_core", "inbox")


PROVIDERS = ("gmail", "xero")


PROVIDER_PREFIXES = tuple(f"atlas_integrations.{p}" for p in PROVIDERS)


#: calls that import a module named by a string
DYNAMIC_IMPORTS = {"import_module", "__import__", "get_attr", "get_module", "import_string", "find_spec"}


def _names_provider(dotted: str | None) -> bool:
	return bool(dotted) and any(dotted == p or dotted.startswith(p + ".") for p in PROVIDER_PREFIXES)


def _docstring_nodes(tree: ast.AST) -> set[int]:
	ids = set()
	for node in ast.walk(tree):
		if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
			body = getattr(node, "body", [])
			if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
				ids.add(id(body[0].value))
	return ids


def provider_imports(source: str, package: str = "atlas_integrations") -> list[str]:
	"""Every place in ``source`` (a module of ``package``) that imports a provider package — at module
	level or lazily inside a function, statically or by a string — as ``"line N: what"``."""
	tree = ast.parse(source)
	docstrings = _docstring_nodes(tree)
	found = []
	for node in ast.walk(tree):
		if isinstance(node, ast.Import):
			for alias in node.names:
				if _names_provider(alias.name):
					found.append(f"line {node.lineno}: import {alias.name}")
		elif isinstance(node, ast.ImportFrom):
			if node.level:  # relative: resolve against the package
				base = package.split(".")[: max(0, len(package.split(".")) - node.level + 1)]
				module = ".".join(base + ([node.module] if node.module else []))
			else:
				module = node.module or ""
			if _names_provider(module):
				found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import ...")
			else:
				for alias in node.names:
					if _names_provider(f"{module}.{alias.name}"):
						found.append(f"line {node.lineno}: from {'.' * node.level}{node.module or ''} import {alias.name}")
		elif isinstance(node, ast.Call):
			func = node.func
			name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
			if name in DYNAMIC_IMPORTS:
				for arg in node.args[:1]:
					if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and _names_provider(arg.value):
						found.append(f"line {node.lineno}: {name}({arg.value!r})")
		elif (isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
			  and _names_provider(node.value.strip())):
			# a dotted path of provider code in a shared module is a provider registration in disguise
			found.append(f"line {node.lineno}: string {node.value!r}")
	return sorted(set(found))
