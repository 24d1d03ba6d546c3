// The WIT a JS handler is built against: its world, and the parts of the WASI packages it names.

/** The wasi:http version the bundled JS engine serves; the world's export must match it. */
export const ENGINE_HTTP_VERSION = '0.2.10';
/** The wasi:cli version the bundled JS engine uses; handlers import environment at this version. */
export const ENGINE_CLI_VERSION = '0.2.12';
/** The wasi:filesystem version a JS handler imports (the bundled engine's own). */
export const ENGINE_FILESYSTEM_VERSION = '0.2.10';

const V = ENGINE_FILESYSTEM_VERSION;

/** What a handler's world holds beyond serving HTTP and reading its environment. */
export interface HandlerWorldOptions {
  /**
   * The entry serves wasi:http itself (`lamplighter build --isolation instance`), so the world
   * imports wasi:http/types; otherwise the engine's fetch event serves it.
   */
  reusable: boolean;
  /** The handler imports wasi:filesystem (at {@link ENGINE_FILESYSTEM_VERSION}) to read its files. */
  readsFiles: boolean;
}

/** The world a JS handler is built against. */
export function handlerWorldWit(options: HandlerWorldOptions): string {
  const imports = [
    `wasi:cli/environment@${ENGINE_CLI_VERSION}`,
    ...(options.reusable ? [`wasi:http/types@${ENGINE_HTTP_VERSION}`] : []),
    ...(options.readsFiles ? [`wasi:filesystem/preopens@${V}`, `wasi:filesystem/types@${V}`] : []),
  ];
  return `package lamplighter:handler;

world handler {
${imports.map((name) => `  import ${name};\n`).join('')}  export wasi:http/incoming-handler@${ENGINE_HTTP_VERSION};
}
`;
}

/**
 * The part of wasi:http/types the reusable entry calls, and incoming-handler. Every type is the
 * standard one (error-code in full): the engine imports the same interface for `fetch`.
 */
const HTTP_WIT = `package wasi:http@${ENGINE_HTTP_VERSION};

interface types {
  use wasi:io/streams@${V}.{input-stream, output-stream};

  variant method { get, head, post, put, delete, connect, options, trace, patch, other(string) }

  variant scheme { HTTP, HTTPS, other(string) }

  record DNS-error-payload { rcode: option<string>, info-code: option<u16> }

  record TLS-alert-received-payload { alert-id: option<u8>, alert-message: option<string> }

  record field-size-payload { field-name: option<string>, field-size: option<u32> }

  variant error-code {
    DNS-timeout,
    DNS-error(DNS-error-payload),
    destination-not-found,
    destination-unavailable,
    destination-IP-prohibited,
    destination-IP-unroutable,
    connection-refused,
    connection-terminated,
    connection-timeout,
    connection-read-timeout,
    connection-write-timeout,
    connection-limit-reached,
    TLS-protocol-error,
    TLS-certificate-error,
    TLS-alert-received(TLS-alert-received-payload),
    HTTP-request-denied,
    HTTP-request-length-required,
    HTTP-request-body-size(option<u64>),
    HTTP-request-method-invalid,
    HTTP-request-URI-invalid,
    HTTP-request-URI-too-long,
    HTTP-request-header-section-size(option<u32>),
    HTTP-request-header-size(option<field-size-payload>),
    HTTP-request-trailer-section-size(option<u32>),
    HTTP-request-trailer-size(field-size-payload),
    HTTP-response-incomplete,
    HTTP-response-header-section-size(option<u32>),
    HTTP-response-header-size(field-size-payload),
    HTTP-response-body-size(option<u64>),
    HTTP-response-trailer-section-size(option<u32>),
    HTTP-response-trailer-size(field-size-payload),
    HTTP-response-transfer-coding(option<string>),
    HTTP-response-content-coding(option<string>),
    HTTP-response-timeout,
    HTTP-upgrade-failed,
    HTTP-protocol-error,
    loop-detected,
    configuration-error,
    internal-error(option<string>),
  }

  variant header-error { invalid-syntax, forbidden, immutable }

  type field-key = string;
  type field-name = field-key;
  type field-value = list<u8>;

  resource fields {
    constructor();
    from-list: static func(entries: list<tuple<field-name, field-value>>) -> result<fields, header-error>;
    entries: func() -> list<tuple<field-name, field-value>>;
  }

  type headers = fields;
  type trailers = fields;
  type status-code = u16;

  resource incoming-request {
    method: func() -> method;
    path-with-query: func() -> option<string>;
    scheme: func() -> option<scheme>;
    authority: func() -> option<string>;
    headers: func() -> headers;
    consume: func() -> result<incoming-body>;
  }

  resource incoming-body {
    %stream: func() -> result<input-stream>;
  }

  resource outgoing-response {
    constructor(headers: headers);
    set-status-code: func(status-code: status-code) -> result;
    body: func() -> result<outgoing-body>;
  }

  resource outgoing-body {
    write: func() -> result<output-stream>;
    finish: static func(this: outgoing-body, trailers: option<trailers>) -> result<_, error-code>;
  }

  resource response-outparam {
    set: static func(param: response-outparam, response: result<outgoing-response, error-code>);
  }
}

interface incoming-handler {
  use types.{incoming-request, response-outparam};

  handle: func(request: incoming-request, response-out: response-outparam);
}
`;

