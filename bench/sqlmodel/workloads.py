"""The workloads of the layer's benchmark, written as a SQLModel/SQLAlchemy application would
write them (issue 14 item 4): the stack taskstore replaces, on the same server, against the same
schema (created by the layer's migrations; this program creates no table).

    python workloads.py URL seed            # 100 users x 1 000 tasks, if the table is empty
    python workloads.py URL run SECONDS     # every workload at 1 and 4 threads

`run` prints one line per workload and thread count: `sqlmodel <workload> <threads> <ops/s>`.

- get:    one task by (owner, id), a Session per call (SQLAlchemy's QueuePool of 4 behind it);
- list:   a page of 20 of an owner's open tasks, newest first;
- create: one task, committed;
- bulk:   100 000 tasks for one owner, `session.add_all` + one commit (SQLAlchemy 2's
          "insertmanyvalues" batching, the fastest ORM path); rows per second.
"""

import random
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Optional

from sqlalchemy import func
from sqlmodel import Field, Session, SQLModel, create_engine, select

USERS = 100
TASKS_PER_USER = 1_000
BULK = 100_000


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
    url = url.replace("postgres://", "postgresql+psycopg://", 1).replace(
        "postgresql://", "postgresql+psycopg://", 1
    )
    return create_engine(url, pool_size=4, max_overflow=0)


def new_task(owner: uuid.UUID, i: int) -> Task:
    now = datetime.now(timezone.utc)
    return Task(
        id=uuid.uuid4(),
        user_id=owner,
        title=f"Task {i}: review the quarterly report section {i % 1000}",
        description=None if i % 2 else f"Details for task {i}: check the figures.",
        completed=False,
        priority=1 + i % 5,
        created_at=now - timedelta(seconds=i),
        updated_at=now - timedelta(seconds=i),
    )


def new_user(email: str) -> User:
    now = datetime.now(timezone.utc)
    return User(id=uuid.uuid4(), email=email, password_hash="x", created_at=now, updated_at=now)


def seed(engine) -> None:
    with Session(engine) as s:
        if s.exec(select(func.count()).select_from(Task)).one() > 0:
            return
        for u in range(USERS):
            user = new_user(f"sqlmodel{u}@bench.example")
            s.add(user)
            s.flush()
            s.add_all(new_task(user.id, i) for i in range(TASKS_PER_USER))
        s.commit()


def keys(engine):
    with Session(engine) as s:
        return [tuple(r) for r in s.exec(select(Task.user_id, Task.id).limit(4096)).all()]


def measure(threads: int, seconds: float, op) -> float:
    """Operations per second of `op` run in a loop by `threads` threads for `seconds`."""
    counts = [0] * threads
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(threads)

    def worker(n):
        rng = random.Random(n)
        barrier.wait()
        while time.monotonic() < stop:
            op(rng)
            counts[n] += 1

    ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    start = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def run(engine, seconds: float) -> None:
    ks = keys(engine)
    owners = sorted({o for o, _ in ks})
    with Session(engine) as s:
        creator = new_user(f"sqlmodel-creator-{uuid.uuid4()}@bench.example")
        s.add(creator)
        s.commit()
        creator_id = creator.id

    def get(rng):
        owner, id_ = ks[rng.randrange(len(ks))]
        with Session(engine) as s:
            t = s.exec(select(Task).where(Task.user_id == owner, Task.id == id_)).first()
            assert t is not None

    def list_page(rng):
        owner = owners[rng.randrange(len(owners))]
        with Session(engine) as s:
            page = s.exec(
                select(Task)
                .where(Task.user_id == owner, Task.completed == False)  # noqa: E712
                .order_by(Task.created_at.desc(), Task.id.desc())
                .limit(20)
            ).all()
            assert page

    def create(rng):
        with Session(engine) as s:
            s.add(new_task(creator_id, rng.randrange(1_000_000)))
            s.commit()

    for name, op in (("get", get), ("list", list_page), ("create", create)):
        for threads in (1, 4):
            print(f"sqlmodel {name} {threads} {measure(threads, seconds, op):.0f}", flush=True)

    for threads in (1, 4):
        # Each thread writes BULK / threads rows for an owner of its own, in one transaction.
        per = BULK // threads
        with Session(engine) as s:
            bulk_owners = [new_user(f"sqlmodel-bulk-{uuid.uuid4()}@bench.example") for _ in range(threads)]
            s.add_all(bulk_owners)
            s.commit()
            bulk_ids = [u.id for u in bulk_owners]

        def bulk(n):
            with Session(engine) as s:
                s.add_all(new_task(bulk_ids[n], i) for i in range(per))
                s.commit()

        ts = [threading.Thread(target=bulk, args=(n,)) for n in range(threads)]
        start = time.monotonic()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print(f"sqlmodel bulk {threads} {per * threads / (time.monotonic() - start):.0f}", flush=True)


def main() -> None:
    url, cmd = sys.argv[1], sys.argv[2]
    engine = engine_for(url)
    if cmd == "seed":
        seed(engine)
    elif cmd == "run":
        run(engine, float(sys.argv[3]))
    else:
        sys.exit("usage: workloads.py URL seed | run SECONDS")


if __name__ == "__main__":
    main()
