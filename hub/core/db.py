"""Database engines and units of work.

A unit of work is one transaction: `with unit_of_work() as session:` commits on
success and rolls back on error. Only `hub/` opens them for writes.

SQLite is the zero-setup default: write transactions start with
``BEGIN IMMEDIATE`` so they are serialised up front instead of failing on a
lock upgrade; PostgreSQL runs at READ COMMITTED, where the conditional
UPDATEs in `hub.credit` are what keep balances right under races.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from hub.core.private_files import private_file, private_folder
from hub.core.settings import DEFAULT_SQLITE_FILE
from hub.settings import Settings, get_settings

_engines: dict[str, Engine] = {}
_observers: dict[str, Engine] = {}  # operators' reads: `observer_engine`

Transaction: TypeAlias = Session
"""An open unit of work, as the hub hands it to code outside the hub: to pass on
to hub functions, never to run statements on or commit."""

T = TypeVar("T")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database (created once per URL)."""
    settings = settings or get_settings()
    url = settings.sqlalchemy_url()
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            private_folder(Path(settings.home))
            if not settings.database_url:  # the default file, in the home folder
                private_file(Path(settings.home) / DEFAULT_SQLITE_FILE)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _configure_sqlite(engine)
        else:
            # As many pooled connections as the API's worker threads (40), kept
            # open: overflow connections would close and reopen under load. No
            # pre-ping (a round trip per transaction); a dead connection fails
            # one transaction, which the pipeline reports as retryable.
            engine = create_engine(
                url,
                pool_size=settings.pool_size,
                max_overflow=0,
                pool_recycle=3600,
            )
        _engines[url] = engine
    return engine


def dispose_engines() -> None:
    for engine in (*_engines.values(), *_observers.values()):
        engine.dispose()
    _engines.clear()
    _observers.clear()


def observer_engine(settings: Settings, timeout_seconds: float) -> Engine:
    """An engine of its own for operators' reads (metrics, readiness): one connection,
    checked before use, and short timeouts to connect and to wait for it, so that a
    slow or unreachable database fails those reads fast instead of hanging them, and
    a busy API pool cannot delay them. SQLite has no server to wait for: its engine
    is the process's own."""
    url = settings.sqlalchemy_url()
    if url.startswith("sqlite"):
        return get_engine(settings)
    engine = _observers.get(url)
    if engine is None:
        engine = _observers[url] = create_engine(
            url,
            pool_size=1,
            max_overflow=0,
            pool_timeout=timeout_seconds,
            pool_pre_ping=True,
            pool_recycle=3600,
            connect_args={"connect_timeout": max(1, round(timeout_seconds))},
        )
    return engine


def run_read_within(engine: Engine, seconds: float, work: Callable[[Transaction], T]) -> T:
    """`work` in one read-only transaction whose statements PostgreSQL stops after
    `seconds` (an operator's read must never queue behind the partners' work)."""
    with unit_of_work(engine, write=False) as session:
        if engine.dialect.name == "postgresql":
            ms = max(1, round(seconds * 1000))
            session.execute(text(f"SET LOCAL statement_timeout = {ms}"))
        return work(session)


_binds: dict[tuple[int, bool], Engine] = {}


def new_session(engine: Engine | None = None, *, write: bool = True) -> Session:
    """A session whose transactions begin as writes (or reads) on this engine."""
    engine = engine or get_engine()
    bind = _binds.get((id(engine), write))
    if bind is None:
        bind = _binds[(id(engine), write)] = engine.execution_options(write=write)
    return Session(bind=bind, expire_on_commit=False, autoflush=False)


@contextmanager
def unit_of_work(engine: Engine | None = None, *, write: bool = True) -> Iterator[Session]:
    """One transaction: commit when the block ends, roll back if it raises."""
    with new_session(engine, write=write) as session, session.begin():
        yield session


def run_read(engine: Engine, work: Callable[[Transaction], T]) -> T:
    """`work` in one read-only transaction (the API's GET requests)."""
    with unit_of_work(engine, write=False) as session:
        return work(session)


def ping(engine: Engine) -> None:
    """A trivial query; raises when the database does not answer it."""
    with unit_of_work(engine, write=False) as session:
        session.execute(text("SELECT 1"))


def is_transient(exc: OperationalError) -> bool:
    """Deadlocks, serialisation failures and a busy SQLite are worth one more try."""
    code = getattr(exc.orig, "sqlstate", None)
    return code in {"40001", "40P01"} or "database is locked" in str(exc.orig)


APPEND_ONLY = ("ledger_postings", "bureau_lookups")  # migration 0004's triggers


def empty_all_tables(engine: Engine) -> None:
    """Delete every row of every table: a fresh start for tests and the demo.

    A DELETE per table, children first; on PostgreSQL the ledger and the audit
    refuse DELETE (append-only, enforced by triggers), so those two are
    truncated (nothing refers to them). A TRUNCATE of every table would do
    too, but costs about 85 ms however few rows there are: a test pays that.
    """
    from models.metadata import metadata

    tables = list(reversed(metadata.sorted_tables))
    with unit_of_work(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(text(f"TRUNCATE {', '.join(APPEND_ONLY)}"))
        for table in tables:
            if engine.dialect.name != "postgresql" or table.name not in APPEND_ONLY:
                session.execute(table.delete())
