"""report.py: one self-contained, escaped HTML page; a real browser decodes every picture and
draws a page that is not blank; environment_info names the machine and libraries."""

from __future__ import annotations

import base64
import functools
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cnncli.metrics import per_class
from cnncli.report import PICTURES, ReportData, environment_info, render_report

HOSTILE = '<script>alert("x")</script> & </pre><img src=x onerror=alert(1)>'


def test_environment_info_names_cpu_numpy_blas_and_threads(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = environment_info()
    assert set(env) == {"cpu", "cpus", "threads", "numpy", "blas", "lapack", "python",
                        "platform", "cnncli"}
    assert env["numpy"] == np.__version__
    assert "OPENBLAS_NUM_THREADS=1" in env["threads"]
    assert "OMP_NUM_THREADS=unset" in env["threads"]
    assert env["cpu"] and env["cpu"] != "unknown"
    assert env["cpus"].split()[0].isdigit()
    assert env["blas"] and all(isinstance(v, str) for v in env.values())


def sample_data(pictures: bool = False) -> ReportData:
    cm = np.array([[50, 2, 0], [1, 45, 4], [0, 3, 47]])
    data = ReportData(
        name=f"run {HOSTILE}",
        created="2026-11-28 10:15",
        run_dir="runs/x",
        notes=[f"note {HOSTILE}"],
        summary={"config": "lenet", "epochs": 3, "best_epoch": 2, "best_val_acc": 0.95,
                 "wall_seconds": 75.5},
        provenance={"data": "mnist (sha256 abc...)"},
        config_yaml=f"model:\n  layers: []\nname: '{HOSTILE}'\n",
        model_table="#  layer  output shape  params\n0  conv   (6, 28, 28)   156",
        history=[{"epoch": e, "lr": 0.01, "train_loss": 0.5 / e, "train_acc": 0.9,
                  "val_loss": 0.6 / e, "val_acc": 0.93, "seconds": 10.0 + e,
                  "images_per_s": 5000.0} for e in (1, 2, 3)],
        test_metrics={"accuracy": 0.9467, "loss": 0.21, "images": 152},
        per_class=per_class(cm),
        class_names=["zero", "one", f"two {HOSTILE}"],
        timings={"training": 33.0, "pictures": 2.5},
        environment={"cpu": "Test CPU", "numpy": "2.0"},
    )
    if pictures:
        add_pictures(data, cm)
    return data


def add_pictures(data: ReportData, cm: np.ndarray) -> None:
    for attr, png in pictures(tuple(map(tuple, cm))).items():
        setattr(data, attr, png)
    data.feature_maps_caption = "test image #0"


@functools.lru_cache(maxsize=1)
def pictures(cm: tuple[tuple[int, ...], ...]) -> dict[str, bytes]:
    """Real pictures of sample_data's run, drawn once for all the tests here."""
    pytest.importorskip("matplotlib")
    from cnncli import plots

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 28, 28)).astype(np.uint8)
    true, pred = np.arange(8) % 3, (np.arange(8) + (np.arange(8) % 2)) % 3
    history = sample_data().history
    return {
        "curves_png": plots.plot_curves(history, None).png,
        "confusion_png": plots.plot_confusion(np.array(cm), ["0", "1", "2"], None).png,
        "mistakes_png": plots.plot_mistakes(images, true, pred, rng.random(8), "012", None).png,
        "filters_png": plots.plot_filters([("conv", rng.normal(size=(6, 1, 5, 5)))], None).png,
        "feature_maps_png": plots.plot_feature_maps(
            images[0], [("conv", rng.normal(size=(6, 24, 24))), ("out", rng.normal(size=10))],
            None).png,
    }


def test_report_is_one_self_contained_page_with_every_section() -> None:
    page = render_report(sample_data(pictures=False))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    for anchor in ("overview", "model", "config", "curves", "test", "confusion", "mistakes",
                   "filters", "feature-maps", "timings", "environment"):
        assert f'<section id="{anchor}">' in page and f'href="#{anchor}"' in page
    # nothing is fetched: no scripts, no addresses, a policy that forbids both
    assert "<script" not in page.lower()
    assert not re.search(r"(?:https?:)?//[a-z0-9]", page, re.I)
    assert "default-src 'none'; img-src data:" in page
    assert page.count("not available for this run") == len(PICTURES)


def test_report_escapes_every_text_it_is_given() -> None:
    page = render_report(sample_data())
    assert HOSTILE not in page and "onerror=alert(1)>" not in page
    assert html.escape(HOSTILE) in page  # name, note, config, class name: escaped, present
    assert page.count(html.escape(HOSTILE)) >= 4


def test_report_numbers_per_class_table_and_timings() -> None:
    page = render_report(sample_data())
    assert "94.67%" in page          # test accuracy
    assert "95.00%" in page          # best validation accuracy
    assert "1 min 16 s" in page      # 75.5 s wall time
    # class 'two': 47 right of 50 true, 51 predicted -> recall 94.00%, precision 92.16%
    assert "92.16%" in page and "94.00%" in page
    rows = per_class(np.array([[50, 2, 0], [1, 45, 4], [0, 3, 47]]))
    macro_f1 = np.mean([r["f1"] for r in rows])
    assert f"{macro_f1 * 100:.2f}%" in page
    assert "12.0 s" in page          # median epoch: 11, 12, 13 s
    assert "5,000 images/s" in page


