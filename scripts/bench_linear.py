"""Linear-layer products on torch's default CPU kernel (``F.linear``, MKL here) vs oneDNN (``networks.linear``).

    taskset -c 0 python scripts/bench_linear.py --json

For each (batch, in, out) shape of the agents' networks, times the forward product and the two backward
products (input gradient (B, O) @ (O, I), weight gradient (O, B) @ (B, I)) both ways, single-threaded, and
prints microseconds per product and GFLOP/s. The last line is JSON: one record per shape with ``default_us``
and ``onednn_us`` for ``forward``, ``grad_input`` and ``grad_weight``. Shapes under
``networks.ONEDNN_MIN_MACS`` multiply-adds stay on the default kernel in the agents; they are listed to show why.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from multi_agent_rl.agents import networks

SHAPES = (  # (batch, in, out): TD3 400-300 critic, SAC 256-256, Rainbow 64-batch 256 streams, PPO 64-64
    (256, 400, 300),
    (256, 256, 256),
    (64, 256, 256),
    (512, 64, 64),
    (256, 64, 64),
    (64, 64, 64),
    (256, 300, 1),
)


def time_us(fn: Callable[[], torch.Tensor], repeats: int) -> float:
    """Median-free simple mean of ``repeats`` calls after 20 warm-up calls, microseconds per call."""
    for _ in range(20):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats * 1e6


def bench_shape(batch: int, fan_in: int, fan_out: int, repeats: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, fan_in, generator=gen)
    w = torch.randn(fan_out, fan_in, generator=gen)
    b = torch.randn(fan_out, generator=gen)
    g = torch.randn(batch, fan_out, generator=gen)
    products = {
        "forward": (lambda: F.linear(x, w, b), lambda: networks._onednn_linear(x, w, b)),
        "grad_input": (lambda: g @ w, lambda: networks._onednn_linear(g, w.t(), None)),
        "grad_weight": (lambda: g.t() @ x, lambda: networks._onednn_linear(g.t(), x.t(), None)),
    }
    record: dict = {"shape": [batch, fan_in, fan_out], "macs": batch * fan_in * fan_out}
    for name, (default, onednn) in products.items():
        record[name] = {"default_us": time_us(default, repeats), "onednn_us": time_us(onednn, repeats)}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per product")
    parser.add_argument("--json", action="store_true", help="print the JSON summary line last")
    args = parser.parse_args()
    if not networks.ONEDNN_AVAILABLE:
        raise SystemExit("this torch build has no oneDNN linear")
    torch.set_num_threads(1)
    records = []
    vendor, flags = networks.cpu_info()
    vector_unit = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    print(f"CPU maker {vendor or 'unknown'} ({vector_unit}): the agents run products of >= "
          f"{networks.ONEDNN_MIN_MACS} multiply-adds on "
          f"{'oneDNN' if networks.ONEDNN_LINEAR else 'the default kernel'} (MULTI_AGENT_RL_ONEDNN to force)")
    print(f"{'B x I x O':>16} {'product':>12} {'default us':>11} {'oneDNN us':>10} {'GFLOP/s':>15}  agents use")
    for batch, fan_in, fan_out in SHAPES:
        record = bench_shape(batch, fan_in, fan_out, args.repeats)
        records.append(record)
        on_onednn = networks.ONEDNN_LINEAR and record["macs"] >= networks.ONEDNN_MIN_MACS
        uses = "oneDNN" if on_onednn else "default"
        for name in ("forward", "grad_input", "grad_weight"):
            d, o = record[name]["default_us"], record[name]["onednn_us"]
            flops = 2e-3 * record["macs"]
            print(f"{batch:>5}x{fan_in:>4}x{fan_out:>4} {name:>12} {d:>11.1f} {o:>10.1f} "
                  f"{flops / d:>7.1f}/{flops / o:<7.1f}  {uses}")
    if args.json:
        print(json.dumps(records))


if __name__ == "__main__":
    main()
