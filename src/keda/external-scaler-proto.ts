// Finds and loads proto/externalscaler.proto, the KEDA external-scaler protocol Lamplighter serves.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/** The proto file's path relative to the package root. */
const PROTO_RELATIVE = path.join('proto', 'externalscaler.proto');

/** How proto-loader maps messages: field names as declared, int64 as number, defaults filled in. */
export const protoLoaderOptions: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Absolute path of proto/externalscaler.proto, found by walking up from this module to the package root. */
export function externalScalerProtoPath(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, PROTO_RELATIVE);
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) {
      throw new Error(
        `Cannot start the KEDA server: ${PROTO_RELATIVE} was not found in any directory above ` +
          `${path.dirname(fileURLToPath(import.meta.url))}; the package must ship its proto/ folder`,
      );
    }
    dir = parent;
  }
}

/** The ExternalScaler service definition, loaded once per process. */
let cached: grpc.ServiceDefinition | undefined;

/** Loads the `externalscaler.ExternalScaler` service definition (cached after the first call). */
export function loadExternalScalerService(): grpc.ServiceDefinition {
  if (cached) return cached;
  const definition = protoLoader.loadSync(externalScalerProtoPath(), protoLoaderOptions);
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    externalscaler: { ExternalScaler: grpc.ServiceClientConstructor };
  };
  cached = pkg.externalscaler.ExternalScaler.service;
  return cached;
}
