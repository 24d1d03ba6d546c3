// An OTLP/HTTP receiver for tests: a node:http server on loopback taking POST /v1/traces (JSON), keeping the spans.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** An OTLP attribute value as the JSON encoding writes it. */
interface AnyValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}

/** One span as received, its attributes flattened to plain values. */
export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  /** 1 internal, 2 server, 3 client. */
  kind: number;
  attributes: Record<string, string | number | boolean>;
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
  resource: Record<string, string | number | boolean>;
}

function plain(value: AnyValue): string | number | boolean {
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.boolValue !== undefined) return value.boolValue;
  return value.doubleValue ?? '';
}

function attributesOf(list: Array<{ key: string; value: AnyValue }> | undefined): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list ?? []) out[key] = plain(value);
  return out;
}

/** The receiver: what it got, and switches to hold or refuse exports. */
export interface OtlpReceiver {
  /** Base URL, e.g. http://127.0.0.1:40123 (POST to /v1/traces). */
  url: string;
  spans: ReceivedSpan[];
  /** Export requests received. */
  requests: number;
  /** While true, export requests get no answer until it is set false again. */
  hold: boolean;
  /** When set, export requests are answered with this status. */
  failWith: number | undefined;
  /** Resolves once a span matching `match` has arrived, within `timeoutMs`. */
  waitFor(match: (span: ReceivedSpan) => boolean, timeoutMs?: number): Promise<ReceivedSpan>;
  close(): Promise<void>;
}

/** Starts an OTLP/HTTP JSON receiver on a free loopback port. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const held: Array<() => void> = [];
  const receiver: OtlpReceiver = {
    url: '',
    spans: [],
    requests: 0,
    failWith: undefined,
    get hold() {
      return holding;
    },
    set hold(value: boolean) {
      holding = value;
      if (!value) for (const release of held.splice(0)) release();
    },
    async waitFor(match, timeoutMs = 5000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = receiver.spans.find(match);
        if (found) return found;
        if (Date.now() > until) throw new Error(`no matching span within ${timeoutMs} ms; got: ${receiver.spans.map((s) => s.name).join(', ')}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => {
      receiver.hold = false;
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  let holding = false;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      receiver.requests++;
      const answer = (): void => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        if (receiver.failWith !== undefined) {
          res.writeHead(receiver.failWith, { 'content-type': 'application/json' }).end('{}');
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
          resourceSpans?: Array<{ resource?: { attributes?: Array<{ key: string; value: AnyValue }> }; scopeSpans?: Array<{ spans?: Array<Record<string, unknown>> }> }>;
        };
        for (const rs of body.resourceSpans ?? []) {
          const resource = attributesOf(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              receiver.spans.push({
                traceId: s.traceId as string,
                spanId: s.spanId as string,
                parentSpanId: (s.parentSpanId as string | undefined) || undefined,
                name: s.name as string,
                kind: s.kind as number,
                attributes: attributesOf(s.attributes as Array<{ key: string; value: AnyValue }>),
                statusCode: ((s.status as { code?: number } | undefined)?.code) ?? 0,
                resource,
              });
            }
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      };
      if (holding) held.push(answer);
      else answer();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return receiver;
}

/** A W3C traceparent a client might send, with random ids. */
export function clientTraceparent(): { header: string; traceId: string; spanId: string } {
  const hex = (bytes: number): string => Array.from({ length: bytes }, () => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join('');
  const traceId = hex(16);
  const spanId = hex(8);
  return { header: `00-${traceId}-${spanId}-01`, traceId, spanId };
}
