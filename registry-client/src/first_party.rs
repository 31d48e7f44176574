//! The first-party plugins: the one list of them. The resolver reads it for `quarry/<name>`, the
//! end-to-end tests warm their cache from it, and a test below fails, saying what to add where,
//! when the workspace (`plugins/`, `Cargo.toml` members, the `cargo plugins` alias) disagrees.

/// A first-party plugin: `quarry/<name>`, the crate `quarry-plugin-<name>` in `plugins/<name>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FirstParty {
    /// The name in `quarry/<name>`, and the folder under `plugins/`.
    pub name: &'static str,
    /// A native executable served over gRPC, not a component: it needs a native library that
    /// cannot run in the sandbox. `cargo build` builds it beside the CLI, not `cargo plugins`.
    pub native: bool,
}

/// Every first-party plugin, in name order (error messages list them in this order).
pub const FIRST_PARTY: &[FirstParty] = &[
    FirstParty {
        name: "basic",
        native: false,
    },
    FirstParty {
        name: "duckdb",
        native: true,
    },
    FirstParty {
        name: "file",
        native: false,
    },
    FirstParty {
        name: "hackernews",
        native: false,
    },
    FirstParty {
        name: "jsonflattener",
        native: false,
    },
    FirstParty {
        name: "mysql",
        native: false,
    },
    FirstParty {
        name: "postgresql",
        native: false,
    },
    FirstParty {
        name: "rest",
        native: false,
    },
    FirstParty {
        name: "sqlite",
        native: false,
    },
    FirstParty {
        name: "test",
        native: false,
    },
];

