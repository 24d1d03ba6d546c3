// The error a host call throws to hand the component the `err` side of a WASI `result`.

/** Thrown from a host call to make the component see `payload` as the error of a `result`. */
export class WasiResultError extends Error {
  constructor(readonly payload: unknown) {
    super('wasi result error');
  }
}
