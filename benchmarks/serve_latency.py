"""`fader serve` latency, measured through a real browser: a slider move to a new image on screen.

    python benchmarks/serve_latency.py                 # 128 px, 60 moves; writes the JSON below
    python benchmarks/serve_latency.py --screenshot docs/serve.png

The server runs the model of params.yaml's shape at `--size` px (random weights: a decode costs
the same whatever they are) on example photos prepared from synthetic faces. Headless Chromium
(Debian's package, driven by Playwright) loads the page, picks an example, then moves one slider
`--moves` times; each move is timed in the page from the slider's `input` event to the `load`
event of the new image, so the time includes the request, the decode, the PNG and the drawing.
With `--screenshot`, the page of the committed default model (`models/fader.pt`, examples from
`data/prepared`) is captured after one move, for docs/editing.md.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
import typer
import uvicorn
import yaml
from playwright.sync_api import sync_playwright

from fader import edit, io, serve
from fader.config import build
from fader.data.config import PreprocessConfig, SourceConfig
from fader.data.prepared import PreparedDataset
from fader.data.preprocess import prepare
from fader.data.sources import synthetic
from fader.model import checkpoint
from fader.model.networks import AutoEncoder, ModelConfig

ROOT = Path(__file__).resolve().parents[1]

#: Runs in the page: move the first slider `moves` times, each time waiting for the new image.
MOVES_JS = """async (moves) => {
    const slider = document.querySelector('#faders input');
    const image = document.getElementById('edited');
    const times = [];
    for (let i = 0; i < moves; i++) {
        const loaded = new Promise((resolve) =>
            image.addEventListener('load', resolve, {once: true}));
        const start = performance.now();
        slider.value = (i % 2 ? -1 : 2) - (i % 7) * 0.05;
        slider.dispatchEvent(new Event('input'));
        await loaded;
        times.push(performance.now() - start);
    }
    return times;
}"""


def start(app) -> tuple[uvicorn.Server, str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def open_example(page, url: str) -> None:
    page.goto(url)
    page.click("#use-example")
    page.wait_for_function("document.getElementById('edited').src.startsWith('blob:')")


def main(
    size: int = typer.Option(128, help="Model size in px."),
    moves: int = typer.Option(60, min=5, help="Slider moves to time."),
    out: Path = typer.Option(ROOT / "benchmarks" / "serve_latency.json", help="JSON to write."),
    screenshot: Path | None = typer.Option(None, help="Also capture the default model's page."),
) -> None:
    """Time slider moves in headless Chromium; optionally capture the page."""
    chromium = shutil.which("chromium")
    if chromium is None:
        raise typer.BadParameter("no chromium on this machine: apt-get install chromium")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    shape = {"img_size": size, "n_layers": int(np.log2(size)) - 1, "n_attr": 3}
    torch.manual_seed(0)
    model = AutoEncoder(build(ModelConfig, {**params["model"], **shape}, "params.yaml: model"))
    attributes = list(params["data"]["attributes"])
    with tempfile.TemporaryDirectory() as scratch:
        synthetic.generate(Path(scratch) / "raw", n_images=40, seed=0, workers=1, progress=False)
        values = {**params["data"], "img_size": size, "workers": 1}
        config = build(PreprocessConfig, values, "params.yaml: data", {"seed": 0}, [SourceConfig])
        prepare(Path(scratch) / "raw", Path(scratch) / "prepared", config, progress=False)
        examples = PreparedDataset(Path(scratch) / "prepared", "test", attributes=attributes)
        server, url = start(serve.create_app(edit.Editor(model, attributes), examples))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            page = browser.new_page()
            open_example(page, url)
            page.evaluate(MOVES_JS, 5)  # warm-up
            times = np.array(page.evaluate(MOVES_JS, moves))
            if screenshot is not None:
                capture(browser, screenshot)
            browser.close()
        server.should_exit = True
    result = {
        "img_size": size,
        "moves": moves,
        "ms": {
            "p50": round(float(np.percentile(times, 50)), 1),
            "p95": round(float(np.percentile(times, 95)), 1),
            "max": round(float(times.max()), 1),
        },
        "threads": torch.get_num_threads(),
    }
    io.write_json(out, result)
    typer.echo(json.dumps(result, indent=2))


def capture(browser, path: Path) -> None:
    """The page of the committed default model, one example, Smiling slid to 0."""
    autoencoder, attributes = checkpoint.load_network(ROOT / "models" / "fader.pt", "fader")
    judge = checkpoint.load_network(ROOT / "models" / "classifier.pt", "classifier")
    examples = PreparedDataset(ROOT / "data" / "prepared", "test", attributes=attributes)
    server, url = start(serve.create_app(edit.Editor(autoencoder, attributes, judge), examples))
    page = browser.new_page(viewport={"width": 780, "height": 600})
    open_example(page, url)
    before = page.get_attribute("#edited", "src")
    page.fill("#fader-Smiling", "0")
    page.wait_for_function(f"document.getElementById('edited').src !== {before!r}")
    page.screenshot(path=str(path))
    server.should_exit = True


if __name__ == "__main__":
    typer.run(main)
