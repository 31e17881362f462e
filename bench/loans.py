"""`make bench`: the loans programme, three measurements each against a baseline of the same run.

1. **Profiling** — N applications (10,000) submitted with `hub.loans.applications.submit`
   by a channel for firms with valid codes, under consents covering every bank,
   then profiled and matched by the real flow `loan-profiling`
   (`flows.loans.profiling.profile_applications`) under a local Prefect server,
   with the credit-database stand-in over HTTP (its firms derived from their
   codes: about 2% dishonest) and products of three banks, timed from the
   flow's start to its end. Afterwards every application must be decided once:
   none left profiling, one `loan_application.offered` event per bank offered
   to, the flow's totals equal to what is stored. Target: 10,000 in under 60 s.
   The baseline printed beside it is the same number of credit-database calls
   made bare (the stand-in's floor, same HTTP client, same concurrency).
2. **Subsidies** — L loans (100,000) with their month's repayments bulk-loaded
   (INSERT ... SELECT generate_series) into the real schema; then, warm cache,
   best and median of --rounds, alternating:
   - the bare aggregate `SELECT loan_id, sum(interest) FROM loan_repayments
     WHERE paid_on in the month GROUP BY loan_id` over the same rows;
   - the computation: `hub.loans.subsidies.computing`, the very statement
     `grant_month` inserts from (eligibility, the once-a-month test, the amount
     by the rule, the recorded reasons, the ids);
   both timed as the database runs them to their last row (EXPLAIN ANALYZE,
   TIMING OFF), since they return rows of different widths;
   - the month recorded: `grant_month` writing the subsidies, the ledger's
     entries and the `subsidy.granted` events (a row per recipient), the
     ledger's deferred balance checks run (SET CONSTRAINTS ALL IMMEDIATE), then
     rolled back, and its dead rows vacuumed (untimed) so that each round
     starts from the same database.
   Then one run committed (every eligible loan granted once, the subsidies'
   books agreeing) and a second granting nothing. Target: the computation at
   most 3x the bare aggregate (the median of the rounds' ratios, each round
   timing both back to back). The recorded month is printed beside it: it
   writes about 80,000 subsidies and 160,000 event rows, each with its indexes
   and foreign keys, which no read of the same rows can match.
3. **Repayments** — the API (one uvicorn worker, bench/bench_app.py) on a
   scratch database with --repay-loans paid-out loans (`servicing.disburse`),
   under wrk (bench/repayments.lua) at 1 and 8 clients: `POST
   /v1/loans/{id}/repayments` against a bare repayment (one pooled transaction
   with the same UPDATEs and INSERTs, no auth, no idempotency, no ORM) and a
   trivial endpoint, in --api-rounds rounds, each measuring the three back to
   back; the table shows the median round of each, and the ratio is the median
   of the rounds' ratios. Target: repayments >= 50% of the bare repayment's
   rate at each concurrency.

Results go to .credithub/bench/loans.json. `--only profiling subsidies
repayments` runs a part. Environment: CREDITHUB_BENCH_ADMIN_URL (a database to
connect to for CREATE DATABASE; default postgresql+psycopg://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from authorizations import (  # bench/authorizations.py: the API under wrk
    Result,
    cpu_seconds,
    parse_wrk,
    spawn_server,
    stop_server,
)
from authorizations import wait_until_up as wait_for_api
from enrollments import RoundTrips, cpu_snapshot, simulator  # bench/enrollments.py
from sqlalchemy import Engine, func, select, text
from support import (  # bench/support.py (bench/ is on the path: run as a script)
    OUT,
    ROOT,
    SECRET,
    children,
    free_port,
    fresh_database,
    prefect_env,
    prefect_server,
    run_wrk,
    say,
    settle,
    wait_until_up,
)

from hub.core import clock, migrate, partners
from hub.core.db import dispose_engines, get_engine, new_session, unit_of_work
from hub.core.personal_data import get_vault
from hub.core.uscc import ALPHABET, check_character
from hub.loans import applications, fund_views, products, servicing, subsidies
from hub.settings import Settings
from models.core.tables import Event
from models.loans.tables import (
    ApplicationBank,
    ApplicationStatus,
    LoanApplication,
    Subsidy,
)

LUA = ROOT / "bench" / "repayments.lua"
BUREAU_KEY, BANK_KEY = "bench-bureau-key", "bench-bank-key"
BANK_CODES = ("LB1", "LB2", "LB3")
TARGET_APPLICATIONS, TARGET_PROFILING_SECONDS = 10_000, 60.0
TARGET_SUBSIDY_RATIO, TARGET_REPAYMENT_SHARE = 3.0, 0.5
HOOK = "http://127.0.0.1:9/hooks"  # events are queued for partners with a webhook URL

# Three banks' products: most firms match at least one (scores run about 300-900).
PRODUCTS = (
    ("LB1", "micro", products.Terms("小微快贷", 300, 5_000_000_00, 36, 400, 900, None)),
    ("LB2", "sme", products.Terms("科创贷", 500, 3_000_000_00, 24, 380, 700, None)),
    ("LB3", "trade", products.Terms("商贸贷", 450, 2_000_000_00, 12, 450, 800,
                                    ["retail", "logistics", "catering", "manufacturing"])),
)  # fmt: skip


def new_world(settings: Settings, banks: Sequence[str]) -> dict[str, str]:
    """A channel and the banks (with webhook URLs, so events are queued): partner ids by code."""
    vault, now = get_vault(settings), clock.now()
    with unit_of_work(get_engine(settings)) as session:
        made = {
            code: partners.add_partner(session, vault, kind=kind, name=f"bench {code}", code=code,
                                       webhook_url=HOOK, now=now)
            for kind, code in [("channel", "LCH"), *(("bank", b) for b in banks)]
        }  # fmt: skip
    return {code: p.partner_id for code, p in made.items()} | {
        f"key:{code}": p.api_key for code, p in made.items()
    }


# --- 1. profiling and matching -----------------------------------------------------


def uscc(n: int) -> str:
    """The n-th firm's unified social credit code: valid (GB 32100), distinct per n."""
    digits = f"{n:08d}"
    body = "91350200M" + "".join(ALPHABET[int(d)] for d in digits)
    return body + check_character(body)


