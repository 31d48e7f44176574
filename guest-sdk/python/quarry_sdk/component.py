"""The contract's exports, bound to the plugin `quarry_sdk.export` named. The app module
re-exports `Plugin` and `Source` from here; componentize-py calls them."""

import json as _json
import traceback as _traceback

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import quarry_plugin_types as _t
from wit_world.imports import sink as _sink
from wit_world.imports import state as _state

import quarry_sdk as _q
# componentize-py bundles the modules imported while it builds the component, not those a
# function would import later: everything a plugin may use is imported here.
import quarry_sdk.http  # noqa: E402,F401

_KINDS = {
    "invalid-spec": _t.ErrorKind.INVALID_SPEC,
    "unauthorized": _t.ErrorKind.UNAUTHORIZED,
    "unavailable": _t.ErrorKind.UNAVAILABLE,
    "not-supported": _t.ErrorKind.NOT_SUPPORTED,
    "internal": _t.ErrorKind.INTERNAL,
}

_instance = None


def _where(error):
    """`file:line in function` of the innermost frame of `error`'s traceback."""
    frames = _traceback.extract_tb(error.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return " (at %s:%d in %s)" % (last.filename.rsplit("/", 1)[-1], last.lineno, last.name)


def _call(function, *args):
    """Runs plugin code, turning what it raises into the contract's `error`."""
    try:
        return function(*args)
    except Err as e:
        if isinstance(e.value, _t.Error):
            raise  # the contract's error from the host (a cancelled emit): pass it on as it is
        message = "%s%s" % (e.value, _where(e))
        raise Err(_t.Error(_t.ErrorKind.INTERNAL, message)) from None
    except _q.Error as e:
        raise Err(_t.Error(_KINDS.get(e.kind, _t.ErrorKind.INTERNAL), e.message)) from None
    except Exception as e:
        try:
            _q.log("debug", "Python traceback",
                   traceback="".join(_traceback.format_exception(e)))
        except Exception:  # noqa: BLE001 (the error below matters more than its traceback)
            pass
        message = "%s: %s%s" % (type(e).__name__, e, _where(e))
        raise Err(_t.Error(_t.ErrorKind.INTERNAL, message)) from None


def _plugin():
    if _instance is None:
        raise _q.Error.internal("the host called the plugin before `init`")
    return _instance


class _HostSink:
    def migrate(self, schema):
        _sink.emit(_t.SyncMessage_MigrateTable(_q.arrow.encode_schema(schema)))

    def insert(self, data):
        _sink.emit(_t.SyncMessage_Insert(data))

    def state_get(self, key):
        return _state.get(key)

    def state_set(self, key, value):
        _state.set(key, value)


class Plugin(exports.Plugin):
    def info(self):
        cls = _q.exported()
        needs = cls.needs
        return _t.PluginInfo(
            name=cls.name,
            version=cls.version,
            description=cls.description,
            kinds=[_t.PluginKind.SOURCE],
            needs=_t.PermissionNeeds(network=list(needs.network), files=list(needs.files),
                                     env=list(needs.env)),
            write_modes=[],
            batch_rows=0,
            batch_bytes=0,
        )

    def spec_schema(self):
        return _json.dumps(_q.exported().spec_schema)

    def init(self, spec):
        def start():
            global _instance
            try:
                parsed = _json.loads(spec) if spec.strip() else {}
            except ValueError as e:
                raise _q.Error.invalid_spec("spec: %s" % e) from None
            _instance = _q.exported()(parsed)
        _call(start)

    def test_connection(self):
        _call(lambda: _plugin().test_connection())

    def close(self):
        global _instance
        try:
            if _instance is not None:
                _call(_instance.close)
        finally:
            _instance = None


class Source(exports.Source):
    def tables(self, options):
        def schemas():
            selected = _q.select_tables(_plugin().tables(), options.tables, options.skip_tables,
                                        options.skip_dependent_tables)
            return [_q.arrow.encode_schema(t.with_id_columns().schema()) for t in selected]
        return _call(schemas)

    def sync(self, options):
        tables = options.tables
        _call(lambda: _q.sync_into(_plugin(), _HostSink(), tables.tables, tables.skip_tables,
                                   tables.skip_dependent_tables, options.deterministic_cq_id))
