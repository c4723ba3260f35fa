"""The ``snn`` command: a thin layer over the Python API, with rich output."""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .errors import ConfigError, DataError, ModelFileError, SnnError
from .terminal import literal, plain

# What to do next, for an error whose message does not say it itself.
HINTS = {ConfigError: "check the field against `snn train --help` and docs/architecture.md",
         DataError: "check the file, or `snn data verify` and `snn data fetch NAME` for published datasets",
         ModelFileError: "give a run folder or a model folder written by `snn train`",
         SnnError: "run with --debug for the traceback if the message is not enough",
         MemoryError: "use a smaller network, batch_size or data.subset",
         OSError: "check the path and its permissions"}


class Commands(typer.core.TyperGroup):
    """Every command's expected failures end as one line and exit code 2, never a traceback."""

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            # The reader went away (`snn predict ... --json | head`): nothing is wrong, and nothing more can be said.
            # stdout is pointed at devnull so the interpreter's own flush at exit does not fail again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141)  # as a shell reports a process ended by SIGPIPE
        except (SnnError, OSError, MemoryError) as e:
            if ctx.meta.get("snn.debug") or os.environ.get("SNN_DEBUG"):
                raise
            fail(one_line(e))
        except KeyboardInterrupt:
            fail("interrupted", 130)


def one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        text = f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    else:
        text = str(e) or type(e).__name__
    text = "; ".join(part.strip() for part in text.splitlines() if part.strip())
    if "help:" not in text:
        hint = next(h for kind, h in HINTS.items() if isinstance(e, kind))
        text += f"; help: {hint}"
    return text


# rich_markup_mode None: usage errors print as plain lines, not in a box laid out to the terminal's width.
app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  help="snn: the Serverless Neural Network.")
data_app = typer.Typer(no_args_is_help=True, help="List, fetch and verify datasets under the data root.")
app.add_typer(data_app, name="data")
console = Console()


@app.callback()
def snn(ctx: typer.Context,
         debug: Annotated[bool, typer.Option("--debug", help="show the traceback of an error")] = False):
    """snn: the Serverless Neural Network."""
    ctx.meta["snn.debug"] = debug


DataOpt = Annotated[Optional[Path], typer.Option("--data", help="data root (else $SNN_DATA_DIR, else the user cache)")]


def fail(message: str, code: int = 2, hint: str = "see `snn COMMAND --help`"):
    # Plain text on one line: rich would wrap a long path, and a wrapped message breaks the tools that read it.
    typer.echo(f"error: {plain(message)}" + ("" if "help:" in message else f"; help: {hint}"), err=True)
    raise typer.Exit(code)


def main():
    """Entry point (errors are handled by ``Commands``)."""
    app()


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Argument(help="JSON or YAML config (or the seeds' parameters.json)")] = None,
    data: DataOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="run folder (default runs/NAME-TIME)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="override training.epochs")] = None,
    seed: Annotated[Optional[int], typer.Option(help="override training.seed")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    granularity: Annotated[Optional[str], typer.Option(help="network, layer, neuron, block:N or data:K")] = None,
    engine: Annotated[Optional[str], typer.Option(help="local, ray or lithops")] = None,
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address")] = None,
    store: Annotated[Optional[str], typer.Option(help="memory or redis://HOST:PORT")] = None,
    chaos: Annotated[Optional[str], typer.Option(help="e.g. dup=0.3,drop=0.1,fail=0.05,delay=0.01")] = None,
    checkpoint_every: Annotated[Optional[int], typer.Option(help="epochs between checkpoints")] = None,
    max_invocations: Annotated[Optional[int], typer.Option(help="hard limit on function invocations")] = None,
    budget_usd: Annotated[Optional[float], typer.Option(help="stop before the modelled Lambda cost passes this")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="sync, average, best or tree")] = None,
    resume: Annotated[Optional[Path], typer.Option(metavar="RUN_DIR", help="continue a run from its checkpoint")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite the complete or unfinished run in --out")] = False,
):
    """Train a network and write its run folder. Ctrl-C stops after the current step, with a checkpoint."""
    from . import load_config
    from .run import train as run_train

    overrides = {"training.epochs": epochs, "training.seed": seed, "runtime.granularity": granularity,
                 "runtime.engine": engine, "runtime.address": address, "runtime.store": store,
                 "runtime.chaos": chaos, "runtime.checkpoint_every": checkpoint_every,
                 "runtime.max_invocations": max_invocations, "runtime.budget_usd": budget_usd,
                 "training.strategy": strategy}
    if resume is not None:
        if out is not None and out != resume:
            fail("--resume continues in its own run folder; leave --out out")
        if config is not None:
            fail(f"--resume goes on with the run's own {resume / 'config.json'}; leave CONFIG out "
                 "(options such as --epochs still apply)")
        if force:
            fail("--force starts a run over; --resume goes on with one: give one of them")
        config, out = resume / "config.json", resume
    elif config is None:
        fail("give a CONFIG to train, or --resume RUN_DIR to continue a run")
    cfg = load_config(config, overrides)
    show = not (quiet or as_json)
    with _progress(show) as progress:
        task = progress.add_task(cfg.name, total=cfg.training.epochs, cost=float("nan"), acc="", calls="")

        def on_epoch(r):
            acc = "" if r["train_accuracy"] is None else (  # None: a regression, whose cost says how it fits
                f"  acc {r['train_accuracy']:.4f}" + (f" val {r['val_accuracy']:.4f}" if r["val_accuracy"] is not None
                                                      else ""))
            calls = (f"  calls {r['invocations']} retries {r['retries']} dup {r['duplicates_suppressed']} "
                     f"hedged {r['speculative']}" if r["invocations"] else "")
            progress.update(task, completed=r["epoch"], cost=r["cost"], acc=acc, calls=calls)

        with warnings.catch_warnings():
            # An overflow on the way to divergence is NumPy's warning per operation; the run itself says it
            # diverged, in one line, at the end of that epoch.
            warnings.simplefilter("ignore", RuntimeWarning)
            run = run_train(cfg, data, out, on_epoch, resume=resume is not None, force=force)
    if as_json:
        print(json.dumps({**run.summary, "run_dir": str(run.run_dir)}))
    elif not quiet:
        _print_summary(run.summary, run.run_dir)
    # The shell's codes for Ctrl-C and SIGTERM, once the checkpoint is safe.
    exit_code = {"interrupted": 130, "terminated": 143}.get(run.summary.get("stop_reason"))
    if exit_code:
        raise typer.Exit(exit_code)


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("cost {task.fields[cost]:.6f}{task.fields[acc]}{task.fields[calls]}"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, disable=not show,
    )


