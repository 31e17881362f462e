"""What a scrape of /metrics costs on a hub with a million holds.

A scratch PostgreSQL database migrated with the project's schema gets 2
hospitals, a bank and 100 lines through the hub, then --holds holds (default
1,000,000) on 100,000 visits and --enrollments enrolments (default 100,000),
bulk-loaded with INSERT ... SELECT generate_series into the real tables: the
holds mostly captured, some released, voided, expired, and 3 % still held, half
of those past their expiry (not yet swept). VACUUM ANALYZE, as autovacuum would.

Measured, warm, best and median of --rounds:
- `hub.figures.read`, every statement /metrics runs at scrape time, on the
  observer engine (its own connection);
- the holds' aggregate alone;
- a whole `GET /metrics` through the real app (no cache: CREDITHUB_FIGURES_CACHE_SECONDS=0),
  from the request to the last byte.
The query plan of the holds' aggregate goes to .credithub/bench/metrics-plans.txt,
the figures to .credithub/bench/metrics.json.

Environment: CREDITHUB_BENCH_ADMIN_URL (default postgresql+psycopg://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, text
from support import OUT, SECRET, fresh_database, say  # bench/ is on the path (run as a script)

from hub import figures
from hub.core import clock, migrate, partners
from hub.core.db import dispose_engines, get_engine, observer_engine, unit_of_work
from hub.core.personal_data import get_vault
from hub.medical import figures as medical_figures
from hub.medical.lines import open_line
from hub.settings import Settings

DATABASE = "credithub_bench_metrics"
LINES = 100

LOAD_VISITS = text("""
WITH l AS (SELECT id, bank_id, row_number() OVER (ORDER BY id) - 1 AS k FROM credit_lines)
INSERT INTO visits (id, hospital_id, credit_line_id, bank_id, his_visit_id, kind, status,
                    opened_at, total_fen, insurance_fen, self_pay_fen, captured_fen,
                    released_fen, refunded_fen)
SELECT 'vis_' || lpad(n::text, 26, '0'), :hospital, l.id, l.bank_id, 'V' || n, 'outpatient',
       'closed', :now, 0, 0, 0, 0, 0, 0
  FROM generate_series(0, CAST(:visits AS bigint) - 1) AS n JOIN l ON l.k = n % :lines
""")

# Of every 100 holds: 80 captured, 10 released, 4 voided, 3 expired (swept),
# 3 held — of which 1.5 past their expiry.
LOAD_HOLDS = text("""
INSERT INTO authorizations (id, visit_id, credit_line_id, hospital_id, his_order_id, status,
                            amount_fen, initial_fen, captured_fen, created_at, expires_at)
SELECT 'aut_' || lpad(n::text, 26, '0'), v.id, v.credit_line_id, v.hospital_id, 'O' || n,
       CASE WHEN n % 100 < 80 THEN 'captured' WHEN n % 100 < 90 THEN 'released'
            WHEN n % 100 < 94 THEN 'voided' WHEN n % 100 < 97 THEN 'expired' ELSE 'held' END,
       1000, 1000, 0, :now,
       CASE WHEN n % 200 < 197 THEN CAST(:past AS timestamptz)
            ELSE CAST(:future AS timestamptz) END
  FROM generate_series(CAST(:lo AS bigint), CAST(:hi AS bigint)) AS n
  JOIN visits v ON v.id = 'vis_' || lpad((n % :visits)::text, 26, '0')
""")

LOAD_ENROLLMENTS = text("""
INSERT INTO enrollments (id, partner_id, bank_id, consent_id, id_number_hash, id_number_enc,
                         name_enc, status, decline_reason, attempts, next_attempt_at, created_at)
SELECT 'enr_' || lpad(n::text, 26, '0'), :hospital, :bank, :consent, md5(n::text),
       '\\x00'::bytea, '\\x00'::bytea,
       CASE WHEN n % 10 < 8 THEN 'approved' WHEN n % 10 < 9 THEN 'declined' ELSE 'pending' END,
       CASE WHEN n % 10 = 8 THEN 'score_too_low' END, 1, :now, :now
  FROM generate_series(0, CAST(:rows AS bigint) - 1) AS n
