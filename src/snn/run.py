"""A training run: data in, a run folder out.

``train(config)`` loads the dataset, builds the network, runs the core training
loop and writes the run folder::

    config.json     the fully resolved configuration
    history.csv     epoch,cost,train_accuracy,val_accuracy,seconds,val_cost,learning_rate
    summary.json    epochs, final_cost, accuracies, wall_seconds, ...
    model.json, model.safetensors
    telemetry.safetensors   every neuron's norms and activity, sampled at epoch ends (see telemetry.py)
"""

from __future__ import annotations

import contextlib
import csv
import io
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .config import Config
from .core.initializers import initial_weights
from .core.network import Network, NetworkSpec, Params, predictions, targets
from .core.optimizers import make_optimizer
from .core.training import Plan
from .data import Dataset, check_splits, load_dataset
from .documents import schema_problem, short
from .errors import ConfigError, DivergedError, ModelFileError, RunFolderError, SnnError, StoreError
from .files import write_json, write_text
from .metrics import accuracy
from .model import Model
from .runfolder import STOP_FILE, claim
from .runtime.checkpoint import CheckpointClock, checkpoint_epoch, load_checkpoint, save_checkpoint
from .runtime.columns import chunk_map
from .runtime.coordinator import InvocationLimit, StopRequested, UnitFailure
from .runtime.ledger import Ledger, read_ledger
from .runtime.session import epoch_source
from .telemetry import Recorder, interval, read_telemetry

LIVE_EVERY = 2.0  # seconds between rewrites of history.csv and invocations.csv while training

HISTORY_FIELDS = ("epoch", "cost", "train_accuracy", "val_accuracy", "seconds", "val_cost", "learning_rate")


@dataclass
class Run:
    config: Config
    model: Model
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    run_dir: Path | None = None
    ledger: Ledger | None = None


def network_spec(config: Config, dataset: Dataset) -> NetworkSpec:
    """The architecture, checked against the dataset's input size and classes (or targets)."""
    layers = tuple(l.spec() for l in config.network.layers)
    n_out, k = layers[-1].units, len(dataset.classes)
    images = config.network.layers[0].type != "dense"
    if dataset.task == "regression" and n_out != k:
        raise ConfigError(f"network.layers[-1].units is {n_out}, but dataset {dataset.name!r} has {k} target "
                          f"column(s); allowed: {k}")
    if dataset.task == "classification" and not (n_out == k or (n_out == 1 and k == 2)):
        raise ConfigError(
            f"network.layers[-1].units is {n_out}, but dataset {dataset.name!r} has {k} classes; "
            f"allowed: {k}" + (" (or 1 with sigmoid)" if k == 2 else "")
        )
    if images and dataset.preprocessing.kind != "image":
        raise ConfigError(f"network.layers[0] is {config.network.layers[0].type}, which reads images; dataset "
                          f"{dataset.name!r} holds table rows; help: start with a dense layer")
    shape = dataset.preprocessing.image_shape if images else (dataset.n_input,)
    try:
        spec = NetworkSpec(shape, layers, config.network.resolved_loss())
        spec.built  # noqa: B018  (every layer fits the shape before it)
    except ValueError as e:
        raise ConfigError(f"network.layers: {e} (input {'x'.join(map(str, shape))})") from None
    return spec


def for_network(dataset: Dataset, spec: NetworkSpec) -> Dataset:
    """The dataset as this network reads it: images channels first when the first layer takes images."""
    if len(spec.input_shape) == 1:
        return dataset
    return replace(dataset, preprocessing=replace(dataset.preprocessing, channels_first=True))


