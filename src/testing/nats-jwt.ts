// A throwaway NATS operator, account and users (decentralized JWT auth), so tests can use .creds files.
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { nkeys } from '@nats-io/transport-node';

/** What {@link makeTestOperator} made. */
export interface TestOperator {
  /** nats-server configuration that trusts the operator and knows its account: pass as `extraConfig`. */
  config: string;
  /** A `.creds` file of a user of that account: accepted. */
  creds: string;
  /** A `.creds` file of a user of an account the server does not know: refused. */
  strangerCreds: string;
}

type _KeyPair = ReturnType<typeof nkeys.createOperator>;

/** Writes an operator's config and two users' `.creds` files into `dir` (which must exist). */
export async function makeTestOperator(dir: string): Promise<TestOperator> {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const stranger = nkeys.createAccount();
  // JetStream will not start in operator mode without a system account.
  const system = nkeys.createAccount();
  const operatorJwt = _jwt(operator, operator, 'lamplighter-test-operator', { type: 'operator', version: 2 });
  const unlimited = { subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const accountJwt = _jwt(operator, account, 'lamplighter-test-account', { type: 'account', version: 2, limits: unlimited });
  const systemJwt = _jwt(operator, system, 'SYS', { type: 'account', version: 2, limits: unlimited });
  const creds = path.join(dir, 'user.creds');
  const strangerCreds = path.join(dir, 'stranger.creds');
  await Promise.all([_writeUserCreds(creds, account), _writeUserCreds(strangerCreds, stranger)]);
  return {
    config: [
      `operator: ${JSON.stringify(operatorJwt)}`,
      `system_account: ${system.getPublicKey()}`,
      'resolver: MEMORY',
      'resolver_preload: {',
      `  ${account.getPublicKey()}: ${JSON.stringify(accountJwt)}`,
      `  ${system.getPublicKey()}: ${JSON.stringify(systemJwt)}`,
      '}',
    ].join('\n'),
    creds,
    strangerCreds,
  };
}

async function _writeUserCreds(file: string, account: _KeyPair): Promise<void> {
  const user = nkeys.createUser();
  const userJwt = _jwt(account, user, 'lamplighter-test-user', { type: 'user', version: 2, subs: -1, data: -1, payload: -1, pub: {}, sub: {} });
  const seed = new TextDecoder().decode(user.getSeed());
  const text = [
    '-----BEGIN NATS USER JWT-----',
    userJwt,
    '------END NATS USER JWT------',
    '',
    '-----BEGIN USER NKEY SEED-----',
    seed,
    '------END USER NKEY SEED------',
    '',
  ].join('\n');
  await writeFile(file, text, { mode: 0o600 });
}

/** A NATS JWT: base64url header and claims, signed with the issuer's ed25519 nkey. */
function _jwt(issuer: _KeyPair, subject: _KeyPair, name: string, nats: Record<string, unknown>): string {
  const encode = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const claims = {
    jti: randomUUID().replaceAll('-', '').toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject.getPublicKey(),
    nats,
  };
  const signed = `${encode({ typ: 'JWT', alg: 'ed25519-nkey' })}.${encode(claims)}`;
  const signature = Buffer.from(issuer.sign(new TextEncoder().encode(signed))).toString('base64url');
  return `${signed}.${signature}`;
}
