// The dispatcher of one function: its lit instances, the requests held for them, and lighting/putting out.
import type { Duplex, Readable } from 'node:stream';
import { ErrorCodes, LamplighterError, toLamplighterError } from '../errors/index.js';
import { isAborted, listenForAbort, SentBack, type DispatchResult, type GatewayTarget, type Instance, type InstanceFactory, type InvocationRequest, type InvocationResponse } from '../instance/index.js';
import type { FunctionScale, FunctionSpec } from '../manifest/index.js';
import type { FunctionPeers, PeerChoice } from './function-peers.js';
import { instanceStartChannel, instanceStopChannel, type Metrics } from '../observability/index.js';
import { systemClock, type Clock, type ClockTimer } from '../runtime/process/index.js';
import { decideScale, DemandTracker, type ScaleDecision } from '../scaler/index.js';
import { traceOf } from '../tracing/index.js';

/** Options for {@link Dispatcher}. */
export interface DispatcherOptions {
  /** Metrics of the node. */
  metrics: Metrics;
  /** Platform log lines about this function (lighting, failures). */
  log: (text: string) => void;
  /** Time source for demand, cold-start waits and the cold-start timeout. @default systemClock */
  clock?: Clock;
  /** The function on other nodes of a cluster; none on an embedded node. @default undefined */
  peers?: FunctionPeers;
}

interface Slot {
  instance: Instance;
  ready: boolean;
  retiring: boolean;
  inFlight: number;
  /** When it was lit, on the dispatcher's clock. */
  litAt: number;
  /** Requests handed to it so far. */
  served: number;
}

/** One instance as `inspect` shows it. */
export interface InstanceInspection {
  id: string;
  state: 'lighting' | 'ready' | 'retiring';
  ageMs: number;
  inFlight: number;
  served: number;
  /** What the runtime holds for it (a process's upstream connections); none for runtimes without figures. */
  figures?: Readonly<Record<string, number>>;
}

/** The last scaling decision of a function, with when it was made and what it did here. */
export interface ScaleDecisionInspection extends ScaleDecision {
  /** How long ago, in ms. */
  agoMs: number;
  /** Instances this node ran when it decided, and wanted after scale.max across the cluster. */
  live: number;
  wanted: number;
}

/** What a function's dispatcher is doing now: for `lamplighter inspect`. */
export interface DispatcherInspection {
  instances: InstanceInspection[];
  /** Requests held for room: how many, and the ages of the oldest (at most the limit asked for). */
  held: { count: number; oldestAgesMs: number[] };
  /** Requests in the system, time-weighted concurrency and requests/s over the scale window; ms since the last request ended (null: none yet, 0: busy). */
  demand: { active: number; concurrency: number; ratePerSecond: number; idleForMs: number | null };
  lastDecision: ScaleDecisionInspection | undefined;
}

interface Waiter {
  request: InvocationRequest;
  cold: boolean;
  since: number;
  /** False for a connection upgrade: it waits for room, never ahead. */
  mayGoAhead: boolean;
  /** Given the slot to serve on, and the response already under way when the instance took the request ahead. */
  resolve: (slot: Slot, taken?: Promise<InvocationResponse>) => void;
  reject: (err: LamplighterError) => void;
  timer: ClockTimer;
  /** Stops listening for the request being given up. */
  stopListening: () => void;
}

/**
 * The refusal of a request that would be held past `limits.max_pending`: 503 LL_OVER_CAPACITY,
 * retry after a second. Made by admission's pending cap and by {@link Dispatcher}'s own backstop.
 */
export function overPendingCap(spec: FunctionSpec, waiting: number): LamplighterError {
  return new LamplighterError(ErrorCodes.OVER_CAPACITY, `Function '${spec.name}' has ${waiting} requests waiting, its limit (limits.max_pending)`, { retryAfter: 1 });
}

/**
 * Holds the instances of one function revision and routes each request to one of them. The
 * deadline, breakers and the pending cap are steps in front of it (src/admission); the cap is
 * also held here, where a request is queued, since a request the cap let through because a peer
 * had room comes back to be held when that peer cannot be reached.
 */
