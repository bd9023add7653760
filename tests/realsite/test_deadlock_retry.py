"""``jobs.retry_deadlock`` against a deadlock MariaDB really declares.

Two transactions take two rows in opposite orders: the other connection (heavier: it changed many rows) holds
row 2 and waits for row 1, which Frappe's connection holds; Frappe's connection then asks for row 2. InnoDB
rolls back the lighter transaction (error 1213), so Frappe's connection is the victim every time. The
concurrent syncs meet the same thing on Communication (the four-mailbox benchmark lost two Sync Jobs to it
before ``retry_deadlock`` wrapped their writes)."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

pymysql = pytest.importorskip("pymysql")

ROWS = 200  # rows the other transaction changes, so that it outweighs Frappe's and InnoDB spares it


@pytest.fixture
def probe(site):
	"""``(table, connect)``: an InnoDB table of ROWS rows (v = 0) outside Frappe's doctypes, dropped after;
	``connect()`` opens another connection to the site's database."""
	frappe = site
	conf = frappe.conf

	def connect():
		return pymysql.connect(host=conf.db_host or "127.0.0.1", port=int(conf.db_port or 3306),
							   user=conf.db_user or conf.db_name, password=conf.db_password,
							   database=conf.db_name, autocommit=True)

	table = f"__atlas_deadlock_{uuid.uuid4().hex[:8]}"
	admin = connect()
	with admin.cursor() as cur:
		cur.execute(f"create table `{table}` (id int primary key, v int not null) engine=InnoDB")
		cur.execute(f"insert into `{table}` (id, v) values " + ", ".join(f"({i}, 0)" for i in range(1, ROWS + 1)))
	frappe.db.rollback()
	yield table, connect
	frappe.db.rollback()
	with admin.cursor() as cur:
		cur.execute(f"drop table if exists `{table}`")
	admin.close()


class Rival:
	"""Another connection's transaction: changes rows 2..ROWS, then (in a thread) waits for row 1 and
	commits once it has it."""

	def __init__(self, table: str, connect):
		self.table, self.conn = table, connect()
		self.conn.autocommit(False)
		with self.conn.cursor() as cur:
			cur.execute("select connection_id()")
			self.connection_id = cur.fetchone()[0]
			cur.execute("begin")
			cur.execute(f"update `{table}` set v = v + 100 where id >= 2")
		self.error = None
		self.thread = threading.Thread(target=self._take_row_1, daemon=True)

	def _take_row_1(self) -> None:
		try:
			with self.conn.cursor() as cur:
				cur.execute(f"update `{self.table}` set v = v + 100 where id = 1")
			self.conn.commit()
		except Exception as exc:  # the test asserts there was none
			self.error = exc

	def start_waiting(self, frappe) -> None:
		"""Start the thread and return once its update of row 1 is running (at most 10 s). Frappe's
		connection holds row 1, so a running update of it can only be waiting for that lock. The processlist
		shows a user's own connections without the PROCESS privilege (innodb_trx needs it)."""
		self.thread.start()
		deadline = time.monotonic() + 10
		while time.monotonic() < deadline:
			if frappe.db.sql("select 1 from information_schema.processlist where id=%s and info like %s",
							 (self.connection_id, "update %where id = 1")):
				time.sleep(0.05)  # from running the statement to queueing its lock request
				return
			time.sleep(0.01)
		raise AssertionError("the rival transaction never waited for row 1")

	def finish(self) -> None:
		self.thread.join(10)
		self.conn.close()
		assert not self.thread.is_alive() and self.error is None, self.error


def _deadlocking_write(frappe, table: str, connect, calls: list, rivals: int):
	"""``fn`` for retry_deadlock: takes row 1 then row 2; on its first ``rivals`` calls a rival closes the
	circle first, so MariaDB makes this call its victim."""
	def fn():
		calls.append(len(calls) + 1)
		frappe.db.sql(f"update `{table}` set v = v + 1 where id = 1")
		if len(calls) <= rivals:
			rival = Rival(table, connect)
			fn.rivals.append(rival)
			rival.start_waiting(frappe)
			frappe.db.sql(f"update `{table}` set v = v + 1 where id = 2")  # the circle: MariaDB answers 1213
		else:
			frappe.db.sql(f"update `{table}` set v = v + 1 where id = 2")
		return "written"

	fn.rivals = []
	return fn


def test_a_deadlock_victim_is_rolled_back_and_run_again(site, probe):
	from atlas_integrations import jobs

	frappe, (table, connect) = site, probe
	calls, pauses = [], []
	fn = _deadlocking_write(frappe, table, connect, calls, rivals=2)
	assert jobs.retry_deadlock(fn, sleep=pauses.append) == "written"
	frappe.db.commit()
	for rival in fn.rivals:
		rival.finish()  # each rival got row 1 once the victim rolled back, and committed

	assert calls == [1, 2, 3]  # two victims, then the third run went through
	assert len(pauses) == 2 and 0.1 <= pauses[0] <= 0.4 and 0.2 <= pauses[1] <= 0.8  # jittered, × the attempt
	values = dict(frappe.db.sql(f"select id, v from `{table}` where id in (1, 2, 3)"))
	# the victims' changes were rolled back (row 1 got +1 once, not three times); both rivals committed
	assert values == {1: 2 * 100 + 1, 2: 2 * 100 + 1, 3: 2 * 100}


def test_still_a_victim_after_the_last_attempt_raises(site, probe):
	from atlas_integrations import jobs

	frappe, (table, connect) = site, probe
	calls, pauses = [], []
	fn = _deadlocking_write(frappe, table, connect, calls, rivals=2)
	with pytest.raises(frappe.QueryDeadlockError):
		jobs.retry_deadlock(fn, attempts=2, sleep=pauses.append)
	for rival in fn.rivals:
		rival.finish()
	assert calls == [1, 2] and len(pauses) == 1
	frappe.db.rollback()
	values = dict(frappe.db.sql(f"select id, v from `{table}` where id in (1, 2)"))
	assert values == {1: 200, 2: 200}  # nothing of the victim's survived; both rivals committed


def test_other_errors_are_not_retried(site, probe):
	from atlas_integrations import jobs

	frappe, (table, _connect) = site, probe
	calls = []

	def fn():
		calls.append(1)
		frappe.db.sql(f"update `{table}` set v = v + 1 where id = 1")
		raise frappe.ValidationError("not a deadlock")

	with pytest.raises(frappe.ValidationError):
		jobs.retry_deadlock(fn, sleep=lambda s: pytest.fail("no pause for a non-deadlock error"))
	assert calls == [1]
	frappe.db.rollback()
