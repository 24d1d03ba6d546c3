// One header field line (RFC 9112 §5), checked the same way for the requests the gateway reads
// and the responses its children send.
import { TOKEN_CHAR } from './token.js';

/** A header line's name (lower-cased) and value (surrounding spaces and tabs trimmed). */
export interface HeaderLine {
  name: string;
  value: string;
}

/**
 * Reads the header line `text[at, stop)` into `into` (reused by the caller across lines, so a
 * head costs no object per line). Returns undefined, or a message saying what is wrong: a folded
 * line, a name that is not a token, no colon, or a control character in the value.
 */
export function readHeaderLine(text: string, at: number, stop: number, into: HeaderLine): string | undefined {
  const first = text.charCodeAt(at);
  if (first === 32 || first === 9) return 'a header is folded over several lines (obsolete line folding is not accepted)';
  let colon = at;
  while (colon < stop) {
    const c = text.charCodeAt(colon);
    if (c === 58) break;
    if (TOKEN_CHAR[c] !== 1) {
      const why = c === 32 || c === 9 ? ' (it has whitespace before its colon)' : '';
      return `a header line does not start with a valid name${why}: ${JSON.stringify(text.slice(at, Math.min(stop, at + 60)))}`;
    }
    colon++;
  }
  if (colon === at || colon === stop) return `a header line has no name or no colon: ${JSON.stringify(text.slice(at, Math.min(stop, at + 60)))}`;
  let vs = colon + 1;
  let ve = stop;
  while (vs < ve && (text.charCodeAt(vs) === 32 || text.charCodeAt(vs) === 9)) vs++;
  while (ve > vs && (text.charCodeAt(ve - 1) === 32 || text.charCodeAt(ve - 1) === 9)) ve--;
  for (let k = vs; k < ve; k++) {
    const c = text.charCodeAt(k);
    if ((c < 32 && c !== 9) || c === 127) return `header '${text.slice(at, colon).toLowerCase()}' has a control character in its value`;
  }
  into.name = text.slice(at, colon).toLowerCase();
  into.value = text.slice(vs, ve);
  return undefined;
}
