"""The operator's command line (CONTRACT.md §7): `credithub up|api|db|partners|lines`."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from credithub import prefect_access
from credithub.runner import FLOWS
from credithub.views import artifact_view, deposit_line, fen_of_yuan, mismatch_table
from hub.context import hub_context
from hub.core import bureau, clock, migrate, partner_admin
from hub.core.errors import DuplicateReference, HubError
from hub.core.money import yuan_or_dash
from hub.core.personal_data import mask_id, normalize_id_number
from hub.loans import fund
from hub.medical import line_import, reconciliation_run
from hub.settings import Settings, get_settings

app = typer.Typer(
    help="credithub: the credit-based services integration hub.", no_args_is_help=True
)
db_app = typer.Typer(help="The hub's database.", no_args_is_help=True)
partners_app = typer.Typer(help="Hospitals, banks, channels and operators.", no_args_is_help=True)
lines_app = typer.Typer(help="Medical credit lines.", no_args_is_help=True)
audit_app = typer.Typer(
    help="The audit of every use of the public credit database.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(partners_app, name="partners")
app.add_typer(lines_app, name="lines")
app.add_typer(audit_app, name="audit")
recon_app = typer.Typer(help="Reconciliation mismatches.", no_args_is_help=True)
app.add_typer(recon_app, name="recon")
fund_app = typer.Typer(help="The risk-compensation fund of the loans.", no_args_is_help=True)
app.add_typer(fund_app, name="fund")
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr (never wrapped, so scripts can grep it), then exit `code`."""
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@app.callback()
def _database_first(ctx: typer.Context) -> None:
    # The commands that read the hub's database bring its schema up to date first
    # (as `partners add`, `lines import` and `api` do): on a fresh home there is
    # nothing to read yet, and a missing table would end in a traceback.
    if ctx.invoked_subcommand in ("audit", "partners", "recon", "fund"):
        migrate.upgrade()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the schema migrations to the configured database."""
    migrate.upgrade()
    err.print(f"database is up to date: {_safe_url()}")


def _safe_url() -> str:
    return hub_context().engine.url.render_as_string(hide_password=True)


@app.command()
def api(
    host: str = typer.Option(None, help="Address to listen on (CREDITHUB_API_HOST)."),
    port: int = typer.Option(None, help="Port to listen on (CREDITHUB_API_PORT)."),
    workers: int = typer.Option(1, help="Worker processes."),
) -> None:
    """Run the API alone (migrations first)."""
    from credithub.serve import serve_api

    # An operator's settlement close asks Prefect for a run: with its auth string.
    os.environ.update(prefect_access.environment(prefect_access.client_auth(os.environ)))
    migrate.upgrade()
    serve_api(host, port, workers)


@app.command()
def up() -> None:
    """Run everything: migrations, then the API (with its docs); Ctrl-C stops it."""
    from credithub.prefect_access import OpenServer
    from credithub.supervisor import run_all

    os.environ.pop(clock.CLOCK_FILE_VARIABLE, None)  # the simulated clock is the demo's only
    from hub.core.prefect_database import Unavailable

    try:
        run_all()
    except (OpenServer, Unavailable) as exc:
        _fail(str(exc))


@partners_app.command("add")
def partners_add(
    kind: str = typer.Option(..., help="hospital, bank, channel or operator"),
    name: str = typer.Option(..., help="The partner's name."),
    code: str = typer.Option(..., help="A short unique code, e.g. a bank code."),
    webhook_url: str = typer.Option(None, help="Where to send events."),
) -> None:
    """Add a partner; prints its API key once (it is stored only as a hash)."""
    migrate.upgrade()
    try:
        new = partner_admin.add(
            hub_context(), kind=kind, name=name, code=code, webhook_url=webhook_url
        )
    except HubError as exc:
        _fail(exc.detail)
    print(
        json.dumps(
            {
                "partner_id": new.partner_id,
                "kind": new.kind,
                "code": new.code,
                "api_key": new.api_key,
                "webhook_secret": new.webhook_secret,
            }
        )
    )


@partners_app.command("rotate-key")
def partners_rotate_key(code: str) -> None:
    """Issue a new API key; the old one keeps working for 24 hours."""
    try:
        key = partner_admin.rotate_key(hub_context(), code)
    except HubError as exc:
        _fail(exc.detail)
    print(json.dumps({"code": code, "api_key": key}))


@partners_app.command("rotate-webhook-secret")
def partners_rotate_webhook_secret(
    code: str,
    overlap_hours: int = typer.Option(
        24, "--overlap-hours", min=0, help="how long the old secret keeps signing too"
    ),
) -> None:
    """Issue a new webhook secret; prints it once. Until the overlap ends, every event
    carries two signatures (new and old), so the partner can switch at its own pace."""
    try:
        rotated = partner_admin.rotate_webhook_secret(
            hub_context(), code, overlap=timedelta(hours=overlap_hours)
        )
    except HubError as exc:
        _fail(exc.detail)
    until = rotated.previous_valid_until.isoformat(timespec="seconds").replace("+00:00", "Z")
    print(
        json.dumps(
            {"code": code, "webhook_secret": rotated.webhook_secret, "previous_valid_until": until}
        )
    )


@partners_app.command("disable")
def partners_disable(code: str) -> None:
    """Disable a partner: every one of its keys stops working."""
    try:
        partner_admin.disable(hub_context(), code)
    except HubError as exc:
        _fail(exc.detail)
    err.print(f"partner {code} disabled")


@lines_app.command("import")
def lines_import(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
) -> None:
    """Import credit lines from a CSV file (id_number,name,phone,bank_code,limit_fen).

    UTF-8 (with or without a byte-order mark) or GBK/GB18030, as Excel saves it.
    """
    try:
        encoding = line_import.encoding_of(file)
    except line_import.NotText as exc:
        _fail(str(exc))
    migrate.upgrade()
    total = max(sum(1 for _ in file.open(encoding=encoding)) - 1, 0)
    with (
        file.open(encoding=encoding, newline="") as handle,
        Progress(
            TextColumn("importing lines"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=False,
        ) as bar,
    ):
        task = bar.add_task("import", total=total)
        ctx = hub_context()
        try:
            report = line_import.import_lines(
                ctx.engine,
                ctx.vault,
                line_import.read_rows(handle),
                clock.now,
                progress=lambda n: bar.advance(task, n),
            )
        except line_import.BadHeader as exc:
            _fail(str(exc), code=1)
    for problem in report.bad:
        print(problem)
    err.print(
        f"{report.rows} rows: {report.imported} imported, {report.skipped} skipped "
        f"(resident already holds a line), {len(report.bad)} bad"
    )
    sys.exit(1 if report.bad else 0)


@audit_app.command("person")
def audit_person(id_number: str) -> None:
    """Every use of the credit database about one person (the number is never shown)."""
    number = normalize_id_number(id_number)
    if number is None:
        _fail("that is not a valid resident identity number (GB 11643)")
        return
    rows = bureau.person_audit(hub_context(), number)
    table = Table(title=f"credit database use about {mask_id(number)}")
    for column in ("at (UTC)", "requested by", "purpose", "consent", "outcome", "reused"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.at.strftime("%Y-%m-%d %H:%M:%S"),
            row.requested_by,
            row.purpose,
            row.consent_id or "-",
            row.outcome,
            "yes" if row.reused else "no",
        )
    Console().print(table)
    err.print(f"{len(rows)} recorded uses")


def _prefect_command(args: list[str], env: dict[str, str]) -> NoReturn:
    """Become Prefect's own command (signals and exit status are its own)."""
    from credithub.supervisor import BIN

    os.execve(str(BIN / "prefect"), [str(BIN / "prefect"), *args], {**os.environ, **env})


