"""Shared pytest setup.

Pure tests always run. Tests marked ``site`` run inside the real Frappe/ERPNext site of the bench at
``$ATLAS_BENCH`` (default ``~/atlas-bench``, site ``$ATLAS_SITE`` = ``atlas.localhost``). Without that
bench they are skipped, and the run ends with one loud line saying how many and why.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

BENCH = Path(os.environ.get("ATLAS_BENCH", Path.home() / "atlas-bench"))
SITE = os.environ.get("ATLAS_SITE", "atlas.localhost")
SITES_PATH = BENCH / "sites"


def _why_no_site() -> str | None:
	if not (SITES_PATH / SITE / "site_config.json").exists():
		return f"no Frappe bench with site {SITE} at {BENCH} (build one with `make bench`)"
	try:
		import frappe  # noqa: F401
	except ImportError:
		return f"frappe is not importable here: run the tests with {BENCH}/env/bin/python (`make test`)"
	return None


WHY_NO_SITE = _why_no_site()
_skipped_site_tests: list[str] = []


def pytest_collection_modifyitems(config, items):
	if WHY_NO_SITE is None:
		return
	marker = pytest.mark.skip(reason=f"real-site test skipped: {WHY_NO_SITE}")
	for item in items:
		if "site" in item.keywords:
			item.add_marker(marker)
			_skipped_site_tests.append(item.nodeid)


def pytest_unconfigure(config):
	"""After pytest's own closing line: one loud line when real-site tests were skipped."""
	if not _skipped_site_tests:
		return
	reporter = config.pluginmanager.get_plugin("terminalreporter")
	line = (
		f"!!! REAL-SITE TESTS SKIPPED: {len(_skipped_site_tests)} tests did not run because there is "
		f"{WHY_NO_SITE} !!!"
	)
	if reporter is not None:
		reporter.write_line(line, red=True, bold=True)
	else:
		print(line)
