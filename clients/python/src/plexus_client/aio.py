"""The asynchronous client: the same routes as :class:`plexus_client.Client`, awaited, the
event stream as an async iterator, and ``claim(...)`` as an async context manager."""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx
from httpx_sse import aconnect_sse

from . import claims, models
from .client import DEFAULT_TIMEOUT_S, _answer, _ignore
from .discovery import ClientOptions, connection
from .errors import ApiError, ClaimNotHeld, NodeUnreachable, PlexusError
from .routes import Call, Routes

T = TypeVar("T")


class AsyncClient:
    """A client of one node for asyncio code; see :class:`plexus_client.Client` for the
    arguments and for what each method does."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.base_url, headers = connection(base_url, token, options.get("data_dir"))
        self.routes = Routes(options.get("namespace"))
        timeout = options.get("timeout_s", DEFAULT_TIMEOUT_S)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(self, call: Call[T]) -> T:
        try:
            response = await self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as error:
            raise NodeUnreachable(f"cannot reach the node at {self.base_url}: {error}") from error
        return _answer(call, response)

    async def health(self) -> models.Health:
        return await self.send(self.routes.health())

    async def status(self) -> models.Status:
        return await self.send(self.routes.status())

    async def node_info(self) -> models.NodeInfo:
        return await self.send(self.routes.node_info())

    async def peers(self) -> models.Peers:
        return await self.send(self.routes.peers())

    async def openapi(self) -> dict[str, Any]:
        return await self.send(self.routes.openapi())

    async def announce(self, card: models.Capability) -> models.Published:
        return await self.send(self.routes.announce(card))

    async def revoke(self, reason: str | None = None) -> models.Published:
        return await self.send(self.routes.revoke(models.CapabilityRevoke(reason=reason)))

    async def agents(
        self, *, skill: str | None = None, tag: str | None = None, text: str | None = None
    ) -> models.Agents:
        return await self.send(self.routes.agents(skill, tag, text))

    async def a2a_cards(
        self, *, skill: str | None = None, tag: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        return await self.send(self.routes.a2a_cards(skill, tag, text))

    async def agent_card(self) -> dict[str, Any]:
        return await self.send(self.routes.agent_card())

    async def post_claim(self, intent: models.Intent) -> models.Claimed:
        return await self.send(self.routes.post_claim(intent))

    async def get_claim(self, claim_id: str) -> models.Claim:
        return await self.send(self.routes.get_claim(claim_id))

    async def renew(self, claim_id: str, lease_ms: int) -> models.Claimed:
        return await self.send(self.routes.renew(claim_id, lease_ms))

    async def release(self, claim_id: str) -> models.Published:
        return await self.send(self.routes.release(claim_id))

    async def leases(
        self, *, resource: str | None = None, holder: str | None = None
    ) -> models.Leases:
        return await self.send(self.routes.leases(resource, holder))

    async def timeline(
        self, *, from_ms: int | None = None, to_ms: int | None = None
    ) -> dict[str, Any]:
        """Each resource's lease history over [from_ms, to_ms) (default: the last hour)."""
        return await self.send(self.routes.timeline(from_ms, to_ms))

    async def update_task(self, update: models.TaskUpdate) -> models.TaskUpdated:
        return await self.send(self.routes.update_task(update))

    async def tasks(self, *, state: str | None = None, context: str | None = None) -> models.Tasks:
        return await self.send(self.routes.tasks(state, context))

    async def task(self, task_id: str) -> models.Task:
        return await self.send(self.routes.task(task_id))

    async def constrain(self, constraint: models.Constraint) -> models.Published:
        return await self.send(self.routes.constrain(constraint))

    async def constraints(self) -> models.Constraints:
        return await self.send(self.routes.constraints())

    async def share_pattern(self, pattern: models.Pattern) -> models.Published:
        return await self.send(self.routes.share_pattern(pattern))

    async def patterns(self, *, topic: str | None = None) -> models.Patterns:
        return await self.send(self.routes.patterns(topic))

    async def publish(self, kind: str, body: Any) -> models.Published:
        return await self.send(self.routes.publish(kind, body))

    async def log(
        self,
        *,
        author: str | None = None,
        kind: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> models.LogPage:
        return await self.send(self.routes.log(author, kind, after, limit))

    async def rejections(self, *, limit: int | None = None) -> models.Rejections:
        return await self.send(self.routes.rejections(limit))

    async def policy(self) -> models.PolicyState:
        return await self.send(self.routes.policy())

    async def publish_policy(self, policy: models.Policy) -> models.Published:
        return await self.send(self.routes.publish_policy(policy))

    async def members(self) -> models.Members:
        return await self.send(self.routes.members())

    async def metrics(self) -> str:
        return await self.send(self.routes.metrics())

    async def events(
        self,
        kinds: list[str] | None = None,
        *,
        resource: str | None = None,
        task: str | None = None,
        read_timeout_s: float | None = None,
    ) -> AsyncEventStream:
        """Opens the event stream (it is open when this returns); ``async for`` over it and
        ``await stream.aclose()`` (or ``async with``) when done."""
        params = self.routes.events(kinds, resource, task)
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=read_timeout_s)
        stream = AsyncEventStream(self._http, params, timeout)
        await stream.open()
        return stream

    def claim(
        self,
        resource: str,
        *,
        lease_ms: int = 60_000,
        action: str = "write",
        priority: int | None = None,
        note: str | None = None,
        wait_s: float = 60.0,
    ) -> AsyncHeldClaim:
        """``async with node.claim(...)``: see :meth:`plexus_client.Client.claim`."""
        intent = models.Intent(
            resource=resource, action=action, lease_ms=lease_ms, priority=priority, note=note
        )
        return AsyncHeldClaim(self, intent, wait_s)


