"""``snn report RUN_DIR``: one self-contained HTML page about a run, and its figures as PNG.

Sections: the cost curve; train, validation and test accuracy; the test confusion
matrix with precision, recall (sensitivity) and specificity; a grid of mislabeled test
images; the invocation timeline; the run's counters and, for runs with a ledger, the
modelled Lambda cost.
"""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a window
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .data import load_dataset  # noqa: E402
from .errors import SnnError  # noqa: E402
from .files import atomic_path, read_table, write_text  # noqa: E402
from .metrics import accuracy, confusion_matrix, per_class  # noqa: E402
from .model import load_model  # noqa: E402
from .trace import load_records  # noqa: E402

SECTIONS = ("cost", "accuracy", "confusion", "mislabeled", "timeline", "counters")


def _history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.csv"
    if not path.exists():
        raise SnnError(f"{run_dir}: no history.csv; is this a run folder?")
    return read_table(path)


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


def timeline_figure(records, path):
    fig, ax = plt.subplots(figsize=(8, 3))
    ok = [r for r in records if r["status"] == "ok"]
    if ok:
        workers = sorted({r["worker"] for r in ok})
        t0 = min(r["sent"] for r in ok)
        for r in ok:
            colour = "tab:orange" if r["duplicate"] else ("tab:red" if r["attempt"] else "tab:blue")
            ax.barh(workers.index(r["worker"]), r["end"] - r["start"], left=r["start"] - t0, color=colour, height=0.8)
        ax.set_yticks(range(len(workers)), [":".join(w.split(":")[-2:]) for w in workers], fontsize=7)
    ax.set_xlabel("seconds (blue: first attempt, red: retry, orange: duplicate)")
    return _save(fig, path)


def write_tune_report(folder: Path) -> Path:
    """The report of a tune folder: the study's summary, its plots, and every trial."""
    import csv

    summary = json.loads((folder / "tune.json").read_text())
    with open(folder / "trials.csv", newline="") as f:
        rows = list(csv.reader(f))
    e = html.escape
    table = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    head = "".join(f"<th>{e(c)}</th>" for c in rows[0])
    plots = "".join(f'<section id="{name}"><h2>{e(name)}</h2>'
                    + (_img(folder / made, name) if made.endswith(".png") else f"<p>{e(made)}</p>") + "</section>"
                    for name, made in summary["plots"].items())
    facts = "".join(f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in summary.items() if k != "plots")
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>snn tune: {e(summary['study'])}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:0.85em}}img{{max-width:100%}}</style></head><body>
<h1>Study {e(summary['study'])}</h1><section id="summary"><table>{facts}</table></section>{plots}
<section id="trials"><h2>Trials</h2><table><tr>{head}</tr>{table}</table></section></body></html>
"""
    write_text(folder / "report.html", page)
    return folder / "report.html"


def write_report(run_dir: str | Path, data_root=None) -> Path:
    run_dir = Path(run_dir)
    if (run_dir / "tune.json").exists():
        return write_tune_report(run_dir)
    model = load_model(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    history = _history(run_dir)
    figures = run_dir / "report"
    figures.mkdir(exist_ok=True)
    ds = load_dataset(summary["dataset"], data_root)
    if ds.x_test is None:
        raise SnnError(f"dataset {summary['dataset']!r} has no test split to report on")
    pred = model.predict_raw(ds.x_test)
    C = confusion_matrix(ds.y_test, pred, len(model.classes))
    stats = per_class(C)
    wrong = np.flatnonzero(pred != ds.y_test)
    records = load_records(run_dir) if (run_dir / "invocations.csv").exists() else []
    paths = {
        "cost": cost_figure(history, figures / "cost.png"),
        "accuracy": accuracy_figure(history, summary.get("test_accuracy"), figures / "accuracy.png"),
        "confusion": confusion_figure(C, model.classes, figures / "confusion.png"),
        "mislabeled": mislabeled_figure(ds.x_test[wrong], pred[wrong], ds.y_test[wrong], model.classes,
                                        figures / "mislabeled.png"),
        "timeline": timeline_figure(records, figures / "timeline.png"),
    }
    counters = {k: summary[k] for k in ("epochs", "final_cost", "train_accuracy", "val_accuracy", "test_accuracy",
                                        "granularity", "engine", "invocations", "retries", "duplicates_suppressed",
                                        "lost_and_retried", "wall_seconds") if k in summary}
    if records:
        from .cost import lambda_cost

        counters["modelled_lambda_usd (1769 MB, x86)"] = lambda_cost(records, summary["wall_seconds"]).total_usd
    page = _html(run_dir, summary, paths, C, stats, model.classes, counters, len(wrong), len(ds.y_test),
                 accuracy(ds.y_test, pred))
    write_text(run_dir / "report.html", page)
    return run_dir / "report.html"


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _html(run_dir, summary, paths, C, stats, classes, counters, n_wrong, n_test, test_acc) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(c)}</td><td>{stats['precision'][i]:.4f}</td><td>{stats['recall'][i]:.4f}</td>"
        f"<td>{stats['recall'][i]:.4f}</td><td>{stats['specificity'][i]:.4f}</td></tr>" for i, c in enumerate(classes))
    facts = "".join(f"<tr><td>{e(k)}</td><td>{e(f'{v:.6g}' if isinstance(v, float) else str(v))}</td></tr>"
                    for k, v in counters.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>snn report: {e(summary.get('name', run_dir.name))}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}
img{{max-width:100%}}</style></head><body>
<h1>Run {e(summary.get('name', run_dir.name))}</h1>
<p>{e(summary['dataset'])}, {summary['epochs']} epochs; test accuracy {test_acc:.4f} on {n_test} images.</p>
<section id="cost"><h2>Cost</h2>{_img(paths['cost'], 'cost curve')}</section>
<section id="accuracy"><h2>Accuracy</h2>{_img(paths['accuracy'], 'accuracy curves')}</section>
<section id="confusion"><h2>Confusion matrix (test)</h2>{_img(paths['confusion'], 'confusion matrix')}
<table><tr><th>class</th><th>precision</th><th>recall</th><th>sensitivity</th><th>specificity</th></tr>{rows}</table>
</section>
<section id="mislabeled"><h2>Mislabeled test images ({n_wrong})</h2>{_img(paths['mislabeled'], 'mislabeled images')}</section>
<section id="timeline"><h2>Invocation timeline</h2>{_img(paths['timeline'], 'invocation timeline')}</section>
<section id="counters"><h2>Counters</h2><table>{facts}</table></section>
</body></html>
"""