def submit_applications(settings: Settings, channel_id: str, count: int, chunk: int = 250,
                        workers: int = 4) -> list[str]:  # fmt: skip
    """`count` applications through the API's use case, `chunk` per transaction."""
    engine, vault = get_engine(settings), get_vault(settings)

    def submit(part: range) -> list[str]:
        with unit_of_work(engine) as session:
            now = clock.now()
            return [
                applications.submit(session, vault, channel_id=channel_id, now=now,
                    ask=applications.Ask(
                        uscc=uscc(n), firm_name=f"压测企业{n}",
                        amount_fen=50_000_00 + n % 50 * 10_000_00,
                        term_months=(6, 12, 24)[n % 3], purpose="working capital",
                        granted_at=now - timedelta(minutes=1), expires_at=now + timedelta(days=90),
                        banks=["*"]),
                ).id
                for n in part
            ]  # fmt: skip

    parts = [range(i, min(count, i + chunk)) for i in range(0, count, chunk)]
    with ThreadPoolExecutor(workers) as pool:
        return [a for done in pool.map(submit, parts) for a in done]


def run_profiling_flow(settings: Settings, count: int, batch_size: int | None
                       ) -> tuple[float, dict[str, int], RoundTrips]:  # fmt: skip
    """The real flow, under the Prefect server PREFECT_API_URL names."""
    from flows.loans.profiling import profile_applications
    from hub import context

    ctx = context.use(settings)
    batches = count + 1  # more than enough: the flow stops when none is left
    with RoundTrips(ctx.engine).counting() as trips:
        started = time.perf_counter()
        if batch_size is None:
            totals = profile_applications(max_batches=batches)
        else:
            totals = profile_applications(batch_size=batch_size, max_batches=batches)
        seconds = time.perf_counter() - started
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=30)
    return seconds, totals, trips


def bare_bureau_calls(settings: Settings, count: int, concurrency: int) -> float:
    """The floor under the flow: the same firms asked of the stand-in, nothing else."""
    from flows.partners import partner_systems

    bureau = partner_systems(settings).bureau
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda n: bureau.firm(uscc(n)), range(count)))
    return time.perf_counter() - started


