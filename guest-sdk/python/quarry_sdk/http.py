"""Outbound HTTP through the host's `wasi:http`: the host answers only for hosts the plugin was
granted, and a denial comes back as an `Error` (the host adds which grant would allow it).

    from quarry_sdk import http
    items = http.get("https://api.example.com/items", headers={"accept": "application/json"}).json()

Requests block until the answer's body has been read; redirects are followed (at most 10). A
status of 400 or more is an `Error`
(`unauthorized` for 401 and 403, `unavailable` for 429 and 5xx) unless `check=False`.
"""

import json as _json
from urllib.parse import urljoin as _urljoin
from urllib.parse import urlsplit as _urlsplit

from componentize_py_types import Err, Ok
from wit_world.imports import outgoing_handler as _handler
from wit_world.imports import wasi_http_types as _h
from wit_world.imports.streams import StreamError_Closed

from . import Error

_METHODS = {
    "GET": _h.Method_Get(), "HEAD": _h.Method_Head(), "POST": _h.Method_Post(),
    "PUT": _h.Method_Put(), "DELETE": _h.Method_Delete(), "PATCH": _h.Method_Patch(),
    "OPTIONS": _h.Method_Options(),
}
_CHUNK = 64 * 1024
_NANOS = 1_000_000_000


class Response:
    """An answer: `status`, `headers` (lower-case names, each to its values joined by `, `)
    and `body` (bytes)."""

    def __init__(self, url, status, headers, body):
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self):
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        try:
            return _json.loads(self.body)
        except ValueError as e:
            raise Error.internal("%s answered with a body that is not JSON: %s" % (self.url, e)) \
                from None


def get(url, headers=None, timeout=60.0, check=True):
    return request("GET", url, headers=headers, timeout=timeout, check=check)


def post(url, body=b"", headers=None, timeout=60.0, check=True):
    return request("POST", url, headers=headers, body=body, timeout=timeout, check=check)


MAX_REDIRECTS = 10
_REDIRECTS = (301, 302, 303, 307, 308)
# What describes a body, dropped with it when a redirect continues as a GET.
_BODY_HEADERS = ("content-length", "content-type", "transfer-encoding")


def request(method, url, headers=None, body=None, timeout=60.0, check=True):
    """Sends one request and reads the whole answer. `body` is bytes, or a str (sent as UTF-8).
    Redirects are followed (at most 10; each hop is held to the grants like any request; a 303,
    or a 301/302 of a POST, continues as a GET without the body); `Response.url` is where the
    answer came from."""
    asked = url
    for _ in range(MAX_REDIRECTS + 1):
        response = _send(method, url, headers, body, timeout)
        location = response.headers.get("location")
        if response.status not in _REDIRECTS or not location:
            break
        url = _urljoin(url, location.split(", ")[0])
        if (response.status == 303 and method.upper() != "HEAD") or (
                response.status in (301, 302) and method.upper() == "POST"):
            method, body = "GET", None
            headers = {k: v for k, v in (headers or {}).items()
                       if k.lower() not in _BODY_HEADERS}
    else:
        raise Error.unavailable("%s: more than %d redirects (the last to %s)"
                                % (asked, MAX_REDIRECTS, url))
    if check and response.status >= 400:
        detail = response.text[:300].strip()
        message = "%s %s answered %d%s" % (method, url, response.status,
                                           ": " + detail if detail else "")
        if response.status in (401, 403):
            raise Error.unauthorized(message)
        if response.status == 429 or response.status >= 500:
            raise Error.unavailable(message)
        raise Error.internal(message)
    return response


