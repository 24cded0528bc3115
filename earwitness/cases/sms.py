"""Sending follow-up SMS: a small protocol and one HTTP-gateway implementation.

Centres use whatever SMS provider they have; most accept an HTTP POST. The gateway
gets ``{"to": ..., "text": ..., "reference": ...}`` as JSON with ``Authorization:
Bearer <token>`` and answers 2xx; anything else raises so the job retries with
back-off. Replies come back to ``POST /api/follow-ups/sms-reply``.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import httpx

from earwitness.config import Settings
from earwitness.errors import ServiceUnavailable


class SmsSender(Protocol):
    def send(self, to: str, text: str) -> str:
        """Send one message; returns the gateway's reference (or ours)."""
        ...


class HttpGatewaySender:
    def __init__(self, url: str, token: str | None, timeout_s: float = 10.0) -> None:
        self.url, self.token, self.timeout_s = url, token, timeout_s

    def send(self, to: str, text: str) -> str:
        reference = uuid.uuid4().hex
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            resp = httpx.post(
                self.url,
                json={"to": to, "text": text, "reference": reference},
                headers=headers,
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"SMS gateway {self.url} unreachable: {exc}") from None
        if resp.status_code // 100 != 2:
            raise ServiceUnavailable(f"SMS gateway answered {resp.status_code}: {resp.text[:200]}")
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return str(body.get("id") or reference) if isinstance(body, dict) else reference


def sender_from_settings(settings: Settings) -> SmsSender | None:
    if not settings.sms_gateway_url:
        return None
    token = settings.sms_gateway_token.get_secret_value() if settings.sms_gateway_token else None
    return HttpGatewaySender(settings.sms_gateway_url, token, settings.sms_timeout_s)