def _print_summary(summary: dict, run_dir) -> None:
    table = Table(title="What it learned", show_header=False)
    for key in ("dataset", "epochs", "final_cost", "train_accuracy", "val_accuracy", "test_accuracy",
                "granularity", "engine", "invocations", "retries", "duplicates_suppressed", "lost_and_retried",
                "speculative", "speculative_won", "speculative_saved_seconds", "seconds_per_epoch", "wall_seconds"):
        if key in summary:
            v = summary[key]
            table.add_row(key, f"{v:.6g}" if isinstance(v, float) else str(v))
    console.print(table)
    if summary.get("stopped"):
        console.print(f"[yellow]Stopped ({literal(summary.get('stop_reason'))})[/]: a checkpoint was written; "
                      f"continue with `snn train --resume {literal(run_dir)}`", soft_wrap=True)
    console.print(f"Run folder: [bold]{literal(run_dir)}[/] (config.json, history.csv, summary.json, model.*)",
                  soft_wrap=True)


@app.command()
def trace(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")],
    step: Annotated[Optional[int], typer.Option(help="step whose critical path to show (default: the last)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Where the time went: per phase, layer and worker, the critical path of a step, and the hedges."""
    from .trace import critical_path, hedges, load_records, summarize

    records = load_records(run_dir)
    if as_json:
        n, path, span = critical_path(records, step)
        print(json.dumps({**{f"by_{by}": summarize(records, by) for by in ("phase", "layer", "worker")},
                          "critical_path": {"step": n, "span_seconds": span, "stages": path},
                          "hedges": hedges(records, _summary_if_any(run_dir))}, default=str))
        return
    ms = lambda x: f"{x * 1e3:.2f}"  # noqa: E731
    n, path, span = critical_path(records, step)  # a step the ledger does not hold fails before any table
    for by in ("phase", "layer", "worker"):
        table = Table(title=f"Invocations by {by}: duration p50/p95/total and where the total went (ms)")
        for col in (by, "n", "p50", "p95", "total", "wait", "load", "compute", "write", "merge"):
            table.add_column(col, justify="right")
        for row in summarize(records, by):
            d = row["duration"]
            name = ":".join(str(row[by]).split(":")[-2:])  # pid:thread is enough on one run
            table.add_row(literal(name), str(row["count"]), ms(d["p50"]), ms(d["p95"]), ms(d["total"]),
                          *(ms(row[p]["total"]) for p in ("wait", "load", "compute", "store_write", "merge")))
        console.print(table)
    table = Table(title=f"Critical path of step {n}: {ms(span)} ms from first send to last end")
    for col in ("stage", "unit", "wait", "load", "compute", "write", "merge", "total"):
        table.add_column(col, justify="right")
    for r in path:
        table.add_row(f"{r['phase']}:{int(r['layer'])}", str(int(r["unit"])),
                      *(ms(r[p]) for p in ("wait", "load", "compute", "store_write", "merge", "duration")))
    console.print(table)
    busy = sum(r["duration"] for r in path)
    console.print(f"stages on the path: {ms(busy)} ms; the coordinator's share between stages: {ms(span - busy)} ms")
    h = hedges(records, _summary_if_any(run_dir))
    console.print(f"speculative copies (hedges): {h['sent']} ran, {h['won']} finished first, "
                  + (f"{h['saved_seconds']:.2f} s saved (against a straggler's own end, or the unit timeout "
                     "for a lost one); " if h["saved_seconds"] is not None else "")
                  + f"retries {h['retries']}, lost {h['lost']}, duplicates {h['duplicates']}")


def _summary_if_any(run_dir: Path) -> dict:
    """The run's summary.json when it has one (a run still going, or killed, has none yet)."""
    path = run_dir / "summary.json"
    return _read_json(path) if path.exists() else {}


@app.command()
def cost(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")],
    memory: Annotated[int, typer.Option(help="Lambda memory size, MB")] = 1769,
    arch: Annotated[str, typer.Option(help="x86 or arm")] = "x86",
    prices: Annotated[Optional[Path], typer.Option(help="price table JSON (default: the bundled one)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """What the run would cost on AWS Lambda (plus its store), next to a VM."""
    from .cost import lambda_cost, load_prices
    from .trace import load_records

    table_prices = load_prices(prices)
    wall = _read_json(run_dir / "summary.json").get("wall_seconds")
    if not isinstance(wall, (int, float)) or not 0 <= wall < float("inf"):
        fail(f"{run_dir / 'summary.json'}: wall_seconds is {wall!r}; a finished run records a number of seconds")
    c = lambda_cost(load_records(run_dir), wall, memory, arch, table_prices)
    result = {"prices": table_prices["version"], "memory_mb": memory, "arch": arch, "requests": c.requests,
              "gb_seconds": c.gb_seconds, "lambda_usd": c.lambda_usd, "store_usd": c.store_usd,
              "total_usd": c.total_usd, "vm_usd": c.vm_usd, "wall_seconds": c.wall_seconds,
              "by_phase": {f"{p}:{l}": v for (p, l), v in sorted(c.by_phase.items())}}
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"Lambda cost of {run_dir} at {memory} MB {arch} (prices {table_prices['version']}, "
                        f"{table_prices['date']})")
    for col in ("phase:layer", "requests", "GB-seconds", "USD"):
        table.add_column(col, justify="right")
    for name, v in result["by_phase"].items():
        table.add_row(name, str(v["requests"]), f"{v['gb_seconds']:.3f}", f"{v['usd']:.6f}")
    table.add_row("[bold]functions", str(c.requests), f"{c.gb_seconds:.3f}", f"[bold]{c.lambda_usd:.6f}")
    table.add_row(table_prices["store_per_hour"]["name"], "", "", f"{c.store_usd:.6f}")
    table.add_row("[bold]total", "", "", f"[bold]{c.total_usd:.6f}")
    console.print(table)
    console.print(f"The same {c.wall_seconds:.1f} s on a VM ({table_prices['vm_per_hour']['name']}): "
                  f"{c.vm_usd:.6f} USD. Source: {table_prices['source']}")


def _read_json(path: Path) -> dict:
    from .documents import read_document
    from .errors import RunFolderError

    if not path.is_file():
        fail(f"{path}: not found; is this a finished run folder?", hint="give a folder that `snn train` finished")
    summary = read_document(path, "run summary", RunFolderError)
    if not isinstance(summary, dict):
        fail(f"{path}: not a run summary (a JSON object)", hint="give a folder that `snn train` finished")
    return summary


@app.command()
def advise(
    config: Annotated[Path, typer.Argument(help="the run to plan")],
    objective: Annotated[str, typer.Option(help="time, cost or perf-per-dollar")] = "time",
    deadline: Annotated[Optional[float], typer.Option(help="seconds the whole run may take")] = None,
    budget: Annotated[Optional[float], typer.Option(help="USD the whole run may cost")] = None,
    engine: Annotated[Optional[str], typer.Option(help="engine to probe on (default: the config's)")] = None,
    probe_epochs: Annotated[int, typer.Option(help="epochs per probe (the first is warm-up)")] = 6,
    max_workers: Annotated[int, typer.Option(help="largest K of the data:K probes (held out of the fit)")] = 3,
    data: DataOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Probe short runs, fit a time/cost model, and recommend a granularity and Lambda memory size."""
    from . import load_config, load_dataset
    from .advise import fit_workers, options, recommend, run_probe, steps_of
    from .cost import load_prices

    if max_workers < 3:
        fail("--max-workers must be at least 3: two data:K probes to fit, one to check the fit on")
    cfg = load_config(config, {"runtime.engine": engine})
    ds = load_dataset(cfg.data.dataset, data, fetch_missing=True)
    n_train = len(ds.subset(cfg.data.subset).with_validation(cfg.data.validation_split, cfg.training.seed).y_train)
    names = (["network", "layer"] if cfg.training.strategy == "sync" else ["network"])
    names += [f"data:{k}" for k in range(1, max_workers + 1)] if cfg.training.strategy == "sync" else []
    probes = []
    with console.status("probing...") as status:
        for g in names:
            status.update(f"probing {g} on {cfg.runtime.engine} ({probe_epochs} epochs)")
            probes.append(run_probe(cfg, g, probe_epochs, data))
    prices = load_prices()
    total = steps_of(cfg, n_train)
    opts = options(probes, total, prices)
    best = recommend(opts, objective, deadline, budget)
    result = {"objective": objective, "steps": total,
              "recommendation": {"granularity": best.granularity, "memory_mb": best.memory_mb,
                                 "predicted_seconds": best.seconds, "predicted_usd": best.usd},
              "probes": [{"granularity": p.granularity, "step_seconds": p.step_seconds,
                          "compute_seconds": p.compute_seconds} for p in probes]}
    data_probes = [p for p in probes if p.granularity.startswith("data:")]
    if len(data_probes) >= 3:
        held = data_probes[-1]
        a, b = fit_workers(data_probes[:-1])
        predicted = a + b / held.workers
        result["check"] = {"fitted_on": [p.granularity for p in data_probes[:-1]], "held_out": held.granularity,
                           "model": f"t(K) = {a:.6f} + {b:.6f}/K s per step",
                           "predicted_step_seconds": predicted, "measured_step_seconds": held.step_seconds,
                           "error": predicted / held.step_seconds - 1}
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"Probes on {cfg.runtime.engine} ({probe_epochs} epochs each)")
    for col in ("granularity", "s per step", "compute on the critical path"):
        table.add_column(col, justify="right")
    for p in probes:
        table.add_row(p.granularity, f"{p.step_seconds * 1e3:.2f} ms", f"{p.compute_seconds * 1e3:.2f} ms")
    console.print(table)
    if "check" in result:
        c = result["check"]
        console.print(f"Model check: fitted {c['model']} on {', '.join(c['fitted_on'])}; for {c['held_out']} it "
                      f"predicts {c['predicted_step_seconds'] * 1e3:.2f} ms a step, measured "
                      f"{c['measured_step_seconds'] * 1e3:.2f} ms: error {c['error']:+.1%}")
    top = Table(title=f"Options for the full run ({total} steps), best by {objective} first")
    for col in ("granularity", "Lambda MB", "predicted time", "predicted USD"):
        top.add_column(col, justify="right")
    order = sorted(opts, key=lambda o: (o is not best, o.seconds if objective == "time" else o.usd))
    for o in order[:8]:
        top.add_row(o.granularity, str(o.memory_mb), f"{o.seconds:.1f} s", f"{o.usd:.6f}")
    console.print(top)
    console.print(f"Recommendation: [bold]--granularity {best.granularity}[/] at [bold]{best.memory_mb} MB[/]: "
                  f"about {best.seconds:.1f} s and {best.usd:.6f} USD for the whole run.")


@app.command()
def serve(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL_OR_RUN_DIR")],
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="port to listen on (0: any free port)")] = 8000,
    allowed_host: Annotated[Optional[list[str]], typer.Option(
        help="a Host header to accept besides loopback names and --host (e.g. the name a proxy uses); repeatable")] = None,
):
    """Serve predictions, the neuron explorer page and the run's dashboard."""
    import socket

    try:
        import uvicorn

        from .service import create_app
    except ImportError as e:
        fail(f"the service needs {e.name!r}; help: pip install 'serverless-nn[serve]'")
    app_ = create_app(model_path, allowed_hosts=[host, *(allowed_host or [])])
    # Bind first, announce after: the address printed is one that is really listening.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections queue from now on: the address printed below answers
    except OSError as e:
        sock.close()
        fail(f"cannot listen on {host}:{port}: {e.strerror or e}; help: choose another --port or --host")
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    typer.echo(f"snn serving {model_path} on http://{shown}:{bound}/ (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app_, log_level="warning"))
    server.run(sockets=[sock])


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")], data: DataOpt = None):
    """Write RUN_DIR/report.html (self-contained) and its figures under RUN_DIR/report/."""
    try:
        from .report import write_report
    except ImportError as e:
        fail(f"the report needs {e.name!r}; help: pip install 'serverless-nn[report]'")
    console.print(f"Report: [bold]{literal(write_report(run_dir, data))}[/]", soft_wrap=True)


@app.command()
def play(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL")],
    data: DataOpt = None,
    rounds: Annotated[int, typer.Option(help="rounds before the final score (q quits earlier)")] = 10,
    seed: Annotated[Optional[int], typer.Option(help="seed for the choice of images")] = None,
):
    """Guess the label of test images against the model; it keeps score. q quits."""
    from rich.text import Text

    from . import load_dataset, load_model
    from .data import check_splits

    model = load_model(model_path)
    ds = check_splits(load_dataset(model.summary.get("dataset") or
                                   fail(f"{model_path}: which dataset? the model does not say"), data),
                      model.spec.n_input, len(model.classes))
    if model.preprocessing.kind != "image" or ds.x_test is None:
        fail("play needs an image model whose dataset has a test split")
    rng = np.random.default_rng(seed)
    you = machine = played = 0
    names = literal(", ".join(f"{i}={c}" for i, c in enumerate(model.classes)))
    while played < rounds:
        i = int(rng.integers(len(ds.y_test)))
        console.print(_half_blocks(ds.x_test[i], Text))
        answer = typer.prompt(f"Your answer ({names}; q quits)").strip()
        if answer.lower() == "q":
            break
        guess = _class_index(answer, model.classes)
        if guess is None:
            console.print(f"[yellow]{literal(repr(answer))} is not a class; answer with a number or a name: {names}[/]")
            continue
        probs = model.class_probabilities(model.preprocessing.columns(ds.x_test[i : i + 1], model.dtype))[:, 0]
        k, truth = int(probs.argmax()), int(ds.y_test[i])
        played += 1
        you += guess == truth
        machine += k == truth
        said = [literal(model.classes[j]) for j in (truth, guess, k)]
        console.print(f"It was [bold]{said[0]}[/]. You said {said[1]} "
                      f"({'right' if guess == truth else 'wrong'}); the model said {said[2]} "
                      f"with p={probs[k]:.3f} ({'right' if k == truth else 'wrong'}).")
        console.print(f"Score after {played}: you {you}, the model {machine}\n")
    console.print(f"[bold]Final score[/]: you {you}, the model {machine}, out of {played}.")


def _class_index(answer: str, classes) -> int | None:
    if answer.isdigit() and int(answer) < len(classes):
        return int(answer)
    lowered = [c.lower() for c in classes]
    return lowered.index(answer.lower()) if answer.lower() in lowered else None


def _half_blocks(image: np.ndarray, Text, max_width: int = 64):
    """An image as upper-half blocks: each character is two pixels, top in front, bottom behind."""
    step = max(1, -(-image.shape[1] // max_width))
    img = image[::step, ::step]
    rgb = np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img
    if rgb.shape[0] % 2:
        rgb = np.concatenate([rgb, np.zeros_like(rgb[:1])])
    text = Text()
    for top, bottom in zip(rgb[0::2], rgb[1::2]):
        for (r1, g1, b1), (r2, g2, b2) in zip(top, bottom):
            text.append("\u2580", style=f"rgb({r1},{g1},{b1}) on rgb({r2},{g2},{b2})")
        text.append("\n")
    return text


@app.command()
def tune(
    config: Annotated[Path, typer.Argument(help="the base config")],
    space: Annotated[Path, typer.Option(help="search space file (YAML or JSON)")],
    sampler: Annotated[str, typer.Option(help="grid, random or tpe")] = "random",
    trials: Annotated[Optional[int], typer.Option(help="trials in all (random, tpe)")] = None,
    seeds: Annotated[Optional[int], typer.Option(help="also search training.seed over 1..K")] = None,
    parallel: Annotated[int, typer.Option(help="trials running at once")] = 1,
    engine: Annotated[str, typer.Option(help="local, ray or lithops")] = "local",
    address: Annotated[Optional[str], typer.Option(help="Ray cluster address")] = None,
    store: Annotated[Optional[str], typer.Option(help="redis://... for remote engines")] = None,
    pruner: Annotated[str, typer.Option(help="median, halving or none")] = "median",
    study: Annotated[Optional[str], typer.Option(help="study name (default: the config's name)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="tune folder (default tunes/STUDY)")] = None,
    resume: Annotated[bool, typer.Option(help="go on with an interrupted study")] = False,
    data: DataOpt = None,
):
    """Search hyperparameters with Optuna; every trial is one function invocation."""
    from .config import RuntimeConfig
    from .tune import base_config, finish, load_space, open_study, plan_trials, run_study

    if parallel < 1:
        fail("--parallel must be at least 1")
    base = base_config(config)
    name = study or base["name"]
    folder = out or Path("tunes") / name
    search = load_space(space, seeds)
    st = open_study(folder, name, sampler, pruner, resume)
    n = plan_trials(st, search, sampler, trials)
    console.print(f"Study {name!r} in {folder}: {n} trial(s) to run, {parallel} at a time on {engine}")
    rt = RuntimeConfig(engine=engine, address=address, store=store)

    def on_trial(t):
        value = "" if t.value is None else f" val cost {t.value:.5f}"
        console.print(f"trial {t.number}: {t.state.name.lower()}{value} {t.params}", highlight=False)

    run_study(st, search, base, n, parallel, rt, data, on_trial)
    summary = finish(st, base, folder, data)
    console.print_json(data=summary, ensure_ascii=True)  # a file's text never reaches the terminal raw
    console.print(f"Best config: [bold]{folder / 'best_config.json'}[/]; best model: {folder / 'best'}")


@app.command()
def stop(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR")]):
    """Ask a running training to end cleanly, with a checkpoint."""
    from .runfolder import STOP_FILE, is_running
    from .runtime.info import read_runtime_info

    if not (run_dir / "config.json").is_file():
        fail(f"{run_dir}: not a run folder (no config.json)", hint="give the folder that `snn train` wrote")
    if not is_running(run_dir):
        fail(f"{run_dir}: no training is running there, so there is nothing to stop; "
             f"help: `snn train --resume {run_dir}` goes on with a stopped run")
    (run_dir / STOP_FILE).touch()  # the flag the coordinator reads: this alone stops the run
    try:
        info = read_runtime_info(run_dir)
    except SnnError as e:  # the stop is asked for all the same: say so, not that it failed
        info = None
        typer.echo(f"note: {plain(e)}; the stop flag is set, and the run ends after its current step", err=True)
    if info is not None and not _reachable_store(info.store, run_dir):
        typer.echo(f"note: {run_dir / 'runtime.json'} names a store its config does not; it is not contacted, and "
                   "the run ends after its current step", err=True)
    elif info is not None and not info.store.startswith("memory://"):
        # Functions in flight read the flag from the store itself.
        from .runtime.keys import Keys
        from .runtime.stores import open_store

        try:
            open_store(info.store).overwrite(Keys(info.run_id).stop, b"1", 3600)
        except SnnError as e:  # the file flag alone still stops the run
            typer.echo(f"note: could not reach the run's store ({e}); the coordinator will still stop", err=True)
    console.print(f"Stop requested for {run_dir}; the run ends after its current step, with a checkpoint.",
                  soft_wrap=True)


def _reachable_store(url: str, run_dir: Path) -> bool:
    """May ``snn stop`` write to the store that ``runtime.json`` names? Only to the one the run's config names, or
    to one on this machine (the embedded Valkey a run starts): a file in the folder never sends snn elsewhere."""
    from urllib.parse import urlsplit

    from .documents import read_document

    if url.startswith("memory://"):
        return True
    try:
        host = urlsplit(url).hostname or ""
        configured = read_document(run_dir / "config.json", "run config").get("runtime", {}).get("store")
    except (SnnError, ValueError, AttributeError):
        return False
    return url == configured or host in ("127.0.0.1", "localhost", "::1")


@app.command()
def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="RUN_DIR_OR_MODEL")],
    data: DataOpt = None,
    split: Annotated[str | None, typer.Option(
        help="test, validation or train, as the run split them (default: the first of these the dataset has)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Accuracy, confusion matrix, precision and recall per class (a regression: MSE, MAE and R^2
    per target) on a dataset split."""
    from . import load_dataset, load_model
    from .data import check_splits
    from .run import as_trained

    model = load_model(model_path)
    name = model.summary.get("dataset")
    if not name:
        fail(f"{model_path}: the model does not say which dataset it was trained on")
    ds = as_trained(check_splits(load_dataset(name, data), model.spec.n_input, len(model.classes)), model.summary)
    splits = {"test": (ds.x_test, ds.y_test), "train": (ds.x_train, ds.y_train), "validation": (ds.x_val, ds.y_val)}
    available = [k for k, (x, _) in splits.items() if x is not None]
    split = split or next(k for k in ("test", "validation", "train") if k in available)
    if split not in available:
        fail(f"split {split!r} is not available for {name}; allowed: {', '.join(available)}")
    x, y = splits[split]
    if model.task == "regression":
        return _evaluate_regression(model, name, split, x, y, as_json)
    _evaluate_classifier(model, name, split, x, y, as_json)


def _evaluate_classifier(model, name: str, split: str, x, y, as_json: bool) -> None:
    from .metrics import accuracy, confusion_matrix, per_class

    pred = model.predict_raw(x)
    C = confusion_matrix(y, pred, len(model.classes))
    stats = per_class(C)
    result = {"dataset": name, "split": split, "examples": len(y), "accuracy": accuracy(y, pred),
              "confusion_matrix": C.tolist(), "classes": list(model.classes),
              **{k: v.tolist() for k, v in stats.items()}}
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"{literal(name)} {split}: accuracy [bold]{result['accuracy']:.4f}[/] on {len(y)} examples")
    cm = Table(title="Confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    classes = [literal(c) for c in model.classes]
    for c in classes:
        cm.add_column(c, justify="right")
    for c, row in zip(classes, C):
        cm.add_row(c, *map(str, row))
    console.print(cm)
    pc = Table(title="Per class")
    for col in ("class", "precision", "recall", "specificity"):
        pc.add_column(col, justify="right")
    for i, c in enumerate(classes):
        pc.add_row(c, *(f"{stats[k][i]:.4f}" for k in ("precision", "recall", "specificity")))
    console.print(pc)


def _evaluate_regression(model, name: str, split: str, x, y, as_json: bool) -> None:
    from .metrics import regression_scores

    values = model.predict_proba(model.preprocessing.columns(x, model.dtype)).T
    scores = regression_scores(y, values)
    result = {"dataset": name, "split": split, "examples": len(y), "targets": list(model.classes),
              **{k: [float(v) if np.isfinite(v) else None for v in a] for k, a in scores.items()}}
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"{literal(name)} {split}: {len(y)} examples")
    for col in ("target", "MSE", "MAE", "R^2"):
        table.add_column(col, justify="right")
    for i, target in enumerate(model.classes):
        table.add_row(literal(target), *(f"{scores[k][i]:.6g}" for k in ("mse", "mae", "r2")))
    console.print(table)


PREDICT_CHUNK = 4096  # examples per forward pass and per write: memory stays bounded by a chunk, not by the file


@app.command()
def predict(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL")],
    inputs: Annotated[list[Path], typer.Argument(
        metavar="INPUT...", help="PNG or JPEG files for an image model; CSV files for a table model")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Predict for images or table rows, preprocessed exactly as in training."""
    from . import load_model

    model = load_model(model_path)
    parts = _images(model, inputs) if model.preprocessing.kind == "image" else _tables(model, inputs)
    outputs = []
    with np.errstate(all="ignore"):  # an overflow shows as inf or NaN, refused just below
        for where, X in parts:
            out = np.concatenate([model.outputs(X[i:i + PREDICT_CHUNK]) for i in range(0, len(X), PREDICT_CHUNK)])
            bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
            if bad.size:
                fail(f"{_where(where(int(bad[0])))}: the input drives the network to infinity or NaN; allowed: "
                     "values in the range the model was trained on")
            outputs.append(out)
    if as_json:
        sys.stdout.write("[")
    first = True
    for (where, _), out in zip(parts, outputs):
        for i in range(0, len(out), PREDICT_CHUNK):
            lines = []
            for j, answer in enumerate(model.answers(out[i:i + PREDICT_CHUNK]), i):
                row = {**where(j), **answer}
                if as_json:
                    sys.stdout.write(("" if first else ", ") + json.dumps(row))
                    first = False
                    continue
                said = (", ".join(f"{literal(k)} {v:.6g}" for k, v in row["values"].items()) if "values" in row
                        else f"[bold]{literal(row['label'])}[/] ({row['probability']:.4f})")
                lines.append(f"{literal(_where(row))}: {said}")
            if lines:  # one print a chunk: rich's cost is per call, and a CSV may have a million rows
                console.print("\n".join(lines), highlight=False, soft_wrap=True)
    if as_json:
        print("]")


def _where(row: dict) -> str:
    return row["image"] if "image" in row else f"{row['file']}:{row['row']}"


def _images(model, paths: list[Path]) -> list:
    from .images import load_image

    for p in paths:
        if p.suffix.lower() == ".csv":
            fail(f"{p}: this model takes images; allowed: PNG or JPEG files", hint="`snn info MODEL` shows the model")
    X = np.stack([load_image(p, model.preprocessing.shape) for p in paths])
    return [(lambda i: {"image": str(paths[i])}, X)]


def _tables(model, paths: list[Path]) -> list:
    from .data.tabular import load_rows

    parts = []
    for p in paths:
        if p.suffix.lower() != ".csv":
            fail(f"{p}: this model takes table rows; allowed: CSV files")
        try:
            numbers, X = load_rows(p, model.preprocessing)
        except DataError as e:  # the hint for a dataset (`snn data verify`) would mislead here
            about_columns = any(word in str(e) for word in ("header", "column", "row "))
            fail(str(e), hint="`snn info MODEL` shows the features the model takes" if about_columns else
                 "give a CSV file of the rows to predict")
        parts.append((lambda i, p=p, numbers=numbers: {"file": str(p), "row": int(numbers[i])}, X))
    return parts


@app.command()
def gradcheck(
    config: Annotated[Path, typer.Argument(help="config whose network to check")],
    data: DataOpt = None,
    examples: Annotated[int, typer.Option(help="training examples to use")] = 8,
    entries: Annotated[int, typer.Option(min=1, max=1_000_000,
                                         help="entries compared per tensor (sampled above this)")] = 32,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="largest relative error allowed")] = 1e-6,
):
    """Compare backprop with centred finite differences for every parameter tensor (float64)."""
    if not threshold == threshold:  # NaN passes every range check, and every comparison with it is False
        fail("--threshold nan is not a number; allowed: a relative error between 0 and 1")
    from . import load_config, load_dataset
    from .core.gradcheck import check_gradients
    from .core.network import Network, Params, targets
    from .run import initial_params, network_spec

    cfg = load_config(config, {"network.dtype": "float64"})
    ds = load_dataset(cfg.data.dataset, data, fetch_missing=True).subset(examples)
    spec = network_spec(cfg, ds)
    params = initial_params(cfg, spec)
    X = ds.preprocessing.columns(ds.x_train, np.float64)
    # Relu kinks break finite differences at Z == 0, so avoid all-zero layers by
    # checking at slightly perturbed weights as well as biases.
    params = Params(params.sizes, params.flat + np.random.default_rng(0).normal(0, 1e-3, params.flat.size))
    checks = check_gradients(Network(spec), params, X, targets(ds.y_train, spec.n_out),
                             cfg.training.l2, max_entries=entries)
    table = Table(title=f"Gradient check: {cfg.name} ({len(ds.y_train)} examples, eps 1e-6)")
    for col in ("tensor", "entries", "relative error", ""):
        table.add_column(col, justify="right")
    worst = max(c.relative_error for c in checks)
    for c in checks:
        ok = c.relative_error <= threshold
        table.add_row(c.name, str(c.checked), f"{c.relative_error:.3e}", "[green]ok[/]" if ok else "[bold red]FAIL[/]")
    console.print(table)
    if worst > threshold:
        fail(f"gradient check failed: worst relative error {worst:.3e} > threshold {threshold:.1e}", 1)
    console.print(f"[green]passed[/]: worst relative error {worst:.3e} <= {threshold:.1e}")


@app.command()
def info(model_path: Annotated[Path, typer.Argument(metavar="MODEL")]):
    """Architecture, classes, preprocessing and training summary of a saved model."""
    from . import load_model

    model = load_model(model_path)
    table = Table(title=f"Model {literal(model_path)}")
    for col in ("layer", "type", "output", "activation", "parameters"):
        table.add_column(col, justify="right")
    table.add_row("input", "", _shape(model.spec.input_shape), "", "")
    for l, layer in enumerate(model.spec.built, start=1):
        table.add_row(str(l), layer.spec.kind, _shape(layer.out_shape), layer.activation.name, str(layer.n_params))
    console.print(table)
    console.print(f"loss {model.spec.loss}, dtype {model.dtype}, {model.spec.n_params} parameters")
    console.print(f"{'targets' if model.task == 'regression' else 'classes'}: "
                  f"{literal(', '.join(model.classes))}", soft_wrap=True)
    console.print(f"preprocessing: {literal(model.preprocessing.to_json())}", soft_wrap=True)
    console.print(f"optimizer: {literal(model.optimizer)}", soft_wrap=True)
    console.print_json(data=model.summary, ensure_ascii=True)  # a file's text never reaches the terminal raw


def _shape(shape) -> str:
    return "x".join(map(str, shape))


@app.command()
def export(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL")],
    fmt: Annotated[str, typer.Option("--format", help="file format: onnx")] = "onnx",
    out: Annotated[Optional[Path], typer.Option(help="file to write (default: model.onnx beside the model)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite the file if it exists")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print what was written as JSON")] = False,
):
    """Write the model in another framework's format: ONNX, for onnxruntime and the tools that read it."""
    if fmt != "onnx":
        fail(f"--format {fmt!r} is not a format snn writes; allowed: onnx")
    from . import load_model
    from .model import model_folder
    from .runfolder import is_run_file

    try:
        from .onnxfile import OPSET, default_path, metadata, write_onnx
    except ImportError as e:
        fail(f"ONNX export needs {e.name!r}; help: pip install 'serverless-nn[onnx]'")
    model = load_model(model_path)
    target = out or default_path(model_path)
    if (target.name != "model.onnx" and is_run_file(target.name)
            and target.absolute().parent.resolve() == model_folder(model_path).absolute().resolve()):
        fail(f"{target}: is one of the model's own files; --force never writes over them",
             hint="--out a file of its own, such as model.onnx")
    path, meta = write_onnx(model, target, force), metadata(model)
    if as_json:
        print(json.dumps({"path": str(path), "format": fmt, "opset": OPSET, **meta}))
        return
    console.print(f"Wrote {path} (ONNX opset {OPSET}); input: {meta['snn.input']}; output: {meta['snn.output']}",
                  soft_wrap=True, highlight=False, markup=False)


@data_app.command("list")
def data_list(data: DataOpt = None):
    """Show the datasets and whether their files are present under the data root."""
    from .data import data_root
    from .data.catalog import PUBLISHED
    from .data.fetch import verify_presence

    root = data_root(data)
    table = Table(title=f"Datasets under {root}")
    for col in ("name", "files present", "about"):
        table.add_column(col)
    for name, pub in PUBLISHED.items():
        present = sum(s.state == "ok" for s in verify_presence(root, name))
        table.add_row(name, f"{present}/{len(pub.files)}", pub.about)
    table.add_row("spiral, xor", "generated", "2-D toy problems made in code")
    table.add_row("iris", "scikit-learn's", "Fisher's iris, 120 train + 30 test flowers, 4 measurements, 3 species")
    table.add_row("csv:PATH, npz:PATH", "your file", "numbers with the label last (or a header and ?label=NAME) / "
                  "x_train, y_train arrays")
    console.print(table)


@data_app.command("fetch")
def data_fetch(
    name: str,
    data: DataOpt = None,
    url: Annotated[Optional[str], typer.Option(help="mirror base URL (http or https)")] = None,
):
    """Download a published dataset, verify its SHA-256, and write it atomically."""
    from .data import data_root
    from .data.fetch import fetch

    root = data_root(data)
    fetched = fetch(root, name, url)
    console.print(f"{name}: {len(fetched)} file(s) downloaded and verified under {root / name}")


@data_app.command("verify")
def data_verify(names: Annotated[Optional[list[str]], typer.Argument()] = None, data: DataOpt = None):
    """Check every file of the published datasets against its SHA-256."""
    from .data import data_root
    from .data.catalog import PUBLISHED
    from .data.fetch import verify

    root = data_root(data)
    table = Table(title=f"Verify {root}")
    for col in ("dataset", "file", "state", "bytes"):
        table.add_column(col)
    bad = 0
    for name in names or list(PUBLISHED):
        for s in verify(root, name):
            bad += s.state != "ok"
            style = {"ok": "green", "missing": "yellow", "corrupt": "bold red"}[s.state]
            table.add_row(s.dataset, s.file, f"[{style}]{s.state}[/]", str(s.size))
    console.print(table)
    if bad:
        raise typer.Exit(1)
