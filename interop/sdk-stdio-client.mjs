// Drives `mcp-guard stdio` with the official TypeScript MCP SDK's stdio transport (the SDK starts
// the guard, which starts the real server) and prints one JSON report.
// Usage: node sdk-stdio-client.mjs GUARD CONFIG -- SERVER_CMD ARGS...
// Env: MCP_GUARD_TOKEN (handed to the guard only), ALLOWED_TOOL (with ALLOWED_ARGS as JSON) a tool
// the principal may call, FORBIDDEN_TOOL one it must not, and SAMPLING=1 to also call
// `trigger-sampling-request`, whose server-to-client sampling request this client answers.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';

const [guard, config, sep, ...server] = process.argv.slice(2);
if (sep !== '--' || server.length === 0) {
  console.error('usage: node sdk-stdio-client.mjs GUARD CONFIG -- SERVER_CMD ARGS...');
  process.exit(2);
}
const env = { RUST_LOG: 'info' };
if (process.env.MCP_GUARD_TOKEN !== undefined) env.MCP_GUARD_TOKEN = process.env.MCP_GUARD_TOKEN;
const transport = new StdioClientTransport({
  command: guard,
  args: ['stdio', '--config', config, '--', ...server],
  env,
  stderr: 'pipe',
});
let stderr = '';
transport.stderr.on('data', (d) => { stderr += d; });
const report = {};
const client = new Client(
  { name: 'mcp-guard-stdio-test', version: '1.0.0' },
  { capabilities: { sampling: {} } },
);
report.sampling_requests = 0;
client.setRequestHandler(CreateMessageRequestSchema, async () => {
  report.sampling_requests += 1;
  return { model: 'stub', role: 'assistant', content: { type: 'text', text: 'sampled-by-the-client' } };
});
await client.connect(transport);
report.guard_pid = transport.pid;
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
if (process.env.SAMPLING === '1') {
  const r = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi' } });
  report.sampling = r.content?.[0]?.text ?? null;
}
await client.close();
report.stderr = stderr;
console.log(JSON.stringify(report));
