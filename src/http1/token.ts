// Token characters (RFC 9110 §5.6.2): what methods and header names are made of.

/** 1 for each byte that may appear in a token, 0 for the rest. */
export const TOKEN_CHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN_CHAR[c.charCodeAt(0)] = 1;

/**
 * The items of a comma-separated header list such as connection or transfer-encoding, lower-cased
 * and trimmed (empty items kept). One shared reading for requests and children's responses.
 */
export function listTokens(value: string): string[] {
  const lower = value.toLowerCase();
  return lower.includes(',') ? lower.split(',').map((t) => t.trim()) : [lower.trim()];
}

/** Whether `text` is a non-empty token. */
export function isToken(text: string): boolean {
  if (text.length === 0) return false;
  for (let i = 0; i < text.length; i++) if (TOKEN_CHAR[text.charCodeAt(i)] !== 1) return false;
  return true;
}
