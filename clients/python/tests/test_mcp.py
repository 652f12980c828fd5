"""`plexus mcp` and the API's `/mcp` endpoint driven by the official MCP Python SDK (`mcp`):
two agents coordinate through one MCP client each, over stdio, and once over Streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client as McpClient
from mcp import MCPError, StdioServerParameters
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import (
    ReadResourceResult,
    ResourceUpdatedNotification,
    TextContent,
    TextResourceContents,
)

from conftest import WAIT_TIMEOUT_S, Node, plexus_binary

EXPECTED_TOOLS = {
    "whoami",
    "find_agents",
    "announce_card",
    "revoke_card",
    "claim",
    "renew_claim",
    "release_claim",
    "wait_for_claim",
    "list_leases",
    "update_task",
    "get_task",
    "list_tasks",
    "add_constraint",
    "share_pattern",
    "search_patterns",
    "publish_entry",
    "recent_events",
}


LEASES = "plexus://board/leases"
TASKS = "plexus://board/tasks"


def over_stdio(node: Node, updates: asyncio.Queue[str] | None = None) -> McpClient:
    """An MCP client that launches `plexus mcp` on the node's data directory, as a host does;
    with `updates`, the URIs of the `notifications/resources/updated` it receives go there."""
    server = StdioServerParameters(command=str(plexus_binary()), args=["mcp"], env=node.env())

    async def on_message(message: IncomingMessage) -> None:
        if updates is not None and isinstance(message, ResourceUpdatedNotification):
            updates.put_nowait(str(message.params.uri))

    return McpClient(server, mode="legacy", read_timeout_seconds=120, message_handler=on_message)


@asynccontextmanager
async def over_http(node: Node, mode: str) -> AsyncIterator[McpClient]:
    """An MCP client of the node's Streamable HTTP endpoint, with its token."""
    headers = {"Authorization": f"Bearer {node.token}"}
    async with (
        create_mcp_http_client(headers=headers) as http,
        McpClient(
            streamable_http_client(f"{node.api_url}/mcp", http_client=http), mode=mode
        ) as client,
    ):
        yield client


async def next_update(updates: asyncio.Queue[str], what: str) -> str:
    """The next resource-updated notification's URI, or fails naming `what`."""
    try:
        return await asyncio.wait_for(updates.get(), WAIT_TIMEOUT_S)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def call(client: McpClient, tool: str, arguments: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool} failed: {text_of(result.content)}"
    return result.structured_content


async def refusal(client: McpClient, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool} should have been refused: {result.structured_content}"
    return text_of(result.content)


def text_of(content: list[Any]) -> str:
    return " ".join(block.text for block in content if isinstance(block, TextContent))


def resource_json(read: ReadResourceResult) -> Any:
    """The JSON of a board view, as `resources/read` gave it."""
    texts = [item.text for item in read.contents if isinstance(item, TextResourceContents)]
    assert len(texts) == 1, f"expected one text content, got {read.contents}"
    return json.loads(texts[0])


async def until(
    client: McpClient, tool: str, arguments: dict[str, Any], what: str, check: Any
) -> Any:
    """Calls the tool until `check(answer)` holds, or fails naming `what`."""
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while True:
        answer = await call(client, tool, arguments)
        if check(answer):
            return answer
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {answer}"
        await asyncio.sleep(0.05)


async def test_two_agents_race_for_a_claim_through_mcp(pair: tuple[Node, Node]) -> None:
    alice, bob = pair
    async with over_stdio(alice) as first, over_stdio(bob) as second:
        listed = await first.list_tools()
        assert {tool.name for tool in listed.tools} >= EXPECTED_TOOLS
        assert all(tool.description for tool in listed.tools)
        assert (await call(first, "whoami", {}))["agent_id"] == alice.agent_id

        held = await call(first, "claim", {"resource": "repo/plexus", "lease_ms": 60_000})
        assert held["you_hold_it"] is True
        await until(
            second,
            "list_leases",
            {"resource": "repo/plexus"},
            "bob's node to see alice's claim",
            lambda answer: answer["leases"][0]["holders"] != [],
        )
        waits = await call(second, "claim", {"resource": "repo/plexus"})
        assert waits["you_hold_it"] is False
        assert waits["standing"] == "waiting"
        assert [holder["agent"] for holder in waits["holders"]] == [alice.agent_id]

        waiter = asyncio.create_task(
            call(second, "wait_for_claim", {"claim_id": waits["claim_id"], "timeout_seconds": 60})
        )
        await call(first, "release_claim", {"claim_id": held["claim_id"]})
        decided = await waiter
        assert decided["outcome"] == "holding"
        assert decided["claim"]["author"] == bob.agent_id


