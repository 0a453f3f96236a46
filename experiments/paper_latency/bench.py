"""Bar-to-order latency of the paper loop: a new base bar in → the order out (incremental features,
the three agents on ONNX Runtime, the decision's confidence, the risk gate, the broker's settlement
of the previous decision and the journal's committed transaction), at every decision bar.

    .venv/bin/python experiments/paper_latency/bench.py --bundle outputs/exports/<name> --days 40
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from grandmodel.config import load_config, typed
from grandmodel.config.data import DataConfig
from grandmodel.data.pipeline import load_tables
from grandmodel.deploy.paper.session import PaperSession


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", required=True, help="an export bundle folder")
    parser.add_argument("--days", type=int, default=40, help="synthetic trading days to replay")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results.json"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="paper_latency_"))
    try:
        cfg = load_config([f"data.synthetic.days={args.days}", "data.cache=false",
                           f"paths.outputs_dir={work}"])  # fmt: skip
        base = load_tables(typed(cfg.data, DataConfig), work / "cache").frames["base"]
        bars = work / "bars.csv"
        base[["open", "high", "low", "close", "volume"]].rename_axis("timestamp").to_csv(bars)
        paper = load_config([f"bundle={args.bundle}", f"feed.path={bars}", "paper.quiet=true",
                             f"paths.outputs_dir={work}", "paper.risk.flatten_minutes=0"],
                            config_name="paper")  # fmt: skip
        session = PaperSession(paper, work / "paper" / "bench")
        began = time.perf_counter()
        result = session.run(None)
        wall = time.perf_counter() - began
        ms = np.asarray(result["latencies"]) * 1e3
        row = {
            "base_bars": int(result["bars"]),
            "decisions": int(ms.size),
            "p50_ms": float(np.percentile(ms, 50)),
            "p90_ms": float(np.percentile(ms, 90)),
            "p99_ms": float(np.percentile(ms, 99)),
            "p99_9_ms": float(np.percentile(ms, 99.9)),
            "max_ms": float(ms.max()),
            "mean_ms": float(ms.mean()),
            "session_seconds": wall,
            "base_bars_per_second": result["bars"] / wall,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(row, indent=2))
    Path(args.out).write_text(json.dumps(row, indent=2) + "\n")


if __name__ == "__main__":
    main()
