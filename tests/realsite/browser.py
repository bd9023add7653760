"""The browser tests' shared setup: Debian's Chromium for Playwright, where screenshots go, and the script that lists what a page shows live."""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("ATLAS_CHROMIUM", "/usr/bin/chromium")


ARTIFACTS = __import__("pathlib").Path(os.environ.get(
	"ATLAS_ARTIFACTS", __import__("pathlib").Path(__file__).resolve().parents[2] / ".atlas" / "artifacts")) / "browser"


#: flags for headless Chromium as root on a machine without network (see the test setup in scripts/test.sh)
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
				 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


LIVE_PAYLOAD_JS = """() => ({
	canary: window.__atlas_canary === undefined ? null : String(window.__atlas_canary),
	live: document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onclick*="atlas"], a[href^="javascript:atlas"]').length,
	scripts: [...document.scripts].filter(s => s.textContent.includes('__atlas_canary')).length,
})"""
