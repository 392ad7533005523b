#!/usr/bin/env bash
# What a graph costs to compile: `cargo check` of a crate holding one
# 100-node graph, and `cargo build --release` of one holding a 1000-node
# graph, each against the same crate without the graph. Dependencies are
# built first; each figure is the best of three rebuilds of the crate alone.
#
#   bash benches/compile_cost.sh [path to an nngraph checkout]   (default: this one)
#
# Prints one line per measurement, in seconds. The scratch crates live in
# target/compile-cost/ and share one target directory.
set -euo pipefail
shopt -s inherit_errexit
repo=$(cd "${1:-$(dirname "$0")/..}" && pwd)
work="$repo/target/compile-cost"
mkdir -p "$work"
export CARGO_TARGET_DIR="$work/target"

# A chain of N nodes alternating Linear(8, 8) and Tanh(), used by main so
# that it is compiled, not only type-checked.
make_crate() {
  local name=$1 nodes=$2 dir="$work/$1"
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "$name"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
nngraph = { path = "$repo" }

[workspace]
TOML
  {
    echo "use nngraph::prelude::*;"
    if [ "$nodes" -gt 0 ]; then
      echo "graph! {"
      echo "    pub Chain(x: [8]) -> (y) {"
      local prev=x
      for ((k = 0; k < nodes; k++)); do
        local node="n$k"
        [ $((k + 1)) -eq "$nodes" ] && node=y
        if [ $((k % 2)) -eq 0 ]; then layer="Linear(8, 8)"; else layer="Tanh()"; fi
        echo "        $node = $layer($prev);"
        prev=$node
      done
      echo "    }"
      echo "}"
    fi
    echo "fn main() {"
    if [ "$nodes" -gt 0 ]; then
      echo "    let mut g = Chain::<f32>::new(&mut StdRng::seed_from_u64(0));"
      echo "    let mut tape = g.tape();"
      echo "    let y = g.forward(&mut tape, &[0.5f32; 8]).unwrap().y.to_owned();"
      echo "    g.backward(&mut tape, &y).unwrap();"
      echo "    println!(\"{}\", g.grads()[0]);"
    else
      echo "    let x = nngraph::ndarray::Array2::<f32>::zeros((1, 8));"
      echo "    println!(\"{}\", x.sum());"
    fi
    echo "}"
  } > "$dir/src/main.rs"
}

# Best of three rebuilds of the crate alone (its source touched each time).
time_cargo() {
  local dir=$1; shift
  (cd "$dir" && cargo "$@" -q >/dev/null)   # dependencies, once; a failing build stops the script
  local best=
  for _ in 1 2 3; do
    touch "$dir/src/main.rs"
    local start end
    start=$(date +%s.%N)
    (cd "$dir" && cargo "$@" -q >/dev/null)
    end=$(date +%s.%N)
    best=$(echo "$start $end ${best:-1e9}" | awk '{ t = $2 - $1; print (t < $3 ? t : $3) }')
  done
  echo "$best"
}

make_crate empty 0
make_crate chain100 100
make_crate chain1000 1000

check_empty=$(time_cargo "$work/empty" check)
check_100=$(time_cargo "$work/chain100" check)
release_empty=$(time_cargo "$work/empty" build --release)
release_1000=$(time_cargo "$work/chain1000" build --release)

printf 'cargo check, empty crate:            %6.2f s\n' "$check_empty"
printf 'cargo check, one 100-node graph:     %6.2f s  (+%.2f s)\n' "$check_100" "$(echo "$check_100 $check_empty" | awk '{print $1 - $2}')"
printf 'release build, empty crate:          %6.2f s\n' "$release_empty"
printf 'release build, one 1000-node graph:  %6.2f s  (+%.2f s)\n' "$release_1000" "$(echo "$release_1000 $release_empty" | awk '{print $1 - $2}')"
