"""Training seen from inside: what every neuron does while the network learns.

At the end of every ``training.telemetry_every`` epochs (by default about AUTO_SAMPLES
times a run, and always at its first and last epoch) a probe runs the network forward
and backward in process, with that epoch's parameters, on a fixed sample of the training
examples (half of them, at most SAMPLE_EXAMPLES), and records per neuron (a dense layer's row of ``W``,
a convolution's filter) of every layer with weights:

    weight_norm       ||W[u]||
    grad_norm         ||dW[u]||: the loss's gradient on the sample (no L2 term, no dropout)
    mean_activation   g(Z[u]) averaged over the sample (and over a map's positions)
    inactive          relu, leaky_relu: the share of examples on which the unit is off
                      (Z <= 0, at every position of a map); 1 on all of them is a dead unit
    saturated         sigmoid, tanh, softmax: the share of examples on which its output lies
                      within 1% of its range from a bound (at most of a map's positions)

and, when the first layer is dense on images, its weights (float16) at up to
MAX_SNAPSHOTS epochs, evenly spread, to replay as images. The probe reads the
parameters and never writes them, and its sample comes from a generator of its own,
so a run trains to the same numbers with or without it, at every granularity and on
every engine.

``telemetry.safetensors`` in the run folder:

    epochs            int64 [S]            the epochs sampled, increasing
    examples          int64 [1]            the size of the sample
    L{l}.{metric}     float32 [S, units]   l: the layer's 1-based index (as /neuron names it)
    snapshot_epochs   int64 [K]            only when the first layer is dense on images
    snapshots         float16 [K, U, n_x]  its first U <= MAX_SNAPSHOT_UNITS rows of W

Read back, it is untrusted input: bounded in size, never read through a link, and
every tensor checked against the model (names, shapes, dtypes, finite values and
ranges); anything else is a ``RunFolderError`` of one line.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .core.layers import Layer
from .core.network import Network, NetworkSpec, Params
from .core.training import MAX_EPOCHS
from .errors import RunFolderError
from .tensorfile import TENSOR_HEADER_BYTES, check_tensors, read_run_tensors, write_tensors

FILE = "telemetry.safetensors"
METRICS = ("weight_norm", "grad_norm", "mean_activation", "inactive", "saturated")
FRACTIONS = ("inactive", "saturated")
# Enough examples to tell a dead unit from a rarely active one, and at most half the training set: a probe
# costs what the gradient of its sample costs, so at most about half an epoch.
SAMPLE_EXAMPLES = 256
AUTO_SAMPLES = 50  # samples of a run when telemetry_every is not given
MAX_SAMPLES = 4096  # past this a recorder keeps every other sample (and samples half as often)
MAX_METRIC_BYTES = 64 << 20
MAX_SNAPSHOTS, MAX_SNAPSHOT_UNITS, MAX_SNAPSHOT_BYTES = 16, 64, 8 << 20
MAX_FILE_BYTES = MAX_METRIC_BYTES + MAX_SNAPSHOT_BYTES + TENSOR_HEADER_BYTES
RECTIFIED = ("relu", "leaky_relu")
BOUNDS = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softmax": (0.0, 1.0)}
NEAR_BOUND = 0.01  # of the output's range
MOSTLY = 0.9  # a hidden unit saturated on this share of the sample is flagged
# While training, the file is rewritten at most every WRITE_GAP seconds (a dashboard's view of a long run), and
# less often if that would take more than WRITE_BUDGET of the time; the end of the run writes it in any case.
WRITE_GAP, WRITE_BUDGET = 10.0, 0.002


def neuron_layers(spec: NetworkSpec) -> list[tuple[int, Layer]]:
    """The layers with neurons (dense, conv2d), with their 1-based index."""
    return [(l, layer) for l, layer in enumerate(spec.built, start=1) if layer.weights]


def snapshot_shape(spec: NetworkSpec, images: bool) -> tuple[int, int] | None:
    """``(units, n_x)`` of the first layer's snapshots; None unless it is dense on images."""
    first = spec.built[0]
    if not images or first.spec.kind != "dense":
        return None
    return min(first.units, MAX_SNAPSHOT_UNITS), spec.n_input


