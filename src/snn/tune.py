"""``snn tune``: hyperparameter search with Optuna, every trial one function invocation.

A space file (YAML or JSON) names config fields and what they may be::

    params:
      training.optimizer.learning_rate: {low: 0.0001, high: 0.1, log: true}
      training.optimizer.beta1: [0.8, 0.9, 0.95]            # choices
      training.batch_size: {low: 32, high: 256, step: 32}    # integers
      network.hidden_layers: [1, 2]                          # hidden layers (same width) ...
      network.hidden_units: [16, 32, 64]                     # ... and their width
    seeds: 10                                                # optional: also search the seed

Trials run ``parallel`` at a time on the chosen engine and report their validation cost
every epoch; a pruner stops hopeless ones. The study lives in ``TUNE_DIR/study.db``
(SQLite, its path taken literally), so ``--resume`` goes on after a crash without repeating
finished trials, or runs more of a finished study's (``--trials``); ``best/`` is then retrained.
Selection uses the validation split only; the best configuration is retrained once at
the end, and only then is its test accuracy looked at.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import math
import os
import sqlite3
import stat
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Optional, Union
from urllib.parse import quote

import optuna
import sqlalchemy.exc
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState
from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from .config import Config, load_config, parse_config, set_path
from .documents import read_document
from .errors import ConfigError, SnnError, SpaceError
from .files import write_json, write_text
from .documents import schema_problem, short
from .names import check_name
from .runtime.stores import drain_json, push_json
from .runtime.events import TrialEvent
from .runtime.functions import function_kind
from .runtime.session import runtime_session
from .runtime.keys import Keys

SAMPLERS = ("grid", "random", "tpe")
PRUNERS = ("median", "halving", "none")
HIDDEN = ("network.hidden_layers", "network.hidden_units", "network.hidden_activation")
INTERRUPTED = "interrupted: the tuner stopped before this trial finished"


@dataclass(frozen=True)
class Space:
    distributions: dict[str, Any]

    def grid(self) -> list[dict]:
        """Every combination of the choices (a grid needs choices everywhere)."""
        ranged = [n for n, d in self.distributions.items() if not isinstance(d, CategoricalDistribution)]
        if ranged:
            raise SpaceError(f"a grid needs a list of choices for every parameter; "
                             f"ranges given for: {', '.join(ranged)}")
        names = list(self.distributions)
        size = math.prod(len(self.distributions[n].choices) for n in names)
        if size > MAX_GRID:
            raise SpaceError(f"the grid has {size} points; allowed: at most {MAX_GRID}; help: use fewer choices, "
                             "or --sampler random or tpe with --trials")
        return [dict(zip(names, values)) for values in itertools.product(*(self.distributions[n].choices for n in names))]


# --- the space file, field by field ---------------------------------------------------------------------------------

MAX_SPACE_BYTES = 256 << 10  # a search space is a few lines
MAX_PARAMS, MAX_CHOICES, MAX_SEEDS, MAX_GRID = 64, 1000, 10_000, 10_000
MAX_CHOICE_CHARS = 200
MAX_BOUND = 1e15  # integers stay exact as the floats Optuna stores
Number = Union[int, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def _plain_choices(choices: list) -> list:
    """Values Optuna stores as they are: numbers, short strings, booleans, null; each once."""
    for c in choices:
        if not isinstance(c, (type(None), bool, int, float, str)) or (isinstance(c, str) and len(c) > MAX_CHOICE_CHARS):
            raise ValueError(f"a choice is a number, a string of at most {MAX_CHOICE_CHARS} characters, true, false "
                             f"or null; got {short(c)}")
    _distinct(choices)
    return choices


def _distinct(choices: list) -> None:
    """Optuna finds a trial's choice by ``==``, so of true, 1 and 1.0 it records the first, whichever ran:
    choices equal in Python are refused, whatever their JSON type."""
    groups: dict = {}
    for c in choices:
        groups.setdefault(c, []).append(json.dumps(c))  # a dict's keys meet as == does: True, 1 and 1.0
    same = next((g for g in groups.values() if len(g) > 1), None)
    if same and len(set(same)) == 1:
        raise ValueError(f"choices must be distinct: {same[0]} is given {len(same)} times")
    if same:
        raise ValueError(f"choices must be distinct: {', '.join(same[:-1])} and {same[-1]} are equal as choices")


Choices = Annotated[list[Any], Field(min_length=1, max_length=MAX_CHOICES), AfterValidator(_plain_choices)]


class ChoicesSpec(_Strict):
    choices: Choices

    def distribution(self):
        return CategoricalDistribution(self.choices)


class RangeSpec(_Strict):
    low: Number
    high: Number
    step: Optional[Number] = Field(None, gt=0)
    log: bool = False
    log_float: bool = False  # a float range even when low and high are written as integers

    @model_validator(mode="after")
    def _a_range(self):
        if max(abs(self.low), abs(self.high)) > MAX_BOUND:
            raise ValueError(f"low and high must lie within -{MAX_BOUND:g} and {MAX_BOUND:g}")
        if self.low > self.high:
            raise ValueError(f"low {self.low} is above high {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("give either log or step, not both")
        if self.step is not None and not _whole((self.high - self.low) / self.step):
            raise ValueError(f"high - low must be a multiple of step {self.step}")
        return self

    def distribution(self):
        whole = all(isinstance(v, int) for v in (self.low, self.high, self.step or 1))
        if whole and not self.log_float:
            return IntDistribution(self.low, self.high, step=self.step or 1, log=self.log)
        return FloatDistribution(float(self.low), float(self.high), log=self.log,
                                 step=None if self.step is None else float(self.step))


def _whole(q: float) -> bool:
    return math.isfinite(q) and abs(q - round(q)) <= 1e-9 * max(1.0, abs(q))


def _spec_kind(value) -> str:
    if isinstance(value, list):
        return "list"
    return "choices" if isinstance(value, dict) and "choices" in value else "range"


ParamSpec = Annotated[Union[Annotated[Choices, Tag("list")], Annotated[ChoicesSpec, Tag("choices")],
                            Annotated[RangeSpec, Tag("range")]], Discriminator(_spec_kind)]


class SpaceFile(_Strict):
    params: dict[str, ParamSpec] = Field(min_length=1, max_length=MAX_PARAMS)
    seeds: Optional[int] = Field(None, gt=0, le=MAX_SEEDS)


def load_space(path: str | Path, seeds: int | None = None) -> Space:
    """The search space of a space file; ``seeds`` (``--seeds``) also searches ``training.seed`` over 1..seeds."""
    path = Path(path)
    raw = read_document(path, "search space", SpaceError, MAX_SPACE_BYTES)
    try:
        space = SpaceFile.model_validate(raw)
    except ValidationError as e:
        raise SpaceError(f"space file {path}: {schema_problem(e)}; help: give each config field a list of choices "
                         "or {low, high[, log | step]}") from None
    for name in space.params:
        _check_field(path, name)
    dists = {name: _distribution(path, name, spec) for name, spec in space.params.items()}
    if seeds is not None and (isinstance(seeds, bool) or not 0 < seeds <= MAX_SEEDS):
        raise SpaceError(f"--seeds {seeds!r}; allowed: 1 to {MAX_SEEDS} (training.seed is searched over 1..SEEDS)")
    k = seeds if seeds is not None else space.seeds
    if k:
        if "training.seed" in dists:
            raise SpaceError(f"space file {path}: training.seed is searched already; give it or seeds, not both")
        dists["training.seed"] = CategoricalDistribution(list(range(1, k + 1)))
    return Space(dists)


def _distribution(path, name, spec):
    try:
        return CategoricalDistribution(spec) if isinstance(spec, list) else spec.distribution()
    except ValueError as e:  # Optuna's own checks, should one go past the schema's
        raise SpaceError(f"space file {path}: params.{name}: {' '.join(str(e).split())}") from None


# Where a trial's data goes and what runs it come from the command line and the base config, never from a search
# space, which is a file that gets shared: a space naming them would send every trial's data elsewhere.
NOT_SEARCHED = ("runtime.store", "runtime.engine", "runtime.address", "data.dataset")


def _check_field(path, name: str) -> None:
    """``name`` is a dotted config field (or one of the hidden-layer shorthands), checked before any trial runs."""
    if name in HIDDEN:
        return
    if name in NOT_SEARCHED:
        raise SpaceError(f"space file {path}: params: {name} names where the data goes or what runs the trials; "
                         "allowed: math and training fields; help: give --engine, --store or the base config")
    model: Any = Config
    parts = name.split(".")
    for depth, part in enumerate(parts):
        known = getattr(model, "model_fields", {})
        if part not in known:
            prefix = ".".join(parts[:depth])
            allowed = [".".join([*parts[:depth], f]) for f in known] + [h for h in HIDDEN if h.startswith(f"{prefix}.")]
            raise SpaceError(f"space file {path}: params: {name[:100]!r} is not a config field "
                             f"({prefix or 'the config'} has no {part[:40]!r}); "
                             f"allowed: {', '.join(allowed) or 'nothing below ' + prefix}")
        model = known[part].annotation


def apply(base: dict, params: dict) -> dict:
    """The base config (a dict) with the trial's parameters set."""
    cfg = json.loads(json.dumps(base))
    for name, value in params.items():
        if name not in HIDDEN:
            set_path(cfg, name, value)
    if any(n in params for n in HIDDEN):
        layers = cfg["network"]["layers"]
        count = params.get("network.hidden_layers", len(layers) - 1)
        units = params.get("network.hidden_units", layers[0]["units"] if len(layers) > 1 else 16)
        act = params.get("network.hidden_activation", layers[0]["activation"] if len(layers) > 1 else "relu")
        cfg["network"]["layers"] = [{"units": units, "activation": act}] * count + [layers[-1]]
    return cfg


