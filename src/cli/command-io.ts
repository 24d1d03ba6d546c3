// Where CLI commands write: injectable so tests capture output.

/** `out` for results, `err` for diagnostics; each call passes whole lines without the final newline. */
export interface CommandIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

/** Writes to the process's stdout and stderr. */
export const STDIO: CommandIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};