def _prefect_home(settings: Settings) -> dict[str, str]:
    home = Path(os.environ.get("PREFECT_HOME") or Path(settings.home) / "prefect")
    home.mkdir(parents=True, exist_ok=True)
    return {"PREFECT_HOME": str(home)}


def _needs_prefect_api_url() -> None:
    if not os.environ.get("PREFECT_API_URL"):
        _fail(
            "set PREFECT_API_URL to a Prefect server's API, for example "
            "http://127.0.0.1:4200/api (started with `credithub prefect-server`)"
        )


def _prefect_database(settings: Settings, env: dict[str, str]) -> None:
    """Prefect's database created and at head, or a failure that says what to do."""
    from credithub.supervisor import BIN
    from hub.core import prefect_database

    upgrade = [str(BIN / "prefect"), "server", "database", "upgrade", "-y"]
    try:
        prefect_database.ensure_database(settings, upgrade, {**os.environ, **env})
    except prefect_database.Unavailable as exc:
        _fail(str(exc))


@app.command("prefect-server")
def prefect_server(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(4200, help="Port to listen on."),
    services: bool = typer.Option(
        True, help="Run the background services in this process (--no-services: apart)."
    ),
) -> None:
    """Run a Prefect API server (and UI) alone: on its own PostgreSQL database when the
    hub is on PostgreSQL, with Redis messaging when CREDITHUB_REDIS_URL is set."""
    from credithub import prefect_access, prefect_roles

    settings = get_settings()
    try:
        auth = prefect_access.server_auth(host, os.environ)
    except prefect_access.OpenServer as exc:
        _fail(str(exc))
    env = {
        **_prefect_home(settings),
        **prefect_roles.server_environment(settings),
        **prefect_access.environment(auth),
    }
    _prefect_database(settings, env)
    args = ["server", "start", "--host", host, "--port", str(port)]
    _prefect_command([*args] if services else [*args, "--no-services"], env)


