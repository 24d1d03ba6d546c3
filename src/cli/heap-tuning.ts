// V8 settings for the long-running `lamplighter` process. Imported first by main.ts, so they hold
// before anything else is loaded; the library itself changes no process-wide setting.
import v8 from 'node:v8';

// Allocation-site pretenuring off. When V8 sees most objects from one allocation site survive a
// young-generation collection (as they do while a burst of requests is held, or while modules
// load), it allocates that site's objects straight into the old generation from then on. On the
// gateway's request path that keeps every request's young objects alive through each scavenge
// (old objects point at them) until the next full collection: each scavenge then copies about
// 0.5 MB and pauses 2–3 ms, and the old generation fills and needs mark-compacts, pauses that land
// in the gateway's tail latency. Off, a scavenge at 1,000 requests/s copies about 10 KB and takes
// under 1 ms. The flag is read at every collection, so setting it at start-up takes effect.
v8.setFlagsFromString('--no-allocation-site-pretenuring');