async def test_a_task_goes_submitted_working_completed_and_a_refusal_is_a_tool_error(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    async with over_stdio(alice) as requester, over_stdio(bob) as worker:
        await call(
            requester,
            "update_task",
            {"task_id": "T-7", "state": "TASK_STATE_SUBMITTED", "message": "port the parser"},
        )
        await until(
            worker,
            "list_tasks",
            {"state": "TASK_STATE_SUBMITTED"},
            "the task on bob's node",
            lambda answer: len(answer["tasks"]) == 1,
        )
        await call(worker, "update_task", {"task_id": "T-7", "state": "TASK_STATE_WORKING"})
        await call(
            worker,
            "update_task",
            {"task_id": "T-7", "state": "TASK_STATE_COMPLETED", "message": "merged"},
        )
        task = await until(
            requester,
            "get_task",
            {"task_id": "T-7"},
            "alice to see it done",
            lambda answer: answer["state"] == "TASK_STATE_COMPLETED",
        )
        assert [item["state"] for item in task["history"]] == [
            "TASK_STATE_SUBMITTED",
            "TASK_STATE_WORKING",
            "TASK_STATE_COMPLETED",
        ]
        assert task["updated_by"] == bob.agent_id

        reason = await refusal(
            worker, "update_task", {"task_id": "T-7", "state": "TASK_STATE_WORKING"}
        )
        assert "409" in reason
        assert "conflict" in reason
        bad = await refusal(worker, "claim", {"resource": "has space", "lease_ms": 1000})
        assert "field: resource" in bad
        # The server is still there after refusals.
        assert (await call(worker, "whoami", {}))["agent_id"] == bob.agent_id


# `resources/subscribe` is how hosts on protocol versions up to 2025-11-25 subscribe; the SDK
# marks it deprecated in favour of 2026-07-28's `subscriptions/listen`.
@pytest.mark.filterwarnings("ignore::mcp.MCPDeprecationWarning")
async def test_a_subscribed_client_hears_of_a_claim_made_on_the_other_node(
    pair: tuple[Node, Node],
) -> None:
    alice, bob = pair
    updates: asyncio.Queue[str] = asyncio.Queue()
    async with over_stdio(alice) as claimer, over_stdio(bob, updates) as watcher:
        await watcher.subscribe_resource(LEASES)
        await watcher.subscribe_resource(TASKS)
        held = await call(claimer, "claim", {"resource": "deploy/prod", "lease_ms": 60_000})
        assert held["you_hold_it"] is True

        # Re-read on each notification, as a host does, until the claim shows.
        while True:
            assert await next_update(updates, "the leases notification") == LEASES
            read = await watcher.read_resource(LEASES)
            leases = resource_json(read)["leases"]
            holders = [
                holder["author"]
                for lease in leases
                if lease["resource"] == "deploy/prod"
                for holder in lease["holders"]
            ]
            if holders == [alice.agent_id]:
                break

        await watcher.unsubscribe_resource(LEASES)
        # A task change flushes whatever leases notification was already under way: the server
        # sends in the order its node's events come.
        await call(claimer, "update_task", {"task_id": "T-8", "state": "TASK_STATE_SUBMITTED"})
        while await next_update(updates, "the first tasks notification") != TASKS:
            pass
        await call(claimer, "release_claim", {"claim_id": held["claim_id"]})
        await until(
            watcher,
            "list_leases",
            {"resource": "deploy/prod"},
            "bob's node to see the release",
            lambda answer: answer["leases"] == [] or answer["leases"][0]["holders"] == [],
        )
        # Bob's node saw the release before this task change, so a leases notification, were
        # one sent, would arrive before the tasks one.
        await call(claimer, "update_task", {"task_id": "T-9", "state": "TASK_STATE_SUBMITTED"})
        assert await next_update(updates, "the second tasks notification") == TASKS

        missing = await refusal_of_subscribe(watcher, "plexus://board/secrets")
        assert "plexus://board/leases" in missing


async def refusal_of_subscribe(client: McpClient, uri: str) -> str:
    try:
        await client.subscribe_resource(uri)
    except MCPError as error:
        return str(error)
    raise AssertionError(f"subscribing to {uri} should have been refused")


async def test_tools_over_streamable_http_behind_the_token(node: Node) -> None:
    async with over_http(node, "legacy") as client:
        listed = await client.list_tools()
        assert {tool.name for tool in listed.tools} >= EXPECTED_TOOLS
        claimed = await call(client, "claim", {"resource": "printer", "lease_ms": 5_000})
        assert claimed["you_hold_it"] is True
        events = await call(client, "recent_events", {"kinds": ["claim.won"], "wait_seconds": 0})
        assert isinstance(events["events"], list)
        decided = await call(client, "wait_for_claim", {"claim_id": claimed["claim_id"]})
        assert decided["outcome"] == "holding"
        resources = await client.list_resources()
        assert {str(resource.uri) for resource in resources.resources} == {
            "plexus://board/leases",
            "plexus://board/tasks",
            "plexus://board/agents",
        }
    async with create_mcp_http_client() as anonymous:
        answer = await anonymous.post(
            f"{node.api_url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
        )
        assert answer.status_code == 401


async def test_a_listen_over_streamable_http_hears_of_a_task_change(node: Node) -> None:
    # The endpoint is sessionless, so it takes 2026-07-28's subscriptions/listen: one request
    # whose answer streams the notifications.
    async with (
        over_http(node, "2026-07-28") as client,
        client.listen(resource_subscriptions=[TASKS, "plexus://board/secrets"]) as listening,
    ):
        assert listening.honored.resource_subscriptions == [TASKS]
        await call(client, "update_task", {"task_id": "T-3", "state": "TASK_STATE_SUBMITTED"})
        event = await asyncio.wait_for(anext(listening), WAIT_TIMEOUT_S)
        assert event == ResourceUpdated(uri=TASKS)
        read = await client.read_resource(TASKS)
        assert [task["task_id"] for task in resource_json(read)["tasks"]] == ["T-3"]


def test_plexus_mcp_without_a_running_node_exits_with_a_clear_error(tmp_path: Path) -> None:
    # A config file named explicitly must exist (it holds trust roots); an empty one is valid.
    (tmp_path / "none.toml").write_text("")
    done = subprocess.run(
        [str(plexus_binary()), "mcp"],
        capture_output=True,
        text=True,
        env={
            "PLEXUS_DATA_DIR": str(tmp_path / "empty"),
            "PLEXUS_CONFIG": str(tmp_path / "none.toml"),
            "HOME": str(tmp_path),
        },
        timeout=60,
        check=False,
    )
    assert done.returncode == 5
    assert "plexus run" in done.stderr
    assert done.stdout == ""