@app.command("prefect-services")
def prefect_services() -> None:
    """Run Prefect's background services alone (scheduler, automations, late runs),
    beside servers started with --no-services; and mark Crashed the runs whose worker
    died (with PREFECT_API_URL set)."""
    import signal
    import subprocess
    import threading

    from credithub import prefect_roles, stuck_runs
    from credithub.supervisor import BIN

    settings = get_settings()
    env = {**_prefect_home(settings), **prefect_roles.server_environment(settings)}
    _prefect_database(settings, env)
    services = subprocess.Popen(
        [str(BIN / "prefect"), "server", "services", "start"], env={**os.environ, **env}
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda sig, _frame: services.send_signal(sig))
    stop = threading.Event()
    if os.environ.get("PREFECT_API_URL"):
        heartbeat = settings.flow_heartbeat_seconds
        threading.Thread(target=stuck_runs.watch, args=(heartbeat, stop), daemon=True).start()
    else:
        err.print(
            "[yellow]PREFECT_API_URL is not set: runs whose worker died stay Running "
            "(set it to a Prefect server's API to have them marked Crashed)[/yellow]"
        )
    code = services.wait()
    stop.set()
    raise typer.Exit(code)


@app.command("deploy")
def deploy() -> None:
    """Deploy prefect.yaml's deployments to the `credithub` work pool on PREFECT_API_URL."""
    import subprocess

    from credithub import prefect_roles
    from credithub.supervisor import BIN

    _needs_prefect_api_url()
    prefect_roles.ensure_work_pool()
    # Unset, so that prefect.yaml's pull step reads it from each worker at run time.
    env = {k: v for k, v in os.environ.items() if k != "CREDITHUB_PROJECT_DIR"}
    env |= {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}
    env |= prefect_access.environment(prefect_access.client_auth(os.environ))
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", "deploy", "--all"],
        cwd=prefect_roles.PROJECT_ROOT,
        env=env,
    )
    if done.returncode:
        _fail("prefect deploy failed (above)", done.returncode)
    err.print(
        f"[green]deployed[/green] every deployment of prefect.yaml to the work pool "
        f"{prefect_roles.WORK_POOL!r}: start workers with `credithub worker`"
    )


@app.command("worker")
def worker(
    name: str = typer.Option(None, help="The worker's name (default: host and process id)."),
) -> None:
    """Run a worker of the `credithub` work pool: it runs the deployments' flow runs,
    at most CREDITHUB_FLOW_RUNS_AT_ONCE at once."""
    import socket

    from credithub import prefect_roles

    _needs_prefect_api_url()
    settings = get_settings()
    name = name or f"{socket.gethostname()}-{os.getpid()}"
    env = {
        **prefect_roles.flow_environment(settings),
        **prefect_access.environment(prefect_access.client_auth(os.environ)),
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # a run starts within 2 s of being due
    }
    args = ["worker", "start", "--pool", prefect_roles.WORK_POOL, "--type", "process"]
    _prefect_command([*args, "--name", name, "--limit", str(settings.flow_runs_at_once)], env)


def _say(line: str) -> None:
    err.print(f"  {escape(line)}", soft_wrap=True)


@app.command("run")
def run_flow(
    flow_name: str = typer.Argument(..., help=f"one of: {', '.join(FLOWS)}"),
    as_of: str = typer.Option(
        None, "--as-of", help="run as of this business date (YYYY-MM-DD); default today"
    ),
    allow_future: bool = typer.Option(
        False, "--allow-future", help="allow an --as-of after today (acts on live data early)"
    ),
) -> None:
    """Run one deployment now on the Prefect server of `credithub up`, and wait for its end."""
    from credithub import runner

    if flow_name not in FLOWS:
        _fail(f"unknown flow {flow_name!r}; choose one of: {', '.join(FLOWS)}")
    settings = get_settings()
    today = clock.business_date(clock.now(), settings.business_timezone)
    try:
        day = runner.parse_as_of(as_of, today, allow_future)
    except ValueError as exc:
        _fail(str(exc))
    try:
        outcome = runner.run_now(settings, flow_name, day, on_state=_say)
    except runner.NotUp as exc:
        _fail(str(exc))
    except KeyboardInterrupt:
        _fail("stopped waiting; the run goes on in the Prefect UI", code=130)
    out = Console()
    for artifact in outcome.artifacts:
        out.print(artifact_view(artifact))
    colour = "green" if outcome.ok else "red"
    err.print(
        f"[{colour}]{outcome.deployment}: {outcome.state}[/{colour}] — {outcome.url}",
        soft_wrap=True,
    )
    if not outcome.ok:
        raise typer.Exit(1)


