"""Caffe-semantics modules: LSTM, RNN and LSTMUnit, with continuation indicators.

The rules of `fcnkit.caffenet.modules` hold here: only math and torch, TorchScript-compatible, no project
imports (the code generator copies these classes into model.py)."""


import torch
import torch.nn.functional as F
from torch import nn


def _lstm_unit(c_prev: torch.Tensor, gates: torch.Tensor, cont: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Caffe's LSTMUnit step: gates in the order i, f, o, g on the last axis; f is multiplied by cont."""
    hs = c_prev.shape[-1]
    i_gate = torch.sigmoid(gates[..., :hs])
    f_gate = torch.sigmoid(gates[..., hs:2 * hs]) * cont
    o_gate = torch.sigmoid(gates[..., 2 * hs:3 * hs])
    c = f_gate * c_prev + i_gate * torch.tanh(gates[..., 3 * hs:])
    return c, o_gate * torch.tanh(c)



def _recurrent_inputs(xs: list[torch.Tensor], static: bool, n_hidden: int) -> tuple[
        torch.Tensor, torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """Caffe's recurrent bottoms: x (T, N, ...), cont (T, N), optional x_static (N, ...), then the exposed
    initial hidden state blobs (1, N, H) when expose_hidden."""
    k = 2
    x_static: torch.Tensor | None = None
    if static:
        x_static = xs[2]
        k = 3
    hidden: list[torch.Tensor] = []
    for i in range(n_hidden):
        hidden.append(xs[k + i])
    return xs[0], xs[1], x_static, hidden



class CaffeLSTM(nn.Module):
    """Caffe's LSTM (its unrolled net, computed directly): gates W_xc x_t + b_c (+ W_xc_static x_static)
    + W_hc (cont_t * h_{t-1}), in Caffe's order i, f, o, g; c_t = cont_t * sigmoid(f) * c_{t-1} +
    sigmoid(i) * tanh(g); h_t = sigmoid(o) * tanh(c_t). Without expose_hidden h_0 = c_0 = 0 (Caffe
    carries the last call's h_T/c_T over, which cont_1 = 0 at a sequence start cancels)."""

    def __init__(self, input_size: int, hidden_size: int, static_size: int = 0, expose_hidden: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.expose_hidden = expose_hidden
        self.weight_x = nn.Parameter(torch.zeros(4 * hidden_size, input_size))
        self.bias_x = nn.Parameter(torch.zeros(4 * hidden_size))
        self.weight_static = nn.Parameter(torch.zeros(4 * hidden_size, static_size)) if static_size else None
        self.weight_h = nn.Parameter(torch.zeros(4 * hidden_size, hidden_size))

    def extra_repr(self) -> str:
        return (f"{self.weight_x.shape[1]}, {self.hidden_size}, static={self.weight_static is not None}, "
                f"expose_hidden={self.expose_hidden}")

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        ws = self.weight_static
        x, cont, x_static, hidden = _recurrent_inputs(xs, ws is not None, 2 if self.expose_hidden else 0)
        t_steps, n = x.shape[0], x.shape[1]
        hs = self.hidden_size
        gx = F.linear(x.reshape(t_steps, n, -1), self.weight_x, self.bias_x)
        if ws is not None and x_static is not None:
            gx = gx + F.linear(x_static.reshape(n, -1), ws).unsqueeze(0)
        if len(hidden) == 2:
            h = hidden[0].reshape(n, hs)
            c = hidden[1].reshape(n, hs)
        else:
            h = x.new_zeros(n, hs)
            c = x.new_zeros(n, hs)
        outs: list[torch.Tensor] = []
        for t in range(t_steps):
            ct = cont[t].reshape(n, 1).to(x.dtype)
            c, h = _lstm_unit(c, gx[t] + F.linear(h * ct, self.weight_h), ct)
            outs.append(h)
        result = [torch.stack(outs, 0)]
        if self.expose_hidden:
            result.append(h.unsqueeze(0))
            result.append(c.unsqueeze(0))
        return result



class CaffeRNN(nn.Module):
    """Caffe's RNN (its unrolled net): h_t = tanh(W_xh x_t + b_h (+ W_xh_static x_static) +
    W_hh (cont_t * h_{t-1})), o_t = tanh(W_ho h_t + b_o). h_0 = 0 unless expose_hidden (see CaffeLSTM)."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, static_size: int = 0,
                 expose_hidden: bool = False):
        super().__init__()
        self.hidden_size = hidden_size
        self.expose_hidden = expose_hidden
        self.weight_x = nn.Parameter(torch.zeros(hidden_size, input_size))
        self.bias_x = nn.Parameter(torch.zeros(hidden_size))
        self.weight_static = nn.Parameter(torch.zeros(hidden_size, static_size)) if static_size else None
        self.weight_h = nn.Parameter(torch.zeros(hidden_size, hidden_size))
        self.weight_o = nn.Parameter(torch.zeros(output_size, hidden_size))
        self.bias_o = nn.Parameter(torch.zeros(output_size))

    def extra_repr(self) -> str:
        return (f"{self.weight_x.shape[1]}, {self.hidden_size}, {self.weight_o.shape[0]}, "
                f"static={self.weight_static is not None}, expose_hidden={self.expose_hidden}")

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        ws = self.weight_static
        x, cont, x_static, hidden = _recurrent_inputs(xs, ws is not None, 1 if self.expose_hidden else 0)
        t_steps, n = x.shape[0], x.shape[1]
        hx = F.linear(x.reshape(t_steps, n, -1), self.weight_x, self.bias_x)
        if ws is not None and x_static is not None:
            hx = hx + F.linear(x_static.reshape(n, -1), ws).unsqueeze(0)
        h = hidden[0].reshape(n, self.hidden_size) if len(hidden) == 1 else x.new_zeros(n, self.hidden_size)
        outs: list[torch.Tensor] = []
        for t in range(t_steps):
            ct = cont[t].reshape(n, 1).to(x.dtype)
            h = torch.tanh(hx[t] + F.linear(h * ct, self.weight_h))
            outs.append(torch.tanh(F.linear(h, self.weight_o, self.bias_o)))
        result = [torch.stack(outs, 0)]
        if self.expose_hidden:
            result.append(h.unsqueeze(0))
        return result



class CaffeLSTMUnit(nn.Module):
    """Caffe's LSTMUnit: bottoms c_{t-1} (1, N, H), gate inputs (1, N, 4H) in the order i, f, o, g, and
    cont (1, N); tops c_t and h_t."""

    def forward(self, c_prev: torch.Tensor, gates: torch.Tensor, cont: torch.Tensor) -> list[torch.Tensor]:
        c, h = _lstm_unit(c_prev, gates, cont.unsqueeze(-1).to(gates.dtype))
        return [c, h]



class CaffeContinuationIndicator(nn.Module):
    """The ContinuationIndicator of the CRNN-style Caffe ports: the `cont` input of LSTM/RNN for one sequence
    per item, shape (time_step, batch_size): 0 at t = 0 (a sequence starts), 1 after. Its bottom (where
    the prototxt gives one) only orders the layer after the data."""

    def __init__(self, time_step: int, batch_size: int):
        super().__init__()
        self.time_step = time_step
        self.batch_size = batch_size

    def extra_repr(self) -> str:
        return f"time_step={self.time_step}, batch_size={self.batch_size}"

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        device = xs[0].device if len(xs) > 0 else torch.device("cpu")
        dtype = xs[0].dtype if len(xs) > 0 else torch.float32
        cont = torch.ones(self.time_step, self.batch_size, dtype=dtype, device=device)
        cont[0] = 0.0
        return cont
