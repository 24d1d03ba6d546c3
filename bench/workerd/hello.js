// The workerd peer of examples/hello: the same text, from a JS fetch handler.
export default {
  async fetch() {
    return new Response('Hello from Lamplighter!\n', { headers: { 'content-type': 'text/plain; charset=utf-8' } });
  },
};
