// Preloaded by conformance.sh (`node --import`) when MCP_BEARER_TOKEN is set, so that the MCP
// conformance suite, which has no option for it, sends `Authorization: Bearer $MCP_BEARER_TOKEN`
// on every request. The suite makes its requests with `globalThis.fetch` (the SDK client and the
// SSE scenarios) and with undici's `request` (the dns-rebinding scenario); both are wrapped.
// A request that already carries an Authorization header keeps it.
import { createRequire } from 'node:module';

const token = process.env.MCP_BEARER_TOKEN;
if (!token) {
  throw new Error('bearer-preload.mjs: MCP_BEARER_TOKEN is not set');
}
const authorization = `Bearer ${token}`;

const originalFetch = globalThis.fetch;
globalThis.fetch = function fetchWithBearer(input, init = {}) {
  const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
  if (!headers.has('authorization')) {
    headers.set('authorization', authorization);
  }
  return originalFetch.call(this, input, { ...init, headers });
};

// Resolve undici from the suite's own location, so this patches the very module object its
// `import { request } from 'undici'` binds to. undici is CommonJS: an ES import of it reads the
// exports of the module cached here, after the patch.
const suiteRequire = createRequire(
  new URL('./node_modules/@modelcontextprotocol/conformance/dist/index.js', import.meta.url),
);
const undici = suiteRequire('undici');
const originalRequest = undici.request;

// undici accepts headers as a plain object, a flat [name, value, ...] array, or nothing.
function withBearer(headers) {
  if (headers == null) {
    return { authorization };
  }
  if (Array.isArray(headers)) {
    const names = headers.filter((_, index) => index % 2 === 0);
    if (names.some((name) => String(name).toLowerCase() === 'authorization')) {
      return headers;
    }
    return [...headers, 'authorization', authorization];
  }
  if (Object.keys(headers).some((name) => name.toLowerCase() === 'authorization')) {
    return headers;
  }
  return { ...headers, authorization };
}

undici.request = function requestWithBearer(url, options, ...rest) {
  if (typeof options === 'function') {
    // request(url, callback)
    return originalRequest.call(this, url, { headers: withBearer(undefined) }, options, ...rest);
  }
  return originalRequest.call(this, url, { ...options, headers: withBearer(options?.headers) }, ...rest);
};
