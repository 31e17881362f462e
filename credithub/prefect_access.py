"""Who may talk to the Prefect server that `credithub up` starts.

On loopback (the default) only this machine reaches it, as before: no
authentication. Asked to listen beyond loopback (CREDITHUB_PREFECT_HOST), the
server would let anyone on the network read every run and start any deployment,
so it must require Prefect's own basic authentication: the server takes
PREFECT_SERVER_API_AUTH_STRING, and every client of it (the flows' runner, the
API, `credithub run`) sends the same string as PREFECT_API_AUTH_STRING. Without
the string `up` refuses to start anything.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping

SERVER_AUTH = "PREFECT_SERVER_API_AUTH_STRING"  # the server requires it (Prefect's setting)
CLIENT_AUTH = "PREFECT_API_AUTH_STRING"  # clients send it (Prefect's setting)
_WILDCARDS = ("0.0.0.0", "::")  # every interface: local clients still use loopback


class OpenServer(RuntimeError):
    """The Prefect server would listen beyond loopback without authentication."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def server_auth(host: str, environ: Mapping[str, str]) -> str | None:
    """The auth string the server at `host` requires (None: none), or OpenServer
    when it would listen beyond loopback without one."""
    auth = environ.get(SERVER_AUTH, "").strip() or None
    if auth is None and not is_loopback(host):
        raise OpenServer(
            f"the Prefect server would listen on {host}, beyond loopback, open to anyone who "
            f"reaches it: set {SERVER_AUTH} (for example "
            f'`export {SERVER_AUTH}="admin:$(openssl rand -hex 16)"`) so that it requires '
            "authentication, or let it listen on 127.0.0.1 (unset CREDITHUB_PREFECT_HOST)"
        )
    return auth


def client_auth(environ: Mapping[str, str]) -> str | None:
    """What a client sends: its own PREFECT_API_AUTH_STRING, else the server's string
    (the operator who started `up` with it has it in the environment already)."""
    return (environ.get(CLIENT_AUTH) or environ.get(SERVER_AUTH) or "").strip() or None


def environment(auth: str | None) -> dict[str, str]:
    """The variables for the server and its clients: both sides of the string."""
    return {SERVER_AUTH: auth, CLIENT_AUTH: auth} if auth else {}


def headers(auth: str | None) -> dict[str, str]:
    """Basic authentication as Prefect's clients send it, for plain HTTP calls."""
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def client_host(host: str) -> str:
    """The address this machine's clients use for a server listening on `host`."""
    if host in _WILDCARDS:
        return "127.0.0.1"
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
