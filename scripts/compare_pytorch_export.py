"""Checks nngraph's export to PyTorch against the Rust model.

    cargo run --release -p nngraph-tests --example export_pytorch
    python3 scripts/compare_pytorch_export.py target/pytorch-export

For each directory the example wrote (model.py, weights.safetensors,
case.json): imports model.py, builds the model with `build()`, loads the
weights with `load_state_dict(..., strict=True)` (so every parameter name
must match), runs `forward` in evaluation mode on the case's inputs and
compares every output with the one nngraph computed: the largest absolute
difference must be at most 1e-6 in f32 and 1e-12 in f64. The weights of the
shipped cells (LstmCell, GruCell) are also loaded, unchanged, into
torch.nn.LSTMCell / GRUCell and compared the same way; the shipped stacks
(Lstm, Gru, Rnn) must be exported as torch.nn.LSTM / GRU / RNN.

Needs torch and safetensors (pip install torch safetensors). Exits non-zero
if any model fails.
"""
import importlib.util
import json
import pathlib
import sys

import torch
from safetensors.torch import load_file

TOLERANCE = {"f32": 1e-6, "f64": 1e-12}
DTYPE = {"f32": torch.float32, "f64": torch.float64}


def load_module(path):
    spec = importlib.util.spec_from_file_location(f"nngraph_export_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check(case_dir):
    case = json.loads((case_dir / "case.json").read_text())
    dtype = DTYPE[case["dtype"]]
    model = load_module(case_dir / "model.py").build().to(dtype)
    model.load_state_dict(load_file(case_dir / "weights.safetensors"), strict=True)
    model.eval()
    args = []
    for name in model.INPUTS:
        given = case["inputs"][name]
        if "ids" in given:
            args.append(torch.tensor(given["ids"], dtype=torch.long))
        else:
            args.append(torch.tensor(given["values"], dtype=dtype))
    with torch.no_grad():
        result = model(*args)
    if not isinstance(result, tuple):
        result = (result,)
    worst = 0.0
    for name, got in zip(model.OUTPUTS, result):
        want = torch.tensor(case["outputs"][name], dtype=torch.float64)
        if tuple(got.shape) != tuple(want.shape):
            print(f"  {name}: shape {tuple(got.shape)}, nngraph {tuple(want.shape)}")
            return False
        worst = max(worst, (got.double() - want).abs().max().item())
    # The shipped cells also load, unchanged, into torch's own cells.
    torch_cell = {"LstmCell": torch.nn.LSTMCell, "GruCell": torch.nn.GRUCell}.get(case["graph"])
    if torch_cell is not None:
        cell = torch_cell(args[0].shape[1], args[1].shape[1]).to(dtype)
        cell.load_state_dict(load_file(case_dir / "weights.safetensors"), strict=True)
        with torch.no_grad():
            theirs = cell(args[0], tuple(args[1:])) if len(args) == 3 else cell(args[0], args[1])
        theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        for name, got in zip(model.OUTPUTS, theirs):
            want = torch.tensor(case["outputs"][name], dtype=torch.float64)
            worst = max(worst, (got.double() - want).abs().max().item())
        through = f", also through torch.nn.{torch_cell.__name__}"
    else:
        through = ""
    # The shipped stacks are exported as torch's own modules.
    torch_stack = {"Lstm": torch.nn.LSTM, "Gru": torch.nn.GRU, "Rnn": torch.nn.RNN}.get(case["graph"])
    if torch_stack is not None:
        if not isinstance(model, torch_stack):
            print(f"  {case['graph']} is exported as {type(model).__mro__}, not as torch.nn.{torch_stack.__name__}")
            return False
        through = f", a torch.nn.{torch_stack.__name__}"
    tol = TOLERANCE[case["dtype"]]
    ok = worst <= tol
    print(f"{case_dir.name:<16} {case['graph']:<10} {case['dtype']}  max |torch - nngraph| = {worst:.2e}"
          f"  (tolerance {tol:.0e}{through})  {'ok' if ok else 'FAILED'}")
    return ok


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/pytorch-export")
    cases = sorted(p for p in root.iterdir() if (p / "case.json").exists())
    if not cases:
        sys.exit(f"no exported models under {root}: run `cargo run --release -p nngraph-tests --example export_pytorch` first")
    print(f"torch {torch.__version__}")
    results = [check(c) for c in cases]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
