"""Run the local Graph server from the command line (the demo's and a developer's)::

	python -m atlas_integrations.testing.graph --port 8767 --client ID:SECRET \\
		--mailbox dispatch@contoso.example=/path/to/eml/dir --skip 200 --state graph.json

Prints one JSON line (``authority_host``, ``graph_url``, ``ca_path``, ``clients`` {id: secret},
``mailboxes`` {address: messages}) once it serves, also written to ``--state`` (how the demo finds it under
honcho), then serves until interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from atlas_integrations.testing.graph.server import GraphTestServer


def main(argv: list[str] | None = None) -> int:
	"""Parse ``argv`` (the process's when None), serve until interrupted; returns the exit status 0."""
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--host", default="127.0.0.1")
	parser.add_argument("--port", type=int, default=0)
	parser.add_argument("--client", action="append", default=[], help="an app registration, ID:SECRET")
	parser.add_argument("--mailbox", action="append", default=[], help="ADDRESS or ADDRESS=DIR of .eml files")
	parser.add_argument("--spread-days", type=float, default=20)
	parser.add_argument("--skip", type=int, default=0, help="of each directory's .eml files (sorted), skip so many")
	parser.add_argument("--count", type=int, default=0, help="then load at most so many (0: all)")
	parser.add_argument("--state", help="also write the JSON line to this file")
	args = parser.parse_args(argv)
	server = GraphTestServer(args.host, args.port).start()
	for client in args.client:
		client_id, _, secret = client.partition(":")
		server.add_client(client_id, secret)
	loaded = {}
	for spec in args.mailbox:
		address, _, directory = spec.partition("=")
		box = server.mailbox(address)
		if directory:
			paths = sorted(Path(directory).rglob("*.eml"))[args.skip:]
			paths = paths[:args.count] if args.count else paths
			now = time.time()
			for i, path in enumerate(paths):  # received times spread over the last --spread-days days
				box.add(path.read_bytes(), "inbox", received=now - args.spread_days * 86400 * (len(paths) - i) / len(paths))
		loaded[address] = len(box.messages)
	line = json.dumps({"authority_host": server.base, "graph_url": server.graph_url, "ca_path": server.ca_path,
					   "clients": dict(server.identity.clients), "mailboxes": loaded})
	if args.state:
		Path(args.state).write_text(line + "\n")
	print(line, flush=True)
	try:
		while True:
			time.sleep(3600)
	except KeyboardInterrupt:
		server.stop()
	return 0


if __name__ == "__main__":
	sys.exit(main())