def verify_profiling(settings: Settings, totals: dict[str, int]) -> tuple[Counter[str], list[str]]:
    with unit_of_work(get_engine(settings), write=False) as session:
        rows = session.execute(
            select(LoanApplication.status, LoanApplication.decline_reason, func.count())
            .group_by(LoanApplication.status, LoanApplication.decline_reason)
        ).all()  # fmt: skip
        offered_to = session.scalar(select(func.count()).select_from(ApplicationBank)) or 0
        offered_events = session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "loan_application.offered")
        ) or 0  # fmt: skip
        declined_events = session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "loan_application.declined")
        ) or 0  # fmt: skip
    outcomes: Counter[str] = Counter()
    for status, reason, n in rows:
        outcomes["offered" if status == ApplicationStatus.OPEN else reason or status] += n
    problems = []
    if outcomes[ApplicationStatus.PROFILING]:
        problems.append(f"{outcomes[ApplicationStatus.PROFILING]} still profiling")
    if offered_events != offered_to:
        problems.append(f"{offered_events} offered events for {offered_to} banks offered to")
    declined = sum(n for k, n in outcomes.items() if k not in ("offered", "profiling"))
    if declined_events != declined:
        problems.append(f"{declined_events} declined events for {declined} declined")
    flow = Counter({k.removeprefix("declined:"): v for k, v in totals.items()})
    if flow != outcomes:
        problems.append(f"the flow counted {dict(flow)}, stored: {dict(outcomes)}")
    outcomes["(banks offered to)"] = offered_to
    return outcomes, problems


def bench_profiling(args: argparse.Namespace, load: float) -> dict[str, Any]:
    bureau_port, prefect_port = free_port(), free_port()
    settings = Settings(
        home=OUT, database_url=fresh_database("credithub_bench_loans_profiling"),
        secret_key=SECRET, bureau_url=f"http://127.0.0.1:{bureau_port}",
        bureau_api_key=BUREAU_KEY,
    )  # fmt: skip
    with (OUT / "loans-profiling.log").open("wb") as log, children() as running:
        say("[profiling] starting the credit-database stand-in and a local Prefect server")
        running.append(simulator("credit_bureau", bureau_port, BUREAU_KEY, args, log=log))
        shutil.rmtree(OUT / "prefect-loans", ignore_errors=True)
        running.append(prefect_server(prefect_port, log, OUT / "prefect-loans"))
        os.environ.update(prefect_env(prefect_port, OUT / "prefect-loans"))
        migrate.upgrade(settings)
        world = new_world(settings, BANK_CODES)
        with unit_of_work(get_engine(settings)) as session:
            for bank, code, terms in PRODUCTS:
                products.put(session, world[bank], code, terms, clock.now())
        t0 = time.perf_counter()
        submit_applications(settings, world["LCH"], args.applications)
        say(f"[profiling] submitted {args.applications:,} applications with "
            f"hub.loans.applications.submit ({time.perf_counter() - t0:.1f} s)")  # fmt: skip
        dispose_engines()
        wait_until_up(running[0], headers={"Authorization": f"Bearer {BUREAU_KEY}"})
        wait_until_up(running[1], timeout=120)
        say(f"[profiling] running the flow loan-profiling over {args.applications:,} ...")
        before = cpu_snapshot(running)
        seconds, totals, trips = run_profiling_flow(settings, args.applications, args.batch_size)
        after = cpu_snapshot(running)
        say(f"[profiling] {seconds:.1f} s; now the bare credit-database calls")
        from flows.loans.profiling import CONCURRENCY

        bare = bare_bureau_calls(settings, args.applications, CONCURRENCY)
    outcomes, problems = verify_profiling(settings, totals)
    dispose_engines()
    count = args.applications
    at_target = TARGET_APPLICATIONS * seconds / count
    cpu = {name: round(after[name] - before[name], 2) for name in before}
    print(f"\n1. profiling and matching: {count:,} applications in {seconds:.1f} s "
          f"({count / seconds:.0f}/s; load {load:.2f} at start)")  # fmt: skip
    print(f"   bare credit-database calls, same firms and concurrency: {bare:.1f} s "
          f"(flow / bare = {seconds / bare:.1f}x)")  # fmt: skip
    print(f"   {'outcome':<26}{'count':>8}")
    for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
        print(f"   {outcome:<26}{n:>8}")
    print("   CPU seconds during the flow: " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()))
    print(f"   database round trips per application: {trips.transactions / count:.1f} "
          f"transactions, {trips.statements / count:.1f} statements")  # fmt: skip
    targets = {
        f"{TARGET_APPLICATIONS:,} applications profiled and matched in under "
        f"{TARGET_PROFILING_SECONDS:g} s (at this rate: {at_target:.1f} s)": (
            at_target < TARGET_PROFILING_SECONDS
        ),
        "every application decided once; one event per bank offered to; totals match": (
            not problems
        ),
    }
    return {
        "count": count, "seconds": round(seconds, 3), "seconds_for_10000": round(at_target, 1),
        "bare_bureau_seconds": round(bare, 3), "outcomes": dict(outcomes), "flow_totals": totals,
        "problems": problems, "cpu_seconds_during_flow": cpu,
        "per_application": {"transactions": round(trips.transactions / count, 2),
                            "statements": round(trips.statements / count, 2)},
        "targets": targets, "load_average_at_start": round(load, 2),
    }  # fmt: skip


