"""The command line (``python -m atlas_integrations.testing.gmail_server``): serve mailboxes loaded from
``.eml`` directories until killed."""

from __future__ import annotations

import argparse
import signal
import threading

from atlas_integrations.testing.gmail.server import GmailTestServer


def main(argv=None) -> int:
	parser = argparse.ArgumentParser(description="Local Google-compatible Gmail + OAuth server.")
	parser.add_argument("--host", default="127.0.0.1")
	parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
	parser.add_argument(
		"--mailbox",
		action="append",
		default=[],
		metavar="EMAIL[=EML_DIR]",
		help="mailbox, optionally loaded from a dir",
	)
	parser.add_argument("--spread-days", type=float, default=None)
	parser.add_argument("--sent-from", action="extend", nargs="+", default=[], metavar="ADDR")
	parser.add_argument("--client", action="append", default=[], metavar="ID:SECRET")
	parser.add_argument(
		"--consent", default=None, metavar="EMAIL", help="mailbox the consent screen logs in as"
	)
	args = parser.parse_args(argv)

	server = GmailTestServer(host=args.host, port=args.port)
	for spec in args.client:
		cid, sep, secret = spec.partition(":")
		if not sep:
			parser.error(f"--client expects ID:SECRET, got {spec!r}")
		server.register_client(cid, secret)
	for spec in args.mailbox:
		addr, sep, directory = spec.partition("=")
		if sep and directory:
			server.load_eml_dir(
				addr, directory, spread_days=args.spread_days, sent_from=args.sent_from or None
			)
		else:
			server.add_mailbox(addr, sent_from=args.sent_from or None)
	if args.consent:
		server.set_consent(args.consent)
	stop = threading.Event()
	for sig in (signal.SIGTERM, signal.SIGINT):
		try:
			signal.signal(sig, lambda *_: stop.set())
		except (ValueError, OSError):  # pragma: no cover - not in the main thread
			pass
	server.start()
	print(f"ready {server.url}", flush=True)
	try:
		while not stop.wait(0.5):
			pass
	finally:
		server.stop()
	return 0
