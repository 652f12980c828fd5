"""The synchronous client: one method per API route, the event stream as an iterator, and
``claim(...)``, a context manager that waits until the claim holds, renews it while held and
releases it on exit."""

from __future__ import annotations

import contextlib
import threading
import time
from types import TracebackType
from typing import Any, TypeVar, Unpack

import httpx
from httpx_sse import connect_sse

from . import claims, models
from .discovery import ClientOptions, connection
from .errors import ApiError, ClaimNotHeld, NodeUnreachable, PlexusError, error_from_answer
from .routes import Call, Routes

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 30.0
"""How long a request may take; the node answers every route well within it."""


def _answer(call: Call[T], response: httpx.Response) -> T:
    if response.status_code >= 400:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        raise error_from_answer(response.status_code, body)
    return call.parse(response.text if call.text else response.json())


def _ignore(value: Any) -> None:
    """The parser of an answer whose success carries nothing to read."""


class Client:
    """A client of one node. Without ``base_url`` and ``token`` it finds the node running on
    the data directory (``data_dir``, ``PLEXUS_DATA_DIR``, the config file, the default), as
    the ``plexus`` CLI does. ``namespace`` None means the node's configured namespace."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.base_url, headers = connection(base_url, token, options.get("data_dir"))
        self.routes = Routes(options.get("namespace"))
        timeout = options.get("timeout_s", DEFAULT_TIMEOUT_S)
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def send(self, call: Call[T]) -> T:
        """Sends one call and reads its answer; a refusal raises the matching ApiError."""
        try:
            response = self._http.request(
                call.method, call.path, params=call.params, json=call.body
            )
        except httpx.TransportError as error:
            raise NodeUnreachable(f"cannot reach the node at {self.base_url}: {error}") from error
        return _answer(call, response)

    # One method per route.

    def health(self) -> models.Health:
        return self.send(self.routes.health())

    def status(self) -> models.Status:
        return self.send(self.routes.status())

    def node_info(self) -> models.NodeInfo:
        return self.send(self.routes.node_info())

    def peers(self) -> models.Peers:
        return self.send(self.routes.peers())

    def openapi(self) -> dict[str, Any]:
        return self.send(self.routes.openapi())

    def announce(self, card: models.Capability) -> models.Published:
        return self.send(self.routes.announce(card))

    def revoke(self, reason: str | None = None) -> models.Published:
        return self.send(self.routes.revoke(models.CapabilityRevoke(reason=reason)))

    def agents(
        self, *, skill: str | None = None, tag: str | None = None, text: str | None = None
    ) -> models.Agents:
        return self.send(self.routes.agents(skill, tag, text))

    def a2a_cards(
        self, *, skill: str | None = None, tag: str | None = None, text: str | None = None
    ) -> dict[str, Any]:
        """The namespace's live cards as A2A AgentCards, each with its Plexus signature."""
        return self.send(self.routes.a2a_cards(skill, tag, text))

    def agent_card(self) -> dict[str, Any]:
        """This node's agent's card as an A2A AgentCard (``/.well-known/agent-card.json``)."""
        return self.send(self.routes.agent_card())

    def post_claim(self, intent: models.Intent) -> models.Claimed:
        return self.send(self.routes.post_claim(intent))

    def get_claim(self, claim_id: str) -> models.Claim:
        return self.send(self.routes.get_claim(claim_id))

    def renew(self, claim_id: str, lease_ms: int) -> models.Claimed:
        return self.send(self.routes.renew(claim_id, lease_ms))

    def release(self, claim_id: str) -> models.Published:
        return self.send(self.routes.release(claim_id))

    def leases(self, *, resource: str | None = None, holder: str | None = None) -> models.Leases:
        return self.send(self.routes.leases(resource, holder))

    def timeline(self, *, from_ms: int | None = None, to_ms: int | None = None) -> dict[str, Any]:
        """Each resource's lease history over [from_ms, to_ms) (default: the last hour)."""
        return self.send(self.routes.timeline(from_ms, to_ms))

    def update_task(self, update: models.TaskUpdate) -> models.TaskUpdated:
        return self.send(self.routes.update_task(update))

    def tasks(self, *, state: str | None = None, context: str | None = None) -> models.Tasks:
        return self.send(self.routes.tasks(state, context))

    def task(self, task_id: str) -> models.Task:
        return self.send(self.routes.task(task_id))

    def constrain(self, constraint: models.Constraint) -> models.Published:
        return self.send(self.routes.constrain(constraint))

    def constraints(self) -> models.Constraints:
        return self.send(self.routes.constraints())

    def share_pattern(self, pattern: models.Pattern) -> models.Published:
        return self.send(self.routes.share_pattern(pattern))

    def patterns(self, *, topic: str | None = None) -> models.Patterns:
        return self.send(self.routes.patterns(topic))

    def publish(self, kind: str, body: Any) -> models.Published:
        return self.send(self.routes.publish(kind, body))

    def log(
        self,
        *,
        author: str | None = None,
        kind: str | None = None,
        after: int | None = None,
        limit: int | None = None,
    ) -> models.LogPage:
        return self.send(self.routes.log(author, kind, after, limit))

    def rejections(self, *, limit: int | None = None) -> models.Rejections:
        return self.send(self.routes.rejections(limit))

    def policy(self) -> models.PolicyState:
        return self.send(self.routes.policy())

    def publish_policy(self, policy: models.Policy) -> models.Published:
        return self.send(self.routes.publish_policy(policy))

    def members(self) -> models.Members:
        return self.send(self.routes.members())

    def metrics(self) -> str:
        return self.send(self.routes.metrics())

    def events(
        self,
        kinds: list[str] | None = None,
        *,
        resource: str | None = None,
        task: str | None = None,
        read_timeout_s: float | None = None,
    ) -> EventStream:
        """The node's change events as they happen, for ``kinds`` (event types such as
        ``claim.won``, or entry kinds): iterate over it, and close it (or use ``with``) when
        done. The stream is open when this returns, so nothing that happens afterwards is
        missed. Iteration ends when the node shuts down; with ``read_timeout_s`` it raises
        ``httpx.ReadTimeout`` after that long without a byte (the node sends a keep-alive
        every 15 s)."""
        params = self.routes.events(kinds, resource, task)
        timeout = httpx.Timeout(DEFAULT_TIMEOUT_S, read=read_timeout_s)
        return EventStream(self._http, params, timeout)

    def claim(
        self,
        resource: str,
        *,
        lease_ms: int = 60_000,
        action: str = "write",
        priority: int | None = None,
        note: str | None = None,
        wait_s: float = 60.0,
    ) -> HeldClaim:
        """A context manager: on entry claims ``resource`` and waits up to ``wait_s`` until the
        claim holds (raising :class:`ClaimNotHeld`, with the claim released, when it does not);
        while inside, renews it every third of its lease; on exit releases it."""
        intent = models.Intent(
            resource=resource, action=action, lease_ms=lease_ms, priority=priority, note=note
        )
        return HeldClaim(self, intent, wait_s)


