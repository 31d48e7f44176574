//! Quarry inside your own program: a sync of the `test` source into JSON files, run in this
//! process, with its progress printed as it happens.
//!
//! ```sh
//! source scripts/env.sh && cargo plugins && cargo run -p quarry --example embed -- /tmp/quarry-embed
//! ```

use std::path::PathBuf;

const SPEC: &str = r#"
kind: source
spec:
  name: test
  path: quarry/test
  tables: [test_rows, test_parents]
  destinations: [out]
  spec: { num_rows: 50000 }
---
kind: destination
spec:
  name: out
  path: quarry/file
  write_mode: append
  spec: { path: 'out/{{TABLE}}.{{FORMAT}}', format: json, no_rotate: true }
  permissions: { files: { ./out: write } }
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("quarry-embed"));
    std::fs::create_dir_all(dir.join("out"))?;
    let runtime = tokio::runtime::Runtime::new()?;
    let summary = runtime.block_on(async {
        let mut sync = quarry::Sync::from_yaml_str(SPEC)?
            .working_dir(&dir)
            .plugin_dir(workspace_plugins());
        let mut events = sync.events();
        let printer = tokio::spawn(async move {
            let mut written = 0;
            while let Some(event) = events.recv().await {
                match event {
                    quarry::Event::SourceStarted { source, .. } => println!("{source}: started"),
                    quarry::Event::Written { table, rows, .. } => {
                        written += rows;
                        println!("{table}: +{rows} rows ({written} written)");
                    }
                    quarry::Event::SourceFinished(summary) => {
                        println!("{}: {} rows", summary.source, summary.rows())
                    }
                    _ => {}
                }
            }
        });
        let summary = sync.run().await;
        let _ = printer.await;
        summary
    })?;
    print!("{summary}");
    println!("files in {}", dir.join("out").display());
    if summary.ok() {
        Ok(())
    } else {
        Err("the sync had errors".into())
    }
}

/// The first-party components this workspace builds (`cargo plugins`), for an example run from
/// `target/<profile>/examples/`: `target/wasm32-wasip2/<profile>/`. An installed program would use
/// the `plugins/` directory of a Quarry release instead.
fn workspace_plugins() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let profile_dir = exe.parent().and_then(|p| p.parent()).unwrap_or(&exe);
    let profile = profile_dir.file_name().unwrap_or_default();
    let target = profile_dir.parent().unwrap_or(profile_dir);
    target.join("wasm32-wasip2").join(profile)
}
