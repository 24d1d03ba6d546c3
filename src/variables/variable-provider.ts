// Where a node finds the values of app variables: its environment, a file, the cluster's KV.

/** One source of variable values, asked in order until one knows the name. */
export interface VariableProvider {
  /** Where the value came from, for messages: "environment variable LAMPLIGHTER_VAR_API_KEY". */
  describe(name: string): string;
  /** The value of `name`, or undefined when this provider does not know it. */
  get(name: string): Promise<string | undefined>;
}

/** Prefix of the environment variables that give variable values: `api_key` is LAMPLIGHTER_VAR_API_KEY. */
export const VARIABLE_ENV_PREFIX = 'LAMPLIGHTER_VAR_';

/** The environment variable that gives `name` its value. */
export function variableEnvName(name: string): string {
  return `${VARIABLE_ENV_PREFIX}${name.toUpperCase()}`;
}

/** Values from the node's environment: `LAMPLIGHTER_VAR_<NAME>`. */
export class EnvironmentVariables implements VariableProvider {
  constructor(private readonly env: NodeJS.ProcessEnv = process.env) {}

  describe(name: string): string {
    return `environment variable ${variableEnvName(name)}`;
  }

  get(name: string): Promise<string | undefined> {
    return Promise.resolve(this.env[variableEnvName(name)]);
  }
}
