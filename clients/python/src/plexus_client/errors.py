"""Exceptions: every refusal of the node carries its status, code, message and field, and a
policy refusal its rule, policy version and when to retry."""

from __future__ import annotations

from typing import Any


class PlexusError(Exception):
    """Anything that went wrong talking to a Plexus node."""


class NoNodeError(PlexusError):
    """No node runs on the data directory (no ``api.addr``), or its token cannot be read."""


class NodeUnreachable(PlexusError):
    """The node's address is known but nothing answers there."""


class ApiError(PlexusError):
    """The node refused a request. ``code`` is the node's stable error code (``bad_field``,
    ``not_found``, ``conflict``, ``policy_violation``, ...), ``field`` the offending field when
    there is one."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        rule: str | None = None,
        policy_version: int | None = None,
        retry_after_ms: int | None = None,
    ) -> None:
        where = f" (field {field})" if field else ""
        super().__init__(f"the node answered {status} {code}{where}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.rule = rule
        self.policy_version = policy_version
        self.retry_after_ms = retry_after_ms


class BadRequest(ApiError):
    """400, 413 or 422: the request itself is wrong; ``field`` names what to change."""


class Unauthorized(ApiError):
    """401: the bearer token is missing or wrong."""


class NotFound(ApiError):
    """404: no such claim, task, card or route."""


class Conflict(ApiError):
    """409: the current state forbids the request (an illegal task transition, someone
    else's claim)."""


class PolicyViolation(ApiError):
    """403 or 429: the namespace's policy refuses the entry; ``rule`` and ``policy_version``
    say why, ``retry_after_ms`` when to retry a rate-limited request."""


class Unavailable(ApiError):
    """503 or another server-side failure: try again later."""


class ClaimNotHeld(PlexusError):
    """A claim did not come to hold its lease within the wait, or lost it."""

    def __init__(self, message: str, claim_id: str, standing: str) -> None:
        super().__init__(message)
        self.claim_id = claim_id
        self.standing = standing


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: PolicyViolation,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    422: BadRequest,
    429: PolicyViolation,
}


def error_from_answer(status: int, body: Any) -> ApiError:
    """The exception for an error answer, from its JSON body (or whatever came instead)."""
    kind = _BY_STATUS.get(status, Unavailable)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        # Not the API's JSON error (a layer below it answered, such as the body-size limit):
        # the status still says what kind of error it is.
        return kind(status, f"http_{status}", str(body))

    def text(key: str) -> str | None:
        value = error.get(key)
        return value if isinstance(value, str) else None

    def number(key: str) -> int | None:
        value = error.get(key)
        return value if isinstance(value, int) else None

    return kind(
        status,
        text("code") or "unknown",
        text("message") or "",
        field=text("field"),
        rule=text("rule"),
        policy_version=number("policyVersion"),
        retry_after_ms=number("retryAfterMs"),
    )
