"""The host's `log` import, or stderr outside a component (unit tests)."""

import sys

try:
    from wit_world.imports import host as _host
    from wit_world.imports import quarry_plugin_types as _types
except ImportError:  # plain Python
    _host = None

_LEVELS = ("trace", "debug", "info", "warn", "error")


def log(level, message, fields):
    if level not in _LEVELS:
        raise ValueError("log level must be one of %s, not %r" % (", ".join(_LEVELS), level))
    pairs = [(str(k), str(v)) for k, v in fields.items()]
    if _host is None:
        extra = "".join(" %s=%s" % pair for pair in pairs)
        print("%s %s%s" % (level.upper(), message, extra), file=sys.stderr)
        return
    _host.log(_types.LogLevel[level.upper()], str(message), pairs)
