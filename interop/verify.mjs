// Verifies a token mcp-guard issued, as a resource server using another library would.
// Usage: node verify.mjs TOKEN JWKS_FILE|JWKS_URL ISS AUD   (jose, against mcp-guard's JWKS)
//        node verify.mjs TOKEN --hs256 ENV ISS AUD  (jsonwebtoken, with the shared secret)
// Prints the verified claims as JSON; exits 1 when verification fails.
import { readFileSync } from 'node:fs';
import jwt from 'jsonwebtoken';
import { jwtVerify, createLocalJWKSet, createRemoteJWKSet } from 'jose';

const [token, keyArg, secretEnv, ...rest] = process.argv.slice(2);
try {
  if (keyArg === '--hs256') {
    const [iss, aud] = rest;
    const claims = jwt.verify(token, process.env[secretEnv], { algorithms: ['HS256'], issuer: iss, audience: aud });
    process.stdout.write(JSON.stringify(claims));
  } else {
    const [iss, aud] = [secretEnv, rest[0]];
    // A URL is fetched as a resource server would (mcp-guard's /oauth/jwks); else a file.
    const jwks = keyArg.startsWith('http')
      ? createRemoteJWKSet(new URL(keyArg))
      : createLocalJWKSet(JSON.parse(readFileSync(keyArg, 'utf8')));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: iss, audience: aud, typ: 'at+jwt' });
    process.stdout.write(JSON.stringify({ ...payload, _alg: protectedHeader.alg }));
  }
} catch (e) {
  process.stderr.write(`verification failed: ${e.code ?? ''} ${e.message}\n`);
  process.exit(1);
}