# --- loans loaded in bulk (subsidies, repayments) ---------------------------------

# Loans n = lo..hi, each with its firm, consent, accepted application and offer, at
# bank n mod banks; grade A for n mod 10 in 0-3, B 4-7, C 8, D 9 (80% eligible).
BANK_OF_N = "(CAST(:banks AS text[]))[1 + n % cardinality(CAST(:banks AS text[]))]"
LOAD_LOANS = [
    text("""
INSERT INTO firms (id, uscc, name, created_at)
SELECT 'firm_' || lpad(n::text, 26, '0'), '91350200' || lpad(n::text, 10, '0'),
       'bench firm ' || n, :now
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n"""),
    text("""
INSERT INTO consents (id, partner_id, subject_hash, purpose, scope, text_version, granted_at,
                      expires_at, created_at)
SELECT 'cns_' || lpad(n::text, 26, '0'), :channel, md5(n::text), 'business_loan',
       '{"banks": ["*"]}', 'business_loan', :now, :now + interval '365 days', :now
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n"""),
    text("""
INSERT INTO loan_applications (id, firm_id, channel_id, consent_id, amount_fen, term_months,
                               purpose, status, created_at, opened_at, decided_at)
SELECT 'lap_' || lpad(n::text, 26, '0'), 'firm_' || lpad(n::text, 26, '0'), :channel,
       'cns_' || lpad(n::text, 26, '0'), :principal, 36, 'bench', 'accepted', :now, :now, :now
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n"""),
    text(f"""
INSERT INTO loan_offers (id, application_id, bank_id, product_code, amount_fen, annual_rate_bps,
                         term_months, status, expires_at, created_at)
SELECT 'lof_' || lpad(n::text, 26, '0'), 'lap_' || lpad(n::text, 26, '0'),
       {BANK_OF_N}, 'bench', :principal,
       400 + n % 5 * 100, 36, 'accepted', :now + interval '7 days', :now
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n"""),
    text(f"""
INSERT INTO loans (id, application_id, offer_id, bank_id, channel_id, firm_id, grade,
                   principal_fen, annual_rate_bps, term_months, status,
                   outstanding_principal_fen, days_past_due, created_at)
SELECT 'loan_' || lpad(n::text, 26, '0'), 'lap_' || lpad(n::text, 26, '0'),
       'lof_' || lpad(n::text, 26, '0'), {BANK_OF_N},
       :channel, 'firm_' || lpad(n::text, 26, '0'),
       CASE WHEN n % 10 < 4 THEN 'A' WHEN n % 10 < 8 THEN 'B' WHEN n % 10 = 8 THEN 'C' ELSE 'D' END,
       :principal, 400 + n % 5 * 100, 36, 'approved', 0, 0, :now
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n"""),
]

# The month's repayments: one per loan, a second for every 4th, in the month's days.
LOAD_REPAYMENTS = text(f"""
INSERT INTO loan_repayments (id, loan_id, bank_id, bank_txn_id, amount_fen, overdue_interest_fen,
       overdue_principal_fen, current_interest_fen, current_principal_fen, early_principal_fen,
       fund_share_fen, outstanding_after_fen, paid_at, paid_on, created_at)
SELECT 'lrp_' || lpad((k * 10000000 + l.n)::text, 26, '0'), l.id, l.bank_id,
       'T' || k || '-' || l.n, l.interest + 30000, CASE WHEN k = 2 THEN 500 ELSE 0 END, 0,
       l.interest - CASE WHEN k = 2 THEN 500 ELSE 0 END, 30000, 0, 0, 0,
       l.paid_on + time '10:00', l.paid_on, :now
  FROM (SELECT n, 'loan_' || lpad(n::text, 26, '0') AS id,
               {BANK_OF_N} AS bank_id,
               1000 + (n * 7919) % 49000 AS interest,
               CAST(:first AS date) + CAST(n % :days AS int) AS paid_on
          FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n) AS l
  JOIN generate_series(1, 2) AS k ON k = 1 OR l.n % 4 = 0
""")

LOAD_CHUNK = 50_000


