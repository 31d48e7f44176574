// Types of `quarry-sdk/http.js`: outbound HTTP through the host's `wasi:http`, synchronously.

export interface Response {
  url: string;
  status: number;
  /** By lower-case name; repeated headers joined with `, `. */
  headers: Record<string, string>;
  body: Uint8Array;
}

export interface RequestOptions {
  headers?: Record<string, string | number>;
  body?: string | Uint8Array | null;
  timeoutMs?: number;
  /** Throw for a status of 400 or more (default true). */
  check?: boolean;
}

/** Sends one request and reads the whole answer; a host the plugin was not granted is refused. */
export function request(method: string, url: string, options?: RequestOptions): Response;

/** GET `url` and parse its JSON answer. */
export function getJson(url: string, headers?: Record<string, string>): unknown;
