"""A partner's webhook endpoint, as the tests and the soak need one: it keeps each
delivery (the raw body and the `Credithub-Signature` header) and answers 200.
Serve it with `credithub.threaded_server.serve`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Delivery:
    body: bytes
    signature: str

    @property
    def event_id(self) -> str:
        return str(json.loads(self.body)["event_id"])


class WebhookReceiver:
    """An ASGI app; `received` lists the deliveries in the order they arrived."""

    def __init__(self) -> None:
        self.received: list[Delivery] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the sender died mid-request (a crash test): nothing was delivered
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        signature = dict(scope["headers"]).get(b"credithub-signature", b"").decode()
        self.received.append(Delivery(body, signature))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
