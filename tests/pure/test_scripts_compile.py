"""Every Python file of the project (app, benchmarks, tests) compiles under the bench's Python (3.10+ on
Frappe 15): a syntax only a newer Python accepts, e.g. PEP 701 f-strings reusing their quotes, fails here
rather than when someone runs a benchmark."""

from __future__ import annotations

import py_compile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(p for d in ("atlas_integrations", "bench", "tests", "scripts") for p in (ROOT / d).rglob("*.py"))


def test_every_python_file_compiles(tmp_path):
	assert len(FILES) > 50 and any(p.parent.name == "bench" for p in FILES)
	broken = []
	for path in FILES:
		try:
			py_compile.compile(str(path), cfile=str(tmp_path / "out.pyc"), doraise=True)
		except py_compile.PyCompileError as exc:
			broken.append(f"{path.relative_to(ROOT)}: {exc.msg}")
	assert not broken, "\n".join(broken)
