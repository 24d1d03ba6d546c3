// Gives the synchronous host imports of jco's transpiled bindings a direct call path, without the async ABI's task bookkeeping.

/**
 * jco 1.24 routes every host import through the component model's async-ABI machinery even when
 * both the import and the export calling it are synchronous: a lowering wrapper
 * (`_lowerImportBackwardsCompat`) copies the arguments, looks the caller's task up and opens a
 * subtask (an object, a waitable, a handle), and the import itself opens a host task (an object,
 * two promises, closures) attached to that subtask, enters and exits it, and resolves both. None
 * of it is observable to a synchronous guest: the value handed back is the one the import
 * computes. It costs StarlingMonkey's dozens of host calls a request about half of the bindings'
 * time. The rewrite below leaves the import's own lifting, lowering and borrow handling as they
 * are and only takes the bookkeeping out, for each import whose shape is exactly the expected
 * one; if any import or wrapper differs, nothing is changed.
 */

/** A host task that does nothing: the rewritten imports keep their error paths, which name it. */
const HOST_TASK_STUB = [
  'const __lamplighterHostTask = Object.freeze({',
  ' id() { return -1; }, componentIdx() { return -1; }, getParentSubtask() { return undefined; },',
  ' setErrored() {}, reject() {}, exit() {} });',
].join('');

/** What {@link leanSyncImports} did. */
export interface LeanImports {
  source: string;
  /** Host imports rewritten; 0 when the source did not have the expected shape (then it is unchanged). */
  imports: number;
  /** Why nothing was rewritten, when nothing was. */
  refused?: string;
}

/**
 * A regular expression for a piece of generated code: the text as written, any run of whitespace
 * matching any whitespace (jco's indentation differs between nesting levels), and `«name»` holes
 * filled with the given patterns.
 */