def load_loans(engine: Engine, channel_id: str, bank_ids: list[str], count: int,
               principal_fen: int, month: subsidies.Month | None) -> None:  # fmt: skip
    """`count` approved loans (and, given a month, their repayments in it)."""
    now = clock.now()
    for lo in range(0, count, LOAD_CHUNK):
        hi = min(count, lo + LOAD_CHUNK) - 1
        params = {"lo": lo, "hi": hi, "now": now, "channel": channel_id, "banks": bank_ids,
                  "principal": principal_fen}  # fmt: skip
        with engine.begin() as conn:
            for statement in LOAD_LOANS:
                conn.execute(statement, params)
            if month is not None:
                days = (month.after - month.first).days
                conn.execute(LOAD_REPAYMENTS, {**params, "first": month.first, "days": days})
        say(f"  {hi + 1:>9,} loans")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE firms, consents, loan_applications, loan_offers, loans,"
                          " loan_repayments"))  # fmt: skip


# --- 2. subsidies ------------------------------------------------------------------

BARE_SUBSIDY_AGGREGATE = text(
    "SELECT loan_id, sum(overdue_interest_fen + current_interest_fen) FROM loan_repayments"
    " WHERE paid_on >= :first AND paid_on < :after GROUP BY loan_id"
)


def server_seconds(engine: Engine, statement: Any) -> float:
    """How long the database takes to run `statement` to its last row, the rows not
    sent (EXPLAIN ANALYZE, TIMING OFF: what the statement itself costs, the same way
    for the computation and the bare aggregate, which return rows of different widths)."""
    with engine.connect() as conn:
        sql = statement.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, TIMING OFF) " + sql.string, sql.params)
        (total,) = [line for (line,) in plan if line.startswith("Execution Time:")]
        return float(total.split()[2]) / 1000


def time_bare_subsidy(engine: Engine, month: subsidies.Month) -> float:
    return server_seconds(engine, BARE_SUBSIDY_AGGREGATE.bindparams(first=month.first,
                                                                    after=month.after))  # fmt: skip


def time_computed(engine: Engine, settings: Settings, month: subsidies.Month) -> float:
    """The month's subsidies computed by grant_month's own statement, not recorded."""
    return server_seconds(engine, subsidies.computing(
        "postgresql", month, list(settings.subsidy_grades), settings.subsidy_points_bps,
        clock.now()))  # fmt: skip


def time_grant(engine: Engine, settings: Settings, month: subsidies.Month, commit: bool = False
               ) -> tuple[float, int]:  # fmt: skip
    """grant_month and the ledger's deferred checks; rolled back unless `commit`."""
    with new_session(engine) as session, session.begin():
        started = time.perf_counter()
        granted = subsidies.grant_month(
            session, month, list(settings.subsidy_grades), settings.subsidy_points_bps,
            clock.now(),
        )  # fmt: skip
        session.flush()
        session.execute(text("SET CONSTRAINTS ALL IMMEDIATE"))  # the balance checks, now
        seconds = time.perf_counter() - started
        if not commit:
            session.rollback()
    if not commit:  # the rolled-back rows, left dead, would slow every later round
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM subsidies, ledger_postings, events"))
    return seconds, granted


EXPECTED_SUBSIDIES = text("""
SELECT count(*), coalesce(sum(amount), 0) FROM (
  SELECT floor(sum(r.overdue_interest_fen + r.current_interest_fen)
               * least(:points, l.annual_rate_bps) / l.annual_rate_bps) AS amount
    FROM loan_repayments r JOIN loans l ON l.id = r.loan_id
   WHERE r.paid_on >= :first AND r.paid_on < :after AND l.grade = ANY(:grades)
   GROUP BY l.id, l.annual_rate_bps) AS s
 WHERE amount > 0
""")


