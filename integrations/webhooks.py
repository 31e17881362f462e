"""Sending signed events to partners' webhook URLs (CONTRACT.md §3)."""

from __future__ import annotations

import urllib3

from integrations.partner_client import PartnerPool


class WebhookSender:
    """POSTs one signed event; a 2xx within the timeout counts as delivered."""

    def __init__(self, http: PartnerPool, timeout_seconds: float = 10.0):
        self.http, self.timeout = http, urllib3.Timeout(total=timeout_seconds)

    def send(self, url: str, raw_body: bytes, signature: str) -> str | None:
        """None when delivered, else why not (status or error kind, no body)."""
        headers = {"Content-Type": "application/json", "CreditHub-Signature": signature}
        try:
            where = urllib3.util.parse_url(url)
        except urllib3.exceptions.LocationParseError:
            return "not a URL"
        if where.scheme not in ("http", "https") or not where.host:
            return "not an http(s) URL"
        if where.auth:  # https://user:password@host/...: Basic authentication, as httpx sent it
            headers.update(urllib3.make_headers(basic_auth=where.auth))
        try:
            response = self.http.request(
                "POST",
                url,
                body=raw_body,
                headers=headers,
                timeout=self.timeout,
                retries=False,  # a failed delivery is tried again on the event's schedule
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            return type(exc).__name__
        return None if 200 <= response.status < 300 else f"HTTP {response.status}"
