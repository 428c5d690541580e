"""The opening snapshot of a cdc table, taken while the shop keeps writing: the slot's
exported snapshot and the stream after it add up to the source, each change exactly once."""

from __future__ import annotations

import random
import threading
import time

from psycopg2.extras import execute_values

from volt_assets_tests.unit.capture.cdc.cdc_lake import cdc_capture, make_ready, raw_lines

PRELOAD = 3000


class Writer(threading.Thread):
    """The shop: one change a transaction (insert, update or delete), each update and insert
    setting stock_quantity to the change's own number, recorded in commit order."""

    def __init__(self, connect):
        super().__init__(daemon=True)
        self.conn = connect()
        self.live = list(range(1, PRELOAD + 1))
        self.ops: list[tuple[str, int, int | None]] = []
        self.stop = threading.Event()
        self.rng = random.Random(27)

    def run(self) -> None:
        next_id = PRELOAD + 1
        while not self.stop.is_set():
            n, choice = len(self.ops) + 1, self.rng.random()
            with self.conn.cursor() as cur:
                if choice < 0.4 or not self.live:
                    cur.execute(
                        "INSERT INTO electrical_components (id, sku, stock_quantity, created_at, "
                        "updated_at) VALUES (%s, %s, %s, now(), now())",
                        (next_id, f"SKU-{next_id}", n),
                    )
                    self.live.append(next_id)
                    op = ("insert", next_id, n)
                    next_id += 1
                elif choice < 0.8:
                    key = self.rng.choice(self.live)
                    cur.execute(
                        "UPDATE electrical_components SET stock_quantity = %s, updated_at = now() "
                        "WHERE id = %s",
                        (n, key),
                    )
                    op = ("update", key, n)
                else:
                    key = self.live.pop(self.rng.randrange(len(self.live)))
                    cur.execute("DELETE FROM electrical_components WHERE id = %s", (key,))
                    op = ("delete", key, None)
            self.conn.commit()
            self.ops.append(op)  # after the commit: the list is the commit order

    def wait_for(self, count: int) -> None:
        while len(self.ops) < count:
            time.sleep(0.01)


def apply(state: dict[int, int | None], ops) -> dict[int, int | None]:
    state = dict(state)
    for op, key, quantity in ops:
        if op == "delete":
            del state[key]
        else:
            state[key] = quantity
    return state


def test_snapshot_and_stream_equal_the_source_each_change_once(volt_env, source, tmp_path):
    with source.cursor() as cur:
        execute_values(
            cur,
            "INSERT INTO electrical_components (id, sku, stock_quantity, description, created_at,"
            " updated_at) VALUES %s",
            [(i, f"SKU-{i}", 0, "x" * 200) for i in range(1, PRELOAD + 1)],
            template="(%s, %s, %s, %s, now(), now())",
        )
    source.commit()
    make_ready(source, ["electrical_components"])
    capture = cdc_capture(volt_env, ["electrical_components"])
    writer = Writer(volt_env.connect)
    writer.start()
    try:
        writer.wait_for(20)
        before = len(writer.ops)
        capture.open(tmp_path / "open")
        during = len(writer.ops) - before
        writer.wait_for(len(writer.ops) + 20)
    finally:
        writer.stop.set()
        writer.join()
        writer.conn.close()
    assert during > 0  # the shop wrote while the slot and its snapshot were being taken
    result = capture.drain(tmp_path / "drain")

    lines = raw_lines(volt_env, "electrical_components")
    snapshot = [x for x in lines if x["op"] == "snapshot"]
    stream = [x for x in lines if x["op"] != "snapshot"]
    assert result.changes == len(stream) > 0
    # the stream is exactly the shop's last changes, in commit order, each once
    seen = [(x["op"], x["key"], (x["after"] or {}).get("stock_quantity")) for x in stream]
    done = len(writer.ops) - len(seen)
    assert seen == writer.ops[done:]
    assert before <= done <= before + during  # the snapshot's point: while open() ran
    # and the snapshot is the shop after all the changes before them
    initial = dict.fromkeys(range(1, PRELOAD + 1), 0)
    assert {x["key"]: x["after"]["stock_quantity"] for x in snapshot} == apply(
        initial, writer.ops[:done]
    )
    replayed = apply({x["key"]: x["after"]["stock_quantity"] for x in snapshot}, seen)
    with source.cursor() as cur:
        cur.execute("SELECT id, stock_quantity FROM electrical_components")
        assert replayed == dict(cur.fetchall())
