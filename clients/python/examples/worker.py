"""A worker agent: takes submitted tasks off the namespace's board, claims each (so two
workers never take the same task), and moves it through WORKING to COMPLETED.

    python examples/worker.py DATA_DIR [--once]

With ``--once`` it works through the tasks submitted so far and exits; otherwise it then
follows the node's task events and takes new tasks as they are submitted.
"""

from __future__ import annotations

import sys

from plexus_client import ClaimNotHeld, Client, Conflict, TaskUpdate
from plexus_client.models import TaskStatusUpdate


def report(node: Client, task_id: str, state: str, message: str) -> None:
    status = TaskStatusUpdate.model_validate({"state": state, "message": message})
    node.update_task(TaskUpdate(task_id=task_id, status=status))


def work_on(node: Client, task_id: str) -> None:
    try:
        with node.claim(f"task/{task_id}", lease_ms=30_000, action="work", wait_s=1):
            if node.task(task_id).state != "TASK_STATE_SUBMITTED":
                return  # Another worker finished it before we held the claim.
            report(node, task_id, "TASK_STATE_WORKING", "taken by the example worker")
            result = f"done: {node.task(task_id).message or task_id}"
            report(node, task_id, "TASK_STATE_COMPLETED", result)
            print(f"completed {task_id}", flush=True)
    except (ClaimNotHeld, Conflict):
        pass  # Another worker has it.


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    # Subscribe first, so a task submitted while we work through the board is not missed.
    with Client(data_dir=sys.argv[1]) as node, node.events(kinds=["task"]) as events:
        for task in node.tasks(state="TASK_STATE_SUBMITTED").tasks:
            work_on(node, task.task_id)
        if "--once" in sys.argv:
            return
        for event in events:
            if event.task_id and node.task(event.task_id).state == "TASK_STATE_SUBMITTED":
                work_on(node, event.task_id)


if __name__ == "__main__":
    main()
