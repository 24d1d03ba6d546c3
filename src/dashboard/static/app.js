// The Lamplighter dashboard: preact components written with htm, charts drawn by uPlot. It talks to
// the admin API of the node that serves it, with the session cookie set at login.
import { h, render, Component, createRef, htm, uPlot } from '/ui/vendor.js';

const html = htm.bind(h);

/**
 * The session's secret, given at login and sent in a header on every request: the node takes the
 * cookie only with it. Kept in this tab's sessionStorage, which no other origin (the gateway's port
 * included) can read, so a reload does not log out.
 */
const SECRET_KEY = 'lamplighter-dashboard-secret';
const SECRET_HEADER = 'x-lamplighter-dashboard';

function withSecret(headers = {}) {
  return { [SECRET_HEADER]: sessionStorage.getItem(SECRET_KEY) ?? '', ...headers };
}
const POLL_MS = 1000;
const LOG_LINES_KEPT = 300;

/** An error from the admin API, with its message and HTTP status. */
class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Fetches JSON from the node; network failures and error answers become ApiError (status 0 for no answer). */
async function api(path, init = {}) {
  let res;
  try {
    res = await fetch(path, { credentials: 'same-origin', ...init, headers: withSecret(init.headers) });
  } catch (err) {
    throw new ApiError(0, `Cannot reach the node (${err.message})`);
  }
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, `The node answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) throw new ApiError(res.status, body?.error?.message ?? `The node answered ${res.status}`);
  return body;
}

function postJson(path, value) {
  return api(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) });
}

function fmt(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  return n >= 100 ? n.toFixed(0) : n.toFixed(digits);
}

function LoginForm({ error, onLogin }) {
  const submit = (event) => {
    event.preventDefault();
    onLogin(new FormData(event.target).get('token'));
  };
  return html`
    <form id="login" class="login" onSubmit=${submit}>
      <h1>Lamplighter</h1>
      <p>Enter this node's admin token (printed at start, or in <code>DATA/token</code>).</p>
      <input id="token" name="token" type="password" autocomplete="current-password" required aria-label="Admin token" />
      <button type="submit">Log in</button>
      ${error && html`<p id="login-error" class="error" role="alert">${error}</p>`}
    </form>`;
}

/** One uPlot chart; new data is handed to the same plot rather than redrawing the component. */
class Chart extends Component {
  constructor(props) {
    super(props);
    this.box = createRef();
  }
  componentDidMount() {
    const { title, series } = this.props;
    // A series on the 'ms' scale (a wait) is read off a second axis on the right, apart from counts.
    const twoScales = series.some((s) => s.scale === 'ms');
    this.plot = new uPlot(
      {
        title,
        width: 300,
        height: 150,
        cursor: { show: false },
        legend: { show: true, live: false },
        scales: { x: { time: true } },
        axes: [{ space: 60 }, { size: 45 }, ...(twoScales ? [{ scale: 'ms', side: 1, size: 45, grid: { show: false } }] : [])],
        // Waits are rare and lone values: drawn as points, where the rest are lines.
        series: [{}, ...series.map((s) => ({ label: s.label, stroke: s.color, width: 1.5, scale: s.scale ?? 'y', points: { show: s.scale === 'ms' } }))],
      },
      this.props.data,
      this.box.current,
    );
  }
  componentDidUpdate() {
    this.plot?.setData(this.props.data);
  }
  componentWillUnmount() {
    this.plot?.destroy();
  }
  render({ title, data }) {
    // The largest value of the first series, for a glance (and a test) that the chart has data.
    const peak = Math.max(0, ...data[1].filter((v) => v !== null));
    return html`<div class="chart" data-title=${title} data-peak=${peak} ref=${this.box}></div>`;
  }
}

function FunctionCard({ fn, series }) {
  const samples = series?.samples ?? [];
  const last = samples[samples.length - 1];
  const t = samples.map((s) => s.t);
  const col = (key) => samples.map((s) => s[key]);
  return html`
    <section class="card function" id=${`fn-${fn.name}`} data-function=${fn.name}>
      <h3>${fn.name} <span class=${`status ${fn.status}`}>${fn.status}</span></h3>
      <dl class="figures">
        <div><dt>app</dt><dd>${fn.app}</dd></div>
        <div><dt>runtime</dt><dd>${fn.runtime}</dd></div>
        <div><dt>instances</dt><dd class="fig-instances">${fn.instances}</dd></div>
        <div><dt>in flight</dt><dd class="fig-inflight">${fn.inFlight}</dd></div>
        <div><dt>held</dt><dd class="fig-pending">${fn.pending}</dd></div>
        <div><dt>requests</dt><dd class="fig-requests">${series ? series.totalRequests : 0}</dd></div>
        <div><dt>req/s</dt><dd class="fig-rate">${fmt(last?.rate)}</dd></div>
        <div><dt>p50 / p99 ms</dt><dd class="fig-latency">${fmt(last?.p50Ms)} / ${fmt(last?.p99Ms)}</dd></div>
        <div><dt>cold starts</dt><dd class="fig-cold">${series ? series.totalColdStarts : 0}</dd></div>
      </dl>
      <div class="charts">
        <${Chart} title="Requests per second" data=${[t, col('rate'), col('errors')]}
          series=${[{ label: 'req/s', color: '#2563eb' }, { label: '5xx/s', color: '#dc2626' }]} />
        <${Chart} title="Latency (ms)" data=${[t, col('p50Ms'), col('p99Ms')]}
          series=${[{ label: 'p50', color: '#059669' }, { label: 'p99', color: '#d97706' }]} />
        <${Chart} title="Cold starts and instances" data=${[t, col('coldStarts'), col('coldWaitMs'), col('instances')]}
          series=${[{ label: 'cold starts', color: '#7c3aed' }, { label: 'wait ms', color: '#db2777', scale: 'ms' }, { label: 'instances', color: '#475569' }]} />
      </div>
    </section>`;
}

function AppCard({ app, revisions, onRollback, busy }) {
  return html`
    <section class="card app" id=${`app-${app.name}`} data-app=${app.name}>
      <h3>${app.name} <span class="revision">revision <b class="current-revision">${app.revision}</b></span></h3>
      ${app.restored && html`<p class="warning">${app.restored.reason ?? 'Restored from another revision'}</p>`}
      <p>Functions: ${app.functions.map((f) => f.name).join(', ') || 'none'}</p>
      <table class="revisions">
        <thead><tr><th>Revision</th><th>Created</th><th></th></tr></thead>
        <tbody>
          ${(revisions ?? []).slice().reverse().map(
            (r) => html`<tr data-revision=${r.number}>
              <td>${r.number}</td>
              <td>${new Date(r.createdAt).toLocaleString()}</td>
              <td>${r.number === app.revision
                ? html`<span class="serving">serving</span>`
                : html`<button class="rollback" disabled=${busy} onClick=${() => onRollback(app.name, r.number)}>Roll back to ${r.number}</button>`}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </section>`;
}

function Nodes({ cluster }) {
  if (!cluster) return null;
  if (cluster.mode !== 'cluster') return html`<p id="nodes" class="muted">A single node (<b>${cluster.node}</b>), not in a cluster.</p>`;
  return html`
    <table id="nodes" class="nodes">
      <thead><tr><th>Node</th><th>Address</th><th>Healthy</th><th>Draining</th><th>Last heartbeat</th></tr></thead>
      <tbody>
        ${cluster.nodes.map(
          (n) => html`<tr data-node=${n.name}>
            <td>${n.name}${n.self ? ' (this node)' : ''}</td><td>${n.address}</td>
            <td class=${n.healthy ? 'ok' : 'bad'}>${n.healthy ? 'yes' : 'no'}</td><td>${n.draining ? 'yes' : 'no'}</td>
            <td>${n.lastHeartbeat ? new Date(n.lastHeartbeat).toLocaleTimeString() : '–'}</td>
          </tr>`,
        )}
      </tbody>
    </table>`;
}

/** The newest lines at the bottom, kept in view unless the reader scrolled up. */
class LogTail extends Component {
  constructor(props) {
    super(props);
    this.box = createRef();
  }
  getSnapshotBeforeUpdate() {
    const box = this.box.current;
    return box ? box.scrollHeight - box.scrollTop - box.clientHeight < 20 : true;
  }
  componentDidUpdate(_props, _state, atBottom) {
    const box = this.box.current;
    if (box && atBottom) box.scrollTop = box.scrollHeight;
  }
  render({ lines, state }) {
    return html`
      <div class="logs">
        <p class="muted">Following <span id="log-state">${state}</span></p>
        <pre id="log-lines" ref=${this.box}>${lines.map(
          (l) => html`<div class=${`line ${l.stream}`}><span class="time">${new Date(l.time).toLocaleTimeString()}</span> <span class="fn">${l.function}</span> ${l.text}</div>`,
        )}</pre>
      </div>`;
  }
}

/** Follows `/v1/logs/APP?follow=1` for each app (the ndjson stream), until stopped. */
class LogFollower {
  constructor(onLine, onState) {
    this.onLine = onLine;
    this.onState = onState;
    this.streams = new Map();
  }
  /** Follows exactly these apps: new ones are opened, gone ones closed. */
  follow(apps) {
    for (const [name, controller] of this.streams) {
      if (!apps.includes(name)) {
        controller.abort();
        this.streams.delete(name);
      }
    }
    for (const name of apps) if (!this.streams.has(name)) this.#open(name);
  }
  stop() {
    for (const controller of this.streams.values()) controller.abort();
    this.streams.clear();
  }
  async #open(name) {
    const controller = new AbortController();
    this.streams.set(name, controller);
    try {
      const res = await fetch(`/v1/logs/${encodeURIComponent(name)}?follow=1&tail=50`, { signal: controller.signal, credentials: 'same-origin', headers: withSecret() });
      if (!res.ok || !res.body) throw new Error(`the node answered ${res.status}`);
      this.onState('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffered += value;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const text = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (text) this.onLine(JSON.parse(text));
        }
      }
      throw new Error('the stream ended');
    } catch (err) {
      if (controller.signal.aborted) return;
      this.onState(`lost (${err.message}); retrying`);
      // Opened again by the next poll that lists the app.
      if (this.streams.get(name) === controller) this.streams.delete(name);
    }
  }
}

