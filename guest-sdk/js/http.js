// Outbound HTTP through the host's `wasi:http`, synchronously (an export of the contract cannot
// wait for a Promise): the host answers only for hosts the plugin was granted, and a denial
// comes back as a `QuarryError` (the host adds which grant would allow it).

import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, IncomingBody, OutgoingBody, OutgoingRequest, RequestOptions } from 'wasi:http/types@0.2.12';

import { QuarryError } from './core.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

// componentize-js gives each resource handle a disposer under this symbol; calling it drops the
// handle now (the host caps a plugin's live handles) instead of whenever it is collected.
const DISPOSE = Symbol.dispose || Symbol.for('dispose');

/** A stream's `last-operation-failed` error carries a handle of its own. */
function dropPayload(e) {
  const error = e && e.payload && e.payload.tag === 'last-operation-failed' ? e.payload.val : null;
  if (error && typeof error[DISPOSE] === 'function') error[DISPOSE]();
}

function drop(resource) {
  if (resource == null) return;
  if (typeof resource[DISPOSE] !== 'function') throw new Error('quarry-sdk/http: a wasi:http resource has no disposer');
  resource[DISPOSE]();
}

/**
 * Sends one request and reads the whole answer: `{ url, status, headers, body }` (headers by
 * lower-case name, body a Uint8Array, `url` where the answer came from). Redirects are followed
 * (at most 10; a 303, or a 301/302 of a POST, continues as a GET without the body). A status of
 * 400 or more throws (`unauthorized` for 401 and 403, `unavailable` for 429 and 5xx) unless
 * `check` is false.
 */
export function request(method, url, { headers = {}, body = null, timeoutMs = 60000, check = true } = {}) {
  const asked = url;
  let response;
  for (let hop = 0; ; hop++) {
    response = send(method, url, headers, body, timeoutMs);
    const location = response.headers.location;
    if (!REDIRECTS.has(response.status) || !location) break;
    url = new URL(location.split(', ')[0], url).href;
    if (hop === MAX_REDIRECTS) throw QuarryError.unavailable(`${asked}: more than ${MAX_REDIRECTS} redirects (the last to ${url})`);
    const upper = method.toUpperCase();
    if ((response.status === 303 && upper !== 'HEAD') || ((response.status === 301 || response.status === 302) && upper === 'POST')) {
      method = 'GET';
      body = null;
      headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !BODY_HEADERS.has(k.toLowerCase())));
    }
  }
  const { status, body: data } = response;
  if (check && status >= 400) {
    const detail = decoder.decode(data.subarray(0, 300)).trim();
    const message = `${method} ${url} answered ${status}${detail ? `: ${detail}` : ''}`;
    if (status === 401 || status === 403) throw QuarryError.unauthorized(message);
    if (status === 429 || status >= 500) throw QuarryError.unavailable(message);
    throw QuarryError.internal(message);
  }
  return response;
}

/** How many redirects one request follows before it fails; each hop is held to the grants. */
const MAX_REDIRECTS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** What describes a body, dropped with it when a redirect continues as a GET. */
const BODY_HEADERS = new Set(['content-length', 'content-type', 'transfer-encoding']);

