// Writes fresh private keys (PKCS#8 PEM) for ES256, RS256 and EdDSA into the given directory.
// Usage: node keys.mjs DIR
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
const pem = { type: 'pkcs8', format: 'pem' };
const keys = {
  'ES256.pem': generateKeyPairSync('ec', { namedCurve: 'P-256' }),
  'RS256.pem': generateKeyPairSync('rsa', { modulusLength: 2048 }),
  'EdDSA.pem': generateKeyPairSync('ed25519'),
};
for (const [name, pair] of Object.entries(keys)) {
  writeFileSync(join(dir, name), pair.privateKey.export(pem));
}
