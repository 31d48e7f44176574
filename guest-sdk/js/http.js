// Outbound HTTP through the host's `wasi:http`, synchronously (an export of the contract cannot
// wait for a Promise): the host answers only for hosts the plugin was granted, and a denial
// comes back as a `QuarryError` (the host adds which grant would allow it).

import { handle } from 'wasi:http/outgoing-handler@0.2.12';
import { Fields, IncomingBody, OutgoingBody, OutgoingRequest, RequestOptions } from 'wasi:http/types@0.2.12';

import { QuarryError } from './core.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const METHODS = new Set(['get', 'head', 'post', 'put', 'delete', 'connect', 'options', 'trace', 'patch']);

function drop(resource) {
  resource[Symbol.dispose]?.();
}

/**
 * Sends one request and reads the whole answer: `{ status, headers, body }` (headers by
 * lower-case name, body a Uint8Array). A status of 400 or more throws (`unauthorized` for 401
 * and 403, `unavailable` for 429 and 5xx) unless `check` is false.
 */
export function request(method, url, { headers = {}, body = null, timeoutMs = 60000, check = true } = {}) {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw QuarryError.invalidSpec(`\`${url}\` is not an http(s) URL`);
  }
  const fields = Fields.fromList(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), encoder.encode(String(v))]));
  const outgoing = new OutgoingRequest(fields);
  const m = method.toLowerCase();
  outgoing.setMethod(METHODS.has(m) ? { tag: m } : { tag: 'other', val: method });
  outgoing.setScheme({ tag: parsed.protocol === 'https:' ? 'HTTPS' : 'HTTP' });
  outgoing.setAuthority(parsed.host);
  outgoing.setPathWithQuery(`${parsed.pathname}${parsed.search}`);
  const outgoingBody = outgoing.body();
  if (body != null) {
    const data = typeof body === 'string' ? encoder.encode(body) : body;
    const stream = outgoingBody.write();
    for (let at = 0; at < data.length; at += 4096) stream.blockingWriteAndFlush(data.subarray(at, at + 4096));
    drop(stream);
  }
  const options = new RequestOptions();
  const nanos = BigInt(timeoutMs) * 1000000n;
  options.setConnectTimeout(nanos);
  options.setFirstByteTimeout(nanos);
  options.setBetweenBytesTimeout(nanos);
  let future;
  try {
    future = handle(outgoing, options);
  } catch (e) {
    throw failure(method, url, e.payload);
  }
  OutgoingBody.finish(outgoingBody, undefined);
  let answer;
  for (;;) {
    answer = future.get();
    if (answer !== undefined) break;
    const pollable = future.subscribe();
    pollable.block();
    drop(pollable);
  }
  drop(future);
  if (answer.tag === 'err' || answer.val.tag === 'err') {
    throw failure(method, url, answer.tag === 'ok' ? answer.val.val : undefined);
  }
  const incoming = answer.val.val;
  const headerFields = incoming.headers();
  const answerHeaders = {};
  for (const [name, value] of headerFields.entries()) {
    const key = name.toLowerCase();
    const text = decoder.decode(value);
    answerHeaders[key] = key in answerHeaders ? `${answerHeaders[key]}, ${text}` : text;
  }
  drop(headerFields);
  const status = incoming.status();
  const incomingBody = incoming.consume();
  const stream = incomingBody.stream();
  const chunks = [];
  let total = 0;
  for (;;) {
    let chunk;
    try {
      chunk = stream.blockingRead(65536n);
    } catch (e) {
      if (e.payload && e.payload.tag === 'closed') break;
      throw QuarryError.unavailable(`${method} ${url}: the answer's body broke off`);
    }
    chunks.push(chunk);
    total += chunk.length;
  }
  drop(stream);
  drop(IncomingBody.finish(incomingBody));
  drop(incoming);
  const data = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    data.set(c, at);
    at += c.length;
  }
  const response = { url, status, headers: answerHeaders, body: data };
  if (check && status >= 400) {
    const detail = decoder.decode(data.subarray(0, 300)).trim();
    const message = `${method} ${url} answered ${status}${detail ? `: ${detail}` : ''}`;
    if (status === 401 || status === 403) throw QuarryError.unauthorized(message);
    if (status === 429 || status >= 500) throw QuarryError.unavailable(message);
    throw QuarryError.internal(message);
  }
  return response;
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

function failure(method, url, code) {
  const tag = code && code.tag ? code.tag : 'unknown';
  if (tag === 'HTTP-request-denied') {
    return QuarryError.unauthorized(`${method} ${url} was denied by the sandbox (HttpRequestDenied)`);
  }
  if (['connection-refused', 'connection-timeout', 'DNS-timeout', 'DNS-error', 'connection-terminated', 'HTTP-response-timeout'].includes(tag)) {
    return QuarryError.unavailable(`${method} ${url} failed: ${tag}`);
  }
  return QuarryError.internal(`${method} ${url} failed: ${tag}${code && code.val !== undefined ? ` (${JSON.stringify(code.val)})` : ''}`);
}