def standardized(dataset: Dataset, standardize: bool | None, start: Model | None = None) -> Dataset:
    """The dataset with a table's features standardised, each by its mean and std on ``x_train``.

    ``x_train`` is the training split only: the validation split is carved off before, and the
    test set is never looked at. ``standardize`` None (the default) standardises tables that are
    not ``centred`` already; images keep their scale, and asking for them is refused. A training
    that goes on from ``start`` keeps that model's own mean and std: its weights were fitted to them.
    """
    pre = dataset.preprocessing
    if start is not None:
        if start.preprocessing.shape == pre.shape:  # if not, continue_from says how the networks differ
            pre = replace(pre, mean=start.preprocessing.mean, std=start.preprocessing.std)
        return replace(dataset, preprocessing=pre)
    if standardize is None:
        standardize = pre.kind == "table" and not dataset.centred
    if standardize and pre.kind != "table":
        raise ConfigError(f"data.standardize is true, but dataset {dataset.name!r} holds images (divided by "
                          f"{pre.scale:g}); allowed: true for table rows only; help: remove data.standardize")
    if not standardize:
        return dataset
    return replace(dataset, preprocessing=pre.standardized(dataset.x_train, f"{dataset.name}: x_train"))


def initial_params(config: Config, spec: NetworkSpec) -> Params:
    net = config.network
    weights = iter(initial_weights(spec.built, net.init, config.training.seed, net.random_mode, net.init_scale))
    params = Params.zeros(spec, np.dtype(net.dtype))
    for layer, tensors in zip(spec.built, params.layers):
        for name, view in tensors.items():
            view[...] = next(weights) if name == layer.weights else net.bias_init
    return params


def plan_of(config: Config) -> Plan:
    t = config.training
    return Plan(
        epochs=t.epochs, learning_rate=t.optimizer.learning_rate, batch_size=t.batch_size, shuffle=t.shuffle,
        schedule=t.schedule.name, decay_rate=t.schedule.decay_rate, decay_interval=t.schedule.interval,
        l2=t.l2, dropout=t.dropout, seed=t.seed,
    )


def target_rows(dataset: Dataset, y, n_out: int, dtype) -> np.ndarray:
    """``Y`` of shape ``(n_out, m)``: labels one-hot (a row of 0/1 for one unit), or a regression's values."""
    if dataset.task == "regression":
        return np.ascontiguousarray(np.asarray(y, dtype).reshape(len(y), -1).T)
    return targets(y, n_out, dtype)


def evaluate_split(net: Network, params: Params, dataset: Dataset, X, y) -> tuple[float, float | None]:
    """(cost, accuracy) of ``params`` on one split of ``dataset``; a regression has no accuracy (None)."""
    with chunk_map(net, X.shape[1]) as chunks:
        cost, A_L = net.evaluate(params, X, target_rows(dataset, y, net.spec.n_out, X.dtype), 0.0, chunks)
    return cost, None if dataset.task == "regression" else accuracy(y, predictions(A_L))


class SplitRecord(BaseModel):
    """``training.split`` of a model file: how the run picked its training and validation rows."""

    model_config = ConfigDict(extra="forbid", strict=True)
    subset: int | None = Field(None, gt=0)
    validation_split: float = Field(0.0, ge=0, lt=1)
    seed: int


def as_trained(dataset: Dataset, summary: dict) -> Dataset:
    """``dataset`` split as the run that wrote ``summary`` split it (its training rows without the
    validation rows it held out); as it is when the summary does not say (older model files)."""
    record = summary.get("split")
    if record is None:
        return dataset
    try:
        split = SplitRecord.model_validate(record)
    except ValidationError as e:
        raise ModelFileError(f"training.split: {schema_problem(e)}") from None
    return dataset.subset(split.subset).with_validation(split.validation_split, split.seed)


def default_run_dir(name: str) -> Path:
    base = Path("runs") / f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def train(
    config: Config,
    data_root: str | Path | None = None,
    run_dir: str | Path | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    save: bool = True,
    resume: bool = False,
    force: bool = False,
    dataset: Dataset | None = None,
    start: Model | None = None,
) -> Run:
    """Train ``config`` and (unless ``save=False``) write its run folder.

    With ``resume=True``, ``run_dir`` is a run with a checkpoint: training goes on from it.
    A folder in use by another training is refused, and so is one holding a complete
    run unless ``force``.

    ``dataset``: arrays in memory to train on instead of loading ``config.data.dataset``
    (which then only names them); they are checked like a file's. ``start``: a model of
    this architecture to go on from, with its parameters and optimizer state, after the
    ``start.summary["epochs"]`` epochs it has had; ``training.epochs`` counts those too,
    as with ``resume``.
    """
    if resume and start is not None:
        raise ConfigError("a training resumes from its checkpoint or starts from a model, not both")
    folder = Path(run_dir) if run_dir else default_run_dir(config.name)
    if not save:
        return _train(config, data_root, folder, on_epoch, False, resume, dataset=dataset, start=start)
    with claim(folder, resume, force), interrupt_as_stop() as interrupted:
        try:
            return _train(config, data_root, folder, on_epoch, True, resume, interrupted, dataset, start)
        except OSError as e:
            if e.filename is None or not Path(e.filename).absolute().is_relative_to(folder.absolute()):
                raise
            raise unwritable(folder, e) from None


