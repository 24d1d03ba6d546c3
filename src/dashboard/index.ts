// The web dashboard served on the admin port at /ui.
export { Dashboard, DASHBOARD_REQUEST_HEADER } from './dashboard.js';
export type { DashboardSource, DashboardOptions } from './dashboard.js';
export { SESSION_COOKIE, SessionDefaults } from './sessions.js';
export type { SessionStoreOptions } from './sessions.js';
export { SamplerDefaults } from './series-sampler.js';
export type { Sample, FunctionSeries, FunctionFigures, SeriesSamplerOptions } from './series-sampler.js';
export { bearerMatches, sendJson } from './admin-http.js';
