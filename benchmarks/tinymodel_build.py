"""How long the lab's tiny model takes to make, find in the cache, and load and run in
transformers (the loader vLLM also goes through). Prints one table; no root, no network.

    python benchmarks/tinymodel_build.py [--repeat 5] [--tokens 64]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from factoryctl.engines.lab.tinymodel import (
    build_tiny_model,
    cached_tiny_model,
    describe,
)


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64, help="greedy tokens to generate")
    args = ap.parse_args()

    rows: list[tuple[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows.append(("build (fresh folder)", [
            _timed(lambda i=i: build_tiny_model(root / f"b{i}")) for i in range(args.repeat)
        ]))
        cache = root / "cache"
        rows.append(("cache: first call (builds)", [_timed(lambda: cached_tiny_model(cache))]))
        rows.append(("cache: later call (found)", [
            _timed(lambda: cached_tiny_model(cache)) for _ in range(args.repeat)
        ]))
        folder = cached_tiny_model(cache)
        files = describe(folder)
        size = sum(s for _, s in files)

        started = time.perf_counter()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        rows.append(("import torch + transformers", [time.perf_counter() - started]))
        loaded = {}

        def load():
            loaded["tok"] = AutoTokenizer.from_pretrained(folder)
            loaded["lm"] = AutoModelForCausalLM.from_pretrained(folder)

        rows.append(("transformers: load folder", [_timed(load)]))
        ids = loaded["tok"].apply_chat_template(
            [{"role": "user", "content": "How many tokens per second?"}],
            add_generation_prompt=True, return_tensors="pt",
        )["input_ids"]

        def generate():
            with torch.no_grad():
                loaded["lm"].generate(ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False)

        gen = [_timed(generate) for _ in range(args.repeat)]
        rows.append((f"transformers: greedy {args.tokens} tokens", gen))

    print(f"tiny model: {size:,} bytes in {len(files)} files, torch {torch.__version__}")
    print(f"{'step':<34} {'median ms':>10} {'min ms':>10} {'runs':>5}")
    for name, times in rows:
        print(f"{name:<34} {statistics.median(times) * 1e3:>10.2f} {min(times) * 1e3:>10.2f} {len(times):>5}")
    per_token = statistics.median(gen) / args.tokens
    print(f"transformers decode: {1 / per_token:,.0f} tokens/s (one stream, CPU, {torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
