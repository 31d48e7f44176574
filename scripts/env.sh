# Shared by scripts/*: the toolchain pieces and where builds go. Source it, don't run it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# Builds are cached outside the clone so repeat runs (and fresh clones) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quarry/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
if ! command -v cargo >/dev/null 2>&1; then
  echo "error: cargo not found; install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi
rustup target add wasm32-wasip2 >/dev/null
# The `duckdb` plugin links the prebuilt libduckdb.so (scripts/duckdb fetches it once).
DUCKDB_LIB_DIR="$(scripts/duckdb)"
export DUCKDB_LIB_DIR
# The `sqlite` component compiles SQLite's C sources with clang for wasm32-wasip2.
WASI_SYSROOT="$(scripts/wasi-c)"
export WASI_SYSROOT CC_wasm32_wasip2=clang-19 AR_wasm32_wasip2=llvm-ar-19
