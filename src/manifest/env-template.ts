// `{{ name }}` references to app variables in a function's env values: parsed once, rendered per node.

/** What a variable name may be: lower-case letters, digits and underscores, starting with a letter. */
export const VARIABLE_NAME = /^[a-z][a-z0-9_]*$/;

/** One env value split into literal text and variable references, in order. */
export type EnvTemplate = ReadonlyArray<{ text: string } | { variable: string }>;

/**
 * Splits `value` into text and `{{ name }}` references. Throws an Error saying what is wrong for
 * a `{{` that is never closed or a reference that is not a variable name.
 */
export function parseEnvTemplate(value: string): EnvTemplate {
  const parts: Array<{ text: string } | { variable: string }> = [];
  let at = 0;
  while (at < value.length) {
    const open = value.indexOf('{{', at);
    if (open < 0) break;
    const close = value.indexOf('}}', open + 2);
    if (close < 0) throw new Error(`'{{' at character ${open + 1} is never closed by '}}'; write a variable as {{ name }}`);
    const name = value.slice(open + 2, close).trim();
    if (!VARIABLE_NAME.test(name)) {
      throw new Error(`{{ ${name} }} is not a variable name: use lower-case letters, digits and underscores, starting with a letter`);
    }
    if (open > at) parts.push({ text: value.slice(at, open) });
    parts.push({ variable: name });
    at = close + 2;
  }
  if (at < value.length) parts.push({ text: value.slice(at) });
  return parts;
}

/** The variables an env value refers to. */
export function referencedVariables(value: string): string[] {
  return parseEnvTemplate(value).flatMap((part) => ('variable' in part ? [part.variable] : []));
}

/** `value` with each reference replaced by its variable's value from `values`. */
export function renderEnvTemplate(value: string, values: ReadonlyMap<string, string>): string {
  if (!value.includes('{{')) return value;
  return parseEnvTemplate(value)
    .map((part) => {
      if ('text' in part) return part.text;
      const resolved = values.get(part.variable);
      // The manifest's validation guarantees every reference is declared, and resolution every declared one.
      if (resolved === undefined) throw new Error(`variable '${part.variable}' has no value`);
      return resolved;
    })
    .join('');
}