def _sampler(name: str, seed: int):
    if name not in SAMPLERS:
        raise ConfigError(f"sampler {name!r}; allowed: {', '.join(SAMPLERS)}")
    return optuna.samplers.TPESampler(seed=seed) if name == "tpe" else optuna.samplers.RandomSampler(seed=seed)


def _pruner(name: str):
    if name not in PRUNERS:
        raise ConfigError(f"pruner {name!r}; allowed: {', '.join(PRUNERS)}")
    return {"median": optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1),
            "halving": optuna.pruners.SuccessiveHalvingPruner(), "none": optuna.pruners.NopPruner()}[name]


def open_study(folder: Path, name: str, sampler: str, pruner: str, resume: bool, seed: int = 0) -> optuna.Study:
    check_name(name, "study name")  # it names the folder under tunes/: never a path
    if folder.exists() and not folder.is_dir():
        raise SnnError(f"{folder}: not a folder; help: give --out a new or existing folder")
    db = folder / "study.db"
    held = _studies_in(db) if os.path.lexists(db) else None
    if held is not None and not resume:
        raise SnnError(f"{folder} already holds a study; help: add --resume to go on, or pick another --study or --out")
    if resume and held is None:
        raise SnnError(f"{db}: nothing to resume")
    if resume and name not in held:
        raise SnnError(f"{db} holds no study {name!r}, only {', '.join(map(repr, held)) or 'none'}; "
                       "help: give --study the name of the study to resume")
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(storage=_storage_url(db), study_name=name, load_if_exists=resume,
                                    direction="minimize", sampler=_sampler(sampler, seed), pruner=_pruner(pruner))
    except sqlalchemy.exc.SQLAlchemyError as e:  # e.g. a read-only folder, or a database another process locks
        said = " ".join(str(getattr(e, "orig", None) or e).split())[:200]
        raise SnnError(f"{db}: the study cannot be opened ({said}); help: check the file and its folder's "
                       "permissions") from None
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        # Left behind by a killed tuner: record why, so that their points are run again.
        study._storage.set_trial_user_attr(t._trial_id, "error", INTERRUPTED)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return study


