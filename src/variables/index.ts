// App variables: where a node finds their values, and rendering them into functions' env.
export { EnvironmentVariables, VARIABLE_ENV_PREFIX, variableEnvName } from './variable-provider.js';
export type { VariableProvider } from './variable-provider.js';
export { FileVariables } from './file-variables.js';
export { resolveVariables, withRenderedEnv } from './resolve-variables.js';
export type { ResolvedVariables } from './resolve-variables.js';
export { ClusterVariables } from './cluster-variables.js';
export type { ClusterVariablesOptions } from './cluster-variables.js';
