//! Plugins from OCI registries: a real registry (Debian's `docker-registry`, the CNCF
//! distribution registry) started on a free loopback port per test, with its storage in a temp
//! dir; one with TLS (the test CA) and basic auth (htpasswd). `oras` (PyPI) is the third-party
//! client. Each test has its own plugin store (`QUARRY_PLUGIN_STORE`) and config file.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{JSON_FILES, Run, Workdir, tools, wasm_dir};

/// A registry on loopback, stopped when dropped.
struct Registry {
    child: Option<Child>,
    address: String,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

const USER: &str = "quarry";
const PASSWORD: &str = "s3cret";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(path)
}

impl Registry {
    /// A plain-HTTP registry with no authentication.
    fn plain() -> Self {
        Registry::start(false)
    }

    /// A TLS registry (the test CA's server certificate) with basic auth (`USER`/`PASSWORD`).
    fn secured() -> Self {
        Registry::start(true)
    }

    fn start(secured: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut config = format!(
            "version: 0.1\nlog: {{ level: error }}\nstorage:\n  filesystem: {{ rootdirectory: {} }}\n  delete: {{ enabled: true }}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if secured {
            let hash = Command::new("python3")
                .args([
                    "-c",
                    "import crypt,sys;print(crypt.crypt(sys.argv[1],crypt.mksalt(crypt.METHOD_BLOWFISH)))",
                    PASSWORD,
                ])
                .output()
                .expect("python3 (for a bcrypt htpasswd)");
            let hash = String::from_utf8(hash.stdout).expect("utf-8");
            assert!(hash.starts_with("$2"), "no bcrypt hash: {hash}");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{USER}:{}", hash.trim())).expect("htpasswd");
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\nauth:\n  htpasswd: {{ realm: quarry-test, path: {} }}\n",
                fixture("tls/server.pem").display(),
                fixture("tls/server.key").display(),
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("registry.yml");
        std::fs::write(&config_path, config).expect("registry config");
        let mut registry = Registry {
            child: None,
            address: format!("127.0.0.1:{port}"),
            config: config_path,
            _dir: dir,
        };
        registry.resume();
        registry
    }

    /// Starts (again) the registry process on its port and storage.
    fn resume(&mut self) {
        let child = Command::new("docker-registry")
            .args(["serve", &self.config.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry (installed by scripts/tools)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&self.address).is_err() {
            assert!(Instant::now() < deadline, "the registry did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A working directory with its own plugin store, config file and Docker config.
struct Oci {
    work: Workdir,
    env: Vec<(String, String)>,
}

impl Oci {
    fn new() -> Self {
        let work = Workdir::new();
        let config = work.write("quarry-config.yml", "registries: {}\n");
        let env = vec![
            (
                "QUARRY_PLUGIN_STORE".into(),
                work.path().join("store").display().to_string(),
            ),
            ("QUARRY_CONFIG".into(), config.display().to_string()),
            (
                "DOCKER_CONFIG".into(),
                work.path().join("docker").display().to_string(),
            ),
        ];
        Oci { work, env }
    }

    fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    fn quarry(&self, args: &[&str]) -> Run {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.work.quarry_with(args, &env)
    }

    fn ok(&self, args: &[&str]) -> Run {
        let run = self.quarry(args);
        assert_eq!(run.code, 0, "quarry {args:?}: {run:?}");
        run
    }

    fn push(&self, plugin: &str, reference: &str) -> String {
        let file = wasm_dir().join(format!("quarry_plugin_{plugin}.wasm"));
        let run = self.ok(&["plugin", "push", &file.display().to_string(), reference]);
        manifest_of(&run.stdout)
    }

    fn lock(&self) -> serde_json::Value {
        let text =
            std::fs::read_to_string(self.work.path().join("quarry.lock")).expect("quarry.lock");
        serde_json::from_str(&text).expect("JSON")
    }

    /// The lock entry of the `plugins/<name>` reference.
    fn locked(&self, name: &str) -> serde_json::Value {
        let suffix = format!("/plugins/{name}");
        self.lock()["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .find(|p| p["path"].as_str().is_some_and(|p| p.ends_with(&suffix)))
            .unwrap_or_else(|| panic!("{suffix} is not locked"))
            .clone()
    }

    /// The hex of a digest field of that entry.
    fn locked_hex(&self, name: &str, field: &str) -> String {
        self.locked(name)[field]
            .as_str()
            .expect("a digest")
            .trim_start_matches("sha256:")
            .to_string()
    }

    fn store(&self) -> PathBuf {
        self.work.path().join("store")
    }
}

/// The `manifest:` line of `push`/`pull` output.
fn manifest_of(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("manifest:"))
        .map(|d| d.trim().to_string())
        .unwrap_or_else(|| panic!("no manifest line in {stdout}"))
}

/// A spec whose source (`test`) and destination (`file`) both come from `registry`.
fn spec(registry: &str, extra_source: &str) -> String {
    format!(
        r#"kind: source
spec:
  name: test
  registry: oci
  path: {registry}/plugins/test
  version: "1.0.0"
  tables: [test_rows]
  destinations: [out]
  spec: {{ num_rows: 3 }}
{extra_source}---
kind: destination
spec:
  name: out
  registry: oci
  path: {registry}/plugins/file
  version: "1.0.0"
  write_mode: append
  spec: {{ path: 'out/{{{{TABLE}}}}.{{{{FORMAT}}}}', format: json, no_rotate: true }}
  permissions: {{ files: {{ ./out: write }} }}
"#
    )
}

fn rows_written(o: &Oci) -> usize {
    let text =
        std::fs::read_to_string(o.work.path().join("out/test_rows.json")).unwrap_or_default();
    text.lines().count()
}

#[test]
fn oci_plugins_sync_lock_and_run_again_without_the_registry() {
    let mut registry = Registry::plain();
    let mut o = Oci::new();
    let test = o.push("test", &format!("{}/plugins/test:1.0.0", registry.address));
    o.push("file", &format!("{}/plugins/file:1.0.0", registry.address));
    o.work.write("spec.yml", &spec(&registry.address, ""));

    o.ok(&["sync", "spec.yml"]);
    assert_eq!(rows_written(&o), 3);
    let lock = o.lock();
    assert_eq!(
        lock["plugins"].as_array().expect("plugins").len(),
        2,
        "{lock}"
    );
    let source = o.locked("test");
    assert_eq!(source["manifest"], test.as_str());
    assert_eq!(source["tag"], "1.0.0");
    assert_eq!(source["signature"]["state"], "not-required");
    assert!(source["size"].as_u64().unwrap() > 100_000);

    // The registry is gone: the lock and the store are enough, with or without --offline.
    registry.stop();
    for args in [
        &["sync", "spec.yml"][..],
        &["sync", "--offline", "spec.yml"],
    ] {
        std::fs::remove_dir_all(o.work.path().join("out")).unwrap();
        o.ok(args);
        assert_eq!(rows_written(&o), 3, "{args:?}");
    }
    o.set("QUARRY_OFFLINE", "1");
    std::fs::remove_dir_all(o.work.path().join("out")).unwrap();
    o.ok(&["sync", "spec.yml"]);
    assert_eq!(rows_written(&o), 3);
    let listed = o.ok(&["plugin", "list"]).stdout;
    assert!(
        listed.contains("/plugins/test") && listed.contains("1.0.0"),
        "{listed}"
    );

    // Offline, a plugin that was never fetched is named.
    o.work.write(
        "other.yml",
        &spec(&registry.address, "").replace("1.0.0", "2.0.0"),
    );
    let run = o.quarry(&["sync", "other.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "`{}/plugins/file version 2.0.0` is neither in quarry.lock nor in the plugin store",
            registry.address
        )),
        "{run:?}"
    );
}

#[test]
fn a_moved_tag_keeps_the_locked_digest_until_updated() {
    let registry = Registry::plain();
    let o = Oci::new();
    let tag = format!("{}/plugins/test:1.0.0", registry.address);
    let first = o.push("test", &tag);
    o.push("file", &format!("{}/plugins/file:1.0.0", registry.address));
    o.work.write("spec.yml", &spec(&registry.address, ""));
    o.ok(&["plugin", "install", "spec.yml"]);
    assert!(o.work.path().join("quarry.lock").exists());

    // Someone retags 1.0.0 to another component.
    let moved = o.push("hackernews", &tag);
    assert_ne!(first, moved);
    o.ok(&["sync", "spec.yml"]);
    assert_eq!(
        rows_written(&o),
        3,
        "the locked test plugin ran, not the retagged one"
    );
    let locked = o.lock();
    assert!(locked.to_string().contains(&first), "{locked}");

    // CI asks whether the lock is current: no, and both digests are named.
    let run = o.quarry(&["plugin", "update", "--locked", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&first) && run.stderr.contains(&moved),
        "{run:?}"
    );
    assert!(run.stderr.contains("tag `1.0.0` moved"), "{run:?}");
    assert_eq!(o.lock(), locked, "--locked leaves the lock alone");

    let run = o.ok(&["plugin", "update", "spec.yml"]);
    assert!(
        run.stdout.contains("moved:") && run.stdout.contains(&moved),
        "{run:?}"
    );
    assert!(o.lock().to_string().contains(&moved));
    // The lock now pins the hackernews plugin, which has no `test_rows` table.
    let run = o.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");

    // --locked with a reference the lock lacks.
    o.work.write(
        "new.yml",
        &spec(&registry.address, "").replace("\"1.0.0\"", "\"latest\""),
    );
    let run = o.quarry(&["sync", "--locked", "new.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("--locked forbids adding one"),
        "{run:?}"
    );
}

#[test]
fn a_changed_store_file_or_compiled_artefact_is_caught_before_use() {
    let mut registry = Registry::plain();
    let mut o = Oci::new();
    let cache = o.work.path().join("cache");
    o.set("QUARRY_CACHE_DIR", &cache.display().to_string());
    o.push("test", &format!("{}/plugins/test:1.0.0", registry.address));
    o.push("file", &format!("{}/plugins/file:1.0.0", registry.address));
    o.work.write("spec.yml", &spec(&registry.address, ""));
    o.ok(&["sync", "spec.yml"]);
    let component = o.locked_hex("test", "component");
    let blob = o.store().join("blobs/sha256").join(&component);
    let flip = |path: &Path| {
        let mut bytes = std::fs::read(path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(path, bytes).expect("write");
    };

    // Offline, a changed component is refused before it is compiled, and named.
    let original = std::fs::read(&blob).expect("the stored component");
    flip(&blob);
    let run = o.quarry(&["sync", "--offline", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("was changed on disk"), "{run:?}");
    assert!(run.stderr.contains(&component), "{run:?}");
    assert!(
        !blob.exists(),
        "the changed file is removed, to be fetched again"
    );
    // Online, it is fetched again and the sync runs.
    std::fs::write(&blob, &original).expect("restore");
    flip(&blob);
    let run = o.ok(&["sync", "spec.yml"]);
    assert!(run.stderr.contains("fetching it again"), "{run:?}");
    assert_eq!(std::fs::read(&blob).expect("fetched again"), original);

    // A compiled artefact with a flipped byte is not deserialized: compiled again, with a warning.
    let cwasm = std::fs::read_dir(&cache)
        .expect("cache dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "cwasm")
                && p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&component)
        })
        .expect("the test plugin's compiled artefact");
    flip(&cwasm);
    let run = o.ok(&["sync", "spec.yml"]);
    assert!(
        run.stderr
            .contains("was changed after this quarry stored it"),
        "{run:?}"
    );
    registry.stop();
}

#[test]
fn oras_pulls_what_quarry_pushed_and_quarry_runs_what_oras_pushed() {
    let registry = Registry::plain();
    let o = Oci::new();
    let python = tools().join("venv/bin/python");
    let script = fixture("oci/oras_client.py");
    let oras = |args: &[&str]| {
        let out = Command::new(&python)
            .arg(&script)
            .args(args)
            .current_dir(o.work.path())
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "oras {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };

    // Quarry pushes; oras pulls the same bytes, named by the layer title.
    let test = wasm_dir().join("quarry_plugin_test.wasm");
    o.push("test", &format!("{}/plugins/test:1.0.0", registry.address));
    let pulled = oras(&[
        "pull",
        &format!("{}/plugins/test:1.0.0", registry.address),
        "pulled",
    ]);
    assert!(pulled.contains("test.wasm"), "{pulled}");
    let manifest: serde_json::Value = serde_json::from_str(&oras(&[
        "manifest",
        &format!("{}/plugins/test:1.0.0", registry.address),
    ]))
    .expect("JSON");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.wasm.config.v0+json"
    );
    assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
    assert_eq!(
        manifest["annotations"]["dev.quarry.plugin.kinds"],
        "source,destination"
    );
    let file = std::fs::read_dir(o.work.path().join("pulled"))
        .expect("pulled")
        .flatten()
        .next()
        .expect("a file")
        .path();
    assert_eq!(std::fs::read(file).unwrap(), std::fs::read(&test).unwrap());

    // oras pushes the file plugin in the CNCF layout; Quarry runs it as the destination.
    let config = o.work.write(
        "config.json",
        r#"{"architecture":"wasm","os":"wasip2","layerDigests":[],"component":null}"#,
    );
    let file_plugin = wasm_dir().join("quarry_plugin_file.wasm");
    oras(&[
        "push",
        &format!("{}/plugins/file:1.0.0", registry.address),
        &file_plugin.display().to_string(),
        "application/wasm",
        &config.display().to_string(),
        "application/vnd.wasm.config.v0+json",
    ]);
    o.work.write("spec.yml", &spec(&registry.address, ""));
    o.ok(&["sync", "spec.yml"]);
    assert_eq!(rows_written(&o), 3);

    // Something that is not a Wasm artifact is named as such.
    let text = o.work.write("notes.txt", "hello");
    oras(&[
        "push",
        &format!("{}/plugins/notes:1.0.0", registry.address),
        &text.display().to_string(),
        "text/plain",
        &config.display().to_string(),
        "application/vnd.oci.image.config.v1+json",
    ]);
    let run = o.quarry(&[
        "plugin",
        "pull",
        &format!("{}/plugins/notes:1.0.0", registry.address),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("is not a Wasm component artifact"),
        "{run:?}"
    );
}

#[test]
fn a_tls_registry_with_basic_auth_works_and_wrong_credentials_are_named() {
    let registry = Registry::secured();
    let mut o = Oci::new();
    let config = o.work.write(
        "quarry-config.yml",
        &format!(
            "registries:\n  \"{}\": {{ ca_file: {} }}\n",
            registry.address,
            fixture("tls/ca.pem").display()
        ),
    );
    o.set("QUARRY_CONFIG", &config.display().to_string());
    let reference = format!("{}/plugins/test:1.0.0", registry.address);
    let test = wasm_dir()
        .join("quarry_plugin_test.wasm")
        .display()
        .to_string();

    let run = o.quarry(&["plugin", "push", &test, &reference]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "registry `{}` refused no credentials",
            registry.address
        )),
        "{run:?}"
    );
    assert!(run.stderr.contains("QUARRY_REGISTRY_USERNAME"), "{run:?}");

    o.set("QUARRY_REGISTRY_USERNAME", USER);
    o.set("QUARRY_REGISTRY_PASSWORD", "wrong");
    let run = o.quarry(&["plugin", "push", &test, &reference]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("refused QUARRY_REGISTRY_USERNAME and QUARRY_REGISTRY_PASSWORD: check the user name and password"),
        "{run:?}"
    );

    o.set("QUARRY_REGISTRY_PASSWORD", PASSWORD);
    o.ok(&["plugin", "push", &test, &reference]);
    // Credentials from the Docker config work too.
    o.env.retain(|(k, _)| !k.starts_with("QUARRY_REGISTRY_"));
    let docker = o.work.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let auth = base64(&format!("{USER}:{PASSWORD}"));
    std::fs::write(
        docker.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#,
            registry.address
        ),
    )
    .unwrap();
    let run = o.ok(&["plugin", "pull", &reference]);
    assert!(run.stdout.contains("pulled"), "{run:?}");

    // Without the CA, quarry speaks plain HTTP to a loopback registry, and says what to set.
    o.work.write("quarry-config.yml", "registries: {}\n");
    let run = o.quarry(&["plugin", "inspect", &reference]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("registry `{}` speaks HTTPS", registry.address)),
        "{run:?}"
    );
    // With a CA that did not sign its certificate, TLS fails and says so.
    let other_ca = o.work.write(
        "other-ca.pem",
        &std::fs::read_to_string(fixture("tls/server.pem")).unwrap(),
    );
    o.work.write(
        "quarry-config.yml",
        &format!(
            "registries:\n  \"{}\": {{ ca_file: {} }}\n",
            registry.address,
            other_ca.display()
        ),
    );
    let run = o.quarry(&["plugin", "inspect", &reference]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach registry `{}`", registry.address)),
        "{run:?}"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    quarry_registry::Digest::of(bytes).hex().to_string()
}

fn base64(text: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn a_required_signature_admits_only_plugins_signed_by_a_trusted_key() {
    let registry = Registry::plain();
    let o = Oci::new();
    o.ok(&["plugin", "keygen", "team"]);
    o.ok(&["plugin", "keygen", "stranger"]);
    let tag = format!("{}/plugins/test:1.0.0", registry.address);
    o.push("test", &tag);
    o.push("file", &format!("{}/plugins/file:1.0.0", registry.address));
    let verify = |key: &str| format!("  verify: {{ keys: [{key}] }}\n");

    // Unsigned: refused before anything is compiled, naming the key expected.
    o.work
        .write("spec.yml", &spec(&registry.address, &verify("team.pub")));
    let run = o.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("it is not signed, and a signature by sha256:"),
        "{run:?}"
    );
    assert!(run.stderr.contains("(team.pub)"), "{run:?}");
    assert!(!o.work.path().join("out/test_rows.json").exists());

    // Signed by a stranger: refused.
    o.ok(&["plugin", "sign", "--key", "stranger.key", &tag]);
    let run = o.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("none of its 1 signature(s) is by a trusted key"),
        "{run:?}"
    );

    // Signed by the team: runs, and the lock says by which key.
    let run = o.ok(&["plugin", "sign", "--key", "team.key", &tag]);
    assert!(run.stdout.contains("sha256-"), "{run:?}");
    o.ok(&["sync", "spec.yml"]);
    // The signature is cosign's format: openssl checks it with the public key alone.
    let manifest = o.locked_hex("test", "manifest");
    let blob = |digest: &str| {
        std::fs::read(
            o.store()
                .join("blobs/sha256")
                .join(digest.trim_start_matches("sha256:")),
        )
        .expect("a stored blob")
    };
    let recorded = std::fs::read_to_string(o.store().join("signatures").join(&manifest)).unwrap();
    let signatures: serde_json::Value = serde_json::from_slice(&blob(recorded.trim())).unwrap();
    let layer = &signatures["layers"][1];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    let payload: serde_json::Value =
        serde_json::from_slice(&blob(layer["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        payload["critical"]["type"],
        "cosign container image signature"
    );
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        format!("sha256:{manifest}")
    );
    o.work.write("payload.json", "");
    std::fs::write(
        o.work.path().join("payload.json"),
        blob(layer["digest"].as_str().unwrap()),
    )
    .unwrap();
    o.work.write(
        "signature.b64",
        layer["annotations"]["dev.cosignproject.cosign/signature"]
            .as_str()
            .unwrap(),
    );
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(o.work.path())
            .output()
            .expect("openssl");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert!(
        openssl(&[
            "base64",
            "-d",
            "-A",
            "-in",
            "signature.b64",
            "-out",
            "signature.der"
        ])
        .0
    );
    let (ok, said) = openssl(&[
        "dgst",
        "-sha256",
        "-verify",
        "team.pub",
        "-signature",
        "signature.der",
        "payload.json",
    ]);
    assert!(ok && said.contains("Verified OK"), "{said}");
    let lock = o.lock();
    let fingerprint = o.ok(&["plugin", "keygen", "third"]).stdout;
    assert!(fingerprint.contains("fingerprint:"));
    assert!(
        lock.to_string().contains("\"state\":\"verified\""),
        "{lock}"
    );

    // A global default in the config file applies to plugins without their own `verify`.
    o.work
        .write("quarry-config.yml", "verify: { keys: [third.pub] }\n");
    o.work.write("plain.yml", &spec(&registry.address, ""));
    std::fs::remove_file(o.work.path().join("quarry.lock")).unwrap();
    let run = o.quarry(&["sync", "plain.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("third.pub"), "{run:?}");
}

#[test]
fn registry_mistakes_each_have_their_own_message() {
    let registry = Registry::plain();
    let o = Oci::new();
    o.push("test", &format!("{}/plugins/test:1.0.0", registry.address));
    o.push("test", &format!("{}/plugins/test:1.2.0", registry.address));
    o.push("test", &format!("{}/plugins/test:2.0.0", registry.address));

    let run = o.quarry(&[
        "plugin",
        "pull",
        &format!("{}/plugins/test:9.9.9", registry.address),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("does not exist in the registry"),
        "{run:?}"
    );
    assert!(
        run.stderr.contains("its tags are 1.0.0, 1.2.0, 2.0.0"),
        "{run:?}"
    );

    let run = o.quarry(&[
        "plugin",
        "pull",
        &format!("{}/plugins/nothing:1.0.0", registry.address),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("does not exist in the registry"),
        "{run:?}"
    );

    // Semver requirements resolve against the tags: `1` and `^1` are 1.2.0.
    let run = o.ok(&[
        "plugin",
        "pull",
        &format!("{}/plugins/test:1", registry.address),
    ]);
    assert!(run.stdout.contains("plugins/test:1.2.0"), "{run:?}");
    o.work.write(
        "spec.yml",
        &spec(&registry.address, "").replacen("\"1.0.0\"", "\"^1\"", 1),
    );
    let run = o.quarry(&["plugin", "install", "spec.yml"]);
    // The destination (file 1.0.0) was never pushed here.
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("plugins/file:1.0.0` does not exist"),
        "{run:?}"
    );
    o.push("file", &format!("{}/plugins/file:1.0.0", registry.address));
    o.ok(&["plugin", "install", "spec.yml"]);
    assert!(o.lock().to_string().contains("\"tag\":\"1.2.0\""));
    let run = o.quarry(&[
        "plugin",
        "pull",
        &format!("{}/plugins/test:^3", registry.address),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("no tag of") && run.stderr.contains("matches `^3`"),
        "{run:?}"
    );

    // The registry's copy of a component is damaged (a flipped byte, then a truncated file):
    // the download is discarded, nothing is stored.
    let component = std::fs::read(wasm_dir().join("quarry_plugin_test.wasm")).unwrap();
    let digest = sha256_hex(&component);
    let data = registry
        ._dir
        .path()
        .join("data/docker/registry/v2/blobs/sha256")
        .join(&digest[..2])
        .join(&digest)
        .join("data");
    let mut damaged = component.clone();
    damaged[1000] ^= 0x01;
    std::fs::write(&data, &damaged).expect("damage the registry's blob");
    let fresh = Oci::new();
    let run = fresh.quarry(&[
        "plugin",
        "pull",
        &format!("{}/plugins/test:1.0.0", registry.address),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("the download is discarded"), "{run:?}");
    assert!(!fresh.store().join("blobs/sha256").join(&digest).exists());
    std::fs::write(&data, &component[..component.len() / 2]).expect("truncate the registry's blob");
    let run = fresh.quarry(&[
        "plugin",
        "pull",
        &format!("{}/plugins/test:1.0.0", registry.address),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("the download is discarded"), "{run:?}");
    std::fs::write(&data, &component).expect("repair");

    // A registry that is not there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let run = o.quarry(&["plugin", "pull", &format!("{closed}/plugins/test:1.0.0")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("cannot reach registry `{closed}`")),
        "{run:?}"
    );

    // Paths and versions a spec cannot mean.
    o.work.write("bad.yml", &spec("plugins", ""));
    let run = o.quarry(&["validate", "bad.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("the first part must be a registry host"),
        "{run:?}"
    );
    o.work.write(
        "bad.yml",
        &spec(&registry.address, "").replace("\"1.0.0\"", "\"../x\""),
    );
    let run = o.quarry(&["validate", "bad.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("`version`: bad OCI reference version `../x`"),
        "{run:?}"
    );
}

/// A CloudQuery Hub plugin Quarry has no equivalent of comes from the config file's
/// `cloudquery_mirror`: `cloudquery/xkcd` at `v1.0.0` is `<mirror>/cloudquery/xkcd:v1.0.0` (here
/// the `test` component pushed under that name), locked like any OCI plugin. Without a mirror the
/// error names the plugins Quarry maps and what to do.
#[test]
fn a_cloudquery_plugin_without_an_equivalent_comes_from_the_configured_mirror() {
    let registry = Registry::plain();
    let o = Oci::new();
    let manifest = o.push(
        "test",
        &format!("{}/mirror/cloudquery/xkcd:v1.0.0", registry.address),
    );
    let spec = format!(
        "kind: source\nspec:\n  name: xkcd\n  path: cloudquery/xkcd\n  version: v1.0.0\n  \
         tables: [test_rows]\n  destinations: [out]\n  spec: {{ num_rows: 3 }}\n{JSON_FILES}"
    );
    o.work.write("spec.yml", &spec);
    let run = o.quarry(&["sync", "spec.yml"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("cloudquery_mirror"), "{run:?}");

    o.work.write(
        "quarry-config.yml",
        &format!(
            "registries: {{}}\ncloudquery_mirror: {}/mirror\n",
            registry.address
        ),
    );
    o.ok(&["sync", "spec.yml"]);
    assert_eq!(rows_written(&o), 3);
    let locked = o.lock()["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| {
            p["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/mirror/cloudquery/xkcd"))
        })
        .cloned()
        .unwrap_or_else(|| panic!("the mirrored plugin is not locked: {}", o.lock()));
    assert_eq!(locked["manifest"], manifest.as_str());
    assert_eq!(locked["tag"], "v1.0.0");
}
