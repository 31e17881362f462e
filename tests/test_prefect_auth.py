"""The Prefect server `credithub up` starts (credithub/prefect_access.py): open on
loopback as before; beyond loopback only with Prefect's basic authentication,
and `up` refuses to start anything without it.

The refusal and the wiring need no Prefect server; one test starts a real one
(about 10 s) to see it turn away a request without the string.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from credithub import prefect_access, supervisor
from credithub.prefect_access import CLIENT_AUTH, SERVER_AUTH, OpenServer
from hub.settings import Settings
from tests.live import free_port
from tests.test_cli import _command

AUTH = "admin:test-only-auth-string"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_auth_string(host: str) -> None:
    assert prefect_access.is_loopback(host)
    assert prefect_access.server_auth(host, {}) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "hub.example"])
def test_beyond_loopback_the_auth_string_is_required(host: str) -> None:
    assert not prefect_access.is_loopback(host)
    with pytest.raises(OpenServer, match=SERVER_AUTH):
        prefect_access.server_auth(host, {})
    with pytest.raises(OpenServer):
        prefect_access.server_auth(host, {SERVER_AUTH: "  "})  # blank is none
    assert prefect_access.server_auth(host, {SERVER_AUTH: AUTH}) == AUTH


def test_up_refuses_an_open_server_before_starting_anything(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CREDITHUB_", "PREFECT_"))}
    env.update(CREDITHUB_HOME=str(home), CREDITHUB_PREFECT_HOST="0.0.0.0", COLUMNS="200")
    r = subprocess.run(
        [*_command(), "up"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 1, r.stderr
    assert "0.0.0.0" in r.stderr and SERVER_AUTH in r.stderr and "Traceback" not in r.stderr
    assert not (home / "logs").exists() and not (home / "up.json").exists()  # nothing started


def test_the_server_gets_the_string_and_every_part_the_client_side() -> None:
    settings = Settings(prefect_host="0.0.0.0")
    (prefect, *_) = supervisor.plan(settings, {"prefect": 4200, "bureau": 8101}, Path("up.json"))
    assert prefect.argv[prefect.argv.index("--host") + 1] == "0.0.0.0"
    assert prefect.address == "http://127.0.0.1:4200"  # this machine's clients: loopback
    env = supervisor.prefect_env(settings, 4200, AUTH)
    assert env[SERVER_AUTH] == env[CLIENT_AUTH] == AUTH
    assert env["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"

    on_lan = Settings(prefect_host="10.1.2.3")
    assert (
        supervisor.prefect_env(on_lan, 4200, AUTH)["PREFECT_API_URL"] == "http://10.1.2.3:4200/api"
    )

    loopback = supervisor.prefect_env(Settings(), 4200)  # as before: no string anywhere
    assert SERVER_AUTH not in loopback and CLIENT_AUTH not in loopback
    # `credithub run` in another shell: the server's string serves as the client's
    assert prefect_access.client_auth({SERVER_AUTH: AUTH}) == AUTH
    assert prefect_access.client_auth({CLIENT_AUTH: "other", SERVER_AUTH: AUTH}) == "other"
    assert prefect_access.client_auth({}) is None


@pytest.mark.slow
def test_a_server_started_with_the_string_turns_away_requests_without_it(
    tmp_path: Path,
) -> None:
    # Loopback here (a test opens nothing to the network); the string is honoured
    # wherever the server listens.
    settings = Settings(home=tmp_path)
    port = free_port()
    (part,) = [p for p in supervisor.plan(settings, {"prefect": port, "bureau": 8101}, tmp_path)
               if p.name == "prefect"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(supervisor.prefect_env(settings, port, AUTH))
    supervisor.start(part, env, tmp_path)
    try:
        supervisor.wait_healthy(part, 60)  # /api/health answers without the string
        query = f"{part.address}/api/deployments/filter"
        assert httpx.post(query, json={}, timeout=5).status_code == 401
        wrong = prefect_access.headers("admin:wrong")
        assert httpx.post(query, json={}, headers=wrong, timeout=5).status_code == 401
        right = prefect_access.headers(AUTH)
        assert httpx.post(query, json={}, headers=right, timeout=5).status_code == 200
    finally:
        supervisor.stop([part])
