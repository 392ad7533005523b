#!/usr/bin/env bash
# What a new user waits for: the README's first command (`cargo run --release
# --example seed_tour` in a checkout) built cold, and a cold `cargo build
# --release` of a fresh crate that runs the README example, side by side with
# a fresh crate that depends on ndarray alone. Each gets its own empty target
# directory; crates already downloaded into ~/.cargo are not downloaded again,
# so this measures compiling, not the network.
#
#   bash benches/cold_build.sh [path to an nngraph checkout]   (default: this one)
#
# Prints, per build, the wall time and how many crates were compiled, and
# what the first command compiled beyond what a crate depending on nngraph
# compiles (nothing, since tests, benches and char_rnn are packages of their
# own). The scratch crates live in target/cold-build/.
set -euo pipefail
shopt -s inherit_errexit
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work="$repo/target/cold-build"
rm -rf "$work"
mkdir -p "$work"

make_crate() {
  local name=$1 dependency=$2 main=$3 dir="$work/$1"
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$name"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$dependency

[workspace]
TOML
  printf '%s\n' "$main" > "$dir/src/main.rs"
}

# The README's first example, as a program.
make_crate readme_example "nngraph = { path = \"$repo\" }" '
use nngraph::prelude::*;

graph! {
    /// One step of an Elman RNN.
    #[recurrent(h = new_h)]
    pub RnnCell(x: [2], h: [4]) -> (y, new_h) {
        x2h   = Linear(2, 4)(x);
        h2h   = Linear(4, 4)(h);
        new_h = Tanh()(CAdd()(x2h, h2h));
        y     = Sigmoid()(Linear(4, 1)(new_h));
    }
}

fn main() -> nngraph::Result<()> {
    let mut cell = RnnCell::<f64>::new(&mut StdRng::seed_from_u64(0));
    let mut tape = cell.tape();
    let out = cell.forward(&mut tape, &[0.5, -1.0], &[0.0; 4])?;
    println!("{}", out.y);
    cell.backward(&mut tape, &[1.0], &[0.0; 4])?;
    println!("{}", cell.grad("x2h.weight")?);
    Ok(())
}'

make_crate ndarray_only "ndarray = \"0.17\"" '
fn main() {
    let a = ndarray::Array2::<f64>::eye(4);
    println!("{}", a.dot(&a).sum());
}'

for name in ndarray_only readme_example; do
  dir="$work/$name"
  # Resolve (and fetch, if needed) before the clock starts.
  (cd "$dir" && cargo fetch -q)
  start=$(date +%s.%N)
  log=$(cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release 2>&1)
  end=$(date +%s.%N)
  crates=$(grep -c '^ *Compiling ' <<<"$log" || true)
  grep -oE '^ *Compiling [^ ]+' <<<"$log" | awk '{print $2}' | sort > "$work/$name.crates"
  (cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo run -q --release >/dev/null)
  printf '%-16s %6.1f s  %3d crates compiled\n' "$name" "$(echo "$end - $start" | bc)" "$crates"
done

# The README's first command, in the checkout itself, with an empty target.
(cd "$repo" && cargo fetch -q)
start=$(date +%s.%N)
log=$(cd "$repo" && CARGO_TARGET_DIR="$work/first-command" cargo build --release --example seed_tour 2>&1)
end=$(date +%s.%N)
crates=$(grep -c '^ *Compiling ' <<<"$log" || true)
printf '%-16s %6.1f s  %3d crates compiled\n' "seed_tour" "$(echo "$end - $start" | bc)" "$crates"
grep -oE '^ *Compiling [^ ]+' <<<"$log" | awk '{print $2}' | sort > "$work/seed_tour.crates"
extra=$(comm -13 "$work/readme_example.crates" "$work/seed_tour.crates" | grep -vx 'readme_example\|nngraph' | tr '\n' ' ' || true)
echo "  beyond what a crate depending on nngraph compiles: ${extra:-nothing}"