def bench_subsidies(args: argparse.Namespace, load: float) -> dict[str, Any]:
    settings = Settings(home=OUT, database_url=fresh_database("credithub_bench_loans_subsidies"),
                        secret_key=SECRET)  # fmt: skip
    migrate.upgrade(settings)
    engine = get_engine(settings)
    world = new_world(settings, BANK_CODES)
    month = subsidies.previous_month(clock.business_date(clock.now(),
                                                          settings.business_timezone))  # fmt: skip
    say(f"[subsidies] loading {args.loans:,} loans and their repayments in {month.label}")
    t0 = time.perf_counter()
    load_loans(engine, world["LCH"], [world[b] for b in BANK_CODES], args.loans, 1_000_000_00,
               month)  # fmt: skip
    loaded = time.perf_counter() - t0
    with engine.connect() as conn:
        repayments = conn.scalar(text("SELECT count(*) FROM loan_repayments"))
        want_n, want_fen = conn.execute(EXPECTED_SUBSIDIES, {
            "first": month.first, "after": month.after, "grades": list(settings.subsidy_grades),
            "points": settings.subsidy_points_bps}).one()  # fmt: skip
    say(f"[subsidies] {repayments:,} repayments ({loaded:.0f} s); timing grant_month and the "
        f"bare aggregate, {args.rounds} rounds")  # fmt: skip
    time_bare_subsidy(engine, month), time_computed(engine, settings, month)  # warm-up
    time_grant(engine, settings, month)
    times: dict[str, list[float]] = {"grant": [], "computed": [], "bare_aggregate": []}
    for _ in range(args.rounds):
        times["bare_aggregate"].append(time_bare_subsidy(engine, month))
        times["computed"].append(time_computed(engine, settings, month))
        times["grant"].append(time_grant(engine, settings, month)[0])
    committed, granted = time_grant(engine, settings, month, commit=True)
    again = time_grant(engine, settings, month, commit=True)[1]
    with unit_of_work(engine, write=False) as session:
        stored_n, stored_fen = session.execute(
            select(func.count(), func.coalesce(func.sum(Subsidy.amount_fen), 0))
        ).one()
        events = session.scalar(
            select(func.count()).select_from(Event).where(Event.type == "subsidy.granted")
        )
        books = fund_views.discrepancies(session)
    dispose_engines()
    problems = []
    if (granted, stored_n, stored_fen) != (want_n, want_n, want_fen):
        problems.append(f"granted {granted} ({stored_n} stored, {stored_fen} fen); "
                        f"expected {want_n} ({want_fen} fen)")  # fmt: skip
    if again:
        problems.append(f"a second run granted {again} more")
    if events != 2 * want_n:  # to the channel and the bank, each with a webhook
        problems.append(f"{events} subsidy.granted events for {want_n} subsidies to 2 partners")
    problems += [f"books: {d}" for d in books]
    median = {name: statistics.median(values) for name, values in times.items()}
    # Each round times all three back to back: the ratios are taken per round (the
    # machine's drift between rounds cancels) and the median round's kept.
    bare = times["bare_aggregate"]
    ratio = statistics.median(c / b for c, b in zip(times["computed"], bare, strict=True))
    recorded_ratio = statistics.median(g / b for g, b in zip(times["grant"], bare, strict=True))
    print(f"\n2. subsidy month over {args.loans:,} loans ({repayments:,} repayments, "
          f"{want_n:,} subsidies; load {load:.2f} at start)")  # fmt: skip
    for name, label in [("bare_aggregate", "bare GROUP BY, same rows"),
                        ("computed", "the month computed (grant_month's SELECT)"),
                        ("grant", "the month recorded (grant_month)")]:  # fmt: skip
        print(f"   {label:<44}{median[name] * 1000:8.0f} ms median, "
              f"{min(times[name]) * 1000:.0f} best")  # fmt: skip
    print("   (the first two as the database runs them; the last as the hub does, wall clock)")
    print(f"   computed / bare = {ratio:.2f}x; recorded / bare = {recorded_ratio:.1f}x, the median"
          f" rounds' (committed run: {committed * 1000:.0f} ms)")  # fmt: skip
    targets = {
        f"subsidy month computed at most {TARGET_SUBSIDY_RATIO:g}x the bare aggregate: "
        f"{ratio:.2f}x": ratio <= TARGET_SUBSIDY_RATIO,
        "every eligible loan granted once, events queued, the books agree": not problems,
    }
    return {
        "loans": args.loans, "repayments": repayments, "subsidies": want_n,
        "subsidies_fen": int(want_fen), "load_seconds": round(loaded, 1),
        "times": times, "median_seconds": median, "ratio": round(ratio, 3),
        "recorded_ratio": round(recorded_ratio, 2), "committed_seconds": round(committed, 3),
        "problems": problems, "targets": targets, "load_average_at_start": round(load, 2),
    }  # fmt: skip


# --- 3. repayments through the API -------------------------------------------------

REPAY_ENDPOINTS = ("trivial", "bare", "repayments")
REPAY_LABELS = {"trivial": "trivial endpoint", "bare": "bare repayment",
                "repayments": "repayments"}  # fmt: skip


def paid_out_loans(settings: Settings, count: int) -> tuple[str, list[tuple[str, str]]]:
    """`count` loans of one bank, paid out now; (the bank's key, [(loan, bank)])."""
    engine = get_engine(settings)
    world = new_world(settings, ["LB1"])
    load_loans(engine, world["LCH"], [world["LB1"]], count, 10_000_000_00, None)
    paid_out = clock.now()
    with unit_of_work(engine) as session:
        ids = list(session.scalars(text("SELECT id FROM loans ORDER BY id")))
        for loan_id in ids:
            servicing.disburse(session, bank_id=world["LB1"], loan_id=loan_id,
                               amount_fen=10_000_000_00, bank_txn_id=f"D-{loan_id}",
                               disbursed_at=paid_out, zone=settings.business_timezone,
                               now=clock.now())  # fmt: skip
    return world["key:LB1"], [(loan_id, world["LB1"]) for loan_id in ids]


