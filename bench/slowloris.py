"""`make bench`: slow clients against `credithub api`, as a new user would run it.

The API starts with its defaults (one process, SQLite in a temporary
CREDITHUB_HOME). A slowloris in another process then keeps --connections (5,000)
connections at it for --seconds (30): each sends the start of a request head
and one more header line every --interval (2 s), never finishing, and, like the
classic tool, reopens on its next round whatever the server has closed.

A normal client measures `GET /v1/health` with no one else about, and again
during the attack: --requests (200) on new connections and as many on one
kept-alive connection, a pair every --spacing (0.1 s), so that they sample 20 s
of the attack, which comes in waves, rather than an instant. The server's memory (VmRSS) is read at
the start (after a warm-up), at its peak, and --settle (10) seconds after the
attack ends; its open files too. The attack is made --rounds (2) times, one
after the other. Results go to .credithub/bench/slowloris.json.

Targets: during the attacks, no failed request and a p99 within 5x the quiet one
(plus 5 ms, for the noise of a shared machine); 10 s after each, memory within
20 MiB of the start (CPython keeps some free space in its arenas; see README),
and no more after the second attack than after the first (2 MiB).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from support import OUT, ROOT, children, free_port, say, spawn, wait_until_up

HOST = "127.0.0.1"


# --- the attack (in its own process: its work must not slow the measuring) ---------


async def slow_connection(port: int, interval: float, delay: float, stats: dict[str, int],
                          stop: asyncio.Event) -> None:  # fmt: skip
    """One slowloris connection: a head that never ends, reopened when closed."""
    await asyncio.sleep(delay)  # the connections start spread over a second
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            stats["failed_to_connect"] += 1
            await asyncio.sleep(interval)
            continue
        stats["opened"] += 1
        stats["open"] += 1
        stats["most_open"] = max(stats["most_open"], stats["open"])
        try:
            writer.write(b"GET /v1/health HTTP/1.1\r\nHost: bench\r\n")
            line = 0
            while not stop.is_set():
                try:
                    data = await asyncio.wait_for(reader.read(1024), interval)
                except TimeoutError:
                    writer.write(b"X-Slow-%d: a\r\n" % line)
                    line += 1
                    continue
                stats["answered_503" if data.startswith(b"HTTP/1.1 503") else "closed"] += 1
                break
        except OSError:
            stats["closed"] += 1
        finally:
            stats["open"] -= 1
            writer.close()
        await asyncio.sleep(interval)  # reopened on the next round


async def attack(port: int, connections: int, interval: float, stop: Event) -> dict[str, int]:
    stats = dict.fromkeys(
        ("opened", "open", "most_open", "closed", "answered_503", "failed_to_connect"), 0
    )
    stopping = asyncio.Event()
    tasks = [
        asyncio.create_task(slow_connection(port, interval, i / connections, stats, stopping))
        for i in range(connections)
    ]
    while not stop.is_set():
        await asyncio.sleep(0.2)
    stopping.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats


def run_attack(port: int, connections: int, interval: float, stop: Event,
               report: multiprocessing.Queue[dict[str, int]]) -> None:  # fmt: skip
    started, cpu = time.monotonic(), time.process_time()
    stats = asyncio.run(attack(port, connections, interval, stop))
    # its share of a core: on a small machine it competes with the server it attacks
    stats["cpu_percent"] = round(100 * (time.process_time() - cpu) / (time.monotonic() - started))
    report.put(stats)


# --- the normal client and the server's figures -------------------------------------


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    max_ms: float
    failed: int


MODES = ("new connection", "kept alive")


def latencies(port: int, requests: int, spacing: float) -> dict[str, dict[str, float]]:
    """`requests` GET /v1/health in each mode, a pair every `spacing` seconds, so that
    they sample the whole period (an attack comes in waves); failed: an error or not
    200. By mode, asdict(Latency)."""
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    failed = dict.fromkeys(MODES, 0)
    kept = http.client.HTTPConnection(HOST, port, timeout=10)
    due = time.monotonic()
    for _ in range(requests):
        for mode in MODES:
            conn = (
                kept if mode == "kept alive" else http.client.HTTPConnection(HOST, port, timeout=10)
            )
            start = time.perf_counter()
            try:
                conn.request("GET", "/v1/health")
                answer = conn.getresponse()
                answer.read()
                failed[mode] += answer.status != 200
            except (OSError, http.client.HTTPException):
                failed[mode] += 1
                conn.close()  # http.client reconnects on the next request
            times[mode].append((time.perf_counter() - start) * 1000)
            if conn is not kept:
                conn.close()
        due += spacing
        time.sleep(max(0.0, due - time.monotonic()))
    kept.close()
    result = {}
    for mode, samples in times.items():
        ordered = sorted(samples)
        result[mode] = asdict(Latency(
            p50_ms=round(statistics.median(ordered), 2),
            p99_ms=round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            max_ms=round(ordered[-1], 2),
            failed=failed[mode],
        ))  # fmt: skip
    return result


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@dataclass
class Watch:
    """The server's peak memory and open files, sampled in a thread."""

    pid: int
    peak_rss_mib: float = 0.0
    peak_open_files: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.wait(0.2):
            try:
                self.peak_rss_mib = max(self.peak_rss_mib, rss_mib(self.pid))
                self.peak_open_files = max(self.peak_open_files, open_files(self.pid))
            except (OSError, RuntimeError):
                return


