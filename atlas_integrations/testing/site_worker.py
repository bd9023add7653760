"""One site's background jobs and scheduler, for a resident demo on a bench that tests also use.

Frappe's ``bench worker`` serves every site of the bench: its queues are named ``<bench_id>:<queue>`` with
the bench's id from ``common_site_config.json``, and the job names its site. The demo's site sets a
``bench_id`` of its own in its ``site_config.json``, so what it enqueues lands in queues of their own
(Frappe's ``generate_qname`` reads the site's config when enqueuing); this runs Frappe's rq ``Worker`` on
exactly those queues, so the demo's resident worker never takes the jobs ``make test`` drives on the test
site, and the test suite's burst workers never take the demo's. ``--scheduler`` runs Frappe's own
``enqueue_events_for_site`` for that one site every minute (what ``bench schedule`` does for all sites).

    python -m atlas_integrations.testing.site_worker --site demo.localhost [--scheduler]

Run from the bench's ``sites`` folder with the bench's Python.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time

SCHEDULER_TICK = 60  # seconds between scheduler ticks (Frappe's own scheduler ticks every minute)


def queue_names(site: str) -> list[str]:
	"""The site's rq queue names (``<site's bench_id>:short|default|long``, and custom ones)."""
	import frappe
	from frappe.utils.background_jobs import get_queue_list

	frappe.init(site=site, sites_path=".")
	try:
		return get_queue_list(build_queue_name=True)
	finally:
		frappe.destroy()


def run_worker(site: str) -> None:
	"""Frappe's rq worker on the site's own queues (never returns)."""
	import frappe
	from frappe.utils.background_jobs import Worker, get_redis_conn

	queues = queue_names(site)
	with frappe.init_site():
		connection = get_redis_conn()
	print(f"worker for {site} on {', '.join(queues)}", flush=True)
	Worker(queues, connection=connection).work(logging_level="INFO", date_format="%Y-%m-%d %H:%M:%S",
											   log_format="%(asctime)s,%(msecs)03d %(message)s")


def run_scheduler(site: str) -> None:
	"""Frappe's scheduler events of ``site``, every :data:`SCHEDULER_TICK` seconds (never returns)."""
	import frappe
	from frappe.utils.scheduler import enqueue_events_for_site

	stop = []
	signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
	print(f"scheduler for {site}", flush=True)
	while not stop:
		started = time.monotonic()
		try:
			enqueue_events_for_site(site)
		finally:
			frappe.destroy()
		time.sleep(max(1.0, SCHEDULER_TICK - (time.monotonic() - started)))


def main(argv=None) -> int:
	parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
	parser.add_argument("--site", required=True)
	parser.add_argument("--scheduler", action="store_true", help="run the site's scheduler instead of a worker")
	args = parser.parse_args(argv)
	if args.scheduler:
		run_scheduler(args.site)
	else:
		run_worker(args.site)
	return 0


if __name__ == "__main__":
	sys.exit(main())