def unwritable(folder: Path, e: OSError) -> SnnError:
    """A write of the run folder failed (a full disk, say): one line naming the file, and what is safe on disk."""
    epoch = checkpoint_epoch(folder)
    kept = "no checkpoint was written" if epoch is None else f"the checkpoint of epoch {epoch} is intact"
    then = "train again" if epoch is None else f"`snn train --resume {folder}` goes on from it"
    return SnnError(f"cannot write {e.filename}: {e.strerror or e}; {kept}; help: free space (or fix the folder), "
                    f"then {then}")


def _train(config: Config, data_root, folder: Path, on_epoch, save: bool, resume: bool,
           interrupted: Callable[[], str] = lambda: "", dataset: Dataset | None = None,
           start: Model | None = None) -> Run:
    started = time.perf_counter()
    if dataset is None:
        dataset = load_dataset(config.data.dataset, data_root, fetch_missing=True)
    else:
        check_splits(dataset)  # arrays from a caller are input like a file: checked before they are split
    dataset = dataset.subset(config.data.subset).with_validation(config.data.validation_split, config.training.seed)
    check_splits(dataset)  # an unusable test split fails now, not after the whole training
    dataset = standardized(dataset, config.data.standardize, start)
    spec = network_spec(config, dataset)
    dataset = for_network(dataset, spec)
    net, dtype, n_out = Network(spec), np.dtype(config.network.dtype), spec.n_out
    cols = dataset.preprocessing.columns
    X, Y = cols(dataset.x_train, dtype), target_rows(dataset, dataset.y_train, n_out, dtype)
    X_val = None if dataset.x_val is None else cols(dataset.x_val, dtype)
    Y_val = None if dataset.y_val is None else target_rows(dataset, dataset.y_val, n_out, dtype)

    params = initial_params(config, spec)
    opt = config.training.optimizer
    optimizer = make_optimizer(opt.name, **opt.hyperparameters())
    state = optimizer.init_state(params.flat.size, dtype)
    plan = plan_of(config)
    history: list[dict] = []
    ledger = Ledger()
    start_epoch = 0
    if resume:
        checkpoint = load_checkpoint(folder, params.flat, state)
        params.flat[...] = checkpoint.flat
        state = {k: v.copy() for k, v in checkpoint.state.items()}
        start_epoch, history = checkpoint.epoch, checkpoint.history
        ledger.resume(ledger_until(folder, checkpoint.ledger_rows), checkpoint.counters)
    if start is not None:
        state, start_epoch = continue_from(start, spec, params, state)
    telemetry = recorder(config, net, X, Y, dataset, folder if resume else None, start_epoch) if save else None
    if save:
        write_json(folder / "config.json", config.model_dump(mode="json"))
    stop_file = folder / STOP_FILE
    should_stop = (lambda: interrupted() or stop_file.exists()) if save else (lambda: False)
    clock = CheckpointClock(config.runtime.checkpoint_seconds, config.runtime.checkpoint_every)

    epochs = None  # the run's Epochs, once its engine is up
    # The ledger's rows up to the last complete epoch: a stop or a failure inside an epoch leaves the rows of
    # its finished steps on the ledger, which the resumed run will make again.
    ledger_rows = [len(ledger.records)]

    def current() -> None:
        """Bring ``params`` and ``state`` to the last complete epoch, before they are read."""
        if epochs is not None:
            epochs.sync()

    def checkpoint_now(epoch: int | None = None) -> str:
        """Save the last complete epoch; say what was saved, for the message that follows."""
        if not (save and history):
            return "no epoch had ended, so there is no checkpoint"
        current()
        epoch = history[-1]["epoch"] if epoch is None else epoch
        # The ledger first: a checkpoint names rows already on disk, whatever moment a kill or a full disk picks.
        write_live(folder, history, ledger, telemetry)
        save_checkpoint(folder, params.flat, state, epoch, history, dict(ledger.counts), ledger_rows[0])
        return f"a checkpoint of epoch {epoch} was written; help: `snn train --resume {folder}` goes on from it"

    threshold = config.training.threshold
    stopped, resumed_at = None, len(history)
    patience = config.training.patience or float("inf")
    best = BestModel(enabled=config.training.patience is not None)
    budget = config.runtime.budget_usd
    earlier = history[-1]["seconds"] if history else 0.0  # training time of the processes before a resume
    loop_start = flushed = time.perf_counter()
    live_every = LIVE_EVERY
    try:
        # An overflow on the way to divergence is not worth NumPy's warning per operation: check_finite says, in
        # one line at the epoch's end, that the run diverged.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                epoch_source(config.runtime, config.training, spec, net, optimizer, params, state, X, Y, plan,
                             start_epoch, should_stop, ledger, folder if save else None, X_val, Y_val) as source:
            epochs = source
            # Training time starts once the engine is up (a Ray cluster joined, a store opened): that is
            # the run's wall time, not its epochs'.
            loop_start = flushed = time.perf_counter()
            for result in epochs:
                record = {"epoch": result.epoch, "cost": result.cost,
                          "train_accuracy": None if dataset.task == "regression" else result.accuracy,
                          "val_accuracy": None, "seconds": 0.0, "val_cost": None, "learning_rate": result.learning_rate}
                if X_val is not None:
                    current()
                    record["val_cost"], record["val_accuracy"] = evaluate_split(net, params, dataset, X_val, dataset.y_val)
                check_finite(record, config)
                record["seconds"] = earlier + time.perf_counter() - loop_start
                history.append(record)
                ledger_rows[0] = len(ledger.records)
                if telemetry is not None and telemetry.due(result.epoch):
                    current()
                    telemetry.record(result.epoch, params)
                if on_epoch:
                    on_epoch({**record, **ledger.summary()})
                if save and time.perf_counter() - flushed > live_every:
                    took = time.perf_counter()
                    write_live(folder, history, ledger, telemetry)  # for dashboards watching the run
                    flushed = time.perf_counter()
                    # A long run's ledger grows: keep rewriting it under a tenth of the time.
                    live_every = max(LIVE_EVERY, 10 * (flushed - took))
                if save and clock.due(result.epoch):
                    clock.write(checkpoint_now, result.epoch)
                if threshold is not None and result.cost < threshold:
                    break
                if best.enabled:
                    current()
                if best.improves(record, params, state) >= patience:
                    break
                if budget and over_budget(ledger, record["seconds"], len(history), budget):
                    raise StopRequested(f"the next epoch would pass the budget of {budget} USD")
                if should_stop():
                    raise StopRequested(interrupted() or "stop requested")
    except StopRequested as e:
        stopped = interrupted() or str(e)
    except (UnitFailure, InvocationLimit, StoreError) as e:
        # Parameters in memory are those of the last complete epoch: the runtime copies
        # an epoch's results in only once all of them are read. The store may be gone,
        # so the checkpoint is written from memory.
        raise type(e)(f"{e}; {checkpoint_now()}") from None
    if stopped and save:
        checkpoint_now(history[-1]["epoch"] if history else start_epoch)
        stop_file.unlink(missing_ok=True)
    elif save and clock.seconds > 0 and history and clock.epoch != history[-1]["epoch"]:
        clock.write(checkpoint_now, history[-1]["epoch"])  # the end, too: `--resume --epochs N` can take a finished run further
    if not history:
        raise SnnError("the run stopped before its first epoch ended; nothing to save")
    current()
    loop_seconds = history[-1]["seconds"] - earlier  # to the last epoch's end: not the engine's shutdown
    if telemetry is not None:
        telemetry.record(history[-1]["epoch"], params, last=True)  # before the best model replaces the last
    best.restore(params, state)  # with patience, the model saved is the best on validation

    summary = summarize(config, dataset, net, params, history, plan, X)
    summary["stopped"] = stopped is not None
    if stopped:
        summary["stop_reason"] = stopped
    if best.epoch:
        summary["best_epoch"], summary["best_val_cost"] = best.epoch, best.cost
    summary.update(ledger.summary())
    summary["seconds_per_epoch"] = loop_seconds / max(1, len(history) - resumed_at)
    summary["checkpoint_seconds"] = clock.spent
    summary["wall_seconds"] = time.perf_counter() - started

    model = Model(spec, params, dataset.preprocessing, dataset.classes,
                  {"name": opt.name, **opt.hyperparameters()}, state, summary, dataset.task)
    run = Run(config, model, history, summary, ledger=ledger)
    if save:
        if telemetry is not None:
            telemetry.write(folder, now=True)
        run.run_dir = write_run(run, folder)
    return run


