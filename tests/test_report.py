import re

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from snn.cli import app
from snn.report import SECTIONS


def test_report_on_a_real_cat_run(cat_run_dir, data_root):
    result = CliRunner().invoke(app, ["report", str(cat_run_dir), "--data", str(data_root)])
    assert result.exit_code == 0, result.output
    page = (cat_run_dir / "report.html").read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "specificity" in page and "sensitivity" in page and "invocations" in page and "modelled_lambda_usd" in page
    assert "http://" not in page and "https://" not in page  # self-contained
    embedded = re.findall(r'src="data:image/png;base64,', page)
    assert len(embedded) == 5
    for name in ("cost", "accuracy", "confusion", "mislabeled", "timeline"):
        with Image.open(cat_run_dir / "report" / f"{name}.png") as img:
            assert img.format == "PNG" and img.width > 200 and img.height > 100
            pixels = np.asarray(img.convert("L"))
            assert pixels.std() > 5, f"{name}.png is blank"
    mislabeled = int(re.search(r"Mislabeled test images \((\d+)\)", page).group(1))
    assert 0 < mislabeled < 50