export class Dispatcher implements GatewayTarget {
  private slots: Slot[] = [];
  private waiters: Waiter[] = [];
  private seq = 0;
  private stopped = false;
  private readonly time: Clock;
  /** Demand on this function, read by the scaler and KEDA. */
  readonly demand: DemandTracker;
  /** Why the last instance failed to light, until one lights. */
  lastFailure: string | undefined;
  /**
   * Requests one instance serves at once: limits.concurrency, or less when the runtime caps it.
   * A request beyond it would wait inside the instance behind the ones running (a runaway among
   * them holds its place until its timeout), so it is held here instead, where it counts as
   * demand for another instance.
   */
  readonly perInstance: number;
  /** The scaling settings in force: scale.target is at most {@link perInstance}. */
  readonly scale: FunctionScale;
  #lastDecision: { at: number; decision: ScaleDecision; live: number; wanted: number } | undefined;

  constructor(
    readonly spec: FunctionSpec,
    /** Lights this function's instances. */
    readonly factory: InstanceFactory,
    private readonly options: DispatcherOptions,
  ) {
    this.time = options.clock ?? systemClock;
    this.perInstance = Math.max(1, Math.min(spec.limits.concurrency, factory.capacity ?? Infinity));
    const target = spec.scale.target === undefined ? undefined : Math.min(spec.scale.target, this.perInstance);
    this.scale = { ...spec.scale, target };
    this.demand = new DemandTracker(this.time.now(), { windowMs: spec.scale.windowMs });
    for (let i = 0; i < spec.scale.min; i++) this.light();
  }

  /** Instances lit or lighting now. */
  get instanceCount(): number {
    return this.slots.length;
  }

  /** Instances able to take requests now. */
  get readyCount(): number {
    let n = 0;
    for (const slot of this.slots) if (slot.ready && !slot.retiring) n++;
    return n;
  }

  /** Requests held waiting for an instance. */
  get pendingCount(): number {
    return this.waiters.length;
  }

  /** Requests being served by instances now. */
  get inFlightCount(): number {
    let n = 0;
    for (const slot of this.slots) n += slot.inFlight;
    return n;
  }

  /**
   * Whether a request arriving now would be held here: no local instance has room, no placeholder
   * answers it, and (in a cluster) no other node would take it. Read by the pending cap before
   * dispatch: the choice {@link dispatch} makes, without reserving anything.
   */
  wouldHold(request: InvocationRequest): boolean {
    const limit = this.perInstance;
    for (const slot of this.slots) if (slot.ready && !slot.retiring && slot.inFlight < limit) return false;
    if (this.spec.placeholder && this.readyCount === 0) return false;
    const peers = this.options.peers;
    if (peers && request.forwardedBy === undefined) {
      if (peers.withRoom()) return false;
      if (this.liveCount() === 0 && peers.remoteInstances() >= this.spec.scale.max && peers.withInstances()) return false;
    }
    return true;
  }

  /** Each instance lit or lighting, with the requests it can take now (0 while lighting or retiring). */
  instanceFigures(): Array<{ id: string; free: number; ready: boolean }> {
    return this.slots.map((s) => ({ id: s.instance.id, free: s.ready && !s.retiring ? Math.max(0, this.perInstance - s.inFlight) : 0, ready: s.ready && !s.retiring }));
  }