def _send(method, url, headers, body, timeout):
    """One request and its whole answer, whatever the status."""
    parts = _urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise Error.invalid_spec("`%s` is not an http(s) URL" % url)
    fields = [(name.lower(), str(value).encode()) for name, value in (headers or {}).items()]
    try:
        outgoing = _h.OutgoingRequest(_h.Fields.from_list(fields))
    except Err as e:
        raise Error.internal("%s %s: a header is not valid (%s)" % (method, url, e.value)) \
            from None
    if method.upper() in _METHODS:
        outgoing.set_method(_METHODS[method.upper()])
    else:
        outgoing.set_method(_h.Method_Other(method))
    try:
        outgoing.set_scheme(_h.Scheme_Https() if parts.scheme == "https" else _h.Scheme_Http())
        outgoing.set_authority(parts.netloc)
    except Err:
        raise Error.invalid_spec("`%s`: the host is not valid" % url) from None
    try:
        outgoing.set_path_with_query((parts.path or "/") +
                                     ("?" + parts.query if parts.query else ""))
    except Err:
        raise Error.invalid_spec("`%s`: the path is not valid (escape spaces and the like)"
                                 % url) from None
    outgoing_body = outgoing.body()
    options = _h.RequestOptions()
    nanos = int(timeout * _NANOS)
    for setter in (options.set_connect_timeout, options.set_first_byte_timeout,
                   options.set_between_bytes_timeout):
        setter(nanos)
    try:
        future = _handler.handle(outgoing, options)
    except Err as e:
        raise _failure(method, url, e.value) from None
    # The body is written after `handle`: the host takes only a few chunks before the request is
    # under way, so writing a large body first would wait forever.
    body_failed = False
    if body:
        data = body.encode() if isinstance(body, str) else bytes(body)
        stream = outgoing_body.write()
        try:
            for at in range(0, len(data), 4096):
                stream.blocking_write_and_flush(data[at:at + 4096])
        except Err:
            body_failed = True
        finally:
            stream.__exit__(None, None, None)
    try:
        _h.OutgoingBody.finish(outgoing_body, None)
    except Err:
        body_failed = True
    # A body that could not be sent usually means the request failed (denied, refused): the
    # answer says why, so it is read first.
    answer = None
    while answer is None:
        future.subscribe().block()
        answer = future.get()
    if isinstance(answer, Err) or isinstance(answer.value, Err):
        code = answer.value.value if isinstance(answer, Ok) else answer.value
        raise _failure(method, url, code)
    if body_failed:
        raise Error.unavailable("%s %s: sending the body failed" % (method, url))
    incoming = answer.value.value
    headers = {}
    for name, value in incoming.headers().entries():
        key = name.lower()
        text = value.decode("latin-1")
        headers[key] = headers[key] + ", " + text if key in headers else text
    status = incoming.status()
    return Response(url, status, headers, _read_body(method, url, incoming.consume()))


def _read_body(method, url, incoming_body):
    """The whole body; the stream is closed before its body is finished, whatever happens."""
    chunks = []
    try:
        stream = incoming_body.stream()
        try:
            while True:
                try:
                    chunks.append(stream.blocking_read(_CHUNK))
                except Err as e:
                    if isinstance(e.value, StreamError_Closed):
                        break
                    raise Error.unavailable("%s %s: the answer's body broke off"
                                            % (method, url)) from None
        finally:
            stream.__exit__(None, None, None)
    finally:
        _h.IncomingBody.finish(incoming_body)
    return b"".join(chunks)


def _failure(method, url, code):
    """The SDK's error for a transport failure, as the Rust SDK maps them: the host's own words
    for a denial (what was refused, and the grant that would allow it) as `unauthorized`, what
    cannot be reached now as `unavailable`."""
    detail = getattr(code, "value", None)
    if isinstance(code, _h.ErrorCode_InternalError) and detail:
        if " was denied: " in detail:
            return Error.unauthorized(detail)
        return Error.unavailable(detail)
    if isinstance(code, _h.ErrorCode_HttpRequestDenied):
        return Error.unauthorized("%s %s: denied by the sandbox; grant its host under "
                                  "permissions.network" % (method, url))
    name = type(code).__name__.split("_", 1)[-1]
    return Error.unavailable("%s %s failed: %s%s" % (method, url, name,
                                                      " (%s)" % (detail,) if detail else ""))
