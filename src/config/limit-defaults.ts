// Limits a function takes from its node when its manifest sets none. They are the node's to
// choose (a small node may want shorter timeouts than the platform's), and a reload changes
// them for every function that relies on them, at once: requests already admitted keep the
// deadline they were given.
import { PlatformDefaults } from './defaults.js';

/** The per-request limits a node may give functions that set none (FunctionLimits' names and units). */
export interface LimitDefaults {
  timeoutMs: number;
  maxPending: number;
  coldStartTimeoutMs: number;
  responseBytes: number;
  bodyBytes: number;
}

/** One of LimitDefaults' fields. */
export type DefaultableLimit = keyof LimitDefaults;

/** Each defaultable limit with its node setting (`limits_timeout`) and its manifest field (`timeout`). */
export const LIMIT_DEFAULT_SETTINGS: ReadonlyArray<{ limit: DefaultableLimit; setting: string; field: string }> = [
  { limit: 'timeoutMs', setting: 'limits_timeout', field: 'timeout' },
  { limit: 'maxPending', setting: 'limits_max_pending', field: 'max_pending' },
  { limit: 'coldStartTimeoutMs', setting: 'limits_cold_start_timeout', field: 'cold_start_timeout' },
  { limit: 'responseBytes', setting: 'limits_response_size', field: 'response_size' },
  { limit: 'bodyBytes', setting: 'limits_body_size', field: 'body_size' },
];

/** The platform's own defaults, what a node uses unless its settings say otherwise. */
export function platformLimitDefaults(): LimitDefaults {
  return {
    timeoutMs: PlatformDefaults.timeoutMs,
    maxPending: PlatformDefaults.maxPending,
    coldStartTimeoutMs: PlatformDefaults.coldStartTimeoutMs,
    responseBytes: PlatformDefaults.maxResponseBytes,
    bodyBytes: PlatformDefaults.maxBodyBytes,
  };
}

/** The limit defaults a node's settings give; `value` reads one setting (unset: the platform's). */
export function limitDefaultsFrom(value: (setting: string) => number | undefined): LimitDefaults {
  const defaults = platformLimitDefaults();
  for (const { limit, setting } of LIMIT_DEFAULT_SETTINGS) defaults[limit] = value(setting) ?? defaults[limit];
  return defaults;
}
