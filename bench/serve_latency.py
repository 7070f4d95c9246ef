"""Round trip of one decoded image through the explorer (`vaelab serve`) for the default MLP VAE.

Trains configs/vae-mlp.yaml for one epoch in a temporary folder (the weights do not change the cost), serves it
with uvicorn on 127.0.0.1 as `vaelab serve` does (one torch thread), and times POST /api/runs/0/decode -> PNG
bytes over one keep-alive HTTP connection, a fresh random latent each time: what a moving slider costs.
Target: median < 30 ms.   Run: make bench   (or .venv/bin/python bench/serve_latency.py)
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import torch

from common import write_result  # bench/ is on sys.path when a script in it runs
from vaelab import train
from vaelab.web import load_explorers
from vaelab.web.server import BackgroundServer

CONFIG = Path(__file__).parent.parent / "configs" / "vae-mlp.yaml"


def time_decodes(url: str, latent_dim: int, n: int) -> list[float]:
    """Seconds of each of n decode round trips (request sent -> whole PNG received)."""
    connection = http.client.HTTPConnection(urlsplit(url).hostname, urlsplit(url).port, timeout=30)
    generator = torch.Generator().manual_seed(0)
    seconds = []
    for _ in range(n):
        body = json.dumps({"z": torch.randn(latent_dim, generator=generator).tolist()})
        start = time.perf_counter()
        connection.request("POST", "/api/runs/0/decode", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        png = response.read()
        seconds.append(time.perf_counter() - start)
        assert response.status == 200 and png.startswith(b"\x89PNG"), (response.status, png[:80])
    connection.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="timed round trips (after 50 warm-up ones)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["train.epochs=1", "train.progress=never", "train.report=false", "train.frames=false",
                     f"train.out_dir={tmp}", "train.name=bench"]  # fmt: skip
        run = train(CONFIG, overrides)
        torch.set_num_threads(1)  # as `vaelab serve`
        with BackgroundServer(load_explorers([run.path])) as url:
            time_decodes(url, run.model.spec.code_size, 50)
            seconds = sorted(time_decodes(url, run.model.spec.code_size, args.n))
    ms = [1000 * s for s in seconds]
    p90 = ms[int(0.9 * len(ms))]
    shape, code = tuple(run.model.image_shape), run.model.spec.code_size
    print(f"explorer decode round trip (request -> PNG), default MLP VAE {shape}, {code}-D, 1 torch thread, "
          f"{args.n} requests over HTTP to uvicorn on 127.0.0.1")  # fmt: skip
    print(
        f"median {statistics.median(ms):6.2f} ms   p90 {p90:6.2f} ms   max {ms[-1]:6.2f} ms   (target: median < 30 ms)"
    )
    write_result("serve_latency", {"requests": args.n, "median_ms": statistics.median(ms), "p90_ms": p90,
                                   "max_ms": ms[-1], "latent_dim": code})  # fmt: skip


if __name__ == "__main__":
    main()