/** One request and its whole answer, whatever the status. */
function send(method, url, headers, body, timeoutMs) {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw QuarryError.invalidSpec(`\`${url}\` is not an http(s) URL`);
  }
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new TypeError(`timeoutMs must be a positive number, not ${timeoutMs}`);
  const nanos = BigInt(Math.ceil(timeoutMs)) * 1000000n;
  const payload = body == null ? null : typeof body === 'string' ? encoder.encode(body) : body;
  const fields = Fields.fromList(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), encoder.encode(String(v))]));
  const outgoing = new OutgoingRequest(fields);
  let outgoingBody;
  let future;
  try {
    const m = method.toLowerCase();
    outgoing.setMethod(METHODS.has(m) ? { tag: m } : { tag: 'other', val: method });
    outgoing.setScheme({ tag: parsed.protocol === 'https:' ? 'HTTPS' : 'HTTP' });
    outgoing.setAuthority(parsed.host);
    outgoing.setPathWithQuery(`${parsed.pathname}${parsed.search}`);
    outgoingBody = outgoing.body();
  } catch (e) {
    drop(outgoing);
    throw QuarryError.invalidSpec(`${method} ${url}: not a request wasi:http accepts (${e.message})`);
  }
  const options = new RequestOptions();
  options.setConnectTimeout(nanos);
  options.setFirstByteTimeout(nanos);
  options.setBetweenBytesTimeout(nanos);
  try {
    future = handle(outgoing, options);
  } catch (e) {
    drop(outgoingBody);
    throw failure(method, url, e.payload);
  }
  let answer;
  let bodyFailed = false;
  try {
    // The body is written after `handle`: the host takes only a few chunks before the request
    // is under way, so writing a large body first would wait forever.
    if (payload != null) {
      const stream = outgoingBody.write();
      try {
        for (let at = 0; at < payload.length; at += 4096) stream.blockingWriteAndFlush(payload.subarray(at, at + 4096));
      } catch (e) {
        dropPayload(e);
        bodyFailed = true;
      } finally {
        drop(stream);
      }
    }
    try {
      OutgoingBody.finish(outgoingBody, undefined);
    } catch (e) {
      bodyFailed = true;
    }
    // A body that could not be sent usually means the request failed (denied, refused): the
    // answer says why, so it is read first.
    for (;;) {
      answer = future.get();
      if (answer !== undefined) break;
      const pollable = future.subscribe();
      try {
        pollable.block();
      } finally {
        drop(pollable);
      }
    }
  } finally {
    drop(future);
  }
  if (answer.tag === 'err' || answer.val.tag === 'err') {
    throw failure(method, url, answer.tag === 'ok' ? answer.val.val : undefined);
  }
  if (bodyFailed) {
    drop(answer.val.val);
    throw QuarryError.unavailable(`${method} ${url}: sending the body failed`);
  }
  const incoming = answer.val.val;
  let status;
  let data;
  const answerHeaders = {};
  try {
    const headerFields = incoming.headers();
    try {
      for (const [name, value] of headerFields.entries()) {
        const key = name.toLowerCase();
        const text = decoder.decode(value);
        answerHeaders[key] = key in answerHeaders ? `${answerHeaders[key]}, ${text}` : text;
      }
    } finally {
      drop(headerFields);
    }
    status = incoming.status();
    data = readBody(method, url, incoming.consume());
  } finally {
    drop(incoming);
  }
  return { url, status, headers: answerHeaders, body: data };
}

/** The whole body; its stream, the body and its trailers are dropped whatever happens. */
function readBody(method, url, incomingBody) {
  const chunks = [];
  let total = 0;
  try {
    const stream = incomingBody.stream();
    try {
      for (;;) {
        let chunk;
        try {
          chunk = stream.blockingRead(65536n);
        } catch (e) {
          if (e.payload && e.payload.tag === 'closed') break;
          dropPayload(e);
          throw QuarryError.unavailable(`${method} ${url}: the answer's body broke off`);
        }
        chunks.push(chunk);
        total += chunk.length;
      }
    } finally {
      drop(stream);
    }
  } finally {
    drop(IncomingBody.finish(incomingBody));
  }
  const data = new Uint8Array(total);
  let at = 0;
  for (let i = 0; i < chunks.length; i++) {
    data.set(chunks[i], at);
    at += chunks[i].length;
  }
  return data;
}

/** GET `url` and parse its JSON answer. */
export function getJson(url, headers = { accept: 'application/json' }) {
  const response = request('GET', url, { headers });
  try {
    return JSON.parse(decoder.decode(response.body));
  } catch (e) {
    throw QuarryError.internal(`${url} answered with a body that is not JSON: ${e.message}`);
  }
}

/**
 * The SDK's error for a transport failure, as the Rust SDK maps them: the host's own words for a
 * denial (what was refused, and the grant that would allow it) as `unauthorized`, what cannot be
 * reached now as `unavailable`.
 */
function failure(method, url, code) {
  const tag = code && code.tag ? code.tag : 'unknown';
  const detail = code ? code.val : undefined;
  if (tag === 'internal-error' && typeof detail === 'string' && detail) {
    return detail.includes(' was denied: ') ? QuarryError.unauthorized(detail) : QuarryError.unavailable(detail);
  }
  if (tag === 'HTTP-request-denied') {
    return QuarryError.unauthorized(`${method} ${url}: denied by the sandbox; grant its host under permissions.network`);
  }
  return QuarryError.unavailable(`${method} ${url} failed: ${tag}${detail !== undefined ? ` (${JSON.stringify(detail)})` : ''}`);
}