/** The part of wasi:cli/environment the entries read. */
const CLI_WIT = `package wasi:cli@${ENGINE_CLI_VERSION};

interface environment {
  get-environment: func() -> list<tuple<string, string>>;
  get-arguments: func() -> list<string>;
  initial-cwd: func() -> option<string>;
}
`;

/**
 * wasi:filesystem/types and preopens, with the parts of wasi:io and wasi:clocks they use: every
 * function of the filesystem interfaces (the host answers the ones that would change something
 * with `read-only`), and the input-stream calls a reader needs.
 */
const FILESYSTEM_WIT = `package wasi:filesystem@${V};

interface types {
  use wasi:io/streams@${V}.{input-stream, output-stream, error};
  use wasi:clocks/wall-clock@${V}.{datetime};

  type filesize = u64;
  type link-count = u64;

  enum descriptor-type {
    unknown, block-device, character-device, directory, fifo, symbolic-link, regular-file, socket,
  }

  flags descriptor-flags {
    read, write, file-integrity-sync, data-integrity-sync, requested-write-sync, mutate-directory,
  }

  flags path-flags {
    symlink-follow,
  }

  flags open-flags {
    create, directory, exclusive, truncate,
  }

  record descriptor-stat {
    %type: descriptor-type,
    link-count: link-count,
    size: filesize,
    data-access-timestamp: option<datetime>,
    data-modification-timestamp: option<datetime>,
    status-change-timestamp: option<datetime>,
  }

  variant new-timestamp {
    no-change,
    now,
    timestamp(datetime),
  }

  record directory-entry {
    %type: descriptor-type,
    name: string,
  }

  enum error-code {
    access, would-block, already, bad-descriptor, busy, deadlock, quota, exist, file-too-large,
    illegal-byte-sequence, in-progress, interrupted, invalid, io, is-directory, loop,
    too-many-links, message-size, name-too-long, no-device, no-entry, no-lock,
    insufficient-memory, insufficient-space, not-directory, not-empty, not-recoverable,
    unsupported, no-tty, no-such-device, overflow, not-permitted, pipe, read-only, invalid-seek,
    text-file-busy, cross-device,
  }

  enum advice {
    normal, sequential, random, will-need, dont-need, no-reuse,
  }

  record metadata-hash-value {
    lower: u64,
    upper: u64,
  }

  resource descriptor {
    read-via-stream: func(offset: filesize) -> result<input-stream, error-code>;
    write-via-stream: func(offset: filesize) -> result<output-stream, error-code>;
    append-via-stream: func() -> result<output-stream, error-code>;
    advise: func(offset: filesize, length: filesize, advice: advice) -> result<_, error-code>;
    sync-data: func() -> result<_, error-code>;
    get-flags: func() -> result<descriptor-flags, error-code>;
    get-type: func() -> result<descriptor-type, error-code>;
    set-size: func(size: filesize) -> result<_, error-code>;
    set-times: func(data-access-timestamp: new-timestamp, data-modification-timestamp: new-timestamp) -> result<_, error-code>;
    read: func(length: filesize, offset: filesize) -> result<tuple<list<u8>, bool>, error-code>;
    write: func(buffer: list<u8>, offset: filesize) -> result<filesize, error-code>;
    read-directory: func() -> result<directory-entry-stream, error-code>;
    sync: func() -> result<_, error-code>;
    create-directory-at: func(path: string) -> result<_, error-code>;
    stat: func() -> result<descriptor-stat, error-code>;
    stat-at: func(path-flags: path-flags, path: string) -> result<descriptor-stat, error-code>;
    set-times-at: func(path-flags: path-flags, path: string, data-access-timestamp: new-timestamp, data-modification-timestamp: new-timestamp) -> result<_, error-code>;
    link-at: func(old-path-flags: path-flags, old-path: string, new-descriptor: borrow<descriptor>, new-path: string) -> result<_, error-code>;
    open-at: func(path-flags: path-flags, path: string, open-flags: open-flags, %flags: descriptor-flags) -> result<descriptor, error-code>;
    readlink-at: func(path: string) -> result<string, error-code>;
    remove-directory-at: func(path: string) -> result<_, error-code>;
    rename-at: func(old-path: string, new-descriptor: borrow<descriptor>, new-path: string) -> result<_, error-code>;
    symlink-at: func(old-path: string, new-path: string) -> result<_, error-code>;
    unlink-file-at: func(path: string) -> result<_, error-code>;
    is-same-object: func(other: borrow<descriptor>) -> bool;
    metadata-hash: func() -> result<metadata-hash-value, error-code>;
    metadata-hash-at: func(path-flags: path-flags, path: string) -> result<metadata-hash-value, error-code>;
  }

  resource directory-entry-stream {
    read-directory-entry: func() -> result<option<directory-entry>, error-code>;
  }

  filesystem-error-code: func(err: borrow<error>) -> option<error-code>;
}

interface preopens {
  use types.{descriptor};

  get-directories: func() -> list<tuple<descriptor, string>>;
}
`;