def wrk(port: int, endpoint: str, clients: int, seconds: float, loans: Path, key: str,
        tag: str, paid_at: str) -> str:  # fmt: skip
    return run_wrk(port, LUA, clients, seconds, [endpoint, str(loans), key, tag, paid_at])


def check_repayment_books(settings: Settings) -> list[str]:
    """Each loan's outstanding principal and instalments against its repayments and entries."""
    with get_engine(settings).connect() as conn:
        repayments, paid, on_instalments, ledger, wrong = conn.execute(text(
            "SELECT (SELECT count(*) FROM loan_repayments),"
            " (SELECT coalesce(sum(amount_fen), 0) FROM loan_repayments"
            "   WHERE bank_txn_id NOT LIKE 'bare-%'),"
            " (SELECT coalesce(sum(paid_fen), 0) FROM loan_instalments),"
            " (SELECT coalesce(sum(amount_fen), 0) FROM ledger_postings),"
            " (SELECT count(*) FROM loans WHERE outstanding_principal_fen <> principal_fen -"
            "   (SELECT coalesce(sum(overdue_principal_fen + current_principal_fen"
            "    + early_principal_fen), 0) FROM loan_repayments r WHERE r.loan_id = loans.id))"
        )).one()  # fmt: skip
        bare = conn.scalar(text(
            "SELECT coalesce(sum(amount_fen), 0) FROM loan_repayments"
            " WHERE bank_txn_id LIKE 'bare-%'"
        ))  # fmt: skip
    problems = []
    if on_instalments != paid + bare:
        problems.append(f"instalments show {on_instalments} fen paid, repayments {paid + bare}")
    if ledger != 0:
        problems.append(f"the ledger sums to {ledger}")
    if wrong:
        problems.append(f"{wrong} loans' outstanding principal disagrees with their repayments")
    say(f"{repayments:,} repayments stored; books {'agree' if not problems else 'DISAGREE'}")
    return problems