def _storage_url(db: Path) -> str:
    """The SQLAlchemy URL of the file ``db``, taken literally: ``?`` would start the URL's query (so
    ``--out 'x.db?a=b'`` once opened x.db) and ``#`` or ``%`` mean something too, so the path is quoted."""
    return "sqlite:///" + quote(str(db.absolute()), safe="/")


def _studies_in(db: Path) -> list[str]:
    """The names of the studies in ``db``: a regular file (never a link, a FIFO or a device) that is an
    SQLite database Optuna wrote; anything else is refused in one line, before Optuna or SQLAlchemy sees it."""
    info = os.lstat(db)
    if not stat.S_ISREG(info.st_mode):
        raise SnnError(f"{db}: not a regular file; help: --out names a folder whose study.db snn tune wrote")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(str(db.absolute()))}?mode=ro", uri=True)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"studies", "version_info"} <= tables:
                raise SnnError(f"{db}: an SQLite database, but not an Optuna study; help: --out names a folder "
                               "whose study.db snn tune wrote")
            return [row[0] for row in con.execute("SELECT study_name FROM studies ORDER BY study_id")]
    except sqlite3.Error as e:
        raise SnnError(f"{db}: not a study database ({e}); help: --out names a folder whose study.db snn tune "
                       "wrote, or a new one") from None


