// Mints an access token the way another service would, with node `jsonwebtoken` (HS256, ES256,
// RS256) or `jose` (EdDSA). Usage: node mint.mjs ALG KEY_FILE_OR_ENV KID ISS AUD SUB
// For HS256, the second argument names an environment variable holding the secret.
import { readFileSync } from 'node:fs';
import { randomUUID, createPrivateKey } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { SignJWT } from 'jose';

const [alg, keyArg, kid, iss, aud, sub] = process.argv.slice(2);
const claims = { permissions: ['tools:execute:echo'], roles: ['user'], type: 'access' };

if (alg === 'EdDSA') {
  const key = createPrivateKey(readFileSync(keyArg));
  const token = await new SignJWT(claims)
    .setProtectedHeader({ alg, kid, typ: 'at+jwt' })
    .setIssuer(iss)
    .setAudience(aud)
    .setSubject(sub)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(key);
  process.stdout.write(token);
} else {
  const key = alg === 'HS256' ? process.env[keyArg] : readFileSync(keyArg);
  const token = jwt.sign(claims, key, {
    algorithm: alg,
    keyid: kid,
    header: { typ: 'at+jwt' },
    issuer: iss,
    audience: aud,
    subject: sub,
    jwtid: randomUUID(),
    expiresIn: '5m',
  });
  process.stdout.write(token);
}
