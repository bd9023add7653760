"""``python -m atlas_integrations.testing.xero --port 8766``: serve the local Xero-compatible server until
killed (the demo runs it under honcho and drives it through ``POST /_atlas/call``)."""

from __future__ import annotations

import argparse
import sys

from atlas_integrations.testing.site_web import wait_for_signal
from atlas_integrations.testing.xero.server import XeroTestServer


def main(argv=None) -> int:
	parser = argparse.ArgumentParser(description="Local Xero-compatible OAuth 2.0 + Accounting API server.")
	parser.add_argument("--host", default="127.0.0.1")
	parser.add_argument("--port", type=int, default=8766, help="0 picks a free port")
	args = parser.parse_args(argv)
	server = XeroTestServer(host=args.host, port=args.port).start()
	print(f"Local Xero server at {server.url}", flush=True)
	wait_for_signal()
	server.stop()
	return 0


if __name__ == "__main__":
	sys.exit(main())
