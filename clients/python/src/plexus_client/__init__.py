"""Python client of a Plexus node's local HTTP API: sync (:class:`Client`) and asyncio
(:class:`AsyncClient`), typed answers, errors carrying the node's code, rule and reason."""

from . import models
from .aio import AsyncClient, AsyncEventStream, AsyncHeldClaim
from .client import Client, EventStream, HeldClaim
from .discovery import NodeAddress, find_node, resolve_data_dir
from .errors import (
    ApiError,
    BadRequest,
    ClaimNotHeld,
    Conflict,
    NodeUnreachable,
    NoNodeError,
    NotFound,
    PlexusError,
    PolicyViolation,
    Unauthorized,
    Unavailable,
)
from .models import Capability, Constraint, Intent, Pattern, Policy, Skill, TaskUpdate

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncEventStream",
    "AsyncHeldClaim",
    "BadRequest",
    "Capability",
    "ClaimNotHeld",
    "Client",
    "Conflict",
    "Constraint",
    "EventStream",
    "HeldClaim",
    "Intent",
    "NoNodeError",
    "NodeAddress",
    "NodeUnreachable",
    "NotFound",
    "Pattern",
    "PlexusError",
    "Policy",
    "PolicyViolation",
    "Skill",
    "TaskUpdate",
    "Unauthorized",
    "Unavailable",
    "find_node",
    "models",
    "resolve_data_dir",
]