/** The parts of wasi:io the entry's bodies and the filesystem interfaces use. */
const IO_WIT = `package wasi:io@${V};

interface error {
  resource error {
    to-debug-string: func() -> string;
  }
}

interface poll {
  resource pollable {
    ready: func() -> bool;
    block: func();
  }
}

interface streams {
  use error.{error};
  use poll.{pollable};

  variant stream-error {
    last-operation-failed(error),
    closed,
  }

  resource input-stream {
    read: func(len: u64) -> result<list<u8>, stream-error>;
    blocking-read: func(len: u64) -> result<list<u8>, stream-error>;
    skip: func(len: u64) -> result<u64, stream-error>;
    blocking-skip: func(len: u64) -> result<u64, stream-error>;
    subscribe: func() -> pollable;
  }

  resource output-stream {
    check-write: func() -> result<u64, stream-error>;
    write: func(contents: list<u8>) -> result<_, stream-error>;
    blocking-write-and-flush: func(contents: list<u8>) -> result<_, stream-error>;
    blocking-flush: func() -> result<_, stream-error>;
    subscribe: func() -> pollable;
  }
}
`;

/** The part of wasi:clocks the filesystem interfaces name. */
const CLOCKS_WIT = `package wasi:clocks@${V};

interface wall-clock {
  record datetime {
    seconds: u64,
    nanoseconds: u32,
  }
}
`;

/** The packages a handler's world needs beside it, by folder name under `wit/deps`. */
export function handlerDeps(options: HandlerWorldOptions): Record<string, string> {
  return { http: HTTP_WIT, cli: CLI_WIT, io: IO_WIT, ...(options.readsFiles ? { filesystem: FILESYSTEM_WIT, clocks: CLOCKS_WIT } : {}) };
}

/** Every WIT text a handler may be built against, as one string (for keys of cached builds). */
export function handlerWitText(): string {
  const worlds = [true, false].flatMap((reusable) => [true, false].map((readsFiles) => handlerWorldWit({ reusable, readsFiles })));
  return [...worlds, HTTP_WIT, CLI_WIT, IO_WIT, FILESYSTEM_WIT, CLOCKS_WIT].join('\n');
}