class AsyncEventStream:
    """An open ``GET /v1/events`` stream: an async iterator of :class:`models.Event`."""

    def __init__(
        self, http: httpx.AsyncClient, params: dict[str, str], timeout: httpx.Timeout
    ) -> None:
        self._context = aconnect_sse(http, "GET", "/v1/events", params=params, timeout=timeout)

    async def open(self) -> None:
        try:
            source = await self._context.__aenter__()
        except httpx.TransportError as error:
            raise NodeUnreachable(f"cannot open the event stream: {error}") from error
        if source.response.status_code >= 400:
            await source.response.aread()
            await self.aclose()
            _answer(Call("GET", "/v1/events", _ignore), source.response)
        self._messages = source.aiter_sse()

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> models.Event:
        try:
            message = await self._messages.__anext__()
        except httpx.ReadTimeout:
            raise
        except httpx.TransportError as error:
            raise NodeUnreachable(f"the event stream broke: {error}") from error
        return claims.parse_event(message.event, message.data)

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._context.__aexit__(None, None, None)


class AsyncHeldClaim:
    """A claim held for the length of an ``async with`` block."""

    def __init__(self, client: AsyncClient, intent: models.Intent, wait_s: float) -> None:
        self._client = client
        self.intent = intent
        self._wait_s = wait_s
        self._renewer: asyncio.Task[None] | None = None
        self.claim: models.Claim | None = None
        self.renew_error: PlexusError | None = None

    @property
    def claim_id(self) -> str:
        if self.claim is None:
            raise RuntimeError("the claim is made on entering the `async with` block")
        return self.claim.claim_id

    async def __aenter__(self) -> AsyncHeldClaim:
        self.claim = await self._claim_and_wait()
        self._renewer = asyncio.create_task(self._renew_loop())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
        try:
            await self._client.release(self.claim_id)
        except ApiError:
            if kind is None and self.renew_error is None:
                raise

    async def _claim_and_wait(self) -> models.Claim:
        deadline = time.monotonic() + self._wait_s
        events = await self._client.events(
            claims.CLAIM_EVENT_KINDS, resource=self.intent.resource, read_timeout_s=self._wait_s
        )
        async with events:
            claimed = (await self._client.post_claim(self.intent)).claim
            if claimed.standing == "holding":
                return claimed
            claim_id = claimed.claim_id
            try:
                async for event in events:
                    outcome = claims.verdict(event, claim_id, held=False)
                    if outcome == "won":
                        return await self._client.get_claim(claim_id)
                    if outcome == "ended" or time.monotonic() > deadline:
                        break
            except httpx.ReadTimeout:
                pass
            standing = await self._client.get_claim(claim_id)
            if standing.standing == "holding":
                return standing
            with contextlib.suppress(ApiError):
                await self._client.release(claim_id)
            raise ClaimNotHeld(
                f"the claim on {self.intent.resource} did not come to hold within "
                f"{self._wait_s} s (it is {standing.standing}); it was released",
                claim_id,
                standing.standing,
            )

    async def _renew_loop(self) -> None:
        interval = claims.renew_interval_s(self.intent.lease_ms)
        while True:
            await asyncio.sleep(interval)
            try:
                self.claim = (await self._client.renew(self.claim_id, self.intent.lease_ms)).claim
            except PlexusError as error:
                self.renew_error = error
                return