impl FirstParty {
    /// The first-party plugin called `name`.
    pub fn named(name: &str) -> Option<&'static FirstParty> {
        FIRST_PARTY.iter().find(|p| p.name == name)
    }

    /// The file its build produces: a native executable or a wasm component.
    pub fn file_name(&self) -> String {
        if self.native {
            format!("quarry-plugin-{}", self.name)
        } else {
            format!("quarry_plugin_{}.wasm", self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{FIRST_PARTY, FirstParty};

    /// What the workspace says about its plugins.
    struct Workspace {
        /// Folders under `plugins/` that hold a `Cargo.toml`, with the package name in it.
        dirs: Vec<(String, Option<String>)>,
        /// `members` of the workspace's `Cargo.toml`.
        members: Vec<String>,
        /// The packages the `plugins` alias of `.cargo/config.toml` builds (`-p NAME`).
        built: Vec<String>,
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The quoted strings of the `members = [ ... ]` array.
    fn members(cargo_toml: &str) -> Vec<String> {
        let start = cargo_toml
            .find("\nmembers = [")
            .expect("Cargo.toml has `members = [`");
        let array = &cargo_toml[start..];
        let array = &array[..array.find(']').expect("`members` ends with `]`")];
        array
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    /// The `-p NAME` arguments of the `plugins = "..."` alias.
    fn alias_packages(config: &str) -> Vec<String> {
        let line = config
            .lines()
            .find(|l| l.trim_start().starts_with("plugins ="))
            .expect(".cargo/config.toml has a `plugins = \"...\"` alias");
        let words: Vec<&str> = line.split(['"', ' ']).filter(|w| !w.is_empty()).collect();
        words
            .windows(2)
            .filter(|w| w[0] == "-p")
            .map(|w| w[1].to_string())
            .collect()
    }

    /// The `name = "..."` of a crate's `[package]`.
    fn package_name(cargo_toml: &str) -> Option<String> {
        let package = cargo_toml.split("\n[").next()?;
        let line = package
            .lines()
            .find(|l| l.trim_start().starts_with("name ="))?;
        line.split('"').nth(1).map(str::to_string)
    }

    fn workspace() -> Workspace {
        // The directory cargo runs the test from, not the one it was compiled in: with a target
        // directory shared between checkouts, this binary may come from another (since deleted)
        // clone of the same sources.
        let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
        let root = manifest_dir.join("..");
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(root.join("plugins")).expect("plugins/") {
            let path = entry.expect("plugins/ entry").path();
            let manifest = path.join("Cargo.toml");
            if manifest.is_file() {
                let name = path.file_name().expect("a folder name");
                dirs.push((
                    name.to_string_lossy().into_owned(),
                    package_name(&read(&manifest)),
                ));
            }
        }
        dirs.sort();
        Workspace {
            dirs,
            members: members(&read(&root.join("Cargo.toml"))),
            built: alias_packages(&read(&root.join(".cargo/config.toml"))),
        }
    }

    /// Each way `list` and `workspace` disagree, as what to add (or remove) where.
    fn problems(list: &[FirstParty], workspace: &Workspace) -> Vec<String> {
        let mut problems = Vec::new();
        for (dir, package) in &workspace.dirs {
            if !list.iter().any(|p| p.name == dir) {
                problems.push(format!(
                    "plugins/{dir} is not in FIRST_PARTY: add `FirstParty {{ name: \"{dir}\", native: false }}` to FIRST_PARTY in registry-client/src/first_party.rs (`native: true` for a native executable)"
                ));
            }
            let wanted = format!("quarry-plugin-{dir}");
            if package.as_deref() != Some(wanted.as_str()) {
                problems.push(format!(
                    "plugins/{dir}/Cargo.toml: set `name = \"{wanted}\"` under [package]; the registry looks for the plugin's build under that name"
                ));
            }
        }
        for plugin in list {
            let name = plugin.name;
            let package = format!("quarry-plugin-{name}");
            if !workspace.dirs.iter().any(|(dir, _)| dir == name) {
                problems.push(format!(
                    "FIRST_PARTY names `{name}` but there is no plugins/{name}/Cargo.toml: add the crate `{package}` in plugins/{name}, or remove `{name}` from FIRST_PARTY in registry-client/src/first_party.rs"
                ));
            }
            if !workspace
                .members
                .iter()
                .any(|m| *m == format!("plugins/{name}"))
            {
                problems.push(format!(
                    "plugins/{name} is not a workspace member: add \"plugins/{name}\" to `members` in Cargo.toml"
                ));
            }
            let built = workspace.built.contains(&package);
            if !plugin.native && !built {
                problems.push(format!(
                    "`cargo plugins` does not build quarry/{name}: add `-p {package}` to the `plugins` alias in .cargo/config.toml"
                ));
            }
            if plugin.native && built {
                problems.push(format!(
                    "quarry/{name} is native and does not build for wasm32-wasip2: remove `-p {package}` from the `plugins` alias in .cargo/config.toml"
                ));
            }
        }
        problems
    }

    #[test]
    fn the_first_party_list_matches_the_workspace() {
        let problems = problems(FIRST_PARTY, &workspace());
        assert!(
            problems.is_empty(),
            "the first-party plugins disagree with the workspace:\n  - {}",
            problems.join("\n  - ")
        );
    }

    #[test]
    fn every_disagreement_says_what_to_add_where() {
        let workspace = Workspace {
            dirs: vec![
                ("new".into(), Some("quarry-plugin-new".into())),
                ("test".into(), Some("quarry-plugin-test".into())),
                ("odd".into(), Some("odd".into())),
                ("duck".into(), Some("quarry-plugin-duck".into())),
            ],
            members: vec!["plugins/test".into(), "plugins/duck".into()],
            built: vec!["quarry-plugin-duck".into(), "quarry-fixture-x".into()],
        };
        let list = [
            FirstParty {
                name: "test",
                native: false,
            },
            FirstParty {
                name: "gone",
                native: false,
            },
            FirstParty {
                name: "duck",
                native: true,
            },
            FirstParty {
                name: "odd",
                native: true,
            },
        ];
        assert_eq!(
            problems(&list, &workspace),
            [
                "plugins/new is not in FIRST_PARTY: add `FirstParty { name: \"new\", native: false }` to FIRST_PARTY in registry-client/src/first_party.rs (`native: true` for a native executable)",
                "plugins/odd/Cargo.toml: set `name = \"quarry-plugin-odd\"` under [package]; the registry looks for the plugin's build under that name",
                "`cargo plugins` does not build quarry/test: add `-p quarry-plugin-test` to the `plugins` alias in .cargo/config.toml",
                "FIRST_PARTY names `gone` but there is no plugins/gone/Cargo.toml: add the crate `quarry-plugin-gone` in plugins/gone, or remove `gone` from FIRST_PARTY in registry-client/src/first_party.rs",
                "plugins/gone is not a workspace member: add \"plugins/gone\" to `members` in Cargo.toml",
                "`cargo plugins` does not build quarry/gone: add `-p quarry-plugin-gone` to the `plugins` alias in .cargo/config.toml",
                "quarry/duck is native and does not build for wasm32-wasip2: remove `-p quarry-plugin-duck` from the `plugins` alias in .cargo/config.toml",
                "plugins/odd is not a workspace member: add \"plugins/odd\" to `members` in Cargo.toml",
            ]
        );
    }

    #[test]
    fn the_workspace_files_parse() {
        let cargo = "[workspace]\nresolver = \"3\"\nmembers = [\n    \"host\",\n    \"plugins/a\", # note\n]\ndefault-members = [\"host\"]\n";
        assert_eq!(members(cargo), ["host", "plugins/a"]);
        let config = "[alias]\n# plugins\nplugins = \"build --target wasm32-wasip2 -p quarry-plugin-a -p quarry-fixture-b\"\n";
        assert_eq!(
            alias_packages(config),
            ["quarry-plugin-a", "quarry-fixture-b"]
        );
        let crate_toml = "[package]\nname = \"quarry-plugin-a\"\n\n[[bin]]\nname = \"other\"\n";
        assert_eq!(package_name(crate_toml).as_deref(), Some("quarry-plugin-a"));
    }
}
