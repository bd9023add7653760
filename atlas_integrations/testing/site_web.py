"""The site's own web server (``frappe serve``) on a local port, for the demo, the real-site tests and the
benchmarks: the OAuth redirect and the Pub/Sub push reach the site over real HTTP.

Needs a connected frappe (``frappe.init`` + ``frappe.connect``) for the site whose ``host_name`` it sets.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time


def free_port(preferred: int = 0) -> int:
	"""``preferred`` when it can be bound on 127.0.0.1, else a port the OS picks (0: always the OS)."""
	with socket.socket() as s:
		try:
			s.bind(("127.0.0.1", preferred))
		except OSError:
			s.bind(("127.0.0.1", 0))
		return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60, proc: subprocess.Popen | None = None) -> None:
	"""Until ``url`` answers any HTTP status.

	Raises:
		RuntimeError: no answer within ``timeout`` seconds, or ``proc`` exited meanwhile.
	"""
	import requests

	deadline = time.monotonic() + timeout
	while True:
		try:
			requests.get(url, timeout=2)
			return
		except requests.RequestException:
			if time.monotonic() > deadline or (proc is not None and proc.poll() is not None):
				raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
			time.sleep(0.3)


def start_site_web(
	site: str,
	port: int = 0,
	python: str = sys.executable,
	cwd: str | None = None,
	log=subprocess.DEVNULL,
	new_session: bool = False,
) -> tuple[str, subprocess.Popen]:
	"""Start ``frappe serve`` for ``site`` on 127.0.0.1 (``port``, or a free one), point the site's
	``host_name`` at it (site config and ``frappe.local.conf``, so OAuth redirect URIs lead back to it),
	and wait until ``/api/method/ping`` answers.

	Args:
		site: site name; python: the bench's interpreter; cwd: the bench's ``sites`` folder (default:
			the current directory); log: where the server's output goes (a file object or DEVNULL);
		new_session: start it in its own process group (to outlive the caller, as the demo's does).

	Returns:
		``(base URL without trailing slash, process)``; stop it with ``proc.terminate()``.

	Raises:
		RuntimeError: the server did not answer within 60 s (it is terminated).
	"""
	import frappe
	from frappe.installer import update_site_config

	port = free_port(port)
	url = f"http://127.0.0.1:{port}"
	update_site_config("host_name", url)
	frappe.local.conf.host_name = url
	proc = subprocess.Popen(
		[python, "-m", "frappe.utils.bench_helper", "frappe", "--site", site, "serve", "--port", str(port),
		 "--noreload"],
		cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=new_session,
	)
	try:
		wait_http(url + "/api/method/ping", proc=proc)
	except RuntimeError:
		proc.terminate()
		raise
	return url, proc


def wait_for_signal() -> None:
	"""Block until the process gets SIGINT or SIGTERM (how honcho and ``make stop`` end a demo process)."""
	import signal
	import threading

	done = threading.Event()
	for sig in (signal.SIGINT, signal.SIGTERM):
		signal.signal(sig, lambda *_: done.set())
	done.wait()
