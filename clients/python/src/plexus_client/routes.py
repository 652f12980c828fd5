"""Every route of the node's API as a ``Call``: method, path, query, body and how to read the
answer. The sync and async clients only send these, so both cover the same routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from . import models

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the parser of its answer."""

    method: str
    path: str
    parse: Callable[[Any], T]
    params: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    text: bool = False


def _json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    return str(value)


def _params(**values: str | int | None) -> dict[str, str]:
    return {key: str(value) for key, value in values.items() if value is not None}


def _segment(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True)
class Routes:
    """Builds the calls of every route; ``namespace`` None means the node's configured one."""

    namespace: str | None = None

    def _ns(self, **values: str | int | None) -> dict[str, str]:
        return _params(namespace=self.namespace, **values)

    def health(self) -> Call[models.Health]:
        return Call("GET", "/v1/health", models.Health.model_validate)

    def status(self) -> Call[models.Status]:
        return Call("GET", "/v1/status", models.Status.model_validate)

    def node_info(self) -> Call[models.NodeInfo]:
        return Call("GET", "/v1/node", models.NodeInfo.model_validate)

    def peers(self) -> Call[models.Peers]:
        return Call("GET", "/v1/peers", models.Peers.model_validate)

    def openapi(self) -> Call[dict[str, Any]]:
        return Call("GET", "/v1/openapi.json", _json_object)

    def announce(self, card: models.Capability) -> Call[models.Published]:
        return Call(
            "POST", "/v1/capability", models.Published.model_validate, self._ns(), card.to_wire()
        )

    def revoke(self, revoke: models.CapabilityRevoke) -> Call[models.Published]:
        return Call(
            "POST",
            "/v1/capability/revoke",
            models.Published.model_validate,
            self._ns(),
            revoke.to_wire(),
        )

    def agents(self, skill: str | None, tag: str | None, text: str | None) -> Call[models.Agents]:
        params = self._ns(skill=skill, tag=tag, q=text)
        return Call("GET", "/v1/agents", models.Agents.model_validate, params)

    def a2a_cards(
        self, skill: str | None, tag: str | None, text: str | None
    ) -> Call[dict[str, Any]]:
        params = self._ns(skill=skill, tag=tag, q=text)
        return Call("GET", "/v1/a2a/cards", _json_object, params)

    def agent_card(self) -> Call[dict[str, Any]]:
        return Call("GET", "/.well-known/agent-card.json", _json_object)

    def post_claim(self, intent: models.Intent) -> Call[models.Claimed]:
        return Call(
            "POST", "/v1/claims", models.Claimed.model_validate, self._ns(), intent.to_wire()
        )

    def get_claim(self, claim_id: str) -> Call[models.Claim]:
        return Call(
            "GET", f"/v1/claims/{_segment(claim_id)}", models.Claim.model_validate, self._ns()
        )

    def renew(self, claim_id: str, lease_ms: int) -> Call[models.Claimed]:
        path = f"/v1/claims/{_segment(claim_id)}/renew"
        body = models.Renew(lease_ms=lease_ms).to_wire()
        return Call("POST", path, models.Claimed.model_validate, self._ns(), body)

    def release(self, claim_id: str) -> Call[models.Published]:
        path = f"/v1/claims/{_segment(claim_id)}/release"
        return Call("POST", path, models.Published.model_validate, self._ns())

    def leases(self, resource: str | None, holder: str | None) -> Call[models.Leases]:
        params = self._ns(resource=resource, holder=holder)
        return Call("GET", "/v1/leases", models.Leases.model_validate, params)

    def timeline(self, from_ms: int | None, to_ms: int | None) -> Call[dict[str, Any]]:
        params = self._ns(**{"from": from_ms, "to": to_ms})
        return Call("GET", "/v1/timeline", _json_object, params)

    def update_task(self, update: models.TaskUpdate) -> Call[models.TaskUpdated]:
        return Call(
            "POST", "/v1/tasks", models.TaskUpdated.model_validate, self._ns(), update.to_wire()
        )

    def tasks(self, state: str | None, context: str | None) -> Call[models.Tasks]:
        params = self._ns(state=state, context=context)
        return Call("GET", "/v1/tasks", models.Tasks.model_validate, params)

    def task(self, task_id: str) -> Call[models.Task]:
        return Call("GET", f"/v1/tasks/{_segment(task_id)}", models.Task.model_validate, self._ns())

    def constrain(self, constraint: models.Constraint) -> Call[models.Published]:
        return Call(
            "POST",
            "/v1/constraints",
            models.Published.model_validate,
            self._ns(),
            constraint.to_wire(),
        )

    def constraints(self) -> Call[models.Constraints]:
        return Call("GET", "/v1/constraints", models.Constraints.model_validate, self._ns())

    def share_pattern(self, pattern: models.Pattern) -> Call[models.Published]:
        # `data` may legitimately be JSON null, so it is sent even when unset.
        body = pattern.to_wire() | {"data": pattern.data}
        return Call("POST", "/v1/patterns", models.Published.model_validate, self._ns(), body)

    def patterns(self, topic: str | None) -> Call[models.Patterns]:
        return Call("GET", "/v1/patterns", models.Patterns.model_validate, self._ns(topic=topic))

    def publish(self, kind: str, body: Any) -> Call[models.Published]:
        request = {"kind": kind, "body": body}
        return Call("POST", "/v1/entries", models.Published.model_validate, self._ns(), request)

    def log(
        self, author: str | None, kind: str | None, after: int | None, limit: int | None
    ) -> Call[models.LogPage]:
        params = _params(
            namespace=self.namespace, author=author, kind=kind, after=after, limit=limit
        )
        return Call("GET", "/v1/log", models.LogPage.model_validate, params)

    def rejections(self, limit: int | None) -> Call[models.Rejections]:
        return Call("GET", "/v1/rejections", models.Rejections.model_validate, _params(limit=limit))

    def policy(self) -> Call[models.PolicyState]:
        return Call("GET", "/v1/policy", models.PolicyState.model_validate, self._ns())

    def publish_policy(self, policy: models.Policy) -> Call[models.Published]:
        return Call(
            "POST", "/v1/policy", models.Published.model_validate, self._ns(), policy.to_wire()
        )

    def members(self) -> Call[models.Members]:
        return Call("GET", "/v1/members", models.Members.model_validate, self._ns())

    def metrics(self) -> Call[str]:
        return Call("GET", "/v1/metrics", _text, text=True)

    def events(
        self, kinds: list[str] | None, resource: str | None, task: str | None
    ) -> dict[str, str]:
        """The query of ``GET /v1/events``."""
        joined = ",".join(kinds) if kinds else None
        return self._ns(kind=joined, resource=resource, task=task)