def recorder(config: Config, net: Network, X, Y, dataset: Dataset, resumed: Path | None,
             start_epoch: int) -> Recorder | None:
    """The run's telemetry recorder (None when ``training.telemetry_every`` is 0), going on from the
    samples of ``resumed`` up to its checkpoint's epoch."""
    every = interval(config.training.telemetry_every, config.training.epochs)
    if not every:
        return None
    images = dataset.preprocessing.kind == "image"
    earlier = read_telemetry(resumed, net.spec, images) if resumed else None
    return Recorder(net, X, Y, every, config.training.epochs, config.training.seed, images,
                    None if earlier is None else earlier.until(start_epoch))


def continue_from(model: Model, spec: NetworkSpec, params: Params, state: dict) -> tuple[dict, int]:
    """``model``'s parameters copied into ``params``; its optimizer state (of the same kind as ``state``)
    and the epochs it has had."""
    if model.spec != spec or model.dtype != params.flat.dtype:
        raise ConfigError("the model to start from is not this network: its layers, input or dtype differ; "
                          "help: train it from the start")
    if set(model.optimizer_state) != set(state):
        raise ConfigError(f"the model to start from has optimizer state {sorted(model.optimizer_state)}, this "
                          f"optimizer keeps {sorted(state)}; help: keep its optimizer, or train from the start")
    epochs = model.summary.get("epochs", 0)  # a model file's summary is anyone's: checked
    if type(epochs) is not int or epochs < 0:
        raise ConfigError(f"the model to start from says it had {short(epochs)} epochs; allowed: a count >= 0")
    params.flat[...] = model.params.flat
    return {k: v.copy() for k, v in model.optimizer_state.items()}, epochs


