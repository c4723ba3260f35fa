"""``snn report RUN_DIR``: one self-contained HTML page about a run, and its figures as PNG.

Sections: the architecture (each layer's type, output shape and parameters, and a
convolutional network's first filters as an image); the cost curve; train, validation and test accuracy; the test confusion
matrix with precision, recall (sensitivity) and specificity; the mislabeled test
examples (a grid of images, or a scatter plot for 2-D points); training seen from inside
(each layer's neurons: weight and gradient norms, mean activation, dead or saturated share
over the epochs, flagged units, and the first layer's weights at a few epochs); the
invocation timeline; the run's counters and, for runs with a ledger, the modelled Lambda cost.

Every file of the run folder is read as untrusted input: a missing or malformed one
is a ``RunFolderError`` (or the model's ``ModelFileError``, the dataset's ``DataError``)
of one line.
"""

from __future__ import annotations

import base64
import csv
import html
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pydantic import BaseModel, ConfigDict, Field, ValidationError  # noqa: E402

from .data import check_splits, load_dataset  # noqa: E402
from .documents import read_document  # noqa: E402
from .errors import DataError, RunFolderError  # noqa: E402
from .files import atomic_path, read_table, write_text  # noqa: E402
from .metrics import accuracy, confusion_matrix, per_class, regression_scores  # noqa: E402
from .documents import regular_size, schema_problem  # noqa: E402
from .model import load_model  # noqa: E402
from .run import as_trained  # noqa: E402
from .runtime.checkpoint import HistoryRecord  # noqa: E402
from .telemetry import METRICS, RECTIFIED, Telemetry, evenly, neuron_layers, read_telemetry  # noqa: E402
from .timeline import lanes_json, read_invocations  # noqa: E402
from .trace import load_records  # noqa: E402

SECTIONS = ("architecture", "cost", "accuracy", "confusion", "mislabeled", "telemetry", "timeline", "counters")
REGRESSION_SECTIONS = ("architecture", "cost", "fit", "telemetry", "timeline", "counters")
PLOTS = ("history", "importances", "parallel")  # the figures of a tune folder
MAX_TABLE_BYTES = 256 << 20  # history.csv of a very long run; trials.csv of a very long study
MAX_SUMMARY_BYTES = 1 << 20
MAX_FILTERS = 64  # drawn of the first convolution: enough to see what it looks for
TIMELINE_BINS = 900
PHASE_COLOURS = {"forward": "tab:blue", "backward": "tab:orange", "loss": "tab:green"}
REPLAYED_EPOCHS, REPLAYED_UNITS = 4, 8  # the first layer's weights drawn: these many epochs of these many units
METRIC_TITLES = {"weight_norm": "weight norm", "grad_norm": "gradient norm", "mean_activation": "mean activation",
                 "inactive": "dead fraction", "saturated": "saturated fraction"}


class RunSummary(BaseModel):
    """The fields of ``summary.json`` a report uses; the others are shown as they are."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    name: Optional[str] = Field(None, max_length=200)
    dataset: str = Field(min_length=1, max_length=4096)
    epochs: int = Field(ge=0)
    test_accuracy: Optional[float] = Field(None, ge=0, le=1)
    wall_seconds: float = Field(0.0, ge=0)


class TuneSummary(BaseModel):
    """The fields of ``tune.json`` a report uses."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False)

    study: str = Field(max_length=200)
    plots: dict[str, str] = Field(max_length=len(PLOTS))


def _not_a_run(run_dir: Path, missing: str) -> RunFolderError:
    return RunFolderError(f"{run_dir}: no {missing}, so not a run folder that training finished; help: give the "
                          "folder `snn train --out` wrote (resume an unfinished one first), or a tune folder")