def median_round(rounds: list[Result]) -> Result:
    """The round with the median rate (the lower middle one of an even number)."""
    return sorted(rounds, key=lambda r: r.rps)[(len(rounds) - 1) // 2]


def bench_repayments(args: argparse.Namespace, load: float) -> dict[str, Any]:
    database_url = fresh_database("credithub_bench_loans_repayments")
    settings = Settings(home=OUT, database_url=database_url, secret_key=SECRET)
    migrate.upgrade(settings)
    say(f"[repayments] {args.repay_loans} loans paid out with servicing.disburse")
    key, rows = paid_out_loans(settings, args.repay_loans)
    loans_file = OUT / "loans.txt"
    loans_file.write_text("".join(f"{loan} {bank}\n" for loan, bank in rows))
    paid_at = (clock.now() - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    dispose_engines()
    port = free_port()
    say(f"[repayments] the API on 127.0.0.1:{port} (uvicorn, 1 worker, partner limits off)")
    log_path = OUT / "loans-server.log"
    results: list[Result] = []
    with log_path.open("wb") as log:
        server = spawn_server(database_url, port, log)
    try:
        wait_for_api(server, port)
        # Rounds alternate the endpoints, and each figure is the median round's: the
        # machine's minute-to-minute spread then falls on both sides of a ratio alike.
        rounds = [(c, n, e) for c in args.clients for n in range(args.api_rounds)
                  for e in REPAY_ENDPOINTS]  # fmt: skip
        for clients, round_, endpoint in rounds:
            say(f"  {clients:>2} clients  {REPAY_LABELS[endpoint]:<16} round {round_ + 1}, "
                f"warm-up {args.warmup:g} s, measure {args.seconds:g} s ...")  # fmt: skip
            wrk(port, endpoint, clients, args.warmup, loans_file, key,
                f"w{clients}{endpoint[0]}{round_}", paid_at)  # fmt: skip
            before = cpu_seconds(server.pid)
            out = wrk(port, endpoint, clients, args.seconds, loans_file, key,
                      f"m{clients}{endpoint[0]}{round_}", paid_at)  # fmt: skip
            after = cpu_seconds(server.pid)
            cpu = None if before is None or after is None else after - before
            r = parse_wrk(out, endpoint, clients, cpu)
            results.append(r)
            say(
                f"{'':>32}{r.rps:8.0f} req/s  p50 {r.p50_ms:.2f} ms  p99 {r.p99_ms:.2f} ms"
                f"  failed {r.non_2xx + r.socket_errors}  server CPU {r.server_cpu_ms} ms/req"
            )
    finally:
        stop_server(server)
    problems = check_repayment_books(settings)
    dispose_engines()
    by = {key: median_round([r for r in results if (r.endpoint, r.clients) == key])
          for key in {(r.endpoint, r.clients) for r in results}}  # fmt: skip
    print(f"\n3. loan repayments through the API, {args.repay_loans} loans, the median of "
          f"{args.api_rounds} alternating rounds (load {load:.2f} at start)")  # fmt: skip
    print(f"   {'clients':>7}  {'endpoint':<17}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
          f"{'failed':>8}{'server CPU ms/req':>19}")  # fmt: skip
    for c in args.clients:
        for e in REPAY_ENDPOINTS:
            r = by[(e, c)]
            cpu_ms = "-" if r.server_cpu_ms is None else f"{r.server_cpu_ms:.2f}"
            print(f"   {c:>7}  {REPAY_LABELS[e]:<17}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
                  f"{r.non_2xx + r.socket_errors:>8}{cpu_ms:>19}")  # fmt: skip
    # Each round measures both back to back, so the ratio is taken per round (the
    # machine's drift between rounds cancels) and the median round's kept.
    per_round = {
        c: [a.rps / b.rps for a, b in zip(
            [r for r in results if r.clients == c and r.endpoint == "repayments"],
            [r for r in results if r.clients == c and r.endpoint == "bare"], strict=True)]
        for c in args.clients
    }  # fmt: skip
    ratios = {c: statistics.median(each) for c, each in per_round.items()}
    for c, ratio in ratios.items():
        spread = ", ".join(f"{each:.0%}" for each in per_round[c])
        print(f"   {c:>3} clients: repayments / bare repayment = {ratio:6.1%}, the median of"
              f" the rounds' {spread}")  # fmt: skip
    targets: dict[str, bool] = {
        f"repayments >= {TARGET_REPAYMENT_SHARE:.0%} of the bare repayment at {c} client(s): "
        f"{ratio:.0%}": ratio >= TARGET_REPAYMENT_SHARE
        for c, ratio in ratios.items()
    }
    targets["no failed repayments; the loans' books agree"] = not problems and all(
        by[(e, c)].non_2xx + by[(e, c)].socket_errors == 0
        for e in ("bare", "repayments") for c in args.clients
    )  # fmt: skip
    return {
        "results": [r.__dict__ for r in results], "ratios": {str(c): v for c, v in ratios.items()},
        "problems": problems, "targets": targets, "loans": args.repay_loans,
        "rounds": args.api_rounds,
        "load_average_at_start": round(load, 2),
    }  # fmt: skip


# --- the run -----------------------------------------------------------------------

PARTS = {"profiling": bench_profiling, "subsidies": bench_subsidies,
         "repayments": bench_repayments}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--applications", type=int, default=TARGET_APPLICATIONS)
    parser.add_argument("--batch-size", type=int, help="the profiling flow's (default: its own)")
    parser.add_argument("--latency-ms", type=int, default=0, help="each credit-database call's")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--loans", type=int, default=100_000, help="for the subsidy month")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds of the subsidy month")
    parser.add_argument("--repay-loans", type=int, default=512, help="loans to repay over")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--seconds", type=float, default=8, help="per wrk measurement")
    parser.add_argument(
        "--api-rounds",
        type=int,
        default=3,
        help="alternating rounds of each repayment measurement (median kept)",
    )
    parser.add_argument("--warmup", type=float, default=2, help="seconds before each")
    args = parser.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the child processes are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    OUT.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    for name in args.only:
        say(f"[{name}] letting the machine settle (a checkpoint; load average under 1, "
            "at most 90 s)")  # fmt: skip
        load = settle()
        say(f"[{name}] load average {load:.2f} on {os.cpu_count()} CPUs "
            "(other work here skews the figures)")  # fmt: skip
        summary[name] = PARTS[name](args, load)
    print()
    for part in summary.values():
        for target, met in part["targets"].items():
            print(f"  [{'met' if met else 'MISSED'}] {target}")
        for problem in part["problems"]:
            print(f"    {problem}")
    summary["setup"] = {
        "database": "PostgreSQL", "cpus": os.cpu_count(),
        "at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }  # fmt: skip
    path = OUT / "loans.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"\nwritten to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
