"""Progress figures of long work (atlas_integrations/progress.py): the rate and time left from done / total /
elapsed seconds, and the module stays provider-neutral. No Frappe site needed."""

from __future__ import annotations

import pytest

from tests.pure.source_checks import APP, provider_imports


@pytest.mark.parametrize("module", ("progress.py", "notify.py", "api/progress.py"))
def test_progress_modules_import_no_provider_package(module):
	assert provider_imports((APP / module).read_text()) == []


@pytest.fixture
def progress():
	pytest.importorskip("frappe")
	from atlas_integrations import progress

	return progress


@pytest.mark.parametrize(
	"done,total,elapsed,expected",
	[
		# 50,000 messages at Gmail's quota (~17 minutes): 10,000 done after 204 s -> 2,941.2 a minute, 816 s left
		(10_000, 50_000, 204, {"done": 10_000, "total": 50_000, "rate_per_minute": 2941.2, "eta_seconds": 816}),
		# nothing done yet: no rate, no time left; the total is still the estimate
		(0, 276, 3.0, {"done": 0, "total": 276, "rate_per_minute": None, "eta_seconds": None}),
		# no estimate yet: a rate, no time left
		(120, None, 60, {"done": 120, "total": None, "rate_per_minute": 120.0, "eta_seconds": None}),
		# done: nothing left
		(276, 276, 92, {"done": 276, "total": 276, "rate_per_minute": 180.0, "eta_seconds": 0}),
		# an estimate below what is done (Gmail's resultSizeEstimate is rough) is raised to done
		(300, 276, 60, {"done": 300, "total": 300, "rate_per_minute": 300.0, "eta_seconds": 0}),
		# the time left is rounded up: 1 item left at 7 a minute is 9 s (8.57...)
		(7, 8, 60, {"done": 7, "total": 8, "rate_per_minute": 7.0, "eta_seconds": 9}),
		# no time elapsed (clock granularity): no rate rather than a division by zero
		(5, 10, 0, {"done": 5, "total": 10, "rate_per_minute": None, "eta_seconds": None}),
	],
)
def test_figures(progress, done, total, elapsed, expected):
	assert progress.figures(done, total, elapsed) == expected


def test_the_event_and_the_stored_figures_have_the_documented_names(progress):
	assert progress.EVENT == "atlas_progress"
	assert progress.FIELDS == ("progress_done", "progress_total", "rate_per_minute", "eta_seconds", "progress_stage")
	assert 1 <= progress.DEFAULT_INTERVAL <= 2  # seconds: at most one event every 1-2 s per job
