// A minimal MCP server on the official TypeScript SDK, for the benchmark's side-by-side run:
// Streamable HTTP with sessions, and the same session tools js-mcp has (session_create,
// session_get) over an in-memory map.
//
// Usage: node ts_server.mjs PORT
import http from "node:http";
import { randomUUID } from "node:crypto";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { isInitializeRequest } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";

const port = Number(process.argv[2] ?? 3100);
const sessions = new Map(); // stored sessions (the data)
const transports = new Map(); // MCP session id -> transport

function newServer() {
  const server = new McpServer({ name: "ts-baseline", version: "1.0.0" });
  server.tool("ping", "Answers pong", async () => ({ content: [{ type: "text", text: '{"pong":true}' }] }));
  server.tool("session_create", "Create a session", { labels: z.record(z.string()).optional() }, async ({ labels }) => {
    const now = new Date().toISOString();
    const s = { id: randomUUID(), created_at: now, updated_at: now, status: "active", labels: labels ?? {}, version: 1 };
    sessions.set(s.id, s);
    return { content: [{ type: "text", text: JSON.stringify(s) }], structuredContent: s };
  });
  server.tool("session_get", "Get a session", { session_id: z.string() }, async ({ session_id }) => {
    const s = sessions.get(session_id);
    if (!s) return { isError: true, content: [{ type: "text", text: `session ${session_id} not found` }] };
    return { content: [{ type: "text", text: JSON.stringify(s) }], structuredContent: s };
  });
  return server;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

const httpServer = http.createServer(async (req, res) => {
  try {
    const sid = req.headers["mcp-session-id"];
    if (req.method === "POST") {
      const text = await readBody(req);
      const body = text ? JSON.parse(text) : undefined;
      let transport = sid ? transports.get(sid) : undefined;
      if (!transport) {
        if (sid || !isInitializeRequest(body)) {
          res.writeHead(sid ? 404 : 400).end();
          return;
        }
        transport = new StreamableHTTPServerTransport({
          sessionIdGenerator: () => randomUUID(),
          onsessioninitialized: (id) => transports.set(id, transport),
        });
        transport.onclose = () => transport.sessionId && transports.delete(transport.sessionId);
        await newServer().connect(transport);
      }
      await transport.handleRequest(req, res, body);
    } else if (req.method === "GET" || req.method === "DELETE") {
      const transport = sid && transports.get(sid);
      if (!transport) {
        res.writeHead(404).end();
        return;
      }
      await transport.handleRequest(req, res);
    } else {
      res.writeHead(405).end();
    }
  } catch (e) {
    if (!res.headersSent) res.writeHead(500).end(String(e));
  }
});
httpServer.listen(port, "127.0.0.1", () => console.log(`listening ${port}`));