def check_finite(record: dict, config: Config) -> None:
    """A cost that is no longer a number means the run diverged: stop now, not after the last epoch."""
    for key in ("cost", "val_cost"):
        value = record[key]
        if value is not None and not np.isfinite(value):
            lr = config.training.optimizer.learning_rate
            raise DivergedError(f"training diverged at epoch {record['epoch']}: the {key.replace('_', ' ')} is "
                                f"{value}; "
                                f"help: lower training.optimizer.learning_rate (now {lr:g}) or check the inputs' scale")


# The signals that end a run as a person's Ctrl-C does: a scheduler's stop (systemd, Kubernetes, Slurm, a CI
# runner) sends SIGTERM. Each stops after the current step, with a checkpoint; the run's stop reason says which.
STOP_SIGNALS = {signal.SIGINT: ("interrupted", "Interrupted", "Ctrl-C again to abort"),
                signal.SIGTERM: ("terminated", "Terminated (SIGTERM)", "SIGTERM again to abort")}


@contextlib.contextmanager
def interrupt_as_stop():
    """The first Ctrl-C or SIGTERM stops the run after its current step, with a checkpoint; a second one aborts.

    Yields a callable: the stop reason once a signal came ("interrupted" or "terminated"), else "".
    """
    reason: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: ""  # signals reach only the main thread: nothing to catch here
        return

    def on_signal(signum, frame):
        if reason:
            if signum == signal.SIGTERM:
                raise SystemExit(128 + signum)
            raise KeyboardInterrupt
        word, said, again = STOP_SIGNALS[signum]
        reason.append(word)
        sys.stderr.write(f"\n{said}: stopping after this step, with a checkpoint ({again})\n")

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield lambda: reason[0] if reason else ""
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ledger_until(folder: Path, rows: int | None) -> list[dict]:
    """The invocation records of the processes before a resume, up to their checkpoint's epoch: the first
    ``rows`` of ``invocations.csv`` (a killed process may have written more, for epochs it did not finish)."""
    records = read_ledger(folder / "invocations.csv", missing_ok=True)
    if rows is None:  # a checkpoint written before checkpoints counted their rows
        return records
    if len(records) < rows:
        raise RunFolderError(f"{folder / 'invocations.csv'}: {len(records)} invocations, where its checkpoint "
                             f"counts {rows}; help: the ledger was changed after the run wrote it; restore it, "
                             "or train again with --force")
    return records[:rows]


