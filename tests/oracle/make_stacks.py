"""torch.nn.LSTM(4, 5, num_layers=3), nn.GRU(4, 5, num_layers=2) and
nn.RNN(4, 5, num_layers=2) (tanh), in float64: for each, the state dict as a
PyTorch user saves it (safetensors.torch.save_file(module.state_dict())),
and a second file with a sequence through it and what torch computed:

    x (T=6, B=3, 4), h0 (and c0) (layers, B, 5), uniform in [-1, 1);
    y, h_n (and c_n): the module's outputs;
    the loss  sum(y * ry) + sum(h_n * rh) (+ sum(c_n * rc)), ry, rh, rc
    uniform in [-1, 1) and saved too; its gradients: `grad.<parameter>`,
    dx, dh0 (and dc0).

Weights are torch's own initialisation from a fixed seed. Run from the
repository root:  python3 tests/oracle/make_stacks.py
Needs torch and safetensors; writes tests/oracle/{lstm3,gru2,rnn2}_*.safetensors.
CI only reads the files.
"""
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
T, B, I, H = 6, 3, 4, 5


def uniform(*shape):
    return torch.rand(*shape, dtype=torch.float64) * 2 - 1


torch.manual_seed(18)
for name, layers, make in (
    ("lstm3", 3, lambda: torch.nn.LSTM(I, H, num_layers=3)),
    ("gru2", 2, lambda: torch.nn.GRU(I, H, num_layers=2)),
    ("rnn2", 2, lambda: torch.nn.RNN(I, H, num_layers=2)),
):
    module = make().double()
    state = {k: v.detach().contiguous() for k, v in module.state_dict().items()}
    save_file(state, os.path.join(HERE, f"{name}_state.safetensors"))

    x = uniform(T, B, I).requires_grad_()
    h0 = uniform(layers, B, H).requires_grad_()
    lstm = name.startswith("lstm")
    if lstm:
        c0 = uniform(layers, B, H).requires_grad_()
        y, (h_n, c_n) = module(x, (h0, c0))
    else:
        y, h_n = module(x, h0)
    ry, rh = uniform(*y.shape), uniform(*h_n.shape)
    loss = (y * ry).sum() + (h_n * rh).sum()
    io = {"x": x, "h0": h0, "y": y, "h_n": h_n, "ry": ry, "rh": rh}
    if lstm:
        rc = uniform(*c_n.shape)
        loss = loss + (c_n * rc).sum()
        io.update({"c0": c0, "c_n": c_n, "rc": rc})
    loss.backward()
    io.update({"dx": x.grad, "dh0": h0.grad})
    if lstm:
        io["dc0"] = c0.grad
    for k, p in module.named_parameters():
        io["grad." + k] = p.grad
    io = {k: v.detach().contiguous() for k, v in io.items()}
    save_file(io, os.path.join(HERE, f"{name}_io.safetensors"))
    print(name, sorted(state))
