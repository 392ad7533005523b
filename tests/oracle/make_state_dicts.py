"""State dicts of torch.nn.LSTMCell(3, 4) and torch.nn.GRUCell(3, 4), saved the
way a PyTorch user saves them (safetensors.torch.save_file(cell.state_dict())),
in float32, with the weights of cells_oracle.json's formulas:

    weight_ih[i][j] = 0.1 sin(1 + 0.7 i + 0.3 j)   (weight_hh: 2 instead of 1)
    bias_ih[i]      = 0.05 cos(1 + 0.5 i)          (bias_hh: 2 instead of 1)

Run from the repository root:  python3 tests/oracle/make_state_dicts.py
Needs torch and safetensors; writes tests/oracle/{lstm,gru}_cell_3_4.safetensors.
"""
import math
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def fill(cell):
    with torch.no_grad():
        for name, k in (("ih", 1.0), ("hh", 2.0)):
            w = getattr(cell, "weight_" + name)
            for i in range(w.shape[0]):
                for j in range(w.shape[1]):
                    w[i, j] = 0.1 * math.sin(k + 0.7 * i + 0.3 * j)
            b = getattr(cell, "bias_" + name)
            for i in range(b.shape[0]):
                b[i] = 0.05 * math.cos(k + 0.5 * i)
    return cell


torch.manual_seed(0)
for name, cell in (("lstm", torch.nn.LSTMCell(3, 4)), ("gru", torch.nn.GRUCell(3, 4))):
    state = {k: v.contiguous() for k, v in fill(cell).state_dict().items()}
    save_file(state, os.path.join(HERE, f"{name}_cell_3_4.safetensors"))
    print(name, sorted(state))