def test_report_embeds_pictures_as_png_data_uris() -> None:
    data = sample_data(pictures=True)
    page = render_report(data)
    uris = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(uris) == len(PICTURES)
    assert base64.b64decode(uris[0]) == data.curves_png
    assert "not available for this run" not in page


# -- in a real browser ------------------------------------------------------------------------

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser"))
                 if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--disable-dev-shm-usage"]
# The test's copy of the page only: after loading, write each picture's decoded size and the
# share of its decoded pixels that are not white into the DOM, where --dump-dom shows it (a
# PNG damaged after its header keeps its natural size but decodes to nothing). The report
# itself has no script and forbids them.
BANDS = 16
PROBE = """<script>
var BANDS = BANDS_HERE;
window.addEventListener("load", function () {
  var out = [];
  document.querySelectorAll("img").forEach(function (img) {
    var ink = -1;
    if (img.naturalWidth > 0) {  // decode the pixels: the share that is drawn, not white
      var canvas = document.createElement("canvas");
      canvas.width = img.naturalWidth;
      canvas.height = img.naturalHeight;
      var ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0);
      var px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
      var w = canvas.width, h = canvas.height, bands = [];
      for (var b = 0; b < BANDS; b++) {  // ink share per horizontal band, top to bottom
        var y0 = Math.floor(b * h / BANDS), y1 = Math.floor((b + 1) * h / BANDS), n = 0;
        for (var i = y0 * w * 4; i < y1 * w * 4; i += 4) {
          if (px[i + 3] > 200 && (px[i] < 200 || px[i + 1] < 200 || px[i + 2] < 200)) n++;
        }
        bands.push(n / ((y1 - y0) * w));
      }
      ink = bands;
    }
    out.push([img.alt, img.naturalWidth, img.naturalHeight, img.complete, ink]);
  });
  var pre = document.createElement("pre");
  pre.id = "image-check";
  pre.textContent = JSON.stringify({images: out, height: document.body.scrollHeight});
  document.body.appendChild(pre);
});
</script>""".replace("BANDS_HERE", str(BANDS))


def ink_bands(png: bytes) -> np.ndarray:
    """The share of opaque, not-white pixels (a channel < 200) in each of BANDS horizontal
    bands, top to bottom, of Pillow's decoding: what PROBE measures in the browser."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        px = np.asarray(im.convert("RGBA")).astype(np.int64)
    ink = (px[..., 3] > 200) & (px[..., :3] < 200).any(axis=-1)          # (H, W)
    h = ink.shape[0]
    edges = [b * h // BANDS for b in range(BANDS + 1)]
    return np.array([ink[edges[b]:edges[b + 1]].mean() for b in range(BANDS)])


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (scripts/"
                    "install-chromium.sh installs Debian's chromium where apt-get and root "
                    "allow); the browser check of report.html did not run")
def test_report_renders_in_headless_chromium_with_every_picture_decoded(tmp_path: Path
                                                                        ) -> None:
    data = sample_data(pictures=True)
    page = render_report(data)
    report = tmp_path / "report.html"
    report.write_text(page, encoding="utf-8")
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("default-src 'none';", "default-src 'none'; script-src "
                                  "'unsafe-inline';").replace("</body>", PROBE + "</body>"),
                     encoding="utf-8")

    dom = run_chromium(["--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
                       tmp_path / "profile1")
    found = re.search(r'<pre id="image-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"no image report in the DOM; chromium said: {dom.stderr[-2000:]}"
    check = json.loads(html.unescape(found.group(1)))
    assert len(check["images"]) == len(PICTURES)
    for (alt, width, height, complete, ink), (attr, _, _) in zip(check["images"], PICTURES,
                                                                   strict=True):
        assert complete and width > 100 and height > 50, (alt, width, height)
        assert ink != -1, f"{alt}: not decoded"
        expected = ink_bands(getattr(data, attr))  # the same measure on Pillow's decoding
        drawn = np.array(ink)
        assert drawn.mean() > 0.01 and np.abs(drawn - expected).max() < 0.01, \
            f"{alt}: ink per band in the browser {np.round(drawn, 3)}, in the PNG " \
            f"{np.round(expected, 3)}"
    assert check["height"] > 3000  # a long page: every section laid out

    shot = tmp_path / "report.png"
    result = run_chromium(["--window-size=1280,2400", f"--screenshot={shot}",
                           report.as_uri()], tmp_path / "profile2")
    assert shot.exists(), f"no screenshot; chromium said: {result.stderr[-2000:]}"
    from PIL import Image

    with Image.open(shot) as im:
        assert im.size == (1280, 2400)
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.std() > 20, "the page looks blank"
    assert (np.abs(pixels - np.median(pixels)) > 40).mean() > 0.03  # ink: text and pictures
