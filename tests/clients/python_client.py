"""Drives `js-mcp serve` with the official MCP Python SDK (PyPI `mcp`).

Usage: python_client.py URL [WORKFLOW_ID]

Connects over Streamable HTTP, lists tools, creates and uses a session (optimistic
concurrency included), optionally runs a workflow to completion, then leaves the client
context, which terminates the MCP session with DELETE. Prints one JSON summary line;
exits non-zero on any unexpected result.
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


def structured(result):
    if result.structured_content is not None:
        return result.structured_content
    return json.loads(result.content[0].text)


def text_of(result):
    return "".join(getattr(c, "text", "") for c in result.content)


async def main(url, workflow_id):
    summary = {}
    async with streamable_http_client(url) as (read, write):
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            summary["protocolVersion"] = str(init.protocol_version)
            summary["server"] = init.server_info.name

            tools = await session.list_tools()
            names = sorted(t.name for t in tools.tools)
            summary["tools"] = names
            for required in ("ping", "session_create", "session_get", "start_workflow", "workflow_status"):
                if required not in names:
                    raise SystemExit(f"tool {required} missing from tools/list: {names}")

            created = await session.call_tool("session_create", {"labels": {"client": "python"}, "total_steps": 2})
            if created.is_error:
                raise SystemExit(f"session_create failed: {text_of(created)}")
            sess = structured(created)
            sid = sess["id"]
            summary["sessionId"] = sid

            marked = await session.call_tool(
                "session_mark_step", {"session_id": sid, "step": "analyze", "expected_version": 1}
            )
            if marked.is_error:
                raise SystemExit(f"session_mark_step failed: {text_of(marked)}")
            stale = await session.call_tool(
                "session_mark_step", {"session_id": sid, "step": "build", "expected_version": 1}
            )
            summary["staleUpdateIsError"] = bool(stale.is_error)
            summary["staleUpdateText"] = text_of(stale)

            got = structured(await session.call_tool("session_get", {"session_id": sid}))
            summary["version"] = got["version"]
            summary["completedSteps"] = got["workflow_state"]["completed_steps"]

            if workflow_id:
                run = await session.call_tool(
                    "start_workflow",
                    {"workflow_id": workflow_id, "session_id": sid, "params": {"language": "node", "name": "python-client"}, "wait": True},
                )
                if run.is_error:
                    summary["workflowError"] = text_of(run)
                else:
                    doc = structured(run)
                    summary["workflowStatus"] = doc["status"]
                    status = structured(await session.call_tool("workflow_status", {"run_id": doc["id"]}))
                    summary["workflowStatusTool"] = status["status"]
            else:
                run = await session.call_tool("start_workflow", {"workflow_id": "none", "wait": True})
                summary["workflowError"] = text_of(run) if run.is_error else None

            pong = await session.call_tool("ping", {})
            summary["ping"] = structured(pong)["pong"]
    # Leaving streamable_http_client sent DELETE for the MCP session.
    summary["closed"] = True
    print(json.dumps(summary))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None))