class BestModel:
    """The parameters of the epoch with the lowest validation cost, for early stopping."""

    def __init__(self, enabled: bool):
        self.enabled, self.epoch, self.cost = enabled, 0, float("inf")
        self.flat, self.state = None, None

    def improves(self, record: dict, params: Params, state: dict) -> float:
        """Note this epoch; return how many epochs have passed without a better validation cost."""
        if not self.enabled:
            return 0
        if record["val_cost"] < self.cost:
            self.epoch, self.cost = record["epoch"], record["val_cost"]
            self.flat, self.state = params.flat.copy(), {k: v.copy() for k, v in state.items()}
        return record["epoch"] - self.epoch

    def restore(self, params: Params, state: dict) -> None:
        if self.flat is not None:
            params.flat[...] = self.flat
            for k, v in self.state.items():
                state[k][...] = v


def over_budget(ledger: Ledger, seconds: float, epochs: int, budget: float) -> bool:
    """Would one more epoch, at the mean cost of those so far, pass ``budget``?

    ``seconds`` and ``epochs`` count the whole run, across resumes, like the ledger.
    """
    from .cost import lambda_cost

    spent = lambda_cost(ledger.records, seconds).total_usd
    return spent + spent / max(1, epochs) > budget


def summarize(config: Config, dataset: Dataset, net: Network, params: Params, history, plan, X) -> dict:
    """What a run reached: ``summary.json`` without the counters and timings. ``X``: the training inputs."""
    cols, dtype = dataset.preprocessing.columns, X.dtype
    epochs = history[-1]["epoch"]  # all of them: a run started from a model has the model's before its history
    summary = {
        "name": config.name,
        "dataset": dataset.name,
        "epochs": epochs,
        "final_cost": history[-1]["cost"],
        "train_accuracy": evaluate_split(net, params, dataset, X, dataset.y_train)[1],
        "stopped_early": epochs < plan.epochs,
        "n_train": len(dataset.y_train),
        "parameters": net.spec.n_params,
        "granularity": config.runtime.granularity.name,
        "engine": config.runtime.engine,
        # How the training rows were picked, so `snn evaluate` scores the rows the run trained on.
        "split": {"subset": config.data.subset, "validation_split": config.data.validation_split,
                  "seed": config.training.seed},
    }
    if dataset.x_val is not None:
        summary["val_accuracy"] = history[-1]["val_accuracy"]
        summary["n_val"] = len(dataset.y_val)
    if dataset.x_test is not None:
        # The test set is looked at once, here, after training: never for selection.
        summary["test_accuracy"] = evaluate_split(net, params, dataset, cols(dataset.x_test, dtype), dataset.y_test)[1]
        summary["n_test"] = len(dataset.y_test)
    return summary


def history_csv(history: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for record in history:
        writer.writerow({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in record.items()})
    return out.getvalue()


def write_live(folder: Path, history: list[dict], ledger: Ledger, telemetry: Recorder | None = None) -> None:
    write_text(folder / "history.csv", history_csv(history))
    if ledger.records:
        write_text(folder / "invocations.csv", ledger.csv())
    if telemetry is not None:
        telemetry.write(folder)


def write_run(run: Run, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", run.config.model_dump(mode="json"))
    write_text(folder / "history.csv", history_csv(run.history))
    run.model.save(folder)
    if run.ledger is not None and run.ledger.records:
        write_text(folder / "invocations.csv", run.ledger.csv())
    write_json(folder / "summary.json", run.summary)  # last: its presence marks a complete run
    return folder
