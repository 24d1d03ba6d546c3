// Resolving an app's variables on a node, and rendering its functions' env with them.
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import { renderEnvTemplate, type AppManifest, type FunctionSpec } from '../manifest/index.js';
import { variableEnvName, type VariableProvider } from './variable-provider.js';

/** An app's variables with their values on this node. */
export interface ResolvedVariables {
  values: ReadonlyMap<string, string>;
  /** Names whose values must never be shown. */
  secrets: ReadonlySet<string>;
}

/**
 * Each declared variable's value: from the first provider that knows it, else its default. A
 * required variable no provider knows refuses the deploy, naming it and where it could come from.
 */
export async function resolveVariables(manifest: AppManifest, providers: readonly VariableProvider[]): Promise<ResolvedVariables> {
  const values = new Map<string, string>();
  const secrets = new Set<string>();
  const missing: string[] = [];
  for (const [name, spec] of Object.entries(manifest.variables)) {
    if (spec.secret) secrets.add(name);
    let value: string | undefined;
    for (const provider of providers) {
      value = await provider.get(name);
      if (value !== undefined) break;
    }
    value ??= spec.default;
    if (value === undefined) missing.push(name);
    else values.set(name, value);
  }
  if (missing.length > 0) {
    const first = missing[0]!;
    const where = providers.map((p) => p.describe(first)).join(', or ') || `environment variable ${variableEnvName(first)}`;
    const names = missing.map((n) => `'${n}'`).join(', ');
    throw new LamplighterError(
      ErrorCodes.MANIFEST_INVALID,
      `Cannot deploy app '${manifest.name}': required variable${missing.length > 1 ? 's' : ''} ${names} ${missing.length > 1 ? 'have' : 'has'} no value on this node; set ${where}`,
      { detail: { missing } },
    );
  }
  return { values, secrets };
}

/** `spec` with its env values rendered; the spec itself is untouched (it is what the store holds). */
export function withRenderedEnv(spec: FunctionSpec, variables: ResolvedVariables): FunctionSpec {
  const entries = Object.entries(spec.env);
  if (!entries.some(([, value]) => value.includes('{{'))) return spec;
  const env: Record<string, string> = {};
  for (const [key, value] of entries) env[key] = renderEnvTemplate(value, variables.values);
  return { ...spec, env };
}
