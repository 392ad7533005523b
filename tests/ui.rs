//! Compile-time behaviour of `graph!`. Every mistake in `ui/fail` is a
//! reviewed error (the `.stderr` beside it) under `cargo check`, what
//! editors run: trybuild checks a set of compile-fail cases with `cargo
//! check` when it holds no pass case. `ui/fail_build` holds the mistakes
//! only a build can find (sizes known after monomorphisation: const
//! generics), run with the pass cases in `ui/pass`, which must build and
//! run.

#[test]
fn mistakes_under_cargo_check() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
}

#[test]
fn mistakes_found_by_a_build_and_graphs_that_build() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail_build/*.rs");
    t.pass("ui/pass/*.rs");
}

/// What every reviewed error shows a user: nothing inside the library (its
/// files, an index panic of a const check), and any const-evaluation
/// failure on the user's own file.
#[test]
fn snapshots_point_only_at_the_users_code() {
    let mut bad = Vec::new();
    for dir in ["ui/fail", "ui/fail_build"] {
        for entry in std::fs::read_dir(dir).expect("the UI cases") {
            let path = entry.expect("a UI case").path();
            if path.extension().is_none_or(|e| e != "stderr") {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("a snapshot");
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let why = if line.contains("$WORKSPACE") || line.contains("$CARGO") || line.contains("$RUST")
                {
                    "a path outside the user's file"
                } else if line.contains("index out of bounds") {
                    "an index panic"
                } else if line.contains("evaluation panicked")
                    && !lines[i + 1..]
                        .iter()
                        .find(|next| next.trim_start().starts_with("-->"))
                        .is_some_and(|next| next.contains("--> ui/"))
                {
                    "a const-evaluation error not on the user's file"
                } else {
                    continue;
                };
                bad.push(format!("{}:{}: {why}: {line}", path.display(), i + 1));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
