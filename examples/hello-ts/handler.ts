// Lamplighter example component: a TypeScript fetch handler, built with `lamplighter build examples/hello-ts/handler.ts`.
interface Env {
  GREETING?: string;
}

export default {
  async fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    const greeting = env.GREETING ?? 'Hello';
    if (url.pathname.endsWith('/json')) {
      return Response.json({ greeting, method: request.method, path: url.pathname, query: url.search.slice(1) });
    }
    return new Response(`${greeting} from a Lamplighter component! You asked for ${url.pathname}\n`, {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  },
};
