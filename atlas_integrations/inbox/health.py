"""A connected mailbox's health, the same for every provider: the status / health / success-rate fields a
mailbox doctype has (Gmail Account, Outlook Account: ``status``, ``health``, ``enabled``,
``last_processed_at``, ``last_success_at``, ``success_rate``, ``consecutive_failures``, ``last_error``),
computed from the mailbox's finished Sync Jobs. Imports no provider package.
"""

from __future__ import annotations

import frappe
from frappe.utils import now_datetime

NOT_CONNECTED, SYNCING, ACTIVE, UNAUTHORIZED = "NOT CONNECTED", "SYNCING", "ACTIVE", "UNAUTHORIZED"
HEALTHY, UNHEALTHY, DISABLED = "healthy", "unhealthy", "disabled"
#: health is computed over this many most recent finished runs
HEALTH_WINDOW = 20
#: this many failed runs in a row make a mailbox unhealthy
UNHEALTHY_AFTER = 3


def record_run(doctype: str, name: str, succeeded: bool, error: str | None = None) -> None:
	"""After a run of mailbox ``(doctype, name)``: last processed time (now), consecutive failures,
	success rate and health. Does not commit.

	Health: ``unhealthy`` when UNAUTHORIZED or the last 3 runs failed, ``disabled`` when not connected or
	disabled, else ``healthy``. Success rate: the share (percent) of succeeded runs among the last 20
	finished Sync Jobs of the mailbox.
	"""
	statuses = frappe.get_all(
		"Sync Job",
		filters={"reference_doctype": doctype, "reference_name": name, "status": ["in", ["succeeded", "failed"]]},
		pluck="status", order_by="finished_at desc, creation desc", limit=HEALTH_WINDOW)
	rate = 100.0 * statuses.count("succeeded") / len(statuses) if statuses else (100.0 if succeeded else 0.0)
	consecutive = 0
	for status in statuses:
		if status != "failed":
			break
		consecutive += 1
	row = frappe.db.get_value(doctype, name, ["status", "enabled"], as_dict=True)
	if not row:
		return
	if row.status == UNAUTHORIZED or consecutive >= UNHEALTHY_AFTER:
		health = UNHEALTHY
	elif not row.enabled or row.status == NOT_CONNECTED:
		health = DISABLED
	else:
		health = HEALTHY
	values = {"last_processed_at": now_datetime(), "success_rate": rate, "consecutive_failures": consecutive,
			  "health": health}
	if succeeded:
		values["last_success_at"] = values["last_processed_at"]
		values["last_error"] = None
	elif error:
		values["last_error"] = error[:1000]
	frappe.db.set_value(doctype, name, values, update_modified=False)


def mark_unauthorized(doctype: str, name: str, error: str, subject: str) -> bool:
	"""The provider refused the mailbox's stored authorization: UNAUTHORIZED, unhealthy, ``error`` as its
	last error, and the admins notified (``subject``, a desk bell) the first time. Polling skips an
	UNAUTHORIZED mailbox until it is connected again. Does not commit.

	Returns:
		True when the mailbox has just turned UNAUTHORIZED (admins were notified).
	"""
	from atlas_integrations.notify import notify_admins

	previous = frappe.db.get_value(doctype, name, "status")
	frappe.db.set_value(doctype, name, {"status": UNAUTHORIZED, "health": UNHEALTHY, "last_error": error[:1000]})
	if previous == UNAUTHORIZED:
		return False
	notify_admins(subject, doctype, name, error)
	return True