function shape(text: string, holes: Record<string, string> = {}): RegExp {
  const pattern = text
    .trim()
    .split(/(«\w+»|\s+)/)
    .map((part) => {
      if (part === '') return '';
      if (/^\s+$/.test(part)) return '\\s*';
      const hole = /^«(\w+)»$/.exec(part)?.[1];
      if (hole !== undefined) {
        const fill = holes[hole];
        if (fill === undefined) throw new Error(`no pattern for hole ${hole}`);
        return fill;
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return new RegExp(pattern, 'g');
}

/** Opening a host task in front of the call, attached to the subtask the lowering wrapper opened. */
const PROLOGUE = shape(
  `const hostProvided = true;
  let parentTask; let task; let subtask;
  const createTask = () => { const results = createNewCurrentTask({
    componentIdx: -1, isAsync: false, entryFnName: '«name»', getCallbackFn: () => null, callbackFnName: null,
    errHandling: '«handling»', callingWasmExport: false, }); task = results[0]; };
  taskCreation: {
    parentTask = getCurrentTask( «idx», _getGlobalCurrentTaskMeta(«idx»)?.taskID, )?.task;
    if (!parentTask) { createTask(); break taskCreation; }
    createTask();
    if (hostProvided) {
      subtask = parentTask.getLatestSubtask();
      if (!subtask) { throw new Error(\`«message»\`); }
      task.setParentSubtask(subtask);
    }
  }
  const started = task.enterSync();`,
  { name: "[^'\\n]*", handling: '(?:none|result-catch-handler)', idx: '\\d+', message: '[^`]*' },
);

/** The call itself, made with the host task recorded as current. */
const CALL = shape(`_withGlobalCurrentTaskMeta({ componentIdx: task.componentIdx(), taskID: task.id(), fn: () => «expr», })`, {
  expr: '([^\\n]*)',
});

/** Resolving the host task with the lowered result (which hands it to the subtask) and leaving the function. */
function epilogue(name: string): RegExp {
  return shape(`task.resolve([«value»]); task.exit(); «again» } «fnName»`, {
    value: '([^\\n]*)',
    again: '(?:return ([^\\n]*);)?',
    fnName: `(${name}\\.fnName = '[^'\\n]*';)$`,
  });
}

/** The only uses of `task` left once the bookkeeping is out: the error path's debug log and calls. */
const LEFT_TASK_USE = /\btask\.(\w+)\(/g;
const STUB_METHODS = new Set(['id', 'componentIdx', 'getParentSubtask', 'setErrored', 'reject', 'exit']);
const BOOKKEEPING = /\b(?:createNewCurrentTask|getCurrentTask|_withGlobalCurrentTaskMeta|parentTask|subtask|enterSync)\b/;

/** One host import's function, from its declaration to the line naming it. */
const HOST_FUNCTION = /const (_trampoline\d+) = function\([^)]*\) \{\n[\s\S]*?\n\s*\1\.fnName = '[^'\n]*';/g;

function count(source: string, pattern: RegExp): number {
  return source.match(pattern)?.length ?? 0;
}

/** Rewrites one host import's function, or says why it cannot. */
function leanFunction(text: string, name: string): string | { refused: string } {
  if (count(text, PROLOGUE) !== 1) return { refused: `${name}: its host-task prologue is not the expected one` };
  if (count(text, CALL) !== 1) return { refused: `${name}: its call is not the expected one` };
  const end = epilogue(name);
  if (count(text, end) !== 1) return { refused: `${name}: its ending is not the expected one` };
  let refused: string | undefined;
  const lean = text
    .replace(PROLOGUE, 'const task = __lamplighterHostTask;')
    .replace(CALL, (_whole, expr: string) => `(${expr})`)
    .replace(end, (_whole, value: string, again: string | undefined, fnName: string) => {
      // Where the function returned a value, it was this one (the wrapper handed the task's on).
      if (again !== undefined && again !== value) refused = `${name}: it returns other than it resolves`;
      return `return ${value};\n}\n${fnName}`;
    });
  if (refused) return { refused };
  if (BOOKKEEPING.test(lean.replace('const task = __lamplighterHostTask;', ''))) return { refused: `${name}: task bookkeeping is left` };
  for (const [, method] of lean.matchAll(LEFT_TASK_USE)) {
    if (!STUB_METHODS.has(method!)) return { refused: `${name}: it calls task.${method}()` };
  }
  return lean;
}

/**
 * The lowering wrapper of one import; its second half is the one used unless jco was told the
 * import is async. Options may hold functions (result lowerers), so they are bounded by the next
 * wrapper rather than by a character.
 */
const OPTIONS = '((?:(?!\\nlet trampoline)[\\s\\S])*?)';
const WRAPPER = new RegExp(
  `(let trampoline(\\d+) = _trampoline\\2\\.manuallyAsync \\? new WebAssembly\\.Suspending\\(_lowerImportBackwardsCompat\\.bind\\(\\s*null,\\s*\\{${OPTIONS}importFn: _trampoline\\2,\\s*\\},\\s*\\)\\)) : ` +
    `_lowerImportBackwardsCompat\\.bind\\(\\s*null,\\s*\\{${OPTIONS}importFn: _trampoline\\2,\\s*\\},\\s*\\);`,
  'g',
);

/** A wrapper's options that make it call the import straight through and hand its value back. */
const SYNC_OPTIONS = [/\bisAsync: false,/, /\bfuncTypeIsAsync: false,/];

/**
 * Rewrites jco 1.24's instantiation module so that synchronous host imports are called straight
 * from the core instance: the lowering wrapper is replaced by the import's function, and that
 * function no longer opens a host task. All or nothing: when any host import or its wrapper is not
 * of the expected shape, or jco was told some import is async (`manuallyAsync`), the source comes
 * back unchanged with `imports: 0`.
 */
export function leanSyncImports(source: string): LeanImports {
  const unchanged = (refused: string): LeanImports => ({ source, imports: 0, refused });
  if (/\.manuallyAsync\s*=/.test(source)) return unchanged('an import is marked async');
  const hostImports = count(source, /const hostProvided = true;/g);
  if (hostImports === 0) return unchanged('no host import has the expected shape');
  let refused: string | undefined;
  const names: string[] = [];
  let lean = source.replace(HOST_FUNCTION, (text, name: string) => {
    if (refused || !text.includes('const hostProvided = true;')) return text;
    const out = leanFunction(text, name);
    if (typeof out !== 'string') {
      refused = out.refused;
      return text;
    }
    names.push(name);
    return out;
  });
  if (refused) return unchanged(refused);
  if (names.length !== hostImports) return unchanged(`${hostImports - names.length} host imports are not where expected`);
  const leaned = new Set(names);
  const wrapped = new Set<string>();
  lean = lean.replace(WRAPPER, (whole, asyncHalf: string, n: string, _asyncOptions: string, options: string) => {
    const name = `_trampoline${n}`;
    if (!leaned.has(name)) return whole;
    if (!SYNC_OPTIONS.every((option) => option.test(options))) refused ??= `${name}: it is lowered as async`;
    wrapped.add(name);
    return `${asyncHalf} : ${name};`;
  });
  if (refused) return unchanged(refused);
  if (wrapped.size !== leaned.size) return unchanged(`${leaned.size - wrapped.size} host imports have no lowering wrapper of the expected shape`);
  if (count(lean, /: _lowerImportBackwardsCompat\.bind\(/g) !== 0) return unchanged('a lowering wrapper is left');
  const directive = /^"use [^"]*";\n/.exec(lean)?.[0] ?? '';
  lean = `${directive}${HOST_TASK_STUB}\n${lean.slice(directive.length)}`;
  return { source: lean, imports: names.length };
}
