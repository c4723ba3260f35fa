"""Optimizers over flat parameter buffers, updated in place, or into fresh buffers.

``step(p, g, state, lr)`` updates ``p`` and ``state`` in place. With ``out=(p_new,
state_new)`` it leaves its inputs alone and writes the same numbers there: a function
of the runtime must not change the version of the parameters it read (a duplicate
delivery may be reading it), and writing into new buffers costs no more than a pass
in place, where copying first would cost one pass more per array.

Each optimizer is elementwise, so the same ``step`` works on a whole network's
buffer or on any slice of it (a layer, a neuron's row). Its state is a dict of
arrays of the same length as the buffer, plus ``t`` (the update count) where it
needs one: plain arrays, so it saves with the model and resumes across epochs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class GradientDescent:
    """p <- p - lr g"""

    name = "gd"

    def init_state(self, n: int, dtype) -> dict[str, np.ndarray]:
        return {}

    def step(self, p, g, state, lr: float, out=None) -> None:
        p_out, _ = out or (p, state)
        np.subtract(p, lr * g, out=p_out)


@dataclass(frozen=True)
class Momentum:
    """v <- beta v + (1 - beta) g;  p <- p - lr v"""

    beta: float = 0.9
    name = "momentum"

    def init_state(self, n, dtype):
        return {"v": np.zeros(n, dtype)}

    def step(self, p, g, state, lr, out=None):
        p_out, s_out = out or (p, state)
        v = np.multiply(state["v"], self.beta, out=s_out["v"])
        v += (1 - self.beta) * g
        np.subtract(p, lr * v, out=p_out)


@dataclass(frozen=True)
class RMSProp:
    """s <- beta s + (1 - beta) g^2;  p <- p - lr g / (sqrt(s) + eps)"""

    beta: float = 0.9
    epsilon: float = 1e-8
    name = "rmsprop"

    def init_state(self, n, dtype):
        return {"s": np.zeros(n, dtype)}

    def step(self, p, g, state, lr, out=None):
        p_out, s_out = out or (p, state)
        s = np.multiply(state["s"], self.beta, out=s_out["s"])
        s += (1 - self.beta) * (g * g)
        np.subtract(p, lr * g / (np.sqrt(s) + self.epsilon), out=p_out)


@dataclass(frozen=True)
class Adam:
    """Adam with bias correction; epsilon outside the square root::

        m <- b1 m + (1 - b1) g          v <- b2 v + (1 - b2) g^2
        m^ = m / (1 - b1^t)              v^ = v / (1 - b2^t)
        p <- p - lr m^ / (sqrt(v^) + eps)
    """

    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8
    name = "adam"

    def init_state(self, n, dtype):
        return {"m": np.zeros(n, dtype), "v": np.zeros(n, dtype), "t": np.zeros(1, np.int64)}

    def step(self, p, g, state, lr, out=None):
        p_out, s_out = out or (p, state)
        np.add(state["t"], 1, out=s_out["t"])
        t = int(s_out["t"][0])
        # In-place and with one scratch buffer: this runs once per mini-batch
        # over every parameter, so temporaries would dominate small networks.
        tmp = np.subtract(g, state["m"])
        tmp *= 1 - self.beta1
        m = np.add(state["m"], tmp, out=s_out["m"])
        np.multiply(g, g, out=tmp)
        tmp -= state["v"]
        tmp *= 1 - self.beta2
        v = np.add(state["v"], tmp, out=s_out["v"])
        # p -= lr m^ / (sqrt(v^) + eps) = m / d, with the step size folded into the divisor
        # d = (sqrt(v) / sqrt(1 - b2^t) + eps) (1 - b1^t) / lr: one pass fewer.
        np.sqrt(v, out=tmp)
        shrink = (1 - self.beta1**t) / lr
        tmp *= shrink / np.sqrt(1 - self.beta2**t)
        tmp += self.epsilon * shrink
        np.divide(m, tmp, out=tmp)
        np.subtract(p, tmp, out=p_out)


OPTIMIZERS = {"gd": GradientDescent, "momentum": Momentum, "rmsprop": RMSProp, "adam": Adam}


def make_optimizer(name: str, **hyper):
    try:
        cls = OPTIMIZERS[name]
    except KeyError:
        raise ValueError(f"unknown optimizer {name!r}; allowed: {', '.join(OPTIMIZERS)}") from None
    return cls(**hyper)


def optimizer_to_json(optimizer) -> dict:
    """``{"name": ..., **hyperparameters}``: how an optimizer travels in events and model files."""
    return {"name": optimizer.name, **asdict(optimizer)}


def optimizer_from_json(raw: dict):
    raw = dict(raw)
    return make_optimizer(raw.pop("name"), **raw)
