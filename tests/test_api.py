"""The public Python surface, and the README's notebook example run as written."""

import re

import snn
from conftest import REPO


def test_public_names():
    assert sorted(snn.__all__) == sorted([
        "Config", "ConfigError", "DataError", "Dataset", "Model", "ModelFileError", "Run", "SnnError",
        "load_config", "load_dataset", "load_model", "parse_config", "train", "__version__",
    ])
    for name in snn.__all__:
        assert hasattr(snn, name), name


def test_readme_notebook_example_runs(data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SNN_DATA_DIR", str(data_root))
    monkeypatch.chdir(REPO)
    readme = (REPO / "README.md").read_text()
    (code,) = re.findall(r"```python\n(.*?)```", readme, re.S)
    code = code.replace('snn.train("examples', f'snn.train(run_dir="{tmp_path / "run"}", config="examples')
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README, not user input
    run, model = scope["run"], scope["model"]
    assert len(run.history) == 100 and run.history[-1]["epoch"] == 100
    assert model.predict(scope["ds"].preprocessing.columns(scope["ds"].x_test)).shape == (50,)