class EventStream:
    """An open ``GET /v1/events`` stream: an iterator of :class:`models.Event`."""

    def __init__(self, http: httpx.Client, params: dict[str, str], timeout: httpx.Timeout) -> None:
        self._context = connect_sse(http, "GET", "/v1/events", params=params, timeout=timeout)
        try:
            source = self._context.__enter__()
        except httpx.TransportError as error:
            raise NodeUnreachable(f"cannot open the event stream: {error}") from error
        if source.response.status_code >= 400:
            source.response.read()
            self.close()
            _answer(Call("GET", "/v1/events", _ignore), source.response)
        self._messages = source.iter_sse()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> models.Event:
        try:
            message = next(self._messages)
        except httpx.ReadTimeout:
            raise
        except httpx.TransportError as error:
            raise NodeUnreachable(f"the event stream broke: {error}") from error
        return claims.parse_event(message.event, message.data)

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._context.__exit__(None, None, None)


class HeldClaim:
    """A claim held for the length of a ``with`` block; see :meth:`Client.claim`."""

    def __init__(self, client: Client, intent: models.Intent, wait_s: float) -> None:
        self._client = client
        self.intent = intent
        self._wait_s = wait_s
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.claim: models.Claim | None = None
        self.renew_error: PlexusError | None = None
        """Why renewing stopped, when it did: the claim may no longer hold."""

    @property
    def claim_id(self) -> str:
        if self.claim is None:
            raise RuntimeError("the claim is made on entering the `with` block")
        return self.claim.claim_id

    def __enter__(self) -> HeldClaim:
        self.claim = self._claim_and_wait()
        self._renewer = threading.Thread(
            target=self._renew_loop, daemon=True, name=f"plexus-renew-{self.intent.resource}"
        )
        self._renewer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        try:
            self._client.release(self.claim_id)
        except ApiError:
            # Already over (expired, or released elsewhere): nothing left to give back,
            # and an error of the block itself matters more.
            if kind is None and self.renew_error is None:
                raise

    def _claim_and_wait(self) -> models.Claim:
        deadline = time.monotonic() + self._wait_s
        # Subscribe before claiming, so the event that hands us the lease cannot slip past.
        with self._client.events(
            claims.CLAIM_EVENT_KINDS, resource=self.intent.resource, read_timeout_s=self._wait_s
        ) as events:
            claimed = self._client.post_claim(self.intent).claim
            if claimed.standing == "holding":
                return claimed
            claim_id = claimed.claim_id
            try:
                for event in events:
                    outcome = claims.verdict(event, claim_id, held=False)
                    if outcome == "won":
                        return self._client.get_claim(claim_id)
                    if outcome == "ended" or time.monotonic() > deadline:
                        break
            except httpx.ReadTimeout:
                pass
            standing = self._client.get_claim(claim_id)
            if standing.standing == "holding":
                return standing
            with contextlib.suppress(ApiError):
                self._client.release(claim_id)  # Unless it already ended.
            raise ClaimNotHeld(
                f"the claim on {self.intent.resource} did not come to hold within "
                f"{self._wait_s} s (it is {standing.standing}); it was released",
                claim_id,
                standing.standing,
            )

    def _renew_loop(self) -> None:
        interval = claims.renew_interval_s(self.intent.lease_ms)
        while not self._stop.wait(interval):
            try:
                self.claim = self._client.renew(self.claim_id, self.intent.lease_ms).claim
            except PlexusError as error:
                self.renew_error = error
                return