class Dashboard extends Component {
  constructor() {
    super();
    this.state = { phase: 'checking', node: '', loginError: '', connection: '', apps: [], revisions: {}, series: {}, cluster: undefined, logs: [], logState: 'connecting', notice: '', busy: false };
    this.revisionSeen = {};
    this.logs = new LogFollower(
      (line) => this.setState((s) => ({ logs: [...s.logs, line].slice(-LOG_LINES_KEPT) })),
      (logState) => this.setState({ logState }),
    );
  }

  async componentDidMount() {
    try {
      const { node } = await api('/ui/api/session');
      this.#enter(node);
    } catch (err) {
      if (err.status === 401) this.setState({ phase: 'login' });
      else this.setState({ phase: 'login', loginError: err.message });
    }
  }

  componentWillUnmount() {
    this.#leave();
  }

  #enter(node) {
    this.setState({ phase: 'ready', node, loginError: '', connection: '' });
    this.#poll();
    this.timer = setInterval(() => this.#poll(), POLL_MS);
  }

  #leave(message = '') {
    clearInterval(this.timer);
    sessionStorage.removeItem(SECRET_KEY);
    this.logs.stop();
    this.revisionSeen = {};
    this.setState({ phase: 'login', loginError: message, logs: [] });
  }

  login = async (token) => {
    try {
      const { node, secret } = await api('/ui/api/session', {
        method: 'POST',
        headers: { 'content-type': 'application/json', [SECRET_HEADER]: 'login' },
        body: JSON.stringify({ token }),
      });
      sessionStorage.setItem(SECRET_KEY, secret);
      this.#enter(node);
    } catch (err) {
      this.setState({ loginError: err.message });
    }
  };

  logout = async () => {
    await api('/ui/api/session', { method: 'DELETE' }).catch(() => undefined);
    this.#leave();
  };

  rollback = async (app, revision) => {
    this.setState({ busy: true, notice: `Rolling ${app} back to revision ${revision}…` });
    try {
      const out = await postJson(`/v1/apps/${encodeURIComponent(app)}/rollback`, { revision });
      this.setState({ notice: `${app} now serves revision ${out.revision}` });
      await this.#poll();
    } catch (err) {
      this.setState({ notice: `Rollback of ${app} failed: ${err.message}` });
    } finally {
      this.setState({ busy: false });
    }
  };

  async #poll() {
    if (this.polling) return;
    this.polling = true;
    try {
      const [{ apps }, cluster, { functions }] = await Promise.all([api('/v1/apps'), api('/v1/cluster'), api('/ui/api/series')]);
      const revisions = { ...this.state.revisions };
      for (const app of apps) {
        if (this.revisionSeen[app.name] === app.revision) continue;
        revisions[app.name] = (await api(`/v1/apps/${encodeURIComponent(app.name)}/revisions`)).revisions;
        this.revisionSeen[app.name] = app.revision;
      }
      this.logs.follow(apps.filter((a) => a.functions.length > 0).map((a) => a.name));
      this.setState({ apps, cluster, series: functions, revisions, connection: '' });
    } catch (err) {
      if (err.status === 401) this.#leave('The session ended: log in again.');
      else this.setState({ connection: `Lost contact with node ${this.state.node}: ${err.message}. Retrying every second.` });
    } finally {
      this.polling = false;
    }
  }

  render(_, s) {
    if (s.phase === 'checking') return html`<p class="muted">Loading…</p>`;
    if (s.phase === 'login') return html`<${LoginForm} error=${s.loginError} onLogin=${this.login} />`;
    const functions = s.apps.flatMap((a) => a.functions);
    return html`
      <header>
        <h1>Lamplighter <span class="muted">node <b id="node-name">${s.node}</b></span></h1>
        <button id="logout" onClick=${this.logout}>Log out</button>
      </header>
      ${s.connection && html`<p id="connection" class="banner error" role="alert">${s.connection}</p>`}
      ${s.notice && html`<p id="notice" class="banner">${s.notice}</p>`}
      <h2>Apps</h2>
      <div id="apps" class="grid">
        ${s.apps.length === 0 ? html`<p class="muted">No apps deployed.</p>` : s.apps.map(
          (app) => html`<${AppCard} key=${app.name} app=${app} revisions=${s.revisions[app.name]} onRollback=${this.rollback} busy=${s.busy} />`,
        )}
      </div>
      <h2>Functions</h2>
      <div id="functions">
        ${functions.map((fn) => html`<${FunctionCard} key=${fn.name} fn=${fn} series=${s.series[fn.name]} />`)}
      </div>
      <h2>Logs</h2>
      <${LogTail} lines=${s.logs} state=${s.logState} />
      <h2>Nodes</h2>
      <${Nodes} cluster=${s.cluster} />`;
  }
}

render(html`<${Dashboard} />`, document.getElementById('app'));
