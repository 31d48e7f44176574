// The host side of Quarry's plugin contract (wit/plugin@0.1.0) in JavaScript: the imports a
// component transpiled by `jco transpile` calls (`quarry:plugin/host`, `sink`, `state`). A
// component instance imports these once, so the running sync is module state: `begin` hands it
// the callbacks of the sync about to run and `end` takes them back.

let current = null;

/** Routes the component's calls to `sync` (`{ emit(message), cursors: Map, log(record) }`). */
export function begin(sync) {
  current = sync;
}

/** The sync is over: a later call is an error. */
export function end() {
  current = null;
}

function running() {
  if (current === null) {
    // A result's error travels as a thrown value with the WIT error record as its payload.
    throw { kind: 'internal', message: 'no sync is running' };
  }
  return current;
}

export const host = {
  log(level, message, fields) {
    if (current !== null) {
      current.log({ level, message, fields });
    }
  },
};

export const sink = {
  emit(message) {
    running().emit(message);
  },
};

export const state = {
  get(key) {
    return running().cursors.get(key);
  },
  set(key, value) {
    running().cursors.set(key, value);
  },
};
