"""Text from a file reaches a terminal as the characters it holds: never as rich markup, never as control
characters (round three). Class names, dataset names and paths come from anyone's files."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from typer.testing import CliRunner

import snn
from snn.cli import app
from snn.terminal import literal, plain

MARKUP = ["[/x]", "[link=https://evil.example/]setosa[/link]", "[bold]x", "\\[y]", "[red]", "[/]"]


def rendered(markup: str) -> str:
    out = io.StringIO()
    Console(file=out, width=10_000, color_system=None, highlight=False, soft_wrap=True).print(markup, end="")
    return out.getvalue()


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.sampled_from(MARKUP), st.builds(lambda a, b: a + b, st.sampled_from(MARKUP), st.text())))
def test_any_text_is_shown_as_its_characters_with_nothing_unprintable(name):
    # As the commands use it: inside snn's own markup, a tag on either side.
    shown = rendered(f"[bold]{literal(name)}[/]")
    assert shown == plain(name)
    assert shown.isprintable() or shown == ""
    # Escaping is reversible: nothing of the name is lost, only made visible.
    if name.isprintable():
        assert shown == name


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_class_names_with_markup_are_shown_as_written(tmp_path):
    rng = np.random.default_rng(0)
    names = ["[/x]", "[link=https://evil.example/]setosa[/link]", "plain"]
    path = tmp_path / "t.csv"
    rows = ["a,b,species"] + [f"{x:.3f},{y:.3f},\"{names[int(x > 0) + int(y > 0)]}\""
                              for x, y in rng.normal(size=(60, 2))]
    path.write_text("\n".join(rows) + "\n")
    cfg = {"name": "marked", "data": {"dataset": f"csv:{path}?label=species"},
           "network": {"layers": [{"units": 4, "activation": "tanh"}, {"units": 3, "activation": "softmax"}]},
           "training": {"epochs": 5, "seed": 0, "optimizer": {"name": "adam", "learning_rate": 0.01}}}
    run_dir = tmp_path / "run"
    snn.train(cfg, run_dir=run_dir)
    info = cli("info", run_dir)
    assert info.exit_code == 0, info.output
    assert "[link=https://evil.example/]setosa[/link]" in info.output and "[/x]" in info.output
    evaluated = cli("evaluate", run_dir, "--split", "train")
    assert evaluated.exit_code == 0 and "MarkupError" not in evaluated.output, evaluated.output
    predicted = cli("predict", run_dir, path)
    assert predicted.exit_code == 0, predicted.output
    labels = {line.rsplit(" (", 1)[0].split(": ", 1)[1] for line in predicted.output.splitlines() if ": " in line}
    assert labels <= set(names) and labels


def test_a_model_file_whose_class_names_hold_control_characters_is_refused_in_one_line(tmp_path):
    run_dir = tmp_path / "run"
    snn.train({"name": "x", "data": {"dataset": "spiral", "subset": 30},
               "network": {"layers": [{"units": 3, "activation": "softmax"}]}, "training": {"epochs": 1}},
              run_dir=run_dir)
    for bad in ("\x1b[31mred", "nul\x00", "two\nlines", "bidi\u202eevil"):
        tampered = tmp_path / "tampered"
        shutil.copytree(run_dir, tampered)
        sidecar = json.loads((tampered / "model.json").read_text())
        sidecar["classes"][0] = bad
        (tampered / "model.json").write_text(json.dumps(sidecar))
        for command in (("info", tampered), ("predict", tampered, tampered / "model.json")):
            result = cli(*command)
            assert result.exit_code == 2, result.output
            line = result.output.strip()
            assert line.startswith("error:") and "\n" not in line and "\x1b" not in line and "\x00" not in line
            assert "printable" in line
        shutil.rmtree(tampered)


def test_an_error_message_never_sends_control_characters_to_the_terminal(tmp_path):
    result = cli("info", tmp_path / "no\x1b[2Jsuch")
    assert result.exit_code == 2 and "\x1b" not in result.output and "\\x1b" in result.output


FIXTURE = Path(__file__).parent / "fixtures" / "model-v1-xor"
ANY_TEXT = st.text(st.characters(codec=None), min_size=1, max_size=30)  # every Unicode category, surrogates aside


def sidecar_with(tmp_path: Path, change) -> Path:
    folder = tmp_path / "m"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(FIXTURE, folder)
    sidecar = json.loads((folder / "model.json").read_text())
    change(sidecar)
    (folder / "model.json").write_text(json.dumps(sidecar))
    return folder


@settings(max_examples=150, deadline=None)
@given(name=st.one_of(ANY_TEXT, st.sampled_from(MARKUP)), where=st.sampled_from(["class", "feature"]))
def test_any_class_or_feature_name_is_shown_literally_or_refused_in_one_line(tmp_path_factory, name, where):
    def change(sidecar):
        if where == "class":
            sidecar["classes"][0] = name
        else:
            sidecar["preprocessing"]["features"] = [name, "other"]

    folder = sidecar_with(tmp_path_factory.mktemp("n"), change)
    result = cli("info", folder)
    if result.exit_code == 0:
        assert name.isprintable() and name != "other"
        if where == "class":
            assert f"classes: {name}, 1" in result.output
    else:
        line = result.output.strip()
        assert result.exit_code == 2 and line.startswith("error:") and line.isprintable(), result.output
        assert not name.isprintable() or name == "other" or name != name.strip()


def test_a_summary_shown_by_info_never_holds_a_raw_control_or_format_character(tmp_path):
    pd = __import__("pandas")
    from snn.sklearn import SNNClassifier

    X = np.random.default_rng(0).normal(size=(30, 2))
    frame = pd.DataFrame(X, columns=["a\x1b[2J", "b\u202e"])
    SNNClassifier(epochs=2).fit(frame, (X[:, 0] > 0).astype(int)).save(tmp_path / "m")
    sidecar = json.loads((tmp_path / "m" / "model.json").read_text())
    sidecar["training"]["name"] = "\x1b]0;pwned\x07 \u202e"
    (tmp_path / "m" / "model.json").write_text(json.dumps(sidecar))
    result = cli("info", tmp_path / "m")
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\u202e" not in result.output and "\x07" not in result.output
