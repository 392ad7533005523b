"""W4 in PyTorch, beside this crate: one training iteration of char_rnn's
default model (Embedding(65, 128), nn.LSTM(128, 128, num_layers=2), Linear(128,
65), cross-entropy averaged over T*B characters, T = B = 50, float32), the
sequence from zero states, backward, gradients clipped to [-5, 5], one Adam
step (lr 2e-3), zero grads: the iteration `cargo bench -p nngraph-tests --bench iteration --
W4-charlstm` times.

Runs PyTorch on 1 and 2 threads, then (unless --torch-only) the crate's W4
bench in the same session, and prints the medians side by side. With
--rounds N it does so N times, alternating, and prints each round and the
median of the rounds' ratios: on a machine whose speed drifts (a shared
VM), a ratio within one round means more than medians taken minutes apart.
Needs torch (`pip install torch` in a virtual environment of your own); not
run by CI.

    python3 benches/w4_pytorch.py [--iters 30] [--rounds 1] [--torch-only]
"""

import argparse
import re
import statistics
import subprocess
import sys
import time

import torch
from torch import nn

VOCAB, HIDDEN, STEPS, BATCH = 65, 128, 50, 50
FLOPS = 6 * BATCH * STEPS * (2 * 4 * HIDDEN * 2 * HIDDEN + HIDDEN * VOCAB)


class CharLstm(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, HIDDEN)
        self.lstm = nn.LSTM(HIDDEN, HIDDEN, num_layers=2)
        self.out = nn.Linear(HIDDEN, VOCAB)

    def forward(self, x):
        h, _ = self.lstm(self.embedding(x))
        return self.out(h)


def torch_medians(threads, iters):
    torch.set_num_threads(threads)
    torch.manual_seed(4)
    model = CharLstm()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t = torch.arange(STEPS).unsqueeze(1)
    b = torch.arange(BATCH).unsqueeze(0)
    text = lambda t, b: (t * 31 + b * 17 + (t * b) % 7) % VOCAB
    xs, ys = text(t, b), text(t + 1, b)
    loss_fn = nn.CrossEntropyLoss()

    def iteration():
        logits = model(xs)
        loss = loss_fn(logits.reshape(-1, VOCAB), ys.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), 5.0)
        opt.step()
        opt.zero_grad()
        return loss.item()

    for _ in range(5):
        iteration()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def crate_medians():
    """The crate's W4 medians, from criterion's output (in milliseconds)."""
    out = subprocess.run(
        ["cargo", "bench", "-p", "nngraph-tests", "--bench", "iteration", "--", "W4-charlstm"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    medians = {}
    for name, value, unit in re.findall(r"W4-charlstm/(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+)", out):
        medians[name] = float(value) * {"ms": 1.0, "s": 1000.0, "µs": 0.001}[unit]
    return medians


def one_round(iters, torch_only):
    """(label, threads, milliseconds) of one round: PyTorch, then the crate."""
    rows = []
    for threads in (1, 2):
        ms = torch_medians(threads, iters) * 1000
        rows.append((f"PyTorch {torch.__version__} nn.LSTM, {threads} thread(s)", threads, ms))
    if not torch_only:
        crate = crate_medians()
        for name, threads in (("generated", 1), ("generated-2t", 2)):
            if name in crate:
                rows.append((f"nngraph W4-charlstm/{name}, {threads} thread(s)", threads, crate[name]))
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--torch-only", action="store_true")
    args = parser.parse_args()
    ratios = {1: [], 2: []}
    for r in range(args.rounds):
        rows = one_round(args.iters, args.torch_only)
        if args.rounds > 1:
            print(f"round {r + 1}")
        for label, _, ms in rows:
            print(f"{label:55} {ms:8.2f} ms  {FLOPS / ms / 1e6:7.1f} GFLOP/s")
        for threads in (1, 2):
            pair = [ms for label, t, ms in rows if t == threads]
            if len(pair) == 2:
                ratios[threads].append(pair[1] / pair[0])
    for threads in (1, 2):
        if ratios[threads]:
            each = ", ".join(f"{x:.2f}" for x in ratios[threads])
            print(f"crate / PyTorch, {threads} thread(s): median {statistics.median(ratios[threads]):.2f} ({each})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