def _finished(study) -> list:
    return [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
            or (t.state == TrialState.FAIL and t.user_attrs.get("error") != INTERRUPTED)]


def plan_trials(study, space: Space, sampler: str, trials: int | None) -> int:
    """How many trials to launch now; for a grid, enqueue the points not yet finished."""
    done = _finished(study)
    if sampler != "grid":
        return max(0, (trials or 20) - len(done))
    seen = {json.dumps(t.params, sort_keys=True) for t in done}
    todo = [p for p in space.grid() if json.dumps(p, sort_keys=True) not in seen]
    for point in todo:
        study.enqueue_trial(point)
    return len(todo)


class TrialPruned(Exception):
    """The tuner asked this trial to stop."""


@function_kind("trial")
def run_trial(ev: TrialEvent, io, keys):
    """One hyperparameter trial, as a function: a whole training, reporting its validation cost every epoch."""
    from . import run as run_module

    cfg = parse_config(ev.config, f"trial {ev.step}")
    reports, prune = (keys.out(ev.step, "trial", 0, 0, n) for n in ("reports", "prune"))
    best = {"best_val_cost": float("inf"), "best_val_accuracy": None, "best_epoch": 0, "epochs": 0}

    def on_epoch(record):
        best["epochs"] = record["epoch"]
        if record["val_cost"] < best["best_val_cost"]:
            best.update(best_val_cost=record["val_cost"], best_val_accuracy=record["val_accuracy"],
                        best_epoch=record["epoch"])
        push_json(io.store, reports, {"epoch": record["epoch"], "val_cost": record["val_cost"]})
        if io.store.get_many([prune])[0] is not None:
            raise TrialPruned

    started = time.time()
    try:
        run_module.train(cfg, ev.data_root, save=False, on_epoch=on_epoch)
        pruned = False
    except TrialPruned:
        pruned = True
    return {**best, "pruned": pruned, "seconds": time.time() - started}


def run_study(study, space: Space, base: dict, n: int, parallel: int, engine_config, data_root=None,
              on_trial=None) -> None:
    """Launch ``n`` trials, ``parallel`` at a time; feed reports to the pruner; tell the results."""
    run = uuid.uuid4().hex
    keys = Keys(run)
    with runtime_session(engine_config, inline=False) as (engine, store):
        running: dict = {}
        launched = 0
        while launched < n or running:
            while len(running) < parallel and launched < n:
                trial = study.ask(space.distributions)
                event = TrialEvent(store=store.url, run=run, ttl=None, step=trial.number,
                                   config=apply(base, trial.params),
                                   data_root=None if data_root is None else str(data_root))
                (handle,) = engine.submit([event.to_json()])
                running[handle] = trial
                launched += 1
            done = engine.wait(list(running), 0.05)
            for trial in running.values():
                _report(study, trial, store, keys)
            for handle in done:
                trial = running.pop(handle)
                _report(study, trial, store, keys)
                _tell(study, trial, engine.outcome(handle))
                store.delete([keys.out(trial.number, "trial", 0, 0, n) for n in ("reports", "prune", "done")])
                if on_trial:
                    on_trial(study.trials[trial.number])


