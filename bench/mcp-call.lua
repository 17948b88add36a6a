-- wrk script for bench/load.sh: a stateless MCP 2026-07-28 `tools/call` of the demo's `echo`,
-- as in README quickstart step 6. Every request gets its own JSON-RPC id (the gateway serves a
-- principal's stateless requests on a small pool of upstream sessions, where two requests in
-- flight with the same id are refused).
--
-- Environment: MCP_TOKEN (optional; sent as `Authorization: Bearer ...`).
-- Prints machine-readable lines from done(): `LOAD key value`.

local marker = '"text":"hello"'
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  bad = 0
  sample = nil
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json, text/event-stream"
  wrk.headers["MCP-Protocol-Version"] = "2026-07-28"
  wrk.headers["Mcp-Method"] = "tools/call"
  wrk.headers["Mcp-Name"] = "echo"
  local token = os.getenv("MCP_TOKEN")
  if token and token ~= "" then
    wrk.headers["Authorization"] = "Bearer " .. token
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hello"},'
      .. '"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}',
    tid * 1000000000 + counter)
  return wrk.format(nil, nil, nil, body)
end

-- A 200 whose body is not the echo (a JSON-RPC error, say) counts as bad, like a non-2xx.
function response(status, headers, body)
  if status ~= 200 or not string.find(body, marker, 1, true) then
    bad = bad + 1
    if sample == nil then
      sample = status .. " " .. string.sub(body, 1, 300)
    end
  end
end

function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("bad")
    local s = t:get("sample")
    if s ~= nil then
      io.write("LOAD bad_sample " .. string.gsub(s, "\n", " ") .. "\n")
    end
  end
  local e = summary.errors
  io.write(string.format("LOAD requests %d\n", summary.requests))
  io.write(string.format("LOAD duration_us %d\n", summary.duration))
  io.write(string.format("LOAD bad %d\n", total_bad))
  io.write(string.format("LOAD socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("LOAD status_errors %d\n", e.status))
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("LOAD p%s_us %d\n", tostring(p), latency:percentile(p)))
  end
  io.write(string.format("LOAD mean_us %.1f\n", latency.mean))
  io.write(string.format("LOAD max_us %d\n", latency.max))
end
