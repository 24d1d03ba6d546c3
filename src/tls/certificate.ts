// One certificate and its key, read from PEM files and checked before anything is served with them.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext, type SecureContext } from 'node:tls';
import { ErrorCodes, LamplighterError } from '../errors/index.js';

/** The files of one certificate: the certificate (chain) and its private key, both PEM. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/** The flags that named the files, for messages that tell the user what to change. */
export interface CertificateFlags {
  /** @default '--tls-cert' */
  cert?: string;
  /** @default '--tls-key' */
  key?: string;
}

/** A certificate ready to serve: its files' bytes, its TLS context and the names it answers to. */
export interface LoadedCertificate {
  readonly files: CertificateFiles;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly context: SecureContext;
  /** Lower-cased DNS names of its subjectAltName (wildcards as `*.example.com`); its CN when it has none. */
  readonly names: readonly string[];
  /** Expiry, as the certificate states it. */
  readonly validTo: string;
}

/**
 * Reads a certificate and its key and checks them: both exist and are PEM, the certificate
 * parses, and the key is the certificate's. Throws LL_TLS_INVALID naming the file otherwise.
 */
export async function loadCertificate(files: CertificateFiles, flags: CertificateFlags = {}): Promise<LoadedCertificate> {
  const certFlag = flags.cert ?? '--tls-cert';
  const keyFlag = flags.key ?? '--tls-key';
  const [cert, key] = await Promise.all([_readPem(files.cert, certFlag, 'certificate'), _readPem(files.key, keyFlag, 'private key')]);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw _invalid(`Cannot use ${certFlag} '${files.cert}': it is not a readable X.509 certificate (${(err as Error).message}). Give the PEM certificate (-----BEGIN CERTIFICATE-----), its chain after it`, err);
  }
  let matches: boolean;
  try {
    matches = x509.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw _invalid(`Cannot use ${keyFlag} '${files.key}': it is not a readable private key (${(err as Error).message}). Give an unencrypted PEM key (-----BEGIN PRIVATE KEY-----)`, err);
  }
  if (!matches) {
    throw _invalid(`Cannot use ${keyFlag} '${files.key}': it is not the key of the certificate in ${certFlag} '${files.cert}'. Give the key the certificate was issued for, or the certificate that goes with this key`);
  }
  let context: SecureContext;
  try {
    context = createSecureContext({ cert, key });
  } catch (err) {
    throw _invalid(`Cannot use ${certFlag} '${files.cert}' with ${keyFlag} '${files.key}': ${(err as Error).message}`, err);
  }
  return { files, cert, key, context, names: certificateNames(x509), validTo: x509.validTo };
}

/** The DNS names a certificate answers to: its subjectAltName's, else its common name. */
export function certificateNames(x509: X509Certificate): string[] {
  const names = (x509.subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('DNS:'))
    .map((entry) => entry.slice(4).toLowerCase());
  if (names.length > 0) return names;
  const cn = /^CN=(.+)$/m.exec(x509.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

async function _readPem(file: string, flag: string, what: string): Promise<Buffer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (err as Error).message;
    throw _invalid(`Cannot read ${flag} '${file}': ${why}. Give the path of the PEM ${what} file`, err);
  }
  if (!bytes.includes('-----BEGIN ')) {
    throw _invalid(`Cannot use ${flag} '${file}': it is not PEM (no -----BEGIN line). Give the PEM ${what}; convert DER with \`openssl x509 -inform der\` or \`openssl pkey -inform der\``);
  }
  return bytes;
}

function _invalid(message: string, cause?: unknown): LamplighterError {
  return new LamplighterError(ErrorCodes.TLS_INVALID, message, cause === undefined ? {} : { cause });
}
