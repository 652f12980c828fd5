"""Typed models of every request body and answer of the node's HTTP API (its OpenAPI document,
`GET /v1/openapi.json`, is the contract).

Request bodies use the API's camelCase names on the wire and snake_case in Python. Answers keep
unknown fields (``extra="allow"``), so a client keeps working against a newer node.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TaskState = Literal[
    "TASK_STATE_SUBMITTED",
    "TASK_STATE_WORKING",
    "TASK_STATE_INPUT_REQUIRED",
    "TASK_STATE_AUTH_REQUIRED",
    "TASK_STATE_COMPLETED",
    "TASK_STATE_FAILED",
    "TASK_STATE_CANCELED",
    "TASK_STATE_REJECTED",
]
"""A2A's task states; the last four are terminal."""

Standing = Literal["holding", "waiting", "blocked", "rate_limited", "expired", "released"]


class RequestBody(BaseModel):
    """A body sent to the node: camelCase on the wire, unknown fields refused here already."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the node expects (optional fields left out when unset)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class Answer(BaseModel):
    """An answer from the node; fields a newer node adds are kept, not refused."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# Request bodies.


class Skill(RequestBody):
    id: str
    name: str
    description: str | None = None
    tags: list[str] | None = None


class Capability(RequestBody):
    """This agent's capability card (`POST /v1/capability`)."""

    name: str
    ttl_ms: int = Field(ge=1, le=2_592_000_000)
    description: str | None = None
    version: str | None = None
    url: str | None = None
    skills: list[Skill] | None = None


class CapabilityRevoke(RequestBody):
    reason: str | None = None


class Intent(RequestBody):
    """A claim on a resource (`POST /v1/claims`)."""

    resource: str
    action: str
    lease_ms: int = Field(ge=1, le=86_400_000)
    note: str | None = None
    priority: int | None = Field(default=None, ge=0, le=255)


class Renew(RequestBody):
    lease_ms: int = Field(ge=1, le=86_400_000)


class TaskStatusUpdate(RequestBody):
    state: TaskState
    message: str | None = None


class TaskUpdate(RequestBody):
    """A task-state report (`POST /v1/tasks`)."""

    task_id: str
    status: TaskStatusUpdate
    context_id: str | None = None
    references: list[str] | None = None


class Constraint(RequestBody):
    """A constraint on resources; `rule` is one of `{"type": "exclusive"}`,
    `{"type": "maxHolders", "limit": n}`, `{"type": "notBefore", "at": ms}` or
    `{"type": "rateLimit", "claims": n, "windowMs": w}`."""

    resource: str
    rule: dict[str, Any]
    ttl_ms: int = Field(ge=1, le=2_592_000_000)
    note: str | None = None


class Pattern(RequestBody):
    topic: str
    summary: str
    confidence: float = Field(ge=0.0, le=1.0)
    data: Any = None
    references: list[str] | None = None


class EntryRequest(RequestBody):
    """`POST /v1/entries`: an entry of any kind its route does not cover (`x-` kinds)."""

    kind: str
    body: Any


class Policy(RequestBody):
    """A policy body (docs/PROTOCOL.md section 10)."""

    version: int = Field(ge=1)
    effective_from: int | None = None
    roles: dict[str, list[str]] | None = None
    members: list[dict[str, Any]] | None = None
    revoked: list[dict[str, Any]] | None = None
    limits: dict[str, Any] | None = None
    note: str | None = None


# Answers.


class Health(Answer):
    status: str
    agent_id: str


class FeedHead(Answer):
    namespace: str
    author: str
    seq: int
    id: str


class Status(Answer):
    agent_id: str
    network: dict[str, Any]
    log: dict[str, int]
    feeds: list[FeedHead]
    quarantined: list[FeedHead]


class NodeInfo(Answer):
    agent_id: str
    peer_id: str
    version: str
    namespace: str
    namespaces: list[str]
    listen_addrs: list[str]
    entries_in_view: int


