// Drives mcp-guard with the official TypeScript MCP SDK client and prints one JSON report.
// Usage: node sdk-client.mjs URL
// Tokens come from the environment: MCP_TOKEN (allowed principal), and the script also tries
// without a token. Env FORBIDDEN_TOOL names a tool the principal must not call, ALLOWED_TOOL
// (with ALLOWED_ARGS as JSON) one it may.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const url = new URL(process.argv[2]);
const token = process.env.MCP_TOKEN;
const report = {};

function transport(tok) {
  const headers = tok ? { Authorization: `Bearer ${tok}` } : {};
  return new StreamableHTTPClientTransport(url, { requestInit: { headers } });
}

// 1. No token: the SDK surfaces the 401.
try {
  const c = new Client({ name: 'mcp-guard-test', version: '1.0.0' });
  await c.connect(transport(undefined));
  report.no_token = { connected: true };
} catch (e) {
  report.no_token = { connected: false, code: e.code ?? null, name: e.constructor.name, message: String(e.message) };
}

// 2. With a token: list, call, forbidden call, terminate.
const t = transport(token);
const client = new Client({ name: 'mcp-guard-test', version: '1.0.0' });
await client.connect(t);
report.protocol = t.protocolVersion ?? null;
const sessionId = t.sessionId;
report.session = Boolean(sessionId);
const { tools } = await client.listTools();
report.tools = tools.map((x) => x.name).sort();
const allowed = await client.callTool({
  name: process.env.ALLOWED_TOOL,
  arguments: JSON.parse(process.env.ALLOWED_ARGS ?? '{}'),
});
report.allowed = { isError: allowed.isError ?? false, text: allowed.content?.[0]?.text ?? null };
try {
  await client.callTool({ name: process.env.FORBIDDEN_TOOL, arguments: {} });
  report.forbidden = { refused: false };
} catch (e) {
  report.forbidden = { refused: true, code: e.code ?? null, message: String(e.message) };
}
await t.terminateSession();
await client.close();

// 3. The terminated session id is gone.
const after = await fetch(url, {
  method: 'POST',
  headers: {
    Authorization: `Bearer ${token}`,
    'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream',
    'Mcp-Session-Id': sessionId,
    'MCP-Protocol-Version': report.protocol ?? '2025-11-25',
  },
  body: JSON.stringify({ jsonrpc: '2.0', id: 99, method: 'tools/list' }),
});
report.after_terminate = after.status;
console.log(JSON.stringify(report));
