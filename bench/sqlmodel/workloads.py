"""The workloads of bench/sqlmodel/run.sh written as a SQLModel/SQLAlchemy application would
write them (issue 14 item 4): the stack taskstore replaces, on the same server, against the same
schema (created by the layer's migrations; this program creates no table). The layer's side is
examples/sqlmodel_compare.rs; both read the same keys file and measure the same way.

    python workloads.py URL run SECONDS KEYS_FILE   # every workload at 1 and 4 threads

`run` prints one line per workload and thread count: `sqlmodel <workload> <threads> <rate>`.
Every thread shares one engine (a QueuePool of 4, max_overflow 0) and opens a Session per
operation, as a web handler would; each workload runs for SECONDS (at least one operation per
thread), the time running until the last thread is done.

- get:    one task by (owner, id) of a random key; operations per second;
- list:   a page of 20 of a random owner's open tasks (completed = false), newest first
          (created_at DESC, id DESC); operations per second;
- create: one task, committed; operations per second;
- bulk/add_all: 100 000 tasks divided among the threads (each writes 100 000 / threads rows
          for an owner of its own): Task objects, `session.add_all` and one commit (the unit of
          work batches them with SQLAlchemy 2's "insertmanyvalues"); rows per second;
- bulk/insert_1000: the same rows as dicts through the ORM's bulk INSERT,
          `session.execute(insert(Task), rows)` per 1 000 rows, one commit at the end (no ORM
          objects: SQLAlchemy's documented fast path); rows per second.
"""

import random
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Optional

from sqlalchemy import insert
from sqlmodel import Field, Session, SQLModel, create_engine, select

BULK = 100_000
BATCH = 1_000


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    id: uuid.UUID = Field(primary_key=True)
    user_id: uuid.UUID
    title: str
    description: Optional[str] = None
    completed: bool = False
    priority: int = 3
    version: int = 1
    created_at: datetime
    updated_at: datetime
    completed_at: Optional[datetime] = None


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: uuid.UUID = Field(primary_key=True)
    email: str
    password_hash: str
    first_name: Optional[str] = None
    last_name: Optional[str] = None
    is_active: bool = True
    created_at: datetime
    updated_at: datetime


def engine_for(url: str):
    # postgres://... -> SQLAlchemy's psycopg 3 dialect.
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            url = "postgresql+psycopg://" + url[len(scheme):]
    return create_engine(url, pool_size=4, max_overflow=0)


def task_fields(owner: uuid.UUID, i: int, now: datetime) -> dict:
    created = now - timedelta(seconds=i)
    return dict(
        id=uuid.uuid4(),
        user_id=owner,
        title=f"Task {i}: review the quarterly report section {i % 1000}",
        description=f"Details for task {i}: check the figures." if i % 2 == 0 else None,
        completed=False,
        priority=1 + i % 5,
        version=1,
        created_at=created,
        updated_at=created,
        completed_at=None,
    )


def new_user(email: str) -> User:
    now = datetime.now(timezone.utc)
    return User(id=uuid.uuid4(), email=email, password_hash="x", created_at=now, updated_at=now)


def read_keys(path: str):
    with open(path) as f:
        ks = [tuple(uuid.UUID(v) for v in line.strip().split("\t")) for line in f if line.strip()]
    if not ks:
        sys.exit(f"{path} holds no key: seed the database first")
    return ks


def measure(threads: int, seconds: float, op) -> float:
    """Units per second of `op(thread, rng)` (which returns the units it did) run in a loop by
    `threads` threads until `seconds` have passed, at least once each."""
    counts = [0] * threads
    done = threading.Event()
    barrier = threading.Barrier(threads + 1)
    errors = []

    def worker(n):
        rng = random.Random(n)
        barrier.wait()
        try:
            while True:
                counts[n] += op(n, rng)
                if done.is_set():
                    return
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    start = time.monotonic()
    time.sleep(seconds)
    done.set()
    for t in ts:
        t.join()
    if errors:
        raise errors[0]
    return sum(counts) / (time.monotonic() - start)


def make_users(engine, prefix: str, n: int):
    with Session(engine) as s:
        users = [new_user(f"{prefix}-{uuid.uuid4()}@bench.example") for _ in range(n)]
        s.add_all(users)
        s.commit()
        return [u.id for u in users]


def run(engine, seconds: float, keys_file: str, chosen) -> None:
    ks = read_keys(keys_file)
    owners = sorted({o for o, _ in ks})
    # Open the pool's 4 connections before measuring, as the layer's pool is (all up front).
    conns = [engine.connect() for _ in range(4)]
    for c in conns:
        c.close()

    def get(_, rng):
        owner, id_ = ks[rng.randrange(len(ks))]
        with Session(engine) as s:
            t = s.exec(select(Task).where(Task.user_id == owner, Task.id == id_)).first()
            assert t is not None, f"seeded task {id_} missing"
        return 1

    def list_page(_, rng):
        owner = owners[rng.randrange(len(owners))]
        with Session(engine) as s:
            page = s.exec(
                select(Task)
                .where(Task.user_id == owner, Task.completed == False)  # noqa: E712
                .order_by(Task.created_at.desc(), Task.id.desc())
                .limit(20)
            ).all()
            assert page, f"seeded owner {owner} has no open task"
        return 1

    for name, op in (("get", get), ("list", list_page)):
        if name in chosen:
            for threads in (1, 4):
                print(f"sqlmodel {name} {threads} {measure(threads, seconds, op):.0f}", flush=True)

    if "create" in chosen:
        for threads in (1, 4):
            (creator,) = make_users(engine, "sqlmodel-creator", 1)

            def create(_, rng):
                i = rng.randrange(1_000_000)
                with Session(engine) as s:
                    s.add(Task(**task_fields(creator, i, datetime.now(timezone.utc))))
                    s.commit()
                return 1

            print(f"sqlmodel create {threads} {measure(threads, seconds, create):.0f}", flush=True)

    if "bulk" in chosen:
        for variant in ("add_all", "insert_1000"):
            for threads in (1, 4):
                per = BULK // threads
                bulk_owners = make_users(engine, f"sqlmodel-bulk-{variant}", threads)

                def bulk(n, _):
                    now = datetime.now(timezone.utc)
                    with Session(engine) as s:
                        if variant == "add_all":
                            s.add_all(Task(**task_fields(bulk_owners[n], i, now)) for i in range(per))
                        else:
                            for lo in range(0, per, BATCH):
                                rows = [
                                    task_fields(bulk_owners[n], i, now)
                                    for i in range(lo, min(per, lo + BATCH))
                                ]
                                s.execute(insert(Task), rows)
                        s.commit()
                    return per

                rate = measure(threads, seconds, bulk)
                print(f"sqlmodel bulk/{variant} {threads} {rate:.0f}", flush=True)


def main() -> None:
    if len(sys.argv) >= 5 and sys.argv[2] == "run":
        chosen = sys.argv[5:] or ["get", "list", "create", "bulk"]
        run(engine_for(sys.argv[1]), float(sys.argv[3]), sys.argv[4], chosen)
    else:
        sys.exit("usage: workloads.py URL run SECONDS KEYS_FILE [get|list|create|bulk ...]")


if __name__ == "__main__":
    main()