def max_snapshots(shape: tuple[int, int] | None) -> int:
    return 0 if shape is None else min(MAX_SNAPSHOTS, MAX_SNAPSHOT_BYTES // (2 * shape[0] * shape[1]))


def max_samples(spec: NetworkSpec) -> int:
    units = sum(layer.units for _, layer in neuron_layers(spec))
    return max(2, min(MAX_SAMPLES, MAX_METRIC_BYTES // (4 * len(METRICS) * units)))


# --- the probe: one sample of every metric, from the core network ----------------------------------------------------


def by_unit(T: np.ndarray, layer: Layer) -> np.ndarray:
    """A layer's ``Z`` or ``A`` as ``(units, examples, positions)``: dense ``(n, m)``, conv ``(m, F, H, W)``."""
    T = np.moveaxis(T, layer.unit_axis, 0)
    return T.reshape(T.shape[0], T.shape[1], -1)


def row_norms(W: np.ndarray) -> np.ndarray:
    """||W[u]|| of each unit's row (a filter: all its kernels); einsum makes no temporary copy of W."""
    rows = W.reshape(W.shape[0], -1)
    return np.sqrt(np.einsum("ij,ij->i", rows, rows))


def inactive(Z: np.ndarray, activation: str) -> np.ndarray:
    """Per unit, the share of examples on which a rectifier is off everywhere; 0 for other activations."""
    if activation not in RECTIFIED:
        return np.zeros(Z.shape[0])
    return (Z <= 0).all(axis=2).mean(axis=1)


def saturated(A: np.ndarray, activation: str) -> np.ndarray:
    """Per unit, the share of examples on which a bounded output sits near a bound (at most positions)."""
    if activation not in BOUNDS:
        return np.zeros(A.shape[0])
    lo, hi = BOUNDS[activation]
    margin = NEAR_BOUND * (hi - lo)
    near = (A <= lo + margin) | (A >= hi - margin)
    return (near.mean(axis=2) > 0.5).mean(axis=1)


def probe(net: Network, params: Params, X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric of every layer with neurons (``L{l}.{metric}``: float32 per unit) on examples ``X``, ``Y``."""
    cache = net.forward(params, X)
    grads = Params.zeros(params.sizes, params.flat.dtype)
    net.backward(params, cache, Y, grads)
    out = {}
    for l, layer in neuron_layers(net.spec):
        name, Z, A = layer.activation.name, by_unit(cache.Z[l - 1], layer), by_unit(cache.G[l - 1], layer)
        values = {"weight_norm": row_norms(params.layers[l - 1][layer.weights]),
                  "grad_norm": row_norms(grads.layers[l - 1][layer.weights]), "mean_activation": A.mean(axis=(1, 2)),
                  "inactive": inactive(Z, name), "saturated": saturated(A, name)}
        out.update({f"L{l}.{metric}": v.astype(np.float32) for metric, v in values.items()})
    return out


def sample_columns(m: int, seed: int) -> np.ndarray:
    """The fixed sample's columns of ``m`` examples, in order: half of them, at most SAMPLE_EXAMPLES (a generator
    of its own, so no random stream of the training is touched)."""
    size = min(SAMPLE_EXAMPLES, -(-m // 2))
    return np.sort(np.random.default_rng(seed).choice(m, size, replace=False))


# --- what the file holds ----------------------------------------------------------------------------------------------


@dataclass
class Telemetry:
    """The samples of a run, in epoch order (``telemetry.safetensors``)."""

    epochs: np.ndarray  # int64 [S]
    examples: int
    metrics: dict[str, np.ndarray]  # "L1.weight_norm" -> float32 [S, units]
    snapshot_epochs: np.ndarray  # int64 [K]
    snapshots: np.ndarray | None  # float16 [K, U, n_x], or None

    def metric(self, layer: int, name: str) -> np.ndarray:
        return self.metrics[f"L{layer}.{name}"]

    def until(self, epoch: int) -> Telemetry:
        """The samples up to ``epoch``: what a resumed run goes on from (a later write may be ahead of it)."""
        keep, snaps = self.epochs <= epoch, self.snapshot_epochs <= epoch
        return replace(self, epochs=self.epochs[keep], metrics={k: v[keep] for k, v in self.metrics.items()},
                       snapshot_epochs=self.snapshot_epochs[snaps],
                       snapshots=None if self.snapshots is None else self.snapshots[snaps])

    def tensors(self) -> dict[str, np.ndarray]:
        out = {"epochs": self.epochs, "examples": np.array([self.examples], np.int64), **self.metrics}
        if self.snapshots is not None and len(self.snapshot_epochs):
            out.update(snapshot_epochs=self.snapshot_epochs, snapshots=self.snapshots)
        return out

    def flags(self, spec: NetworkSpec) -> dict[int, dict[str, list[int]]]:
        """Per layer, at the last sample: its dead units (off on every example) and, for hidden layers, its
        saturated ones (an output layer's sigmoid near 0 or 1 is a confident answer, not a stuck unit)."""
        last = len(spec.built)
        return {l: {"dead": np.flatnonzero(self.metric(l, "inactive")[-1] >= 1).tolist(),
                    "saturated": [] if l == last else
                    np.flatnonzero(self.metric(l, "saturated")[-1] >= MOSTLY).tolist()}
                for l, _ in neuron_layers(spec)}


def write_telemetry(folder: Path, telemetry: Telemetry) -> None:
    write_tensors(folder / FILE, telemetry.tensors())


def read_telemetry(folder: Path, spec: NetworkSpec, images: bool) -> Telemetry | None:
    """The run's telemetry checked against its model, or None when it has none."""
    path = folder / FILE
    if not (path.exists() or path.is_symlink()):
        return None
    tensors = read_run_tensors(path, RunFolderError, MAX_FILE_BYTES)
    epochs = _epochs(path, tensors, "epochs", max_samples(spec))
    expected = {"epochs": (epochs.shape, np.int64), "examples": ((1,), np.int64)}
    expected.update({f"L{l}.{m}": ((len(epochs), layer.units), np.float32)
                     for l, layer in neuron_layers(spec) for m in METRICS})
    shape = snapshot_shape(spec, images)
    if shape is not None and "snapshot_epochs" in tensors:
        snaps = _epochs(path, tensors, "snapshot_epochs", max_snapshots(shape))
        expected.update(snapshot_epochs=(snaps.shape, np.int64), snapshots=((len(snaps), *shape), np.float16))
    check_tensors(path, tensors, expected, RunFolderError)
    examples = int(tensors["examples"][0])
    if not 1 <= examples <= SAMPLE_EXAMPLES:
        raise RunFolderError(f"{path}: a sample of {examples} examples; allowed: 1 to {SAMPLE_EXAMPLES}")
    metrics = {k: v for k, v in tensors.items() if k.startswith("L")}
    for name, values in metrics.items():
        top = 1 if name.endswith(FRACTIONS) else math.inf
        if not name.endswith("mean_activation") and not ((values >= 0) & (values <= top)).all():
            raise RunFolderError(f"{path}: tensor {name} holds values outside [0, {top}]")
    return Telemetry(epochs, examples, metrics, tensors.get("snapshot_epochs", np.zeros(0, np.int64)),
                     tensors.get("snapshots"))


def _epochs(path: Path, tensors: dict, name: str, most: int) -> np.ndarray:
    """An increasing vector of epochs, 1 to MAX_EPOCHS, of at most ``most`` entries."""
    epochs = tensors.get(name)
    if epochs is None or epochs.dtype != np.int64 or epochs.ndim != 1 or not 1 <= len(epochs) <= most:
        got = "missing" if epochs is None else f"{epochs.dtype}{list(epochs.shape)}"
        raise RunFolderError(f"{path}: tensor {name} is {got}; expected int64[1..{most}]")
    if epochs[0] < 1 or epochs[-1] > MAX_EPOCHS or (np.diff(epochs) <= 0).any():
        raise RunFolderError(f"{path}: tensor {name} is not increasing epochs from 1 to {MAX_EPOCHS}")
    return epochs


# --- the recorder: when samples are due, and the file ----------------------------------------------------------------


def interval(every: int | None, epochs: int) -> int:
    """Epochs between samples: ``every`` (0: never), or about AUTO_SAMPLES in a run of ``epochs``."""
    return -(-epochs // AUTO_SAMPLES) if every is None else every


class Recorder:
    """Takes the samples of one run at epoch ends and keeps them, bounded; ``write`` saves them when new."""

    def __init__(self, net: Network, X: np.ndarray, Y: np.ndarray, every: int, epochs: int, seed: int,
                 images: bool, earlier: Telemetry | None = None):
        columns = sample_columns(X.shape[1], seed)
        self.net, self.every = net, every
        self.X, self.Y = X[:, columns], Y[:, columns]
        self.shape = snapshot_shape(net.spec, images)
        self.most, self.most_snapshots = max_samples(net.spec), max_snapshots(self.shape)
        # Snapshots at the first epoch, the last, and evenly between: at most most_snapshots in all.
        self.snapshot_every = every * max(1, -(-(epochs // every) // max(1, self.most_snapshots - 2)))
        self.epochs: list[int] = [] if earlier is None else earlier.epochs.tolist()
        self.rows = {k: list(v) for k, v in earlier.metrics.items()} if earlier else {}
        self.snapshot_epochs: list[int] = [] if earlier is None else earlier.snapshot_epochs.tolist()
        self.snapshots = [] if earlier is None or earlier.snapshots is None else list(earlier.snapshots)
        self.dirty, self.written, self.took = False, -math.inf, 0.0

    def due(self, epoch: int) -> bool:
        return epoch == 1 or epoch % self.every == 0

    def record(self, epoch: int, params: Params, last: bool = False) -> None:
        """Sample ``epoch`` (its parameters in ``params``) if not yet; ``last``: the run's final epoch,
        whose weights are always among the snapshots."""
        if not self.epochs or self.epochs[-1] < epoch:
            self._sample(epoch, params)
        wanted = last or epoch == 1 or epoch % self.snapshot_every == 0
        if self.most_snapshots and wanted and (not self.snapshot_epochs or self.snapshot_epochs[-1] < epoch):
            self._snapshot(epoch, params)

    def _sample(self, epoch: int, params: Params) -> None:
        if len(self.epochs) >= self.most:  # a run far longer than planned: keep every other sample
            self.epochs = self.epochs[::2]
            self.rows = {k: v[::2] for k, v in self.rows.items()}
            self.every *= 2
        for name, values in probe(self.net, params, self.X, self.Y).items():
            self.rows.setdefault(name, []).append(values)
        self.epochs.append(epoch)
        self.dirty = True

    def _snapshot(self, epoch: int, params: Params) -> None:
        if len(self.snapshots) >= self.most_snapshots:  # only past the planned epochs: the newest replaces the last
            self.snapshots.pop(), self.snapshot_epochs.pop()
        W = params.layers[0]["W"][: self.shape[0]]
        top = float(np.finfo(np.float16).max)
        self.snapshots.append(np.clip(W, -top, top).astype(np.float16))
        self.snapshot_epochs.append(epoch)
        self.dirty = True

    def telemetry(self) -> Telemetry:
        return Telemetry(np.array(self.epochs, np.int64), self.X.shape[1],
                         {k: np.stack(v) for k, v in self.rows.items()}, np.array(self.snapshot_epochs, np.int64),
                         np.stack(self.snapshots) if self.snapshots else None)

    def write(self, folder: Path, now: bool = False) -> None:
        """Save the samples if there are new ones: ``now``, or while training when WRITE_GAP and WRITE_BUDGET
        allow (a kill -9 loses the samples since the last write; a resumed run goes on without them)."""
        if not (self.dirty and self.epochs):
            return
        if not now and time.perf_counter() - self.written < max(WRITE_GAP, self.took / WRITE_BUDGET):
            return
        started = time.perf_counter()
        write_telemetry(folder, self.telemetry())
        self.written = time.perf_counter()
        self.took, self.dirty = self.written - started, False


# --- what the page and the report read -------------------------------------------------------------------------------

MAX_JSON_NUMBERS = 1 << 18  # numbers in one /run/telemetry answer: more samples are thinned evenly
MAX_JSON_UNITS = 256  # a layer's units drawn as lines; more would be one grey area


def evenly(n: int, most: int) -> np.ndarray:
    """At most ``most`` indices of ``range(n)``, evenly spread, the first and the last among them."""
    return np.arange(n) if n <= most else np.unique(np.linspace(0, n - 1, most).round().astype(int))


def as_json(t: Telemetry, spec: NetworkSpec) -> dict:
    """``/run/telemetry``: per layer with neurons, each metric as rows of samples (units as columns), bounded."""
    layers, flags = neuron_layers(spec), t.flags(spec)
    per_sample = len(METRICS) * sum(min(layer.units, MAX_JSON_UNITS) for _, layer in layers)
    keep = evenly(len(t.epochs), max(2, MAX_JSON_NUMBERS // per_sample))
    return {"epochs": t.epochs[keep].tolist(), "samples": len(t.epochs), "examples": t.examples,
            "layers": [{"layer": l, "type": layer.spec.kind, "activation": layer.activation.name, "units": layer.units,
                        "metrics": {m: t.metric(l, m)[keep, :MAX_JSON_UNITS].tolist() for m in METRICS}, **flags[l]}
                       for l, layer in layers],
            "snapshots": None if t.snapshots is None else
            {"epochs": t.snapshot_epochs.tolist(), "units": int(t.snapshots.shape[1])}}


def levels(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``W`` as 8-bit grey levels from its least (0) to its greatest value (255), and those ranges."""
    W = W.astype(np.float64)
    lo, hi = W.min(axis=1, keepdims=True), W.max(axis=1, keepdims=True)
    return np.rint(255 * (W - lo) / np.where(hi > lo, hi - lo, 1)).astype(np.uint8), np.hstack([lo, hi])