def _report(study, trial, store, keys):
    for r in drain_json(store, keys.out(trial.number, "trial", 0, 0, "reports")):
        trial.report(r["val_cost"], r["epoch"])
        if trial.should_prune():
            store.overwrite(keys.out(trial.number, "trial", 0, 0, "prune"), b"1", 3600)


def _tell(study, trial, outcome):
    if isinstance(outcome, BaseException):
        trial.set_user_attr("error", f"{type(outcome).__name__}: {outcome}")
        study.tell(trial, state=TrialState.FAIL)
        return
    for key in ("best_val_accuracy", "best_epoch", "epochs", "seconds"):
        trial.set_user_attr(key, outcome[key])
    if outcome["pruned"]:
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, outcome["best_val_cost"])


TRIAL_FIELDS = ("number", "state", "best_val_cost", "best_val_accuracy", "best_epoch", "epochs", "seconds", "error")


def trials_csv(study) -> str:
    names = sorted({n for t in study.trials for n in t.params})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*TRIAL_FIELDS, *names])
    for t in study.trials:
        a = t.user_attrs
        writer.writerow([t.number, t.state.name.lower(), "" if t.value is None else repr(t.value),
                         a.get("best_val_accuracy", ""), a.get("best_epoch", ""), a.get("epochs", ""),
                         a.get("seconds", ""), a.get("error", ""), *(t.params.get(n, "") for n in names)])
    return out.getvalue()


def finish(study, base: dict, folder: Path, data_root=None) -> dict:
    """trials.csv, plots, the best config, and the best model (retrained, then tested once)."""
    from .run import train

    write_text(folder / "trials.csv", trials_csv(study))
    plots = write_plots(study, folder)
    completed = [t for t in study.trials if t.state == TrialState.COMPLETE]
    if not completed:
        raise SnnError(f"no trial of study {study.study_name!r} completed; see {folder / 'trials.csv'}")
    best = study.best_trial
    config = apply(base, best.params)
    write_json(folder / "best_config.json", config)
    # Retraining is exact: a trial's training is deterministic given its config and seed.
    # best/ is this tune folder's own: a resumed study replaces it with the best trial now.
    run = train(parse_config(config, "best config"), data_root, folder / "best", force=True)
    summary = {"study": study.study_name, "trials": len(study.trials),
               "completed": len(completed), "pruned": sum(t.state == TrialState.PRUNED for t in study.trials),
               "failed": sum(t.state == TrialState.FAIL for t in study.trials), "best_trial": best.number,
               "best_params": best.params, "best_val_cost": best.value,
               "best_val_accuracy": best.user_attrs.get("best_val_accuracy"),
               "test_accuracy": run.summary.get("test_accuracy"), "plots": plots}
    write_json(folder / "tune.json", summary)
    return summary


def write_plots(study, folder: Path) -> dict:
    """Optimisation history, parameter importances, parallel coordinates, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    made = {}
    for name, plot in (("history", vis.plot_optimization_history), ("importances", vis.plot_param_importances),
                       ("parallel", vis.plot_parallel_coordinate)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ax = plot(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:
            made[name] = f"not drawn: {e}"  # e.g. importances need two completed trials and a varying parameter
            continue
        fig = (ax[0] if hasattr(ax, "__len__") else ax).figure
        fig.set_size_inches(8, 4.5)
        fig.savefig(folder / f"{name}.png", dpi=100, bbox_inches="tight")
        plt.close(fig)
        made[name] = f"{name}.png"
    return made


def base_config(path: str | Path) -> dict:
    """The base config as a dict (validated now, so a bad file fails before any trial)."""
    cfg = load_config(path)
    if not cfg.data.validation_split:
        raise ConfigError(f"{path}: tuning selects by validation cost; set data.validation_split > 0 "
                          "(the test set is never used to choose)")
    return cfg.model_dump(mode="json")
