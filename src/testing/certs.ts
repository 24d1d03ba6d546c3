// Throwaway certificate authorities and certificates, made with openssl when a test needs TLS.
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Paths of the PEM files {@link makeTestCertificates} writes. */
export interface TestCertificates {
  /** The CA that signed the server and client certificates. */
  ca: string;
  /** The CA's key, for {@link makeTestServerCertificate}. */
  caKey: string;
  /** Server certificate for 127.0.0.1, ::1 and localhost, signed by {@link ca}. */
  serverCert: string;
  serverKey: string;
  /** Client certificate (CN `lamplighter-test-client`), signed by {@link ca}. */
  clientCert: string;
  clientKey: string;
  /** A CA unrelated to the others, for tests of certificates that must be refused. */
  otherCa: string;
  /** Server certificate for 127.0.0.1 and localhost, signed by {@link otherCa}. */
  otherServerCert: string;
  otherServerKey: string;
}

/** Writes a fresh CA, a server and a client certificate, and an unrelated CA into `dir`. */
export async function makeTestCertificates(dir: string): Promise<TestCertificates> {
  await mkdir(dir, { recursive: true });
  const file = (name: string): string => path.join(dir, name);
  const certs: TestCertificates = {
    ca: file('ca.pem'),
    caKey: file('ca-key.pem'),
    serverCert: file('server.pem'),
    serverKey: file('server-key.pem'),
    clientCert: file('client.pem'),
    clientKey: file('client-key.pem'),
    otherCa: file('other-ca.pem'),
    otherServerCert: file('other-server.pem'),
    otherServerKey: file('other-server-key.pem'),
  };
  const caKey = certs.caKey;
  const otherCaKey = file('other-ca-key.pem');
  await Promise.all([
    _selfSigned(caKey, certs.ca, 'Lamplighter Test CA'),
    _selfSigned(otherCaKey, certs.otherCa, 'Unrelated Test CA'),
  ]);
  const serverExt = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
  ];
  const clientExt = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=clientAuth',
  ];
  await Promise.all([
    _signed({ dir, name: 'server', cn: 'localhost', ext: serverExt, key: certs.serverKey, cert: certs.serverCert, ca: certs.ca, caKey }),
    _signed({ dir, name: 'client', cn: 'lamplighter-test-client', ext: clientExt, key: certs.clientKey, cert: certs.clientCert, ca: certs.ca, caKey }),
    _signed({
      dir,
      name: 'other-server',
      cn: 'localhost',
      ext: serverExt,
      key: certs.otherServerKey,
      cert: certs.otherServerCert,
      ca: certs.otherCa,
      caKey: otherCaKey,
    }),
  ]);
  return certs;
}

/** Options for {@link makeTestServerCertificate}. */
export interface TestServerCertificateOptions {
  /** File name stem: writes `<name>.pem` and `<name>-key.pem` beside the CA. */
  name: string;
  /** The subject's common name. */
  cn: string;
  /** DNS names of its subjectAltName (wildcards such as `*.example.test` allowed). */
  dns: string[];
  /** IP addresses of its subjectAltName. @default [] */
  ips?: string[];
}

/** A server certificate for the given names, signed by the CA of `certs`; resolves with its files. */
export async function makeTestServerCertificate(certs: TestCertificates, options: TestServerCertificateOptions): Promise<{ cert: string; key: string }> {
  const dir = path.dirname(certs.ca);
  const cert = path.join(dir, `${options.name}.pem`);
  const key = path.join(dir, `${options.name}-key.pem`);
  const san = [...options.dns.map((d) => `DNS:${d}`), ...(options.ips ?? []).map((ip) => `IP:${ip}`)].join(',');
  const ext = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    'extendedKeyUsage=serverAuth',
    ...(san ? [`subjectAltName=${san}`] : []),
  ];
  await _signed({ dir, name: options.name, cn: options.cn, ext, key, cert, ca: certs.ca, caKey: certs.caKey });
  return { cert, key };
}

async function _openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 30_000 });
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? '';
    throw new Error(`openssl ${args[0]} failed: ${stderr.trim() || (err as Error).message}`, { cause: err });
  }
}

// EC keys keep generation to milliseconds, where RSA would take a noticeable share of a test's time.
const keyArgs = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

async function _selfSigned(key: string, cert: string, cn: string): Promise<void> {
  await _openssl([
    'req', '-x509', ...keyArgs, '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
}

interface _SignedOptions {
  dir: string;
  name: string;
  cn: string;
  ext: string[];
  key: string;
  cert: string;
  ca: string;
  caKey: string;
}

async function _signed(o: _SignedOptions): Promise<void> {
  const csr = path.join(o.dir, `${o.name}.csr`);
  const extFile = path.join(o.dir, `${o.name}.ext`);
  await writeFile(extFile, o.ext.join('\n') + '\n');
  await _openssl(['req', '-new', ...keyArgs, '-keyout', o.key, '-out', csr, '-subj', `/CN=${o.cn}`]);
  await _openssl([
    'x509', '-req', '-in', csr, '-CA', o.ca, '-CAkey', o.caKey, '-CAcreateserial', '-CAserial', path.join(o.dir, `${o.name}.srl`),
    '-out', o.cert, '-days', '2', '-extfile', extFile,
  ]);
}
