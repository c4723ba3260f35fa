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
(SQLite), so ``--resume`` goes on after a crash without repeating finished trials.
Selection uses the validation split only; the best configuration is retrained once at
the end, and only then is its test accuracy looked at.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from .config import load_config, parse_config, set_path
from .errors import ConfigError, SnnError
from .files import write_json, write_text
from .runtime.codec import decode_json
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
            raise ConfigError(f"a grid needs a list of choices for every parameter; ranges given for: {', '.join(ranged)}")
        names = list(self.distributions)
        return [dict(zip(names, values)) for values in itertools.product(*(self.distributions[n].choices for n in names))]


def load_space(path: str | Path, seeds: int | None = None) -> Space:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) if path.suffix in (".yaml", ".yml") else json.loads(path.read_text())
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as e:
        raise ConfigError(f"space file {path}: cannot be read ({e})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("params"), dict) or not raw["params"]:
        raise ConfigError(f"space file {path}: needs a 'params' mapping of config fields to choices or ranges")
    dists = {name: _distribution(path, name, spec) for name, spec in raw["params"].items()}
    k = seeds if seeds is not None else raw.get("seeds")
    if k:
        dists["training.seed"] = CategoricalDistribution(list(range(1, int(k) + 1)))
    return Space(dists)


def _distribution(path, name, spec):
    if isinstance(spec, list) and spec:
        return CategoricalDistribution(spec)
    if isinstance(spec, dict) and "choices" in spec:
        return CategoricalDistribution(list(spec["choices"]))
    if isinstance(spec, dict) and {"low", "high"} <= set(spec):
        low, high = spec["low"], spec["high"]
        if all(isinstance(v, int) for v in (low, high)) and not spec.get("log_float"):
            return IntDistribution(low, high, step=spec.get("step", 1), log=bool(spec.get("log")))
        return FloatDistribution(float(low), float(high), log=bool(spec.get("log")), step=spec.get("step"))
    raise ConfigError(f"space file {path}: {name}: give a list of choices or {{low, high[, log, step]}}; got {spec!r}")


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
    db = folder / "study.db"
    if db.exists() and not resume:
        raise SnnError(f"{folder} already holds a study; help: add --resume to go on, or pick another --study or --out")
    if resume and not db.exists():
        raise SnnError(f"{db}: nothing to resume")
    folder.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=f"sqlite:///{db}", study_name=name, load_if_exists=resume,
                                direction="minimize", sampler=_sampler(sampler, seed), pruner=_pruner(pruner))
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        # Left behind by a killed tuner: record why, so that their points are run again.
        study._storage.set_trial_user_attr(t._trial_id, "error", INTERRUPTED)
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return study


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


def run_study(study, space: Space, base: dict, n: int, parallel: int, engine_config, data_root=None,
              on_trial=None) -> None:
    """Launch ``n`` trials, ``parallel`` at a time; feed reports to the pruner; tell the results."""
    from .run import runtime_session

    run = uuid.uuid4().hex
    keys = Keys(run)
    with runtime_session(engine_config, inline=False) as (engine, store):
        running: dict = {}
        launched = 0
        while launched < n or running:
            while len(running) < parallel and launched < n:
                trial = study.ask(space.distributions)
                event = {"kind": "trial", "store": store.url, "run": run, "step": trial.number, "layer": 0,
                         "unit": 0, "config": apply(base, trial.params),
                         "data_root": None if data_root is None else str(data_root)}
                (handle,) = engine.submit([event])
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
    for raw in store.drain(keys.out(trial.number, "trial", 0, 0, "reports")):
        r = decode_json(raw)
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
    run = train(parse_config(config, "best config"), data_root, folder / "best")
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
