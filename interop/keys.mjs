// Writes fresh keys for ES256, RS256 and EdDSA into the given directory: the private key
// (PKCS#8 PEM, `ALG.pem`), the public key (SPKI PEM, `ALG.pub.pem`) and a JWKS holding the public
// key with `kid` = ALG (`ALG.jwks.json`). Usage: node keys.mjs DIR
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
  const alg = name.replace('.pem', '');
  writeFileSync(join(dir, name), pair.privateKey.export(pem));
  writeFileSync(join(dir, `${alg}.pub.pem`), pair.publicKey.export({ type: 'spki', format: 'pem' }));
  const jwk = { ...pair.publicKey.export({ format: 'jwk' }), kid: alg, alg, use: 'sig' };
  writeFileSync(join(dir, `${alg}.jwks.json`), JSON.stringify({ keys: [jwk] }));
}
