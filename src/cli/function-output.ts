// `lamplighter up` shows each function's output in its terminal, each line prefixed with the function's name.
import type { FunctionLogs } from '../observability/index.js';
import type { CommandIo } from './command-io.js';

/**
 * Prints every new line of every function as `[name] text`: stdout to `io.out`, stderr and
 * platform notes to `io.err`. Returns the unsubscribe function.
 */
export function printFunctionOutput(logs: FunctionLogs, io: CommandIo): () => void {
  return logs.follow((line) => {
    const text = `[${line.function}] ${line.text}`;
    if (line.stream === 'stdout') io.out(text);
    else io.err(text);
  });
}