  /**
   * Serves one request: on a free local instance now; else, in a cluster, on a node with room;
   * else held until a local instance is ready (lighting one within the cluster's `scale.max`).
   */
  dispatch(request: InvocationRequest): Promise<DispatchResult> {
    if (this.stopped) return Promise.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Function '${this.spec.name}' is being removed`));
    const slot = this.pick();
    // The common case, an instance with room, without the async machinery of the held path.
    if (slot) {
      this.demand.begin(this.time.now());
      return this.serveOn(slot, request, false);
    }
    const ahead = this.sendAhead(request);
    if (ahead) return ahead;
    const peers = this.options.peers;
    // A request another node forwarded is served here, never sent on: no loops.
    if (peers && request.forwardedBy === undefined) return this.dispatchClustered(peers, request);
    this.demand.begin(this.time.now());
    return this.dispatchHeld(request);
  }

  /**
   * No local room: a node with room serves it; if this node may light none (the cluster is at
   * `scale.max` and none is lit here), a node with instances holds it; else it is held here. A
   * forwarded request counts as demand on the node that serves it, not here.
   */
  private async dispatchClustered(peers: FunctionPeers, request: InvocationRequest): Promise<DispatchResult> {
    const room = peers.withRoom();
    const served = room && (await this.tryForward(peers, room, request));
    if (served) return served;
    if (this.liveCount() === 0 && peers.remoteInstances() >= this.spec.scale.max) {
      const busy = peers.withInstances();
      const held = busy && (await this.tryForward(peers, busy, request));
      if (held) return held;
    }
    this.demand.begin(this.time.now());
    return this.dispatchHeld(request);
  }

  /** Forwards to `peer`; undefined when it could not be reached and nothing was sent. */
  private async tryForward(peers: FunctionPeers, peer: PeerChoice, request: InvocationRequest): Promise<DispatchResult | undefined> {
    try {
      const { response, coldStart, node } = await peers.forward(peer, request);
      return { response, coldStart, node };
    } catch (err) {
      if (peers.isUnreachable(err)) return undefined;
      throw err;
    }
  }

  /** Instances lit or lighting here and not being put out. */
  private liveCount(): number {
    let n = 0;
    for (const slot of this.slots) if (!slot.retiring) n++;
    return n;
  }

  /**
   * Every instance is at capacity: one that can start `request` the moment a run of its own ends
   * takes it now (Instance.handleAhead), rather than it waiting here for a round trip. Given back
   * unstarted (the run before it went on too long), it is dispatched again.
   */
  private sendAhead(request: InvocationRequest): Promise<DispatchResult> | undefined {
    for (const slot of this.slots) {
      if (!slot.ready || slot.retiring || !slot.instance.handleAhead) continue;
      const pending = slot.instance.handleAhead(request);
      if (!pending) continue;
      slot.inFlight++;
      this.options.peers?.changed();
      this.demand.begin(this.time.now());
      return this.serveTaken(slot, request, false, pending);
    }
    return undefined;
  }

  /** Serves a request an instance took ahead; given back unstarted, it is dispatched again. */
  private serveTaken(slot: Slot, request: InvocationRequest, coldStart: boolean, taken: Promise<InvocationResponse>): Promise<DispatchResult> {
    return this.serveOn(slot, request, coldStart, taken).catch((err: unknown) => {
      if (!(err instanceof SentBack)) throw err;
      return this.dispatch(request);
    });
  }

  /** Serves `request` on `slot` (already counted in its inFlight); the demand ends with the response body. */
  private serveOn(slot: Slot, request: InvocationRequest, coldStart: boolean, taken?: Promise<InvocationResponse>): Promise<DispatchResult> {
    slot.served++;
    let pending: Promise<InvocationResponse>;
    try {
      pending = taken ?? slot.instance.handle(request);
    } catch (err) {
      pending = Promise.reject(err);
    }
    return pending.then(
      (response) => {
        this.releaseAfterBody(slot, response);
        return { response, coldStart };
      },
      (err: unknown) => {
        this.release(slot);
        this.endDemand();
        throw err;
      },
    );
  }

  /** Ends one request's share of the demand; bound once, not made per request. */
  private readonly endDemand = (): void => {
    this.demand.end(this.time.now());
  };

  /** No instance has room: the request is held until one has (lighting one if needed), or answered by the placeholder. */
  private async dispatchHeld(request: InvocationRequest): Promise<DispatchResult> {
    const coldStart = this.readyCount === 0;
    let slot: Slot;
    let taken: Promise<InvocationResponse> | undefined;
    try {
      if (coldStart && this.spec.placeholder) {
        this.reactToDemand();
        this.endDemand();
        return { response: this.placeholderResponse(), coldStart: true };
      }
      // The wait is a span of its own when the request is traced, marked cold when nothing was lit.
      const wait = traceOf(request)?.startWait(coldStart);
      try {
        ({ slot, taken } = await this.hold(request, coldStart));
      } catch (err) {
        wait?.fail(err);
        throw err;
      } finally {
        wait?.end();
      }
    } catch (err) {
      this.endDemand();
      throw err;
    }
    return taken ? this.serveTaken(slot, request, coldStart, taken) : this.serveOn(slot, request, coldStart);
  }

  /**
   * Hands an HTTP upgrade (WebSocket) to an instance; the connection holds its slot until it
   * closes. Resolves with whether it waited for a cold start and the status the instance answered.
   */
  async upgrade(request: InvocationRequest, socket: Duplex, head: Buffer): Promise<{ coldStart: boolean; status: number }> {
    if (this.stopped) throw new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Function '${this.spec.name}' is being removed`);
    let slot = this.pick();
    const peers = this.options.peers;
    if (!slot && peers && request.forwardedBy === undefined) {
      // The same choice as for a request: a node with room, or one with instances when none may light here.
      const atMax = this.liveCount() === 0 && peers.remoteInstances() >= this.spec.scale.max;
      const peer = peers.withRoom() ?? (atMax ? peers.withInstances() : undefined);
      if (peer) {
        try {
          return { coldStart: false, status: await peers.upgrade(peer, request, socket, head) };
        } catch (err) {
          if (!peers.isUnreachable(err)) throw err;
        }
      }
    }
    this.demand.begin(this.time.now());
    let coldStart = false;
    let status: number;
    try {
      if (!slot) {
        coldStart = this.readyCount === 0;
        ({ slot } = await this.hold(request, coldStart, false));
      }
      const instance = slot.instance;
      if (!instance.upgrade) {
        throw new LamplighterError(ErrorCodes.BAD_REQUEST, `Function '${this.spec.name}' (runtime ${this.spec.runtime}) does not take connection upgrades`);
      }
      status = await instance.upgrade(request, socket, head);
    } catch (err) {
      if (slot) this.release(slot);
      this.endDemand();
      throw err;
    }
    const held = slot;
    const done = (): void => {
      this.release(held);
      this.endDemand();
    };
    // A refused upgrade, or a client already gone, may have closed the connection by now.
    if (socket.destroyed) done();
    else socket.once('close', done);
    return { coldStart, status };
  }

  private placeholderResponse(): InvocationResponse {
    const p = this.spec.placeholder!;
    return { status: p.status, headers: [['content-type', p.contentType], ['retry-after', '1']], body: Buffer.from(p.body) };
  }

  /** Frees the slot once the response body has been sent (streams hold their instance). */
  private releaseAfterBody(slot: Slot, response: InvocationResponse): void {
    const body = response.body;
    if (body === null || Buffer.isBuffer(body)) {
      this.release(slot);
      this.endDemand();
      return;
    }
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.release(slot);
      this.endDemand();
    };
    (body as Readable).once('close', finish);
    (body as Readable).once('end', finish);
    (body as Readable).once('error', finish);
  }

  /** The ready instance with the fewest requests, if one has room. */
  private pick(): Slot | undefined {
    const limit = this.perInstance;
    let best: Slot | undefined;
    for (const slot of this.slots) {
      if (!slot.ready || slot.retiring || slot.inFlight >= limit) continue;
      if (!best || slot.inFlight < best.inFlight) best = slot;
    }
    if (best) {
      best.inFlight++;
      this.options.peers?.changed();
    }
    return best;
  }

  /**
   * Holds a request until a slot has room, at most `limits.max_pending` at once. Admission's cap
   * refuses first whenever it can tell; this refuses what it could not (a forward that reached
   * nothing, many requests passing the cap while their forwards were under way).
   */
  private hold(request: InvocationRequest, cold: boolean, mayGoAhead = true): Promise<{ slot: Slot; taken?: Promise<InvocationResponse> | undefined }> {
    if (isAborted(request)) {
      throw new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away before the request was held');
    }
    if (this.waiters.length >= this.spec.limits.maxPending) throw overPendingCap(this.spec, this.waiters.length);
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        request,
        cold,
        mayGoAhead,
        since: this.time.now(),
        resolve: (slot, taken) => resolve({ slot, taken }),
        reject,
        stopListening: () => undefined,
        timer: this.time.setTimeout(() => {
          this.removeWaiter(waiter);
          const waited = this.spec.limits.coldStartTimeoutMs;
          reject(
            this.readyCount === 0
              ? new LamplighterError(ErrorCodes.COLD_START_TIMEOUT, `Function '${this.spec.name}' did not light within ${waited} ms (limits.cold_start_timeout)${this.lastFailure ? `: ${this.lastFailure}` : ''}`)
              : new LamplighterError(ErrorCodes.TIMEOUT, `Function '${this.spec.name}' had no free instance within ${waited} ms (limits.cold_start_timeout)`),
          );
        }, this.spec.limits.coldStartTimeoutMs),
      };
      waiter.stopListening = listenForAbort(request, () => {
        this.removeWaiter(waiter);
        reject(new LamplighterError(ErrorCodes.BAD_REQUEST, 'The client went away while the request was held'));
      });
      this.waiters.push(waiter);
      this.reactToDemand();
    });
  }

  private removeWaiter(waiter: Waiter): void {
    const i = this.waiters.indexOf(waiter);
    if (i >= 0) this.waiters.splice(i, 1);
    this.time.clearTimeout(waiter.timer);
    waiter.stopListening();
  }

  /** Gives a slot with room to the oldest held requests. */
  private assign(slot: Slot): void {
    const limit = this.perInstance;
    while (this.waiters.length > 0 && slot.ready && !slot.retiring && slot.inFlight < limit) {
      const waiter = this.waiters.shift()!;
      this.removeWaiter(waiter);
      slot.inFlight++;
      this.options.peers?.changed();
      if (waiter.cold) this.options.metrics.coldStartWait.observe({ function: this.spec.name }, (this.time.now() - waiter.since) / 1000);
      waiter.resolve(slot);
    }
  }

  /** Gives the oldest held requests to `slot`'s instance, at capacity, while it takes them ahead (Instance.handleAhead). */
  private assignAhead(slot: Slot): void {
    const { instance } = slot;
    while (this.waiters.length > 0 && slot.ready && !slot.retiring && instance.handleAhead && this.waiters[0]!.mayGoAhead) {
      const taken = instance.handleAhead(this.waiters[0]!.request);
      if (!taken) return;
      const waiter = this.waiters.shift()!;
      this.removeWaiter(waiter);
      slot.inFlight++;
      this.options.peers?.changed();
      waiter.resolve(slot, taken);
    }
  }

  private release(slot: Slot): void {
    slot.inFlight--;
    this.options.peers?.changed();
    this.assign(slot);
    this.assignAhead(slot);
  }

  /**
   * Lights instances at once when held requests need more than are lit or lighting, within
   * `scale.max` less what other nodes run; at least one, so that a held request is never left
   * without an instance coming (a race with another node overshoots by at most that one).
   */
  private reactToDemand(): void {
    const target = this.scale.target ?? this.perInstance;
    const room = this.spec.scale.max - (this.options.peers?.remoteInstances() ?? 0);
    const needed = Math.max(1, Math.min(room, Math.ceil(this.demand.active / target)));
    for (let i = this.liveCount(); i < needed && this.mayLight(i); i++) this.light();
  }

  /** Whether another instance may light when `live` are lit or lighting: the first always may. */
  private mayLight(live: number): boolean {
    return live === 0 || this.factory.roomToLight?.() !== false;
  }

  private light(): void {
    if (this.stopped) return;
    const wasZero = this.slots.length === 0;
    const id = `${this.spec.name}-${++this.seq}`;
    let instance: Instance;
    try {
      instance = this.factory.create(id);
    } catch (err) {
      this.onLightFailed(toLamplighterError(err));
      return;
    }
    const slot: Slot = { instance, ready: false, retiring: false, inFlight: 0, litAt: this.time.now(), served: 0 };
    this.slots.push(slot);
    this.options.peers?.changed();
    if (wasZero) this.options.metrics.coldStarts.inc({ function: this.spec.name });
    if (instanceStartChannel.hasSubscribers) instanceStartChannel.publish({ function: this.spec.name, instance: id });
    instance.ready.then(
      () => {
        this.options.metrics.instanceStart.observe({ function: this.spec.name }, (this.time.now() - slot.litAt) / 1000);
        slot.ready = true;
        this.options.peers?.changed();
        this.lastFailure = undefined;
        this.assign(slot);
      },
      (err: unknown) => {
        this.drop(slot);
        this.onLightFailed(toLamplighterError(err));
      },
    );
    void instance.closed.then((exit) => {
      this.drop(slot);
      if (instanceStopChannel.hasSubscribers) instanceStopChannel.publish({ function: this.spec.name, instance: id, reason: exit.reason });
      if (exit.reason === 'failed') {
        this.lastFailure = exit.message;
        this.options.log(`instance ${id} failed: ${exit.message ?? 'unknown reason'}`);
        // Requests still held get a fresh instance (the factory applies any restart backoff).
        if (this.waiters.length > 0) this.reactToDemand();
      }
    });
  }

  private onLightFailed(err: LamplighterError): void {
    this.lastFailure = err.message;
    this.options.log(`lighting failed: ${err.message}`);
    if (this.slots.some((s) => !s.retiring)) return;
    // Nothing else is lighting: held requests fail now with the reason instead of hanging.
    const failure = err.code === ErrorCodes.INTERNAL ? new LamplighterError(ErrorCodes.FUNCTION_FAILED, `Function '${this.spec.name}' failed to start: ${err.message}`) : err;
    for (const waiter of this.waiters.splice(0)) {
      this.time.clearTimeout(waiter.timer);
      waiter.stopListening();
      waiter.reject(failure);
    }
  }

  private drop(slot: Slot): void {
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    this.options.peers?.changed();
  }

  /** Linear memory its instances report holding now (components, WAGI runs in flight), in bytes. */
  memoryBytes(): number {
    let total = 0;
    for (const s of this.slots) total += s.instance.figures?.().memoryBytes ?? 0;
    return total;
  }

  /** What the dispatcher is doing at `now`: instances, held requests (the oldest `heldLimit` ages), demand, last decision. */
  inspect(heldLimit = 20, now = this.time.now()): DispatcherInspection {
    const last = this.#lastDecision;
    return {
      instances: this.slots.map((s) => ({
        id: s.instance.id,
        state: s.retiring ? 'retiring' : s.ready ? 'ready' : 'lighting',
        ageMs: Math.round(now - s.litAt),
        inFlight: s.inFlight,
        served: s.served,
        ...(s.instance.figures ? { figures: s.instance.figures() } : {}),
      })),
      // Waiters are in arrival order, so the first are the oldest.
      held: { count: this.waiters.length, oldestAgesMs: this.waiters.slice(0, heldLimit).map((w) => Math.round(now - w.since)) },
      demand: {
        active: this.demand.active,
        concurrency: this.demand.concurrency(now),
        ratePerSecond: this.demand.rate(now),
        idleForMs: this.demand.active > 0 ? 0 : Number.isFinite(this.demand.lastActivity) ? Math.round(now - this.demand.lastActivity) : null,
      },
      lastDecision: last && { ...last.decision, agoMs: Math.round(now - last.at), live: last.live, wanted: last.wanted },
    };
  }

  /** Applies the scaling policy at `now`: lights or puts out instances (none while requests are held). */
  reconcile(now = this.time.now()): ScaleDecision {
    const decision = decideScale(this.scale, this.demand, now);
    if (this.stopped) return decision;
    const live = this.slots.filter((s) => !s.retiring);
    const desired = this.clusterDesired(decision.desired, live.length);
    this.#lastDecision = { at: now, decision, live: live.length, wanted: desired };
    if (live.length < desired) {
      for (let i = live.length; i < desired && this.mayLight(i); i++) this.light();
    } else if (live.length > desired && this.waiters.length === 0) {
      // Never while requests wait for room: the demand they count is real, and putting out an
      // instance (often one still lighting for them) only has another lit for them a moment later.
      // Put out the least busy first; lighting ones before ready ones.
      const order = [...live].sort((a, b) => Number(a.ready) - Number(b.ready) || a.inFlight - b.inFlight);
      for (const slot of order.slice(0, live.length - desired)) this.retire(slot);
    }
    return decision;
  }

  /**
   * The instances this node should run, `scale.max` being cluster-wide: no more than the room the
   * other nodes leave. When the cluster holds more than `max` (two nodes lit at once), only the
   * node chosen by {@link FunctionPeers.yieldsExcess} puts out the excess; the others keep theirs.
   */
  private clusterDesired(desired: number, live: number): number {
    const peers = this.options.peers;
    if (!peers) return desired;
    const room = Math.max(0, this.spec.scale.max - peers.remoteInstances());
    if (desired <= room) return desired;
    return peers.yieldsExcess() ? room : Math.min(desired, Math.max(room, live));
  }

  private retire(slot: Slot): void {
    slot.retiring = true;
    this.options.peers?.changed();
    void slot.instance.stop().catch((err: unknown) => this.options.log(`stopping ${slot.instance.id} failed: ${String(err)}`));
  }

  /** Stops taking requests and puts out every instance (after in-flight requests finish). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.options.peers?.close();
    for (const waiter of this.waiters.splice(0)) {
      this.time.clearTimeout(waiter.timer);
      waiter.stopListening();
      waiter.reject(new LamplighterError(ErrorCodes.SHUTTING_DOWN, `Function '${this.spec.name}' is being removed`));
    }
    const slots = [...this.slots];
    await Promise.all(slots.map((s) => s.instance.stop().catch(() => undefined)));
    await this.factory.close();
  }
}
