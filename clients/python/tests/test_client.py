"""The client against real nodes: every route, errors with the node's reason, the event
iterator, and claims held, renewed, raced and released."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Cluster, Node, run_plexus, wait_for
from plexus_client import (
    AsyncClient,
    BadRequest,
    Capability,
    ClaimNotHeld,
    Client,
    Conflict,
    Constraint,
    Intent,
    NoNodeError,
    NotFound,
    Pattern,
    PolicyViolation,
    Skill,
    TaskUpdate,
    Unauthorized,
)
from plexus_client.models import TaskStatusUpdate
from plexus_client.routes import Routes


def task_update(task_id: str, state: str, message: str = "") -> TaskUpdate:
    return TaskUpdate(task_id=task_id, status=TaskStatusUpdate(state=state, message=message))


def test_the_client_finds_the_node_from_its_data_directory(node: Node) -> None:
    with Client(data_dir=node.data_dir) as client:
        assert client.health().agent_id == node.agent_id
        assert client.node_info().namespace == "team"
    with Client(node.api_url, node.token) as explicit:
        assert explicit.status().agent_id == node.agent_id


def test_no_running_node_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NoNodeError, match="plexus run"):
        Client(data_dir=tmp_path)


def test_a_wrong_token_is_refused_with_the_nodes_reason(node: Node) -> None:
    with Client(node.api_url, "0" * 64) as client, pytest.raises(Unauthorized) as refused:
        client.leases()
    assert refused.value.status == 401
    assert refused.value.code == "unauthorized"
    assert "api.token" in refused.value.message


def test_the_client_has_a_call_for_every_route_of_the_openapi_document(node: Node) -> None:
    routes = Routes()
    covered: set[tuple[str, str]] = set()
    for name, method in inspect.getmembers(routes, inspect.ismethod):
        if name.startswith("_") or name == "events":
            continue
        arguments: list[Any] = []
        for parameter in inspect.signature(method).parameters.values():
            arguments.append(sample_argument(parameter.name))
        call = method(*arguments)
        path = call.path.replace("CLAIM", "{claim_id}").replace("TASK", "{task_id}")
        covered.add((call.method.lower(), path))
    covered.add(("get", "/v1/events"))
    # `/mcp` is MCP's JSON-RPC endpoint, for MCP clients (tests/test_mcp.py), not this client.
    covered |= {("post", "/mcp"), ("get", "/mcp"), ("delete", "/mcp")}
    # `/ui/` serves the web page's static files, for browsers (web/tests), not this client.
    covered |= {("get", "/ui/"), ("get", "/ui/{path}")}
    with node.client() as client:
        document = client.openapi()
    documented = {
        (verb, path)
        for path, item in document["paths"].items()
        for verb in item
        if verb != "parameters"
    }
    assert documented == covered


def sample_argument(name: str) -> Any:
    samples: dict[str, Any] = {
        "claim_id": "CLAIM",
        "task_id": "TASK",
        "lease_ms": 1000,
        "kind": "x-note",
        "body": {},
        "card": Capability(name="n", ttl_ms=1),
        "intent": Intent(resource="r", action="a", lease_ms=1),
        "update": task_update("t", "TASK_STATE_SUBMITTED"),
        "constraint": Constraint(resource="r", rule={"type": "exclusive"}, ttl_ms=1),
        "pattern": Pattern(topic="t", summary="s", confidence=0.5),
    }
    if name == "revoke":
        from plexus_client.models import CapabilityRevoke

        return CapabilityRevoke()
    if name == "policy":
        from plexus_client.models import Policy

        return Policy(version=1)
    return samples.get(name)


def test_every_kind_is_published_and_read_back(node: Node) -> None:
    with node.client() as client:
        card = Capability(
            name="coder-1",
            ttl_ms=3_600_000,
            description="writes Rust",
            skills=[Skill(id="rust", name="Rust", tags=["code"])],
        )
        assert client.announce(card).entry.kind == "capability"
        (found,) = client.agents(tag="code").agents
        assert (found.name, found.author, found.skills[0].tags) == (
            "coder-1",
            node.agent_id,
            ["code"],
        )
        assert client.agents(tag="nothing").agents == []

        claimed = client.post_claim(Intent(resource="repo/x", action="write", lease_ms=60_000))
        assert claimed.claim.standing == "holding"
        claim_id = claimed.claim.claim_id
        assert client.get_claim(claim_id).resource == "repo/x"
        renewed = client.renew(claim_id, 120_000).claim
        assert renewed.expires_ms > claimed.claim.expires_ms
        (lease,) = client.leases(resource="repo/x").leases
        assert [holder.claim_id for holder in lease.holders] == [claim_id]
        client.release(claim_id)
        assert client.get_claim(claim_id).standing == "released"

        client.update_task(task_update("T-1", "TASK_STATE_SUBMITTED", "please"))
        working = client.update_task(task_update("T-1", "TASK_STATE_WORKING", "on it")).task
        assert working is not None
        assert working.state == "TASK_STATE_WORKING"
        assert [item.state for item in client.task("T-1").history] == [
            "TASK_STATE_SUBMITTED",
            "TASK_STATE_WORKING",
        ]
        assert [task.task_id for task in client.tasks(state="TASK_STATE_WORKING").tasks] == ["T-1"]

        client.constrain(
            Constraint(resource="deploy/*", rule={"type": "maxHolders", "limit": 2}, ttl_ms=60_000)
        )
        (constraint,) = client.constraints().constraints
        assert constraint.rule == {"type": "maxHolders", "limit": 2}
        client.share_pattern(
            Pattern(topic="ci", summary="cache the target", confidence=0.9, data={"hits": 3})
        )
        (pattern,) = client.patterns(topic="ci").patterns
        assert (pattern.summary, pattern.data) == ("cache the target", {"hits": 3})

        note = client.publish("x-note", {"text": "hello"}).entry
        page = client.log(kind="x-note")
        assert [(entry.entry_id, entry.body) for entry in page.entries] == [
            (note.entry_id, {"text": "hello"})
        ]
        assert client.revoke("done").entry.kind == "capability.revoke"
        assert client.agents().agents == []

        assert client.policy().governed is False
        assert client.members().governed is False
        assert client.rejections().rejections == []
        assert "plexus_" in client.metrics()
        assert client.status().log["entries"] >= 10


def test_refusals_carry_the_nodes_code_and_field(node: Node) -> None:
    with node.client() as client:
        client.update_task(task_update("T-2", "TASK_STATE_SUBMITTED"))
        client.update_task(task_update("T-2", "TASK_STATE_COMPLETED"))
        with pytest.raises(Conflict) as illegal:
            client.update_task(task_update("T-2", "TASK_STATE_WORKING"))
        assert illegal.value.status == 409
        with pytest.raises(BadRequest) as bad:
            client.publish("x-note", {"text": "a"} | {"bad": "\u0000" * 70_000})
        assert bad.value.status in (413, 422)
        with pytest.raises(BadRequest) as bad_kind:
            client.publish("Not A Kind", {})
        assert bad_kind.value.field == "kind"
        with pytest.raises(NotFound):
            client.task("no-such-task")
        # Nothing refused was stored.
        assert [item.state for item in client.task("T-2").history] == [
            "TASK_STATE_SUBMITTED",
            "TASK_STATE_COMPLETED",
        ]


def test_a_policy_refusal_carries_the_rule_and_version(cluster: Cluster) -> None:
    # A namespace governed by an admin who has published no policy: our agent is no member.
    admin_dir = cluster.root / "admin"
    run_plexus(admin_dir, cluster.root / "admin.toml", "init")
    admin = run_plexus(admin_dir, cluster.root / "admin.toml", "id").strip()
    governed = cluster.start("outsider", "--trust-root", f"team={admin}")
    with governed.client() as client:
        with pytest.raises(PolicyViolation) as refused:
            client.publish("x-note", {"text": "let me in"})
        assert refused.value.status == 403
        assert refused.value.code == "policy_violation"
        assert refused.value.rule
        assert client.log(kind="x-note").entries == []


def test_events_arrive_through_the_iterator(node: Node) -> None:
    with node.client() as client, client.events(kinds=["claim.won"]) as events:
        claimed = client.post_claim(Intent(resource="printer", action="print", lease_ms=5_000))
        event = next(iter(events))
        assert event.type == "claim.won"
        assert event.resource == "printer"
        assert event.data["claim"]["claim_id"] == claimed.claim.claim_id


def test_two_agents_race_and_the_waiter_takes_over_on_release(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    with alice.client() as first, bob.client() as second:
        with first.claim("repo/plexus", lease_ms=30_000) as held:
            assert held.claim is not None
            assert held.claim.standing == "holding"
            wait_for(
                lambda: holders(second, "repo/plexus") == [alice.agent_id],
                "bob's node to learn alice holds the resource",
            )
            outcome: dict[str, Any] = {}
            waiter = threading.Thread(target=hold_and_report, args=(second, "repo/plexus", outcome))
            waiter.start()
            wait_for(
                lambda: waiting(first, "repo/plexus") == [bob.agent_id],
                "bob's claim to wait behind alice's",
            )
            assert "standing" not in outcome
        waiter.join(timeout=60)
        assert outcome.get("standing") == "holding", outcome
        assert outcome["holders"] == [bob.agent_id]
        wait_for(lambda: holders(first, "repo/plexus") == [], "bob's release to reach alice")


def holders(client: Client, resource: str) -> list[str]:
    (lease,) = client.leases(resource=resource).leases
    return [claim.author for claim in lease.holders]


def waiting(client: Client, resource: str) -> list[str]:
    (lease,) = client.leases(resource=resource).leases
    return [claim.author for claim in lease.waiting]


def hold_and_report(client: Client, resource: str, outcome: dict[str, Any]) -> None:
    try:
        with client.claim(resource, lease_ms=30_000, wait_s=60) as held:
            assert held.claim is not None
            outcome["standing"] = held.claim.standing
            outcome["holders"] = holders(client, resource)
    except Exception as error:  # reported to the test thread
        outcome["error"] = repr(error)


def test_a_claim_that_does_not_come_to_hold_is_released(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    with alice.client() as first, bob.client() as second, first.claim("db", lease_ms=30_000):
        wait_for(lambda: holders(second, "db") == [alice.agent_id], "bob to see alice hold")
        with pytest.raises(ClaimNotHeld) as not_held, second.claim("db", wait_s=0.5):
            pass
        assert not_held.value.standing == "waiting"
        assert second.get_claim(not_held.value.claim_id).standing == "released"


def test_a_held_claim_is_renewed_while_held(node: Node) -> None:
    with node.client() as client, client.claim("slow-job", lease_ms=300) as held:
        first_expiry = held.claim.expires_ms if held.claim else 0
        wait_for(
            lambda: held.claim is not None and held.claim.expires_ms > first_expiry, "a renewal"
        )
        wait_for(
            lambda: client.get_claim(held.claim_id).expires_ms > first_expiry + 300,
            "several renewals past the first lease",
        )
        assert client.get_claim(held.claim_id).standing == "holding"
        assert held.renew_error is None


async def test_the_async_client_claims_reports_and_streams(node: Node) -> None:
    async with AsyncClient(data_dir=node.data_dir) as client:
        assert (await client.health()).agent_id == node.agent_id
        events = await client.events(kinds=["task"])
        async with events:
            await client.update_task(task_update("A-1", "TASK_STATE_SUBMITTED"))
            # `task` selects the entry's arrival (type `entry`) and the task change (`task`).
            first = await events.__anext__()
            second = await events.__anext__()
            assert {(first.type, first.task_id), (second.type, second.task_id)} == {
                ("entry", "A-1"),
                ("task", "A-1"),
            }
        async with client.claim("async/resource", lease_ms=10_000) as held:
            assert held.claim is not None
            assert held.claim.standing == "holding"
            claim_id = held.claim_id
        assert (await client.get_claim(claim_id)).standing == "released"
        with pytest.raises(Conflict):
            await client.update_task(task_update("A-1", "TASK_STATE_SUBMITTED"))


def test_the_cli_and_the_client_see_the_same_node(node: Node) -> None:
    with node.client() as client:
        client.publish("x-note", {"from": "python"})
    shown = run_plexus(node.data_dir, node.config, "log", "--json", "--kind", "x-note")
    assert "python" in shown


def test_a_stopped_node_is_reported_as_unreachable(cluster: Cluster) -> None:
    stopped = cluster.start("stopped")
    client = stopped.client()
    stopped.process.terminate()
    stopped.process.wait(timeout=60)
    from plexus_client import NodeUnreachable

    with pytest.raises((NodeUnreachable, httpx.TransportError)):
        client.health()
    client.close()