def _table(path: Path, read=read_table):
    """A CSV of the folder as ``read`` returns it, bounded in size; a ``RunFolderError`` if it cannot be read."""
    if regular_size(path, RunFolderError) > MAX_TABLE_BYTES:
        raise RunFolderError(f"{path}: larger than {MAX_TABLE_BYTES} bytes; it is not one snn wrote")
    try:
        return read(path)
    # Past the size and encoding, a ledger changed by hand fails in its own reader's arithmetic.
    except (OSError, ValueError, csv.Error, KeyError, TypeError) as e:
        raise RunFolderError(f"{path}: not a table snn wrote ({type(e).__name__}: "
                             f"{' '.join(str(e).split())[:200]})") from None


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def _history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.csv"
    if not path.exists():
        raise _not_a_run(run_dir, "history.csv")
    rows = _table(path)
    if not rows:
        raise RunFolderError(f"{path}: no epochs; help: a run folder's history holds one line per epoch")
    try:
        return [HistoryRecord.model_validate(row, strict=False).model_dump() for row in rows]
    except ValidationError as e:
        raise RunFolderError(f"{path}: {schema_problem(e)}") from None


def _summary(run_dir: Path, model: type[BaseModel], name: str) -> BaseModel:
    path = run_dir / name
    if not path.exists():
        raise _not_a_run(run_dir, name)
    raw = read_document(path, "run summary", RunFolderError, MAX_SUMMARY_BYTES)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise RunFolderError(f"{path}: {schema_problem(e)}") from None


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def cost_figure(history, path):
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.plot([r["epoch"] for r in history], [r["cost"] for r in history], label="train cost")
    if history[0].get("val_cost") is not None:
        ax.plot([r["epoch"] for r in history], [r["val_cost"] for r in history], label="validation cost")
    ax.set_xlabel("epoch"), ax.set_ylabel("cost"), ax.legend(), ax.grid(alpha=0.3)
    return _save(fig, path)


def accuracy_figure(history, test_accuracy, path):
    fig, ax = plt.subplots(figsize=(7, 3.2))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_accuracy"] for r in history], label="train (during the epoch)")
    if history[0].get("val_accuracy") is not None:
        ax.plot(epochs, [r["val_accuracy"] for r in history], label="validation")
    if test_accuracy is not None:
        ax.axhline(test_accuracy, color="black", linestyle="--", label=f"test, at the end: {test_accuracy:.4f}")
    ax.set_xlabel("epoch"), ax.set_ylabel("accuracy"), ax.set_ylim(0, 1.02), ax.legend(), ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion_figure(C, classes, path):
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(classes), 1 + 0.5 * len(classes)))
    ax.imshow(C, cmap="Blues")
    for (i, j), v in np.ndenumerate(C):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > C.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right"), ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted"), ax.set_ylabel("true")
    return _save(fig, path)


