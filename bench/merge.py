"""Put a part's figures (a `--json FILE` run of bench/holder.py and the like) into bench/results.json.

    python -m bench.merge PART.json [PART.json...]

A part's rows replace the same rows in results.json and leave the others (a halb-only run keeps the
seed's and kubeadm's); its provenance replaces the provenance of the rows it covers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def _deep_update(old: Any, new: Any) -> Any:
    """`new` over `old`: dicts key by key (a holder run of two drills keeps the other drills),
    anything else replaced."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {**old, **{k: _deep_update(old.get(k), v) for k, v in new.items()}}
    return new


def merge(results: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """`results` with `part` merged in (pure)."""
    out = json.loads(json.dumps(results))
    for key, figures in part.items():
        if key == "provenance":
            continue
        out[key] = _deep_update(out.get(key), figures)
        new = part.get("provenance", {}).get(key)
        if new is not None:  # an older run keeps the rows the new one did not measure again
            older = out.setdefault("provenance", {}).get(key, [])
            kept = [{**p, "covers": [c for c in p["covers"] if c not in new["covers"]]} for p in older]
            out["provenance"][key] = [*(p for p in kept if p["covers"]), new]
    return out


if __name__ == "__main__":
    results = json.loads(RESULTS.read_text())
    for name in sys.argv[1:]:
        results = merge(results, json.loads(Path(name).read_text()))
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