def raise_own_fd_limit(connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = connections + 500
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"{connections} connections need {wanted} open files; the hard "
                         f"limit is {hard} (lower --connections)")  # fmt: skip
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


# --- the run ---------------------------------------------------------------------


def one_attack(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    """An attack of --seconds, the normal client measured once it is at full
    strength; then --settle seconds of quiet. The server's peaks and what is left."""
    say(f"attack: {args.connections} slow connections for {args.seconds:g} s")
    watch = Watch(pid)
    watcher = threading.Thread(target=watch.run, daemon=True)
    watcher.start()
    stop, report = multiprocessing.Event(), multiprocessing.Queue()
    attacker = multiprocessing.Process(
        target=run_attack, args=(port, args.connections, args.interval, stop, report)
    )
    started, cpu = time.monotonic(), cpu_seconds(pid)
    attacker.start()
    time.sleep(min(6.0, args.seconds / 5))  # the attack at full strength
    under_attack = latencies(port, args.requests, args.spacing)
    time.sleep(max(0.0, started + args.seconds - time.monotonic()))
    stop.set()
    server_cpu = (cpu_seconds(pid) - cpu) / (time.monotonic() - started)
    stats = report.get(timeout=60)
    attacker.join(timeout=30)
    say(f"attack over; waiting {args.settle:g} s")
    time.sleep(args.settle)
    watch.stop.set()
    watcher.join()
    return {
        "latency": under_attack,
        "server_cpu_share": round(server_cpu, 2),  # of one core, during the attack
        "peak_rss_mib": round(watch.peak_rss_mib, 1),
        "rss_mib_after": round(rss_mib(pid), 1),
        "peak_open_files": watch.peak_open_files,
        "open_files_after": open_files(pid),
        "attacker": stats,
    }


def measure(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    latencies(port, 50, 0)  # warm-up: the first requests import and connect
    quiet = latencies(port, args.requests, args.spacing)
    time.sleep(2)
    return {
        "load_average_at_start": round(os.getloadavg()[0], 2),
        "connections": args.connections,
        "seconds": args.seconds,
        "settle": args.settle,
        "rss_mib_start": round(rss_mib(pid), 1),
        "open_files_start": open_files(pid),
        "latency_quiet": quiet,
        # A second attack: what the first left behind is reused, not added to.
        "attacks": [one_attack(args, port, pid) for _ in range(args.rounds)],
    }


def report(result: dict[str, Any]) -> bool:
    attacks = result["attacks"]
    load = result["load_average_at_start"]
    print(f"\nslowloris: {result['connections']} connections for {result['seconds']:g} s, "
          f"{len(attacks)} times, against `credithub api` (its defaults); load average "
          f"{load:g} at the start on {os.cpu_count()} cores")  # fmt: skip
    print(f"\n{'GET /v1/health':<34}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'failed':>8}")
    rows = [("quiet", result["latency_quiet"])]
    rows += [(f"attack {n}", attack["latency"]) for n, attack in enumerate(attacks, 1)]
    for when, modes in rows:
        for mode, lat in modes.items():
            label = f"{when}, {mode}"
            print(f"{label:<34}{lat['p50_ms']:>9.2f}{lat['p99_ms']:>9.2f}{lat['max_ms']:>9.2f}"
                  f"{lat['failed']:>8}")  # fmt: skip
    settle = f"{result['settle']:g} s after"
    print(f"\n{'the server':<34}{'memory (VmRSS, MiB)':>20}{'open files':>12}")
    print(f"{'at the start':<34}{result['rss_mib_start']:>20.1f}{result['open_files_start']:>12}")
    for n, attack in enumerate(attacks, 1):
        print(f"{f'attack {n}: peak':<34}{attack['peak_rss_mib']:>20.1f}"
              f"{attack['peak_open_files']:>12}")  # fmt: skip
        print(f"{f'attack {n}: {settle}':<34}{attack['rss_mib_after']:>20.1f}"
              f"{attack['open_files_after']:>12}")  # fmt: skip
    print()
    for n, attack in enumerate(attacks, 1):
        a = attack["attacker"]
        print(f"attacker {n}: {a['opened']} connections opened, at most {a['most_open']} open"
              f" at once; {a['closed']} closed by the server, {a['answered_503']} answered 503,"
              f" {a['failed_to_connect']} failed to connect; busy {a['cpu_percent']}% of a core,"
              f" the server {attack['server_cpu_share']:.0%}")  # fmt: skip
    targets = []
    for mode, quiet in result["latency_quiet"].items():
        worst = max((attack["latency"][mode] for attack in attacks), key=lambda x: x["p99_ms"])
        failed = sum(attack["latency"][mode]["failed"] for attack in attacks)
        targets.append((f"{mode}: no failures under attack", failed == 0))
        targets.append((f"{mode}: p99 under attack <= 5x quiet + 5 ms",
                        worst["p99_ms"] <= 5 * quiet["p99_ms"] + 5))  # fmt: skip
    start, after = result["rss_mib_start"], [attack["rss_mib_after"] for attack in attacks]
    targets.append((f"memory {settle} each attack within 20 MiB of the start",
                    max(after) <= start + 20))  # fmt: skip
    if len(after) > 1:
        targets.append(("memory not growing from one attack to the next (2 MiB)",
                        max(after[1:]) <= after[0] + 2))  # fmt: skip
    print()
    for name, met in targets:
        print(f"  [{'met' if met else 'MISSED'}] {name}")
    return all(met for _, met in targets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--spacing", type=float, default=0.1, help="seconds between requests")
    parser.add_argument("--settle", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="attacks, one after another")
    args = parser.parse_args()
    raise_own_fd_limit(args.connections)  # the server, a child, inherits it too

    OUT.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="credithub-slowloris-") as home, children() as started:
        env = {"CREDITHUB_HOME": home, "CREDITHUB_DATABASE_URL": "", "CREDITHUB_SECRET_KEY": ""}
        env = {**env, "CREDITHUB_API_PORT": str(port)}
        log = (OUT / "slowloris-server.log").open("wb")
        command = [str(Path(sys.executable).parent / "credithub"), "api"]
        api = spawn("credithub api", command, env, f"http://{HOST}:{port}/v1/health", log)
        started.append(api)
        wait_until_up(api)
        result = measure(args, port, api.process.pid)
    path = OUT / "slowloris.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    met = report(result)
    print(f"\nwritten to {path.relative_to(ROOT)}")
    sys.exit(0 if met else 1)


if __name__ == "__main__":
    main()
