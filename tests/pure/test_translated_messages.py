"""Every message the server shows a person is translatable: the message of each ``frappe.throw`` /
``frappe.msgprint`` in the app is a ``_(...)`` call (constant text) or a ``messages.text(...)`` call (a
translated template with its values escaped once, :mod:`atlas_integrations.messages`), and what ``_()`` and
``messages`` translate is a template, never text already filled in. Source is read with ``ast``: no Frappe
site needed.

Refused: a bare string literal, an f-string, ``"...".format(...)`` (or ``_("...").format(...)``: a value
put into a message unescaped), ``"..." + ...``, a module constant not wrapped in ``_()`` where it is used,
``_(f"...")``. A value that is already a translated message is allowed only when listed in
:data:`ALREADY_TRANSLATED` with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "atlas_integrations"
#: the Frappe functions that show their message to a person
SHOWN = {"throw", "msgprint"}
#: ``(module path relative to the repository, source of the message argument)`` -> why it is translated
ALREADY_TRANSLATED = {
	("atlas_integrations/inbox/outbox.py", "doc.error"):
		"the Outgoing Mail's error, written with messages.text (translated, the provider's words escaped) just "
		"before it is thrown",
	("atlas_integrations/inbox/rules.py", "escape_html(str(exc))"):
		"a RuleError's text, translated where it is raised (rules._ is frappe._ on a site); escaped as a whole "
		"because it quotes the admin's pattern",
}


def _is_translate(func: ast.expr) -> bool:
	"""``_`` or ``frappe._``."""
	return (isinstance(func, ast.Name) and func.id == "_") or (
		isinstance(func, ast.Attribute) and func.attr == "_" and isinstance(func.value, ast.Name)
		and func.value.id == "frappe")


def _is_messages(func: ast.expr, name: str, in_messages_module: bool) -> bool:
	"""``messages.<name>`` (or ``<name>`` inside messages.py itself)."""
	if isinstance(func, ast.Attribute) and func.attr == name and isinstance(func.value, ast.Name):
		return func.value.id == "messages"
	return in_messages_module and isinstance(func, ast.Name) and func.id == name


def _is_constant_text(node: ast.expr) -> bool:
	"""A string literal (implicitly concatenated literals are one), a module constant (``UPPER_CASE``, also
	as ``module.UPPER_CASE``), or ``+`` of those: text fixed in the source."""
	if isinstance(node, ast.Constant):
		return isinstance(node.value, str)
	if isinstance(node, ast.Name):
		return node.id.isupper()
	if isinstance(node, ast.Attribute):
		return node.attr.isupper()
	if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
		return _is_constant_text(node.left) and _is_constant_text(node.right)
	return False


def _filled_in(node: ast.expr) -> bool:
	"""Text with values already put in: an f-string, ``.format(...)``, ``%``, or ``+`` of anything but
	constant text. No translation file holds it (``_()`` of a plain variable, e.g. a doctype's name or a
	status word, is a translation of that word and passes)."""
	if isinstance(node, ast.JoinedStr):
		return True
	if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format":
		return True
	if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
		return True
	if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
		return not _is_constant_text(node)
	return False


def _shown_call(node: ast.Call, frappe_names: set[str]) -> str | None:
	"""``"frappe.throw"`` / ``"frappe.msgprint"`` (also imported by name from frappe) or None."""
	func = node.func
	if isinstance(func, ast.Attribute) and func.attr in SHOWN and isinstance(func.value, ast.Name) \
			and func.value.id == "frappe":
		return f"frappe.{func.attr}"
	if isinstance(func, ast.Name) and func.id in frappe_names:
		return f"frappe.{func.id}"
	return None


def _message_arg(node: ast.Call) -> ast.expr | None:
	if node.args:
		return node.args[0]
	for keyword in node.keywords:
		if keyword.arg == "msg":
			return keyword.value
	return None


def untranslated(source: str, path: str = "atlas_integrations/x.py") -> list[str]:
	"""Every message a person would read untranslated in ``source`` (the module at ``path``, relative to
	the repository), as ``"path:line: what"``."""
	tree = ast.parse(source)
	in_messages_module = path.endswith("atlas_integrations/messages.py")
	frappe_names = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
					and node.module == "frappe" for alias in node.names if alias.name in SHOWN}
	found = []
	for node in ast.walk(tree):
		if not isinstance(node, ast.Call):
			continue
		where = f"{path}:{node.lineno}"
		shown = _shown_call(node, frappe_names)
		if shown:
			message = _message_arg(node)
			if message is None:
				continue
			text = ast.unparse(message)
			ok = isinstance(message, ast.Call) and (
				_is_translate(message.func) or _is_messages(message.func, "text", in_messages_module))
			if not ok and (path, text) not in ALREADY_TRANSLATED:
				found.append(f"{where}: {shown}({text}): the message is not _(...) or messages.text(...)")
		elif _is_translate(node.func) or _is_messages(node.func, "text", in_messages_module) \
				or _is_messages(node.func, "throw", in_messages_module):
			template = node.args[0] if node.args else None
			if template is not None and _filled_in(template):
				found.append(f"{where}: {ast.unparse(node.func)}({ast.unparse(template)}, ...): translate a template "
							 "(values as arguments of messages.text/throw), not text already filled in")
	return found


def _app_modules() -> list[Path]:
	return sorted(p for p in APP.rglob("*.py") if "node_modules" not in p.parts)


def test_every_message_shown_by_the_server_is_translatable():
	found = []
	for path in _app_modules():
		found.extend(untranslated(path.read_text(), str(path.relative_to(ROOT))))
	assert not found, "messages a person reads untranslated:\n" + "\n".join(found)


def test_the_allowlist_names_only_messages_that_exist():
	for path, text in ALREADY_TRANSLATED:
		source = (ROOT / path).read_text()
		calls = [n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and _shown_call(n, set())]
		assert any(_message_arg(c) is not None and ast.unparse(_message_arg(c)) == text for c in calls), (path, text)


@pytest.mark.parametrize("source", [
	'import frappe\nfrappe.throw("Unknown mailbox")',
	'import frappe\nfrappe.throw(f"Unknown mailbox {name}")',
	'import frappe\nfrappe.throw("Unknown mailbox {0}".format(name))',
	'import frappe\nfrom frappe import _\nfrappe.throw(_("Unknown mailbox {0}").format(name))',
	'import frappe\nUNKNOWN = "Unknown mailbox"\nfrappe.throw(UNKNOWN, frappe.ValidationError)',
	'import frappe\nfrappe.throw(msg="Unknown mailbox")',
	'import frappe\nfrappe.msgprint("Queued", alert=True)',
	'import frappe\nfrom frappe import _\nfrappe.throw(_("Unknown") + name)',
	'import frappe\nfrom frappe import _\nfrappe.throw(_(f"Unknown mailbox {name}"))',
	'import frappe\nfrappe.throw(frappe._("Unknown mailbox %s" % name))',
	'from frappe import throw\nthrow("Unknown mailbox")',
	'from atlas_integrations import messages\nmessages.throw(f"Unknown mailbox {name}")',
	'from atlas_integrations import messages\nmessages.throw(FIXED + name, doctype)',
	'from atlas_integrations import messages\nimport frappe\nfrappe.msgprint(messages.text("a {0}".format(x)))',
])
def test_the_check_finds_untranslated_messages(source):
	assert len(untranslated(source)) == 1, untranslated(source)


@pytest.mark.parametrize("source", [
	'import frappe\nfrom frappe import _\nfrappe.throw(_("Unknown mailbox"))',
	'import frappe\nUNKNOWN = "Unknown mailbox"\nfrappe.throw(frappe._(UNKNOWN), frappe.PermissionError, title="Gmail")',
	'import frappe\nfrom atlas_integrations import messages\nfrappe.msgprint(messages.text("Unknown view {0}", view))',
	'import frappe\nfrom frappe import _\nfrappe.throw(_("A long message "\n "in two literals"))',
	'from atlas_integrations import messages\nmessages.throw("Unknown view {0}", view, exc=KeyError)',
	'from atlas_integrations import messages\nmessages.throw(send.BAD_FROM, wanted)',
	'from atlas_integrations import messages\nmessages.throw(FIXED + " ({2})", doctype, name, fields)',
	'import frappe\nfrom frappe import _\nfrappe.msgprint(_(doc.status))',  # a status word is its own msgid
])
def test_the_check_lets_translated_messages_through(source):
	assert untranslated(source) == []
