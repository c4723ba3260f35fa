import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real datasets. Their absence is a failure, never a skip."""
    root = Path(os.environ.get("SNN_DATA_DIR") or REPO.parent / "shared" / "data")
    if not (root / "catvnoncat" / "train_catvnoncat.h5").exists():
        pytest.fail(f"real datasets not found under {root}; set SNN_DATA_DIR (make test does)")
    return root


@pytest.fixture(scope="session")
def cat(data_root):
    from snn.data import load_dataset

    return load_dataset("catvnoncat", data_root)
