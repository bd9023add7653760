"""Dashboard Chart Source: inbound threads per day by category (the Smart Inbox workspace's chart)."""

from __future__ import annotations

import frappe
from frappe import _
from frappe.utils import add_days, getdate, today

DAYS = 30


@frappe.whitelist()
def get(chart_name=None, chart=None, no_cache=None, filters=None, from_date=None, to_date=None, timespan=None,
		time_interval=None, heatmap_year=None) -> dict:
	"""Threads first seen per day (the last 30 days, UTC dates of ``first_message_at``), one dataset per
	category, counted through the Inbox Thread permission rules (``frappe.get_list``).

	Returns:
		``{"labels": ["YYYY-MM-DD", ...], "datasets": [{"name": category, "values": [int, ...]}]}``.
	"""
	start = add_days(getdate(today()), -(DAYS - 1))
	rows = frappe.get_list("Inbox Thread", fields=["date(first_message_at) as day", "category", "count(name) as n"],
						   filters=[["first_message_at", ">=", start]], group_by="day, category", order_by="day asc",
						   limit_page_length=0)
	days = [str(add_days(start, i)) for i in range(DAYS)]
	series: dict[str, dict[str, int]] = {}
	for row in rows:
		series.setdefault(row.category or "Uncategorised", {})[str(row.day)] = int(row.n)
	# the legend is read by people: the category's words, translated (the stored values are words already)
	return {"labels": days, "datasets": [{"name": _(name), "values": [values.get(d, 0) for d in days]}
										 for name, values in sorted(series.items())]}
