"""What the sync and async ``claim(...)`` context managers share: reading the node's claim
events for one claim, and the renewal rhythm."""

from __future__ import annotations

import json
from typing import Literal

from .models import Event

CLAIM_EVENT_KINDS = ["claim.won", "claim.ended", "claim.lost"]
"""The event types that move one of this agent's claims."""

RENEWALS_PER_LEASE = 3
"""A held claim is renewed this many times per lease, so two renewals can fail in a row (a
slow node, a dropped connection) before the lease runs out."""


def parse_event(event_type: str, data: str) -> Event:
    """An SSE message of ``GET /v1/events`` as an :class:`Event`."""
    payload = json.loads(data) if data else None
    if event_type == "lagged" or not isinstance(payload, dict):
        return Event(type=event_type, data=payload)
    return Event.model_validate(payload)


def verdict(event: Event, claim_id: str, held: bool) -> Literal["won", "ended", "lost"] | None:
    """How ``event`` moves the claim ``claim_id``: ``won`` when it now holds, ``ended`` when
    it expired or was released, ``lost`` when a held claim was displaced. A waiting claim is
    told ``claim.lost`` at first (it did not win the race); that is not an end."""
    data = event.data if isinstance(event.data, dict) else {}
    claim = data.get("claim") if isinstance(data.get("claim"), dict) else {}
    if not isinstance(claim, dict) or claim.get("claim_id") != claim_id:
        return None
    if event.type == "claim.won":
        return "won"
    if event.type == "claim.ended":
        return "ended"
    if event.type == "claim.lost" and held:
        return "lost"
    return None


def renew_interval_s(lease_ms: int) -> float:
    """Seconds between renewals of a claim with a lease of ``lease_ms``."""
    return max(lease_ms / 1000 / RENEWALS_PER_LEASE, 0.05)
