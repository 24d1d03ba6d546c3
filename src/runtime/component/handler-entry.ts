// The JavaScript `lamplighter build` wraps a handler in, for the engine's own fetch event.
import { NO_RESPONSE_HEADER } from './component-protocol.js';
import { ENGINE_CLI_VERSION } from './handler-wit.js';

/**
 * Declarations both entries start with: the 502 for a handler that gives no Response (an empty
 * body carrying {@link NO_RESPONSE_HEADER}, which the host turns into its JSON error), and the
 * check that names what it gave instead.
 */
export function noResponseSource(): string {
  return `const noResponse = (why) => new Response(null, { status: 502, headers: { ${JSON.stringify(NO_RESPONSE_HEADER)}: why } });
const checked = (value, source) => value instanceof Response ? value : noResponse(source + ' gave ' + (value === null ? 'null' : typeof value) + ', not a Response');`;
}

/**
 * A module imported before the handler, by both entries: it keeps the handler's `fetch` listeners
 * to itself, so that the entry decides what happens when none of them responds (the build for
 * reuse has no engine fetch event at all, and calls them itself).
 */
export const HANDLER_PRELUDE = `export const listeners = [];
const engineAddEventListener = globalThis.addEventListener;
globalThis.addEventListener = function addEventListener(type, listener, options) {
  if (type === 'fetch') {
    if (listener) listeners.push(listener);
    return;
  }
  if (typeof engineAddEventListener === 'function') return engineAddEventListener.call(globalThis, type, listener, options);
};
export function listen(listener) {
  engineAddEventListener.call(globalThis, 'fetch', listener);
}
`;

/**
 * The entry of a build for the engine's fetch event (the default). A module with
 * `export default { fetch(request, env) }` is called with the manifest's environment; otherwise
 * the fetch listeners the module registered are called in order until one responds. No response
 * at all (nothing registered, no listener responding, or something other than a Response) becomes
 * the 502 of {@link noResponseSource}. The engine answers one request per instance.
 */
export function fetchEventEntry(handlerPath: string, preludePath: string): string {
  return `import { listeners, listen } from ${JSON.stringify(preludePath)};
import * as handlerModule from ${JSON.stringify(handlerPath)};
import { getEnvironment } from 'wasi:cli/environment@${ENGINE_CLI_VERSION}';
const handler = handlerModule.default;
${noResponseSource()}
listen((event) => {
  if (handler && typeof handler.fetch === 'function') {
    const env = Object.fromEntries(getEnvironment());
    const ctx = { waitUntil: (promise) => event.waitUntil(promise) };
    event.respondWith(Promise.resolve().then(() => handler.fetch(event.request, env, ctx)).then((r) => checked(r, 'fetch()')));
    return;
  }
  let responded = false;
  const respondWith = (r) => {
    responded = true;
    event.respondWith(Promise.resolve(r).then((value) => checked(value, 'respondWith()')));
  };
  const proxy = new Proxy(event, {
    get(target, key) {
      if (key === 'respondWith') return respondWith;
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  for (const listener of listeners) {
    if (typeof listener === 'function') listener.call(globalThis, proxy);
    else listener.handleEvent(proxy);
    if (responded) return;
  }
  event.respondWith(noResponse(listeners.length === 0 ? 'no fetch handler is registered' : 'no fetch listener called respondWith()'));
});
`;
}