@app.command("demo")
def demo_days(
    days: int = typer.Option(7, "--days", min=1, help="business days to simulate"),
    visits_per_day: int = typer.Option(30, "--visits-per-day", min=0, help="patients a day"),
    enrolments_per_day: int = typer.Option(
        None, "--enrolments-per-day", min=0, help="default: a third of the visits, plus two"
    ),
    repayment_window_days: int = typer.Option(
        2, "--repayment-window-days", min=2, help="days to repay (the hub's default is 15)"
    ),
    database_url: str = typer.Option(
        None, "--database-url", help="a database of its own (emptied first); default SQLite"
    ),
    seed: int = typer.Option(1, help="the same seed replays the same residents and care"),
    firms_per_day: int = typer.Option(2, "--firms-per-day", min=0, help="loan applications a day"),
    default_after_days: int = typer.Option(
        45, "--default-after-days", min=1, help="days past due to default (the hub's is 90)"
    ),
) -> None:
    """Fast-forward N days of both programmes (enrolment, care, repayments, collections,
    settlement; loan applications, offers, loans, repayments, delinquency, claims, subsidies)."""
    from credithub import demo_days as sim
    from credithub import demo_report

    settings = get_settings()
    options = sim.Options(
        days,
        visits_per_day,
        enrolments_per_day,
        repayment_window_days,
        database_url,
        seed,
        firms_per_day=firms_per_day,
        default_after_days=default_after_days,
    )
    err.print(
        f"[bold]credithub demo[/bold]: {days} days from today (weekends included), "
        f"in {Path(settings.home) / 'demo-days'}; repayment window {repayment_window_days} days, "
        f"loans default at {default_after_days} days past due"
    )
    with Progress(
        TextColumn("simulating days"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
    ) as bar:
        task = bar.add_task("days", total=days)
        try:
            summary = sim.run_demo(settings, options, on_day=lambda _row: bar.advance(task))
        except RuntimeError as exc:
            bar.stop()
            _fail(str(exc))
            return
    err.print(f"Prefect: {summary.prefect}")
    wide = None if sys.stdout.isatty() else 150  # piped: no terminal to squeeze the table into
    Console(width=wide).print(demo_report.summary_table(summary))
    Console(width=wide).print(demo_report.loans_table(summary))
    demo_report.write_summary(Path(settings.home) / "demo-days" / "summary.json", summary)
    for failure in summary.failures:
        err.print(f"[red]BOOKS OFF:[/red] {failure}")
    if not summary.books_ok:
        raise typer.Exit(1)
    err.print(
        f"[green]books balance[/green]: trial balance {yuan_or_dash(summary.trial_balance_fen)} "
        "yuan; every settlement window settled"
    )


@recon_app.command("list")
def recon_list(status: str = typer.Option("open", help="open or resolved")) -> None:
    """The mismatches reconciliation found, newest first."""
    if status not in ("open", "resolved"):
        _fail(f"--status is open or resolved, not {status!r}")
    views = reconciliation_run.mismatches(hub_context(), status)
    Console().print(mismatch_table(views, status))
    err.print(f"{len(views)} {status} mismatches")


@recon_app.command("resolve")
def recon_resolve(mismatch_id: str, note: str = typer.Option(..., help="what was done")) -> None:
    """Mark a mismatch resolved, with a note of what was done about it."""
    try:
        reconciliation_run.resolve(hub_context(), mismatch_id, note)
    except HubError as exc:
        _fail(exc.detail)
    err.print(f"mismatch {mismatch_id} resolved")


@fund_app.command("deposit")
def fund_deposit(
    reference: str = typer.Option(..., help="the operator's own reference (unique per operator)"),
    amount_yuan: str = typer.Option(None, "--amount-yuan", help="e.g. 1000000.00"),
    amount_fen: int = typer.Option(None, "--amount-fen", help="the amount in fen instead"),
    operator: str = typer.Option(
        None, help="the operator's code (default: the only active operator)"
    ),
) -> None:
    """Add money to the fund; prints the deposit and the fund's new balance in yuan.

    The same reference and amount again is a replay (nothing is added twice)."""
    if (amount_yuan is None) == (amount_fen is None):
        _fail("give the amount once: --amount-yuan 1000000.00 or --amount-fen 100000000")
    try:
        fen = amount_fen if amount_yuan is None else fen_of_yuan(amount_yuan)
    except ValueError as exc:
        _fail(str(exc))
    try:
        outcome = fund.deposit_as_operator(
            hub_context(), operator_code=operator, amount_fen=fen, reference=reference
        )
    except DuplicateReference as exc:
        _fail(f"reference {reference!r} was used for another amount by {exc.existing_id}")
    except HubError as exc:
        _fail(exc.detail)
    print(deposit_line(outcome))


if __name__ == "__main__":
    app()
