"""`credithub up`: start every part, print where it is, stop them all on Ctrl-C.

Parts run as child processes in their own process groups (a worker started
without job control would ignore SIGTERM otherwise), each logging to
`.credithub/logs/<part>.log`. Prefect runs offline with its home inside
`.credithub/` and an explicit PREFECT_API_URL, so no process starts a
temporary server of its own.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from credithub import demo
from hub.core import migrate
from hub.settings import Settings, get_settings

console = Console(stderr=True)
BIN = Path(sys.executable).parent
HIS_URL, HIS_KEY = "http://127.0.0.1:8121", "his-dev-key"


@dataclass
class Part:
    name: str
    argv: list[str]
    health: str  # a URL that answers 2xx once the part is ready
    address: str  # what a person opens
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def prefect_env(settings: Settings, port: int) -> dict[str, str]:
    return {
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_HOME": str(Path(settings.home) / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }


def plan(settings: Settings, ports: dict[str, int], up_file: Path) -> list[Part]:
    py, api = str(BIN / "python"), f"http://{settings.api_host}:{settings.api_port}"
    his_url = f"http://127.0.0.1:{ports['his']}" if "his" in ports else HIS_URL  # the demo's
    parts = [
        Part(
            "prefect",
            [
                str(BIN / "prefect"),
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(ports["prefect"]),
            ],
            f"http://127.0.0.1:{ports['prefect']}/api/health",
            f"http://127.0.0.1:{ports['prefect']}",
        ),
        Part(
            "credit-bureau",
            [
                py,
                "-m",
                "simulators.credit_bureau",
                "--port",
                str(ports["bureau"]),
                "--api-key",
                settings.bureau_api_key,
                "--seed",
                "1",
            ],
            f"{settings.bureau_url}/_sim/knobs",
            settings.bureau_url,
        ),
    ]
    for code, system in settings.bank_systems.items():
        port = system["url"].rsplit(":", 1)[1]
        parts.append(
            Part(
                f"bank-{code}",
                [
                    py,
                    "-m",
                    "simulators.bank",
                    "--port",
                    port,
                    "--api-key",
                    system["api_key"],
                    "--seed",
                    "1",
                ],
                f"{system['url']}/_sim/knobs",
                system["url"],
            )
        )
    parts += [
        Part("api", [py, "-m", "credithub.cli", "api"], f"{api}/v1/health", f"{api}/docs"),
        Part(
            "hospitals",
            [
                py,
                "-m",
                "simulators.hospital",
                "--port",
                his_url.rsplit(":", 1)[1],
                "--api-key",
                HIS_KEY,
                "--hub-url",
                api,
                "--bureau-url",
                settings.bureau_url,
                "--bureau-key",
                settings.bureau_api_key,
                "--partners-file",
                str(up_file),
                "--seed",
                "1",
                "--rate",
                str(settings.demo_rate),
            ],
            f"{his_url}/_sim/knobs",
            f"{his_url} (the hospitals' systems, sending demo traffic)",
        ),
        Part("flows", [py, "-m", "flows.serve"], "", "deployments in the Prefect UI"),
    ]
    return parts


def _wait_healthy(part: Part, deadline_s: float) -> None:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if part.process is not None and part.process.poll() is not None:
            raise RuntimeError(f"{part.name} exited with {part.process.returncode}; see its log")
        if not part.health:
            return
        try:
            headers = {"Authorization": f"Bearer {_key_for(part)}"} if _key_for(part) else {}
            if httpx.get(part.health, timeout=1, headers=headers).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{part.name} did not become ready in {deadline_s:.0f} s; see its log")


def _key_for(part: Part) -> str | None:
    if part.argv and "--api-key" in part.argv:
        return part.argv[part.argv.index("--api-key") + 1]
    return None


def start(part: Part, env: dict[str, str], logs: Path) -> None:
    log = (logs / f"{part.name}.log").open("ab")
    part.process = subprocess.Popen(
        part.argv,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def start_together(parts: list[Part], env: dict[str, str], logs: Path, deadline_s: float) -> None:
    """Start every part at once, then wait until each is ready (all within `deadline_s`).

    For parts that do not need each other to start (the demo's world); if one
    fails or is late, every part is stopped and the error raised.
    """
    try:
        for part in parts:
            start(part, env, logs)
        end = time.monotonic() + deadline_s
        for part in parts:
            _wait_healthy(part, max(1.0, end - time.monotonic()))
    except BaseException:
        stop(parts)
        raise


def stop(parts: list[Part]) -> None:
    """SIGTERM each group (newest first), then SIGKILL what is left after 10 s."""
    for part in reversed(parts):
        if part.process is not None and part.process.poll() is None:
            os.killpg(part.process.pid, signal.SIGTERM)
    end = time.monotonic() + 10
    for part in reversed(parts):
        if part.process is None:
            continue
        try:
            part.process.wait(timeout=max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(part.process.pid, signal.SIGKILL)


def run_all() -> None:
    settings = get_settings()
    home = Path(settings.home)
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    up_file = home / "up.json"
    previous = demo.read_up_file(up_file)
    ports = {"prefect": 4200, "bureau": int(settings.bureau_url.rsplit(":", 1)[1])}
    bank_systems = settings.bank_systems or {
        code: {"url": f"http://127.0.0.1:{8111 + i}", "api_key": f"{code.lower()}-dev-key"}
        for i, (code, _) in enumerate(demo.BANKS)
    }
    hospital_systems = settings.hospital_systems or {
        code: {"url": HIS_URL, "api_key": HIS_KEY} for code, _ in demo.HOSPITALS
    }
    settings = settings.model_copy(
        update={"bank_systems": bank_systems, "hospital_systems": hospital_systems}
    )
    env = {
        **os.environ,
        **prefect_env(settings, ports["prefect"]),
        "CREDITHUB_HOME": str(home),
        "CREDITHUB_BANK_SYSTEMS": json.dumps(bank_systems),
        "CREDITHUB_HOSPITAL_SYSTEMS": json.dumps(hospital_systems),
    }
    console.print(
        "[bold]credithub up[/bold]: migrations, then every part (logs in .credithub/logs)"
    )
    migrate.upgrade(settings)
    keys = demo.ensure_partners(settings, previous.get("partner_keys", {}), webhook_url=None)
    content = {
        "partner_keys": keys,
        "bank_systems": bank_systems,
        "hospital_systems": hospital_systems,
        "partners": [{"kind": k, "code": c, "name": n} for k, c, n in demo.demo_partners()],
    }
    demo.write_up_file(up_file, content)  # the hospitals' stand-in reads it as it starts
    parts = plan(settings, ports, up_file)
    stopping = False

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        for part in parts:
            console.print(f"  starting {part.name} ...")
            start(part, env, logs)
            _wait_healthy(part, 90 if part.name == "prefect" else 30)
        demo.write_up_file(up_file, {"addresses": {p.name: p.address for p in parts}, **content})
        _print_addresses(parts, up_file)
        while not stopping:
            for part in parts:
                if part.process is not None and part.process.poll() is not None:
                    console.print(
                        f"[red]{part.name} stopped ({part.process.returncode}); "
                        f"stopping everything — see .credithub/logs/{part.name}.log[/red]"
                    )
                    stopping = True
            time.sleep(0.5)
    except RuntimeError as exc:
        console.print(f"[red]{exc}[/red]")
    finally:
        console.print("stopping every part ...")
        stop(parts)
        console.print("stopped.")


def _print_addresses(parts: list[Part], up_file: Path) -> None:
    table = Table(title="credithub is up — Ctrl-C stops everything")
    table.add_column("part")
    table.add_column("address")
    for part in parts:
        table.add_row(part.name, part.address)
    console.print(table)
    console.print(f"Addresses and the demo partners' API keys: {up_file} (yours only)")
