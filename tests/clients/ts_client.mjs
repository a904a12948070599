// Drives `js-mcp serve` with the official MCP TypeScript SDK (@modelcontextprotocol/sdk).
//
// Usage: node ts_client.mjs URL [WORKFLOW_ID]
//
// Connects over Streamable HTTP, lists tools, creates and uses a session (optimistic
// concurrency included), optionally runs a workflow to completion, then terminates the MCP
// session with DELETE. Prints one JSON summary line; exits non-zero on any unexpected result.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, workflowId] = process.argv.slice(2);

function structured(result) {
  if (result.structuredContent) return result.structuredContent;
  return JSON.parse(result.content[0].text);
}

function textOf(result) {
  return result.content.map((c) => c.text ?? "").join("");
}

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

const summary = {};
const client = new Client({ name: "js-mcp-ts-test", version: "1.0.0" });
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
summary.protocolVersion = transport.protocolVersion;
summary.mcpSessionId = transport.sessionId;
summary.server = client.getServerVersion()?.name;

const tools = await client.listTools();
summary.tools = tools.tools.map((t) => t.name).sort();
for (const required of ["ping", "session_create", "session_get", "start_workflow", "workflow_status"]) {
  if (!summary.tools.includes(required)) fail(`tool ${required} missing: ${summary.tools}`);
}

const created = await client.callTool({ name: "session_create", arguments: { labels: { client: "ts" }, total_steps: 2 } });
if (created.isError) fail(`session_create failed: ${textOf(created)}`);
const sid = structured(created).id;
summary.sessionId = sid;

const marked = await client.callTool({
  name: "session_mark_step",
  arguments: { session_id: sid, step: "analyze", expected_version: 1 },
});
if (marked.isError) fail(`session_mark_step failed: ${textOf(marked)}`);
const stale = await client.callTool({
  name: "session_mark_step",
  arguments: { session_id: sid, step: "build", expected_version: 1 },
});
summary.staleUpdateIsError = stale.isError === true;
summary.staleUpdateText = textOf(stale);

const got = structured(await client.callTool({ name: "session_get", arguments: { session_id: sid } }));
summary.version = got.version;
summary.completedSteps = got.workflow_state.completed_steps;

if (workflowId) {
  const run = await client.callTool({
    name: "start_workflow",
    arguments: { workflow_id: workflowId, session_id: sid, params: { language: "node", name: "ts-client" }, wait: true },
  });
  if (run.isError) {
    summary.workflowError = textOf(run);
  } else {
    const doc = structured(run);
    summary.workflowStatus = doc.status;
    const status = structured(await client.callTool({ name: "workflow_status", arguments: { run_id: doc.id } }));
    summary.workflowStatusTool = status.status;
  }
} else {
  const run = await client.callTool({ name: "start_workflow", arguments: { workflow_id: "none", wait: true } });
  summary.workflowError = run.isError ? textOf(run) : null;
}

summary.ping = structured(await client.callTool({ name: "ping", arguments: {} })).pong;
await transport.terminateSession();
await client.close();
summary.closed = true;
console.log(JSON.stringify(summary));
