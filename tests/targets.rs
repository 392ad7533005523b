//! Every test file at the top of this package is one of its targets:
//! `autotests` is off (the package's folder is `tests/` itself), so a file
//! not listed in Cargo.toml would silently never run.

#[test]
fn every_test_file_is_a_target() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".rs"))
        .collect();
    files.sort();
    assert!(files.len() > 10, "{files:?}");
    for file in files {
        assert!(
            manifest.contains(&format!("path = \"{file}\"")),
            "{file} is not a [[test]] in tests/Cargo.toml: it would never run"
        );
    }
}

/// The README's first command builds an example of the root package:
/// whatever the root's dev-dependencies are, or those of a package among
/// the workspace's default members (their features are unified into the
/// build), it compiles. There are none, so it compiles what a crate that
/// depends on nngraph compiles (`benches/cold_build.sh` measures it).
#[test]
fn the_root_package_brings_no_dependency_to_its_examples() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let manifest = std::fs::read_to_string(root).unwrap();
    let sections: Vec<&str> = manifest.lines().filter(|l| l.starts_with('[')).collect();
    assert!(
        !sections.iter().any(|s| s.contains("dev-dependencies")),
        "{sections:?}"
    );
    assert!(
        !manifest
            .lines()
            .any(|l| l.trim_start().starts_with("default-members")),
        "the default members' dev-dependencies would be unified"
    );
}
