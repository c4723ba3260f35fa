"""Seconds per epoch of the library against two baselines measured in the same run.

* cat 4-layer (12288-20-7-5-1, float64, full batch, gradient descent)
* MNIST 256-128 (784-256-128-10, float32, batch 128, Adam)

Baselines: a plain, straightforward NumPy implementation of the same math
(course style: dicts of parameters, every gradient including the one with
respect to the input, new arrays at every step), and PyTorch on the CPU with the
same threads and dtype when torch happens to be installed (it is not a
dependency). Prints one JSON object. Not a test: absolute times on a shared
2-core machine are noisy, the ratios are what to read.

    python bench/bench_training.py [--cat-epochs 100] [--mnist-epochs 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np

import snn
from snn.core.network import Network, targets
from snn.core.optimizers import make_optimizer
from snn.core.training import train_epochs
from snn.runtime.columns import batch_gradients
from snn.run import initial_params, network_spec, plan_of

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")


def median_of(repeats, fn):
    """The median of ``repeats`` runs: a shared machine's noise moves it least."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def problem(example, data_root):
    cfg = snn.load_config(os.path.join(EXAMPLES, example))
    ds = snn.load_dataset(cfg.data.dataset, data_root)
    spec = network_spec(cfg, ds)
    dtype = np.dtype(cfg.network.dtype)
    X = ds.preprocessing.columns(ds.x_train, dtype)
    Y = targets(ds.y_train, spec.layers[-1][0], dtype)
    return cfg, spec, X, Y


