//! libduckdb-sys links the prebuilt libduckdb.so from DUCKDB_LIB_DIR (scripts/duckdb fetches it)
//! but tells the loader nothing: the binaries of this crate find it through an rpath to that
//! directory, and also beside themselves (`$ORIGIN`) for a shipped layout.

fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    match std::env::var("DUCKDB_LIB_DIR") {
        Ok(dir) => println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}"),
        Err(_) => println!(
            "cargo:warning=DUCKDB_LIB_DIR is not set: run `source scripts/env.sh` (it fetches libduckdb.so from npm)"
        ),
    }
    println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN");
}
