// The one check every store makes before it moves a pointer, and the error a deploy that lost a race gets.
import { ErrorCodes, LamplighterError } from '../errors/index.js';
import type { CommitOptions } from './artifact-store.js';

/** What moved the pointer: a deploy (commit) or a rollback (setCurrent). */
export type PointerMove = { kind: 'deploy' } | { kind: 'rollback'; to: number };

function describe(current: number | undefined): string {
  return current === undefined ? 'it has no current revision now' : `revision ${current} is now current`;
}

/** Where an app's pointer stands and what was trying to move it. */
export interface PointerState {
  app: string;
  /** The revision the pointer names now (undefined: none, or it holds no number). */
  current: number | undefined;
  move: PointerMove;
}

/** LL_DEPLOY_CONFLICT: another deploy, rollback or remove changed `app` between the caller's read and its write. */
export function deployConflict({ app, current, move }: PointerState): LamplighterError {
  const what = move.kind === 'deploy' ? `deploy app '${app}'` : `roll app '${app}' back to revision ${move.to}`;
  const next = move.kind === 'deploy' ? 'deploy again' : 'check `lamplighter ls` and roll back again';
  return new LamplighterError(ErrorCodes.DEPLOY_CONFLICT, `Cannot ${what}: another deploy changed app '${app}' first (${describe(current)}); ${next}`, {
    detail: { app, current: current ?? null },
  });
}

/** Throws {@link deployConflict} when the caller expected another current revision than the pointer names. */
export function checkExpected(state: PointerState, options: CommitOptions): void {
  if (options.expectCurrent === undefined) return;
  if ((options.expectCurrent ?? undefined) !== state.current) throw deployConflict(state);
}
