"""Run the local Graph server from the command line (the demo's and a developer's)::

	python -m atlas_integrations.testing.graph --port 8767 --client ID:SECRET \\
		--mailbox dispatch@contoso.example=/path/to/eml/dir

Prints one JSON line (``authority_host``, ``graph_url``, ``ca_path``) once it serves, then serves until
interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from atlas_integrations.testing.graph.server import GraphTestServer


def main(argv: list[str] | None = None) -> int:
	"""Parse ``argv`` (the process's when None), serve until interrupted; returns the exit status 0."""
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--host", default="127.0.0.1")
	parser.add_argument("--port", type=int, default=0)
	parser.add_argument("--client", action="append", default=[], help="an app registration, ID:SECRET")
	parser.add_argument("--mailbox", action="append", default=[], help="ADDRESS or ADDRESS=DIR of .eml files")
	parser.add_argument("--spread-days", type=float, default=20)
	args = parser.parse_args(argv)
	server = GraphTestServer(args.host, args.port).start()
	for client in args.client:
		client_id, _, secret = client.partition(":")
		server.add_client(client_id, secret)
	for spec in args.mailbox:
		address, _, directory = spec.partition("=")
		box = server.mailbox(address)
		if directory:
			box.load(directory, spread_days=args.spread_days)
	print(json.dumps({"authority_host": server.base, "graph_url": server.graph_url, "ca_path": server.ca_path}),
		  flush=True)
	try:
		while True:
			time.sleep(3600)
	except KeyboardInterrupt:
		server.stop()
	return 0


if __name__ == "__main__":
	sys.exit(main())
