"""``python -m grandmodel.deploy <bundle folder | models:/<name>@<alias>> [--tracking-uri URI]``.

Checks a bundle as a production process would load it (every file's SHA-256, every graph loads on
ONNX Runtime and decides on an all-zero observation) and prints its roles and parity summary.
Runs without torch.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from grandmodel.deploy.inference import ROLES, InferencePolicy
from grandmodel.errors import reported


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m grandmodel.deploy", description=__doc__)
    parser.add_argument("bundle", help="bundle folder or models:/<name>@<alias>")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store for models:/ URIs")
    args = parser.parse_args(argv)
    with reported():
        policy = InferencePolicy.load(args.bundle, tracking_uri=args.tracking_uri)
        zeros = {r: np.zeros(policy.shapes[r], policy.dtypes[r]) for r in ROLES}
        actions = policy.decide(zeros)
        meta = policy.metadata
        print(f"bundle {meta['name']}: {len(meta['files'])} files verified ({policy.folder})")
        for role in ROLES:
            entry = meta["roles"][role]
            graph = entry["onnx"] or "no graph (rule applied here)"
            print(
                f"  {role}: {entry['source']} {entry['kind']}, input {entry['input']['shape']} "
                f"{entry['input']['dtype']}, {graph}; action on zeros {actions[role].tolist()}"
            )
        print(f"  parity: {json.dumps(meta.get('parity', {}))}")


if __name__ == "__main__":
    main()