def mislabeled_figure(images, predicted, true, classes, path, limit=16):
    n = min(limit, len(images))
    cols = min(8, max(1, n))
    rows = max(1, -(-n // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img, p, t in zip(axes.ravel(), images[:n], predicted[:n], true[:n]):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        ax.set_title(f"predicted {classes[p]}\ntrue {classes[t]}", fontsize=7)
    if n == 0:
        axes[0, 0].text(0.5, 0.5, "no mislabeled test images", ha="center")
    return _save(fig, path)


def mislabeled_points_figure(points, predicted, true, classes, path):
    """2-D inputs: every test point in the colour of its class, the mislabeled ones crossed out."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for k, name in enumerate(classes):
        mine = true == k
        ax.scatter(points[mine, 0], points[mine, 1], s=12, alpha=0.6, label=f"class {name}")
    wrong = predicted != true
    ax.scatter(points[wrong, 0], points[wrong, 1], s=60, marker="x", color="black",
               label=f"mislabeled ({int(wrong.sum())})")
    ax.set_xlabel("input 1"), ax.set_ylabel("input 2"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
    return _save(fig, path)


def mislabeled_section(model, x_test, y_test, pred, path) -> tuple[Optional[Path], str]:
    """The figure that suits the inputs, and what it shows: images, 2-D points, or nothing to draw."""
    wrong = np.flatnonzero(pred != y_test)
    if model.preprocessing.kind == "image" and x_test.ndim in (3, 4):
        return mislabeled_figure(x_test[wrong], pred[wrong], y_test[wrong], model.classes, path), "images"
    if model.spec.n_input == 2:
        return mislabeled_points_figure(x_test.reshape(len(x_test), 2), pred, y_test, model.classes, path), "points"
    return None, "examples"


def fit_figure(y: np.ndarray, values: np.ndarray, targets, path: Path, most: int = 4) -> Path:
    """A regression's predicted values against the true ones, a panel per target (the first ``most``)."""
    k = min(len(targets), most)
    fig, axes = plt.subplots(1, k, figsize=(4 * k, 3.8), squeeze=False)
    for j, ax in enumerate(axes[0]):
        ax.scatter(y[:, j], values[:, j], s=10, alpha=0.6)
        lo, hi = min(y[:, j].min(), values[:, j].min()), max(y[:, j].max(), values[:, j].max())
        ax.plot([lo, hi], [lo, hi], color="black", linestyle="--", linewidth=1, label="predicted = true")
        ax.set_xlabel(f"true {targets[j]}"), ax.set_ylabel("predicted"), ax.legend(fontsize=7), ax.grid(alpha=0.3)
    return _save(fig, path)


def filters_figure(kernels: np.ndarray, path: Path) -> Path:
    """A convolution's filters ``(F, C, k, k)``, one tile each on one shared scale (so their strengths compare):
    in colour for 3 input channels (RGB), else the mean over channels, blue below zero and red above."""
    kernels = kernels[:MAX_FILTERS]
    cols = min(8, len(kernels))
    rows = -(-len(kernels) // cols)
    top = float(np.abs(kernels).max()) or 1.0
    fig, axes = plt.subplots(rows, cols, figsize=(1.1 * cols, 1.25 * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for f, (ax, kernel) in enumerate(zip(axes.ravel(), kernels)):
        if kernel.shape[0] == 3:
            ax.imshow(kernel.transpose(1, 2, 0) / (2 * top) + 0.5)
        else:
            ax.imshow(kernel.mean(axis=0), cmap="RdBu_r", vmin=-top, vmax=top)
        ax.set_title(f"filter {f}", fontsize=7)
    return _save(fig, path)


def first_filters(model) -> np.ndarray | None:
    """The kernels of the network's first convolution, or None if it has none."""
    for layer, tensors in zip(model.spec.built, model.params.layers):
        if layer.spec.kind == "conv2d":
            return tensors["W"]
    return None


def telemetry_figure(t: Telemetry, spec, path: Path) -> Path:
    """Small multiples: a row per layer with neurons, a panel per metric, a line per neuron; flagged ones in red."""
    layers, flags = neuron_layers(spec), t.flags(spec)
    fig, axes = plt.subplots(len(layers), 4, figsize=(12, 2.1 * len(layers)), squeeze=False)
    for row, (l, layer) in zip(axes, layers):
        flagged = set(flags[l]["dead"] + flags[l]["saturated"])
        fourth = "inactive" if layer.activation.name in RECTIFIED else "saturated"
        for ax, metric in zip(row, METRICS[:3] + (fourth,)):
            values = t.metric(l, metric)
            for u in sorted(range(values.shape[1]), key=lambda u: u in flagged):  # flagged ones on top
                red = u in flagged
                ax.plot(t.epochs, values[:, u], color="#d00000" if red else "#1f3b57", lw=1.6 if red else 0.7,
                        alpha=1 if red else 0.5)
            ax.set_title(f"layer {l} ({layer.activation.name}): {METRIC_TITLES[metric]}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if metric == fourth:
                ax.set_ylim(-0.02, 1.02)
    for ax in axes[-1]:
        ax.set_xlabel("epoch", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def weights_figure(t: Telemetry, shape: tuple[int, ...], path: Path) -> Path:
    """The first layer's weights as images of the input's shape, at a few epochs (rows) for its first units, and
    in a last row what training changed in them (random initial weights hide it), each from its least to most."""
    rows, units = evenly(len(t.snapshot_epochs), REPLAYED_EPOCHS), min(REPLAYED_UNITS, t.snapshots.shape[1])
    first, last = t.snapshot_epochs[0], t.snapshot_epochs[-1]
    shown = [(t.snapshots[k], f"epoch {t.snapshot_epochs[k]}") for k in rows]
    shown.append((t.snapshots[-1].astype(np.float32) - t.snapshots[0], f"change {first}-{last}"))
    fig, axes = plt.subplots(len(shown), units, figsize=(1.2 * units, 1.35 * len(shown)), squeeze=False)
    for ax_row, (W, title) in zip(axes, shown):
        for u, ax in enumerate(ax_row):
            w = W[u].astype(np.float64)
            ax.imshow(((w - w.min()) / (np.ptp(w) or 1)).reshape(shape), cmap="gray")
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{title}, unit {u}", fontsize=5.5)
    return _save(fig, path)


def telemetry_section(t: Telemetry | None, model, paths: dict) -> str:
    """What the telemetry section says: the samples, the flagged units, and its figures."""
    if t is None:
        return "<p>No telemetry in this run (training.telemetry_every was 0, or snn did not record it yet).</p>"
    flagged = [f"layer {l}: {what} units {', '.join(map(str, units))}"
               for l, kinds in t.flags(model.spec).items() for what, units in kinds.items() if units]
    text = (f"<p>{len(t.epochs)} samples from epoch {t.epochs[0]} to {t.epochs[-1]}, each on the same {t.examples} "
            f"training examples. Flagged at the last sample: {html.escape('; '.join(flagged) or 'none')}.</p>")
    weights = "" if paths["weights"] is None else \
        f"<h3>The first layer's weights over the epochs</h3>{_img(paths['weights'], 'first-layer weights')}"
    return f"{text}{_img(paths['telemetry'], 'telemetry per layer')}{weights}"


def timeline_figure(run_dir: Path, n_layers: int, path: Path) -> Path:
    """The ledger as the page draws it: a lane per (phase, layer), its occupancy over time on its own scale
    (the 98th percentile of its busy bins fills a lane), so 167,500 invocations are not one solid bar."""
    lanes = {"lanes": []}
    if (run_dir / "invocations.csv").exists():
        lanes = lanes_json(read_invocations(run_dir / "invocations.csv"), None, None, TIMELINE_BINS, n_layers)
    fig, ax = plt.subplots(figsize=(9, 0.45 * max(2, len(lanes["lanes"])) + 0.8))
    if lanes["lanes"]:
        t0, t1 = lanes["seconds"]
        x = np.linspace(t0, t1, lanes["bins"] + 1)[:-1] + (t1 - t0) / lanes["bins"] / 2
        for k, lane in enumerate(lanes["lanes"]):
            occupancy = np.asarray(lane["occupancy"])
            top = np.percentile(occupancy[occupancy > 0], 98) if (occupancy > 0).any() else 1
            ax.fill_between(x, -k, -k + 0.85 * np.minimum(1, occupancy / top), step="mid", lw=0,
                            color=PHASE_COLOURS.get(lane["phase"], "tab:gray"))
        ax.set_yticks([-k + 0.4 for k in range(len(lanes["lanes"]))],
                      [f"{lane['label']} ({lane['invocations']})" for lane in lanes["lanes"]], fontsize=7)
        ax.set_ylim(-len(lanes["lanes"]) + 0.9, 1)
        ax.set_xlim(t0, t1)
    ax.set_xlabel("seconds since the first invocation (a lane's height: its invocations running at once)")
    return _save(fig, path)


def write_tune_report(folder: Path) -> Path:
    """The report of a tune folder: the study's summary, its plots, and every trial."""
    summary = _summary(folder, TuneSummary, "tune.json")
    rows = _table(folder / "trials.csv", _rows)
    head, rows = (rows[0], rows[1:]) if rows else ([], [])
    e = html.escape
    table = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    heads = "".join(f"<th>{e(c)}</th>" for c in head)
    plots = "".join(f'<section id="{e(name)}"><h2>{e(name)}</h2>{_plot(folder, name, made)}</section>'
                    for name, made in summary.plots.items())
    facts = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>"
                    for k, v in summary.model_dump().items() if k != "plots")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>snn tune: {e(summary.study)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:0.85em}}img{{max-width:100%}}</style></head><body>
<h1>Study {e(summary.study)}</h1><section id="summary"><table>{facts}</table></section>{plots}
<section id="trials"><h2>Trials</h2><table><tr>{heads}</tr>{table}</table></section></body></html>
"""
    write_text(folder / "report.html", page)
    return folder / "report.html"


def _plot(folder: Path, name: str, made: str) -> str:
    """A tune plot: only ``NAME.png`` of a known plot, in the folder itself, is ever read; else the text given."""
    if name in PLOTS and made == f"{name}.png" and (folder / made).is_file():
        return _img(folder / made, name)
    return f"<p>{html.escape(made)}</p>"


def write_report(run_dir: str | Path, data_root=None) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunFolderError(f"{run_dir}: no such folder; help: give the folder `snn train --out` wrote, or a tune "
                             "folder")
    if (run_dir / "tune.json").exists():
        return write_tune_report(run_dir)
    history = _history(run_dir)
    summary = _summary(run_dir, RunSummary, "summary.json")
    model = load_model(run_dir)
    split, x, y = _evaluation_split(run_dir, summary.dataset, data_root, model)
    figures = run_dir / "report"
    if figures.is_symlink() or (figures.exists() and not figures.is_dir()):
        # A link would send the figures, and the writes over what is there, out of the run folder.
        raise RunFolderError(f"{figures}: not a folder of the run's own (a link or a file); help: remove it, "
                             "and `snn report` writes its figures there")
    figures.mkdir(exist_ok=True)
    records = _records(run_dir)
    kernels = first_filters(model)
    telemetry = read_telemetry(run_dir, model.spec, model.preprocessing.kind == "image")
    replayed = telemetry is not None and telemetry.snapshots is not None
    paths = {
        "telemetry": None if telemetry is None else telemetry_figure(telemetry, model.spec, figures / "telemetry.png"),
        "weights": weights_figure(telemetry, model.preprocessing.shape, figures / "weights.png") if replayed else None,
        "filters": None if kernels is None else filters_figure(kernels, figures / "filters.png"),
        "cost": cost_figure(history, figures / "cost.png"),
        "timeline": timeline_figure(run_dir, len(model.spec.built), figures / "timeline.png"),
    }
    evaluate = _regression_sections if model.task == "regression" else _classifier_sections
    headline, sections = evaluate(model, history, summary, split, x, y, figures)
    facts = summary.model_dump()
    counters = {k: facts[k] for k in ("epochs", "final_cost", "train_accuracy", "val_accuracy", "test_accuracy",
                                      "granularity", "engine", "invocations", "retries", "duplicates_suppressed",
                                      "lost_and_retried", "wall_seconds") if facts.get(k) is not None}
    if records:
        from .cost import lambda_cost

        counters["modelled_lambda_usd (1769 MB, x86)"] = lambda_cost(records, summary.wall_seconds).total_usd
    page = _html(run_dir, facts, paths, counters, headline, sections, _architecture(model, paths["filters"]),
                 telemetry_section(telemetry, model, paths))
    write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def _evaluation_split(run_dir: Path, name: str, data_root, model) -> tuple[str, np.ndarray, np.ndarray]:
    """The split a report scores, checked against the model: the test split, else the validation rows the
    run held out, else the rows it trained on (a CSV is all training rows)."""
    try:
        ds = as_trained(check_splits(load_dataset(name, data_root), model.spec.n_input, len(model.classes)),
                        model.summary)
    except DataError as e:
        raise DataError(f"{run_dir}: the run's dataset cannot be used to report on: {e}") from None
    for split, x, y in (("test", ds.x_test, ds.y_test), ("validation", ds.x_val, ds.y_val),
                        ("train", ds.x_train, ds.y_train)):
        if x is not None and y is not None and len(y):
            return split, x, y
    raise DataError(f"dataset {name!r} has no examples to report on")


def _classifier_sections(model, history, summary, split, x, y, figures) -> tuple[str, str]:
    """The headline and the accuracy, confusion and mislabeled sections, on ``split``."""
    e = html.escape
    pred = model.predict_raw(x)
    C = confusion_matrix(y, pred, len(model.classes))
    stats = per_class(C)
    mislabeled, shown = mislabeled_section(model, x, y, pred, figures / "mislabeled.png")
    accuracy_png = accuracy_figure(history, summary.test_accuracy, figures / "accuracy.png")
    confusion_png = confusion_figure(C, model.classes, figures / "confusion.png")
    n_wrong = int((pred != y).sum())
    rows = "".join(
        f"<tr><td>{e(c)}</td><td>{stats['precision'][i]:.4f}</td><td>{stats['recall'][i]:.4f}</td>"
        f"<td>{stats['recall'][i]:.4f}</td><td>{stats['specificity'][i]:.4f}</td></tr>"
        for i, c in enumerate(model.classes))
    drawn = (_img(mislabeled, f"mislabeled {shown}") if mislabeled else
             f"<p>Not drawn: the inputs are neither images nor 2-D points ({n_wrong} of {len(y)} mislabeled).</p>")
    sections = f"""<section id="accuracy"><h2>Accuracy</h2>{_img(accuracy_png, 'accuracy curves')}</section>
<section id="confusion"><h2>Confusion matrix ({split})</h2>{_img(confusion_png, 'confusion matrix')}
<table><tr><th>class</th><th>precision</th><th>recall</th><th>sensitivity</th><th>specificity</th></tr>{rows}</table>
</section>
<section id="mislabeled"><h2>Mislabeled {split} {shown} ({n_wrong})</h2>{drawn}</section>"""
    return f"{split} accuracy {accuracy(y, pred):.4f} on {len(y)} examples", sections


def _regression_sections(model, history, summary, split, x, y, figures) -> tuple[str, str]:
    """The headline and the fit section: predicted against true values, and each target's errors, on ``split``."""
    e = html.escape
    values = model.predict_proba(model.preprocessing.columns(x, model.dtype)).T
    scores = regression_scores(y, values)
    fit_png = fit_figure(np.asarray(y, dtype=np.float64), values, model.classes, figures / "fit.png")
    rows = "".join(f"<tr><td>{e(t)}</td>" + "".join(f"<td>{scores[k][j]:.6g}</td>" for k in ("mse", "mae", "r2"))
                   + "</tr>" for j, t in enumerate(model.classes))
    sections = f"""<section id="fit"><h2>Predicted against true ({split})</h2>{_img(fit_png, 'predicted against true')}
<table><tr><th>target</th><th>MSE</th><th>MAE</th><th>R^2</th></tr>{rows}</table></section>"""
    r2 = ", ".join(f"{t} {scores['r2'][j]:.4f}" for j, t in enumerate(model.classes))
    return f"{split} R^2 {r2} on {len(y)} examples", sections


def _records(run_dir: Path) -> list[dict]:
    """The invocation ledger, if the run has one."""
    path = run_dir / "invocations.csv"
    if not path.exists():
        return []
    return load_records(run_dir)


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _architecture(model, filters: Path | None) -> str:
    """The layers as a table (the input first), and the first convolution's filters if there is one."""
    spec, x = model.spec, "x".join
    rows = [f"<tr><td>input</td><td></td><td>{x(map(str, spec.input_shape))}</td><td></td><td></td></tr>"]
    rows += [f"<tr><td>{l}</td><td>{html.escape(layer.spec.kind)}</td><td>{x(map(str, layer.out_shape))}</td>"
             f"<td>{html.escape(layer.activation.name)}</td><td>{layer.n_params}</td></tr>"
             for l, layer in enumerate(spec.built, start=1)]
    head = "<tr><th>layer</th><th>type</th><th>output</th><th>activation</th><th>parameters</th></tr>"
    drawn = "" if filters is None else f"<h3>First convolution's filters</h3>{_img(filters, 'first filters')}"
    return (f"<table>{head}{''.join(rows)}</table><p>loss {html.escape(spec.loss)}, {spec.n_params} parameters"
            f"</p>{drawn}")


def _html(run_dir, summary, paths, counters, headline, evaluation, architecture, telemetry) -> str:
    e = html.escape
    facts = "".join(f"<tr><td>{e(k)}</td><td>{e(f'{v:.6g}' if isinstance(v, float) else str(v))}</td></tr>"
                    for k, v in counters.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>snn report: {e(summary['name'] or run_dir.name)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>Run {e(summary['name'] or run_dir.name)}</h1>
<p>{e(summary['dataset'])}, {summary['epochs']} epochs; {e(headline)}.</p>
<section id="architecture"><h2>Architecture</h2>{architecture}</section>
<section id="cost"><h2>Cost</h2>{_img(paths['cost'], 'cost curve')}</section>
{evaluation}
<section id="telemetry"><h2>Training, seen from inside</h2>{telemetry}</section>
<section id="timeline"><h2>Invocation timeline</h2>{_img(paths['timeline'], 'invocation timeline')}</section>
<section id="counters"><h2>Counters</h2><table>{facts}</table></section>
</body></html>
"""