""")

CONSENT = text("""
INSERT INTO consents (id, partner_id, subject_hash, purpose, text_version, granted_at, created_at)
VALUES ('cns_bench', :hospital, 'bench', 'medical_credit', 'v1', :now, :now)
""")


def seed(settings: Settings) -> dict[str, str]:
    vault, now = get_vault(settings), clock.now()
    with unit_of_work(get_engine(settings)) as session:
        ids = {
            who: partners.add_partner(session, vault, kind=kind, name=f"bench {who}",
                                      code=who.upper(), webhook_url=None, now=now).partner_id
            for who, kind in (("hospital", "hospital"), ("bank", "bank"))
        }  # fmt: skip
        for i in range(LINES):
            open_line(session, vault, id_number=f"350203199001{i:06d}", name="bench resident",
                      phone=None, bank_id=ids["bank"], limit_fen=100_000_000, source="import",
                      now=now)  # fmt: skip
    return ids


def load(engine: Engine, ids: dict[str, str], holds: int, enrollments: int) -> None:
    now = clock.now()
    visits = max(1, holds // 10)
    with engine.begin() as conn:
        conn.execute(LOAD_VISITS, {"hospital": ids["hospital"], "now": now, "visits": visits,
                                   "lines": LINES})  # fmt: skip
    chunk = 250_000
    for lo in range(0, holds, chunk):
        hi = min(holds, lo + chunk) - 1
        with engine.begin() as conn:
            conn.execute(LOAD_HOLDS, {"lo": lo, "hi": hi, "now": now, "visits": visits,
                                      "past": now - timedelta(hours=1),
                                      "future": now + timedelta(hours=72)})  # fmt: skip
        say(f"  {hi + 1:>9,} holds")
    with engine.begin() as conn:
        conn.execute(CONSENT, {"hospital": ids["hospital"], "now": now})
        conn.execute(LOAD_ENROLLMENTS, {"hospital": ids["hospital"], "bank": ids["bank"],
                                        "consent": "cns_bench", "now": now,
                                        "rows": enrollments})  # fmt: skip
    say(f"  {enrollments:>9,} enrolments")
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))


def timed(rounds: int, work: Callable[[], object]) -> dict[str, float]:
    work()  # warm
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return {"best_ms": round(min(times), 1), "median_ms": round(statistics.median(times), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holds", type=int, default=1_000_000)
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    home = OUT / "metrics-home"
    settings = Settings(home=home, database_url=fresh_database(DATABASE), secret_key=SECRET,
                        figures_cache_seconds=0, pool_size=4)  # fmt: skip
    migrate.upgrade(settings)
    say(f"loading {args.holds:,} holds, {args.enrollments:,} enrolments")
    load(get_engine(settings), seed(settings), args.holds, args.enrollments)

    observer = observer_engine(settings, settings.observe_timeout_seconds)
    results: dict[str, object] = {"holds": args.holds, "enrollments": args.enrollments}
    read = figures.read(observer, clock.now(), 10)
    results["figures"] = {"holds": read.medical.holds}
    results["figures_read"] = timed(args.rounds, lambda: figures.read(observer, clock.now(), 10))

    def holds_only() -> object:
        with unit_of_work(observer, write=False) as session:
            return medical_figures.holds_by_state(session, clock.now())

    results["holds_aggregate"] = timed(args.rounds, holds_only)
    with unit_of_work(observer, write=False) as session:
        plan = session.execute(text(
            "EXPLAIN (ANALYZE, BUFFERS) SELECT status, count(*), count(*) FILTER "
            "(WHERE status = 'held' AND expires_at <= now()) FROM authorizations GROUP BY status"
        )).scalars().all()  # fmt: skip
    Path(OUT / "metrics-plans.txt").write_text("\n".join(plan) + "\n")

    from starlette.testclient import TestClient

    from integrations.endpoints.app import create_app

    with TestClient(create_app(settings)) as client:
        results["metrics_scrape"] = timed(args.rounds, lambda: client.get("/metrics"))
        body = client.get("/metrics").text
    results["metrics_bytes"] = len(body)
    (OUT / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    dispose_engines()


if __name__ == "__main__":
    main()
