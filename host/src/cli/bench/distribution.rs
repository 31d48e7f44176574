//! The distribution scenarios of `quarry bench`: a 10 MB component pulled from a loopback
//! registry, the first sync with it, and a cached sync (see the module above).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::report::{Report, median};

/// The size the `test` component is padded to.
const PADDED: usize = 10 << 20;

/// A `docker-registry` child on a free loopback port, killed when dropped.
struct Registry {
    child: std::process::Child,
    address: String,
}

impl Registry {
    fn start(work: &Path) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let config = work.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{ level: error }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                work.join("registry").display()
            ),
        )
        .map_err(|e| format!("{}: {e}", config.display()))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                format!("cannot start docker-registry ({e}); install it: apt-get install docker-registry")
            })?;
        let registry = Registry {
            child,
            address: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&registry.address).is_err() {
            if Instant::now() > deadline {
                return Err("docker-registry did not start".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(registry)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `component` with a custom section appended so that it is `size` bytes: still the same
/// component to wasmtime, 10 MB to download, store and hash.
fn padded(component: &[u8], size: usize) -> Vec<u8> {
    let name = b"quarry-bench-padding";
    let mut out = component.to_vec();
    let fill = size.saturating_sub(component.len() + name.len() + 1 + 10);
    let body = 1 + name.len() + fill;
    out.push(0); // custom section
    let mut n = body;
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.resize(out.len() + fill, 0);
    out
}

/// Runs `quarry args` in `work` with the store and cache given; returns the wall seconds.
fn timed(
    exe: &Path,
    work: &Path,
    store: &Path,
    cache: &Path,
    args: &[&str],
) -> Result<f64, String> {
    let started = Instant::now();
    let out = Command::new(exe)
        .current_dir(work)
        .env("QUARRY_PLUGIN_STORE", store)
        .env("QUARRY_CACHE_DIR", cache)
        .args(["--log-level", "warn"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!(
            "quarry {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(seconds)
}

pub fn run(exe: &Path, work: &Path, runs: usize, report: &mut Report) -> Result<(), String> {
    let work = work.join("oci");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let resolver = quarry_registry::Resolver::from_env(Some(exe));
    let Ok(quarry_registry::Resolved::Component(test)) =
        resolver.resolve(quarry_registry::RegistryKind::Quarry, "quarry/test", &work)
    else {
        return Err("the `test` plugin is not built (cargo plugins)".into());
    };
    let component = padded(&test.bytes, PADDED);
    let file = work.join("padded.wasm");
    std::fs::write(&file, &component).map_err(|e| format!("{}: {e}", file.display()))?;
    let registry = Registry::start(&work)?;
    let reference = format!("{}/bench/test:1.0.0", registry.address);
    let scratch = work.join("scratch");
    timed(
        exe,
        &work,
        &scratch.join("store"),
        &scratch.join("cache"),
        &["plugin", "push", &file.display().to_string(), &reference],
    )?;
    let spec = work.join("oci.yml");
    let plugin = format!(
        "  registry: oci\n  path: {}/bench/test\n  version: \"1.0.0\"\n",
        registry.address
    );
    std::fs::write(
        &spec,
        format!(
            "kind: source\nspec:\n  name: bench_source\n{plugin}  tables: [test_rows]\n  spec: {{ num_rows: 1 }}\n  destinations: [bench]\n---\nkind: destination\nspec:\n  name: bench\n{plugin}  write_mode: append\n"
        ),
    )
    .map_err(|e| format!("{}: {e}", spec.display()))?;
    let spec = spec.display().to_string();
    let (mut pulls, mut firsts, mut cached) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..=runs {
        let run = work.join(format!("run{i}"));
        let (store, cache) = (run.join("store"), run.join("cache"));
        let pull = timed(
            exe,
            &work,
            &run.join("pull-store"),
            &cache,
            &["plugin", "pull", &reference],
        )?;
        let _ = std::fs::remove_file(work.join("quarry.lock"));
        let first = timed(exe, &work, &store, &cache.join("first"), &["sync", &spec])?;
        let again = timed(exe, &work, &store, &cache.join("first"), &["sync", &spec])?;
        let _ = std::fs::remove_dir_all(&run);
        if i > 0 {
            pulls.push(pull);
            firsts.push(first);
            cached.push(again);
        }
    }
    let mb = component.len() as f64 / 1e6;
    println!("(distribution: a {mb:.1} MB component from a loopback registry; wall seconds)");
    report.timing("oci pull (10 MB)", median(pulls));
    report.timing("oci first sync (pull+compile)", median(firsts));
    report.timing("oci cached sync (1 row)", median(cached));
    drop(registry);
    Ok(())
}