class Peer(Answer):
    peer_id: str
    agent_id: str | None = None
    score: float | None = None
    dialed: bool = False
    mesh: list[str] = []


class Peers(Answer):
    peers: list[Peer]


class EntryInfo(Answer):
    entry_id: str
    namespace: str
    author: str
    seq: int
    kind: str
    timestamp_ms: int


class Published(Answer):
    entry: EntryInfo


class SkillInfo(Answer):
    id: str
    name: str
    description: str = ""
    tags: list[str] = []


class Card(Answer):
    author: str
    name: str
    description: str
    version: str
    url: str | None
    skills: list[SkillInfo]
    published_ms: int
    expires_ms: int
    entry_id: str


class Agents(Answer):
    namespace: str
    agents: list[Card]


class Claim(Answer):
    claim_id: str
    author: str
    resource: str
    action: str
    note: str
    priority: int
    claimed_ms: int
    expires_ms: int
    standing: Standing
    position: int | None = None
    until_ms: int | None = None
    late: bool = False
    """This node received the claim (or its author's renewal or release of it) by backfill
    more than the clock-skew window after its timestamp: made across a long partition, or
    back-dated (docs/PROTOCOL.md §9.4). It still counts in the lease order."""


class Claimed(Answer):
    entry: EntryInfo
    claim: Claim


class Lease(Answer):
    resource: str
    max_holders: int
    holders: list[Claim]
    waiting: list[Claim]
    excluded: list[Claim]


class Leases(Answer):
    namespace: str
    at_ms: int
    leases: list[Lease]


class TaskHistoryItem(Answer):
    entry_id: str
    author: str
    timestamp_ms: int
    state: TaskState
    message: str
    references: list[str]
    rejected: str | None


class Task(Answer):
    task_id: str
    context_id: str
    state: TaskState
    message: str
    created_by: str
    updated_by: str
    created_ms: int
    updated_ms: int
    history: list[TaskHistoryItem]


class TaskUpdated(Answer):
    entry: EntryInfo
    task: Task | None


class Tasks(Answer):
    namespace: str
    tasks: list[Task]


class ConstraintInfo(Answer):
    entry_id: str
    author: str
    resource: str
    rule: dict[str, Any]
    note: str
    published_ms: int
    expires_ms: int


class Constraints(Answer):
    namespace: str
    constraints: list[ConstraintInfo]


class PatternInfo(Answer):
    entry_id: str
    author: str
    topic: str
    summary: str
    data: Any
    confidence: float
    references: list[str]
    published_ms: int


class Patterns(Answer):
    namespace: str
    patterns: list[PatternInfo]


class LogEntry(EntryInfo):
    arrival: int
    body: Any


class LogPage(Answer):
    entries: list[LogEntry]
    last_arrival: int | None


class Rejection(Answer):
    counter: int
    time_ms: int
    reason: str
    detail: str
    input_hash: str
    input_len: int
    source: str
    rule: str | None = None
    policy_version: int | None = None


class Rejections(Answer):
    rejections: list[Rejection]


class PolicyState(Answer):
    """`GET /v1/policy`; an open namespace has `governed` false and no other fields of note."""

    namespace: str
    governed: bool
    admins: list[str] = []
    in_force: dict[str, Any] | None = Field(default=None, alias="inForce")
    latest: dict[str, Any] | None = None
    history: list[dict[str, Any]] = []


class Members(Answer):
    namespace: str
    governed: bool
    policy_version: int | None = Field(default=None, alias="policyVersion")
    admins: list[str] = []
    members: list[dict[str, Any]] = []
    revoked: list[dict[str, Any]] = []


class Event(Answer):
    """A change event from `GET /v1/events`. A subscriber that fell behind gets one event of
    type ``lagged`` (``data == {"missed": n}``, no id) and should re-read what it follows."""

    type: str
    id: int | None = None
    namespace: str | None = None
    kind: str | None = None
    resource: str | None = None
    task_id: str | None = None
    time_ms: int | None = None
    data: Any = None
