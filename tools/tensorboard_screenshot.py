"""A PNG of TensorBoard's scalar charts for a run folder, rendered by headless Chromium: for write-ups
of machines without a display.

    python tools/tensorboard_screenshot.py --logdir runs/demo/alfworld/ppo_offline_progress/tensorboard \\
        --output results/ppo_tensorboard.png
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from spa_rl.cli import arg, parse  # noqa: E402


@dataclass
class ShotConfig:
    logdir: str = arg(help="a folder of TensorBoard event files (searched recursively)")
    output: str = arg(help="the PNG to write")
    width: int = arg(1600, "window width in pixels")
    height: int = arg(1400, "window height in pixels")
    wait_ms: int = arg(20000, "virtual time Chromium gives the page's scripts before the shot")
    filter: str = arg("", "show only tags matching this regular expression (e.g. 'ppo/')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    cfg = parse(ShotConfig, argv=argv, doc=__doc__)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if chromium is None:
        raise SystemExit("no chromium on PATH")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", cfg.logdir, "--port", str(port), "--host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(url + "data/logdir", timeout=1)
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit(f"tensorboard exited: {server.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.5)
        # The SCALARS dashboard draws SVG; the TIME SERIES one needs WebGL, which headless Chromium lacks here.
        page = url + "?darkMode=false#scalars" + (f"&tagFilter={cfg.filter}" if cfg.filter else "")
        with tempfile.TemporaryDirectory() as profile:
            cmd = [chromium, "--headless", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                   "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--window-size={cfg.width},{cfg.height}",
                   f"--virtual-time-budget={cfg.wait_ms}", f"--screenshot={Path(cfg.output).resolve()}", page]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if res.returncode != 0 or not Path(cfg.output).exists():
            raise SystemExit(f"chromium failed: {res.stderr[-2000:]}")
        print(f"wrote {cfg.output} ({page})")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