def library_epochs(cfg, spec, X, Y, epochs):
    params = initial_params(cfg, spec)
    opt = cfg.training.optimizer
    optimizer = make_optimizer(opt.name, **opt.hyperparameters())
    state = optimizer.init_state(params.flat.size, params.flat.dtype)
    plan = plan_of(cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": epochs})}))
    net = Network(spec)
    with batch_gradients(net, plan.batch_size or X.shape[1]) as gradients:  # as `snn train` does
        for _ in train_epochs(net, params, optimizer, state, X, Y, plan, gradients=gradients):
            pass


# ---- the plain NumPy baseline: the classic course code, generalised to softmax and Adam

def plain_init(sizes, dtype, seed=1):
    rng = np.random.RandomState(seed)
    p = {}
    for l in range(1, len(sizes)):
        p[f"W{l}"] = (rng.randn(sizes[l], sizes[l - 1]) / np.sqrt(sizes[l - 1])).astype(dtype)
        p[f"b{l}"] = np.zeros((sizes[l], 1), dtype)
    return p


def plain_forward(X, p, L, out):
    caches, A = [], X
    for l in range(1, L + 1):
        Z = np.dot(p[f"W{l}"], A) + p[f"b{l}"]
        caches.append((A, Z))
        if l < L:
            A = np.maximum(0, Z)
        elif out == "sigmoid":
            A = 1 / (1 + np.exp(-Z))
        else:
            E = np.exp(Z - Z.max(axis=0, keepdims=True))
            A = E / E.sum(axis=0, keepdims=True)
    return A, caches


def plain_backward(AL, Y, caches, p, L, out):
    m = Y.shape[1]
    grads = {}
    if out == "sigmoid":
        dAL = -(np.divide(Y, AL) - np.divide(1 - Y, 1 - AL))
        dZ = dAL * AL * (1 - AL)
    else:
        dZ = AL - Y
    for l in reversed(range(1, L + 1)):
        A_prev, Z = caches[l - 1]
        if l < L:
            dZ = np.array(dA, copy=True)
            dZ[Z <= 0] = 0
        grads[f"dW{l}"] = 1 / m * np.dot(dZ, A_prev.T)
        grads[f"db{l}"] = 1 / m * np.sum(dZ, axis=1, keepdims=True)
        if l > 1:  # not dA0: the gradient with respect to the input, which no update needs (snn skips it too)
            dA = np.dot(p[f"W{l}"].T, dZ)
    return grads


def plain_cost(AL, Y, out):
    m = Y.shape[1]
    if out == "sigmoid":
        return float(-np.sum(Y * np.log(AL) + (1 - Y) * np.log(1 - AL)) / m)
    return float(-np.sum(Y * np.log(AL + 1e-12)) / m)


def plain_cat_epochs(X, Y, sizes, epochs, lr=0.0075):
    p, L = plain_init(sizes, X.dtype), len(sizes) - 1
    for _ in range(epochs):
        AL, caches = plain_forward(X, p, L, "sigmoid")
        plain_cost(AL, Y, "sigmoid")
        grads = plain_backward(AL, Y, caches, p, L, "sigmoid")
        for l in range(1, L + 1):
            p[f"W{l}"] = p[f"W{l}"] - lr * grads[f"dW{l}"]
            p[f"b{l}"] = p[f"b{l}"] - lr * grads[f"db{l}"]


def plain_mnist_epochs(X, Y, sizes, epochs, batch=128, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    p, L = plain_init(sizes, X.dtype), len(sizes) - 1
    v = {k: np.zeros_like(a) for k, a in p.items()}
    s = {k: np.zeros_like(a) for k, a in p.items()}
    t, m = 0, X.shape[1]
    rng = np.random.default_rng(0)
    for _ in range(epochs):
        perm = rng.permutation(m)
        Xs, Ys = X[:, perm], Y[:, perm]
        for k in range(0, m, batch):
            Xb, Yb = Xs[:, k:k + batch], Ys[:, k:k + batch]
            AL, caches = plain_forward(Xb, p, L, "softmax")
            plain_cost(AL, Yb, "softmax")
            grads = plain_backward(AL, Yb, caches, p, L, "softmax")
            t += 1
            for key in p:
                g = grads["d" + key]
                v[key] = b1 * v[key] + (1 - b1) * g
                s[key] = b2 * s[key] + (1 - b2) * g**2
                vc, sc = v[key] / (1 - b1**t), s[key] / (1 - b2**t)
                p[key] = p[key] - lr * vc / (np.sqrt(sc) + eps)


# ---- PyTorch, when installed

TORCH_ACTIVATIONS = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "leaky_relu": "LeakyReLU"}


def torch_model(spec, dtype, dropout=0.0):
    """The same network in PyTorch, layer for layer, with dropout after every hidden layer that has
    weights (as snn applies it); the output layer gives logits (the loss applies g)."""
    import torch

    nn, layers = torch.nn, []
    for i, layer in enumerate(spec.built):
        s = layer.spec
        if s.kind == "dense":
            layers.append(nn.Linear(layer.in_shape[0], s.units, dtype=dtype))
        elif s.kind == "conv2d":
            layers.append(nn.Conv2d(layer.in_shape[0], s.filters, s.kernel, s.stride, layer.pad, dtype=dtype))
        elif s.kind in ("maxpool2d", "avgpool2d"):
            pool = nn.MaxPool2d if s.kind == "maxpool2d" else nn.AvgPool2d
            layers.append(pool(s.size, s.stride or s.size))
        elif s.kind == "flatten":
            layers.append(nn.Flatten())
        name = getattr(s, "activation", "linear")
        if i < len(spec.built) - 1 and name in TORCH_ACTIVATIONS:
            layers.append(getattr(nn, TORCH_ACTIVATIONS[name])())
        if i < len(spec.built) - 1 and dropout and layer.weights:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def torch_epochs(X, Y, spec, epochs, batch, optimizer, lr, dropout=0.0):
    """``epochs`` of the same training in PyTorch on the CPU: same threads, dtype, batch and optimizer."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    dtype = torch.float64 if X.dtype == np.float64 else torch.float32
    model = torch_model(spec, dtype, dropout)
    Xt = torch.from_numpy(np.ascontiguousarray(X.T).reshape(-1, *spec.input_shape))
    if Y.shape[0] == 1:
        Yt, loss_fn = torch.from_numpy(np.ascontiguousarray(Y.T)), torch.nn.BCEWithLogitsLoss()
    else:
        Yt, loss_fn = torch.from_numpy(Y.argmax(axis=0)), torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=lr) if optimizer == "gd" else torch.optim.Adam(model.parameters(), lr=lr)
    m = Xt.shape[0]
    batch = batch or m
    for _ in range(epochs):
        perm = torch.randperm(m) if batch < m else None
        for k in range(0, m, batch):
            idx = perm[k:k + batch] if perm is not None else slice(None)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), Yt[idx])
            loss.backward()
            opt.step()


def torch_version():
    try:
        import torch

        return torch.__version__
    except ImportError:
        return None


def measure(name, example, epochs, repeats, data_root):
    cfg, spec, X, Y = problem(example, data_root)
    t = cfg.training
    per_epoch = lambda secs: secs / epochs  # noqa: E731
    out = {"network": "-".join(map(str, spec.sizes)), "dtype": cfg.network.dtype,
           "batch_size": t.batch_size, "optimizer": t.optimizer.name, "epochs_timed": epochs}
    out["snn_s_per_epoch"] = per_epoch(median_of(repeats, lambda: library_epochs(cfg, spec, X, Y, epochs)))
    if name == "cat":
        plain = lambda: plain_cat_epochs(X, Y, spec.sizes, epochs)  # noqa: E731
    else:
        plain = lambda: plain_mnist_epochs(X, Y, spec.sizes, epochs, t.batch_size)  # noqa: E731
    out["plain_numpy_s_per_epoch"] = per_epoch(median_of(repeats, plain))
    out["speedup_vs_plain_numpy"] = out["plain_numpy_s_per_epoch"] / out["snn_s_per_epoch"]
    if torch_version():
        run = lambda: torch_epochs(X, Y, spec, epochs, t.batch_size, t.optimizer.name, t.optimizer.learning_rate)  # noqa: E731
        out["torch_s_per_epoch"] = per_epoch(median_of(repeats, run))
        out["speedup_vs_torch"] = out["torch_s_per_epoch"] / out["snn_s_per_epoch"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data root (else $SNN_DATA_DIR)")
    ap.add_argument("--cat-epochs", type=int, default=100)
    ap.add_argument("--mnist-epochs", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    result = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "torch": torch_version()},
        "cat_4layer": measure("cat", "catvnoncat-4layer.json", args.cat_epochs, args.repeats, args.data),
        "mnist_256_128": measure("mnist", "mnist-256-128.json", args.mnist_epochs, args.repeats, args.data),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
