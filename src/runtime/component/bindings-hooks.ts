// Opens jco's transpiled bindings to the worker: their resource handle tables, which a restore must empty.
import { leanSyncImports } from './bindings-lean-imports.js';

/** Name of the export the hooked bindings gain: it hands over the state of the last instantiate(). */
export const BINDINGS_STATE_EXPORT = '__lamplighterBindingsState';

/**
 * The per-instance state jco's bindings keep in JS, which the guest can observe (handle numbers)
 * or which would grow across requests if an instance were kept.
 */
export interface BindingsState {
  /**
   * Resource handle tables, one per resource type: `[freeHead, 0, scope0, rep0, scope1, rep1, ...]`,
   * a slot being free when its scope word has the T_FLAG bit set. Index 0 is the free-list head.
   */
  handleTables: Array<number[] & { _createdReps?: Set<number> }>;
  /** Host objects by representation number, one map per host resource type. */
  captureTables: Array<Map<number, unknown>>;
  /** Borrowed resources of the call in progress (empty between calls). */
  borrows: () => readonly unknown[];
  /** Tasks in progress by component index (each list empty between calls), when the bindings track them. */
  tasks: () => Map<unknown, readonly unknown[]> | undefined;
  /** Ids of tasks in progress (empty between calls), when the bindings track them. */
  currentTaskIds: () => readonly unknown[] | undefined;
  /** The symbol under which a host object remembers its handle (the bindings pass it again if set). */
  handleSymbol: () => symbol | undefined;
}

/** Bindings source with the hook in place, or as it was when its shape is not the one expected. */
export interface HookedBindings {
  source: string;
  /** True when the bindings export {@link BINDINGS_STATE_EXPORT}; false leaves instances unrestorable. */
  hooked: boolean;
  /** Host imports given the direct call path of {@link leanSyncImports} (0 when it refused). */
  leanImports: number;
  /** Why the direct call path was refused, when it was. */
  leanRefused?: string;
}

const HANDLE_TABLES = /\bconst HANDLE_TABLES\s*=\s*\[\];/;
/**
 * jco's debug switch, read on every call: `process.env` is a slow host lookup in Node, and the
 * bindings read it dozens of times a request (about 0.3 ms). It is read once instead.
 */
const DEBUG_SWITCH = /if \(!globalThis\?\.process\?\.env\?\.JCO_DEBUG\) \{ return; \}/g;
/**
 * A debug-log statement: its arguments (object literals, copies of the call's arguments) are
 * built on every host call even when logging is off, several hundred allocations a request.
 */
const DEBUG_CALL = /^(\s*)_debugLog\(/gm;
const CAPTURE_TABLE = /\bconst (captureTable\d+)\s*=\s*new Map\(\);/g;

/** Reads a binding by name without failing when this jco version has no such name in scope. */
const maybe = (name: string): string => `() => (typeof ${name} === 'undefined' ? undefined : ${name})`;

/**
 * Rewrites the source of jco's instantiation module (jco 1.x, `instantiation: 'sync'`) so that
 * every instantiate() records its handle and capture tables where the worker can take them, through
 * an extra export named {@link BINDINGS_STATE_EXPORT}, and gives synchronous host imports a direct
 * call path ({@link leanSyncImports}, all or nothing). A source without the expected declarations
 * comes back as it was, with `hooked: false`.
 */
export function hookBindings(source: string): HookedBindings {
  if (!HANDLE_TABLES.test(source) || source.includes(BINDINGS_STATE_EXPORT)) return { source, hooked: false, leanImports: 0 };
  const lean = leanSyncImports(source);
  source = lean.source;
  const record = [
    'const HANDLE_TABLES = [];',
    `__lamplighterState = { handleTables: HANDLE_TABLES, captureTables: [],`,
    `  borrows: ${maybe('curResourceBorrows')},`,
    `  tasks: ${maybe('ASYNC_TASKS_BY_COMPONENT_IDX')},`,
    `  currentTaskIds: ${maybe('ASYNC_CURRENT_TASK_IDS')},`,
    `  handleSymbol: ${maybe('symbolRscHandle')} };`,
  ].join(' ');
  let hooked = source
    .replace(HANDLE_TABLES, record)
    .replace(DEBUG_SWITCH, 'if (!__lamplighterDebug) { return; }')
    .replace(DEBUG_CALL, '$1if (__lamplighterDebug) _debugLog(');
  hooked = hooked.replace(CAPTURE_TABLE, (whole, name: string) => `${whole} __lamplighterState.captureTables.push(${name});`);
  // Declared first, so that no code of the module can reach it before it is set.
  const directive = /^"use [^"]*";\n/.exec(hooked)?.[0] ?? '';
  hooked = `${directive}const __lamplighterDebug = Boolean(globalThis?.process?.env?.JCO_DEBUG);\n${hooked.slice(directive.length)}`;
  hooked += `
let __lamplighterState;
export function ${BINDINGS_STATE_EXPORT}() {
  const state = __lamplighterState;
  __lamplighterState = undefined;
  return state;
}
`;
  return { source: hooked, hooked: true, leanImports: lean.imports, ...(lean.refused === undefined ? {} : { leanRefused: lean.refused }) };
}
