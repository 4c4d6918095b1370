"""Break a framework's first (compiling) epoch into tracing, lowering, XLA
compilation and the rest, in a fresh process.

    python bench/profile_first_epoch.py minidl keras scan [--workload synth784-b128]

Each framework runs in its own new process (as in bench_mlp.py) with JAX's
monitoring hooks counting every trace, lowering and backend compile. "other"
is the first epoch's time not spent in those: the epoch's own computation,
eager operations, data checks and Python.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_mlp  # noqa: E402

MARK = "@@FIRST@@ "
EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
}


def child(name: str, workload: str, rows: int, digits_file: str) -> None:
    import jax.monitoring

    totals: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    per_fn: dict[str, float] = defaultdict(float)
    seen: list[tuple[float, str, float, str]] = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if event in EVENTS:
            seen.append(
                (
                    time.perf_counter() - duration,
                    EVENTS[event],
                    duration,
                    str(kwargs.get("fun_name")),
                )
            )

    jax.monitoring.register_event_duration_secs_listener(listen)
    dataset, sizes, batch = bench_mlp.WORKLOADS[workload]
    x, y = bench_mlp.load_data(dataset, rows, digits_file)
    bench_mlp.warm_jax()
    ends, _ = bench_mlp.TRAINERS[name](x, y, sizes, batch, 1)
    first = ends[1][0] - ends[0][0]
    first_cpu = ends[1][1] - ends[0][1]
    # Only what happened between the start of training and the epoch's end;
    # building the model and initialising parameters come before.
    for began, kind, duration, fn in seen:
        if ends[0][0] <= began <= ends[1][0]:
            totals[kind] += duration
            counts[kind] += 1
            if kind == "compile":
                per_fn[fn] += duration
    top = sorted(per_fn.items(), key=lambda kv: -kv[1])
    print(
        MARK
        + json.dumps(
            {
                "first_s": first,
                "first_cpu_s": first_cpu,
                "totals": totals,
                "counts": counts,
                "top": top,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("frameworks", nargs="*", default=["scan", "minidl", "keras"])
    parser.add_argument(
        "--workload", default="digits-b32", choices=list(bench_mlp.WORKLOADS)
    )
    parser.add_argument("--rows", type=int, default=bench_mlp.SYNTHETIC_ROWS)
    parser.add_argument(
        "--show", type=int, default=4, help="how many of the biggest compiles to name"
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.workload, args.rows, args.child[2])
        return
    env = dict(os.environ, KERAS_BACKEND="jax")
    with tempfile.TemporaryDirectory() as scratch:
        digits_file = bench_mlp.prepare_digits(scratch)
        print(f"workload {args.workload}\n")
        print(
            bench_mlp.md_row(
                [
                    "framework",
                    "first epoch (s)",
                    "CPU (s)",
                    "trace (s)",
                    "lower (s)",
                    "XLA compile (s)",
                    "compiles",
                    "other (s)",
                    "biggest compiles",
                ]
            )
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for name in args.frameworks:
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--workload",
                    args.workload,
                    "--rows",
                    str(args.rows),
                    "--child",
                    name,
                    "-",
                    digits_file,
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            line = next(
                (o for o in done.stdout.splitlines() if o.startswith(MARK)), None
            )
            if line is None:
                print(f"| {name} | error: {done.stderr.strip().splitlines()[-1:]} |")
                continue
            r = json.loads(line[len(MARK) :])
            t = r["totals"]
            other = (
                r["first_s"]
                - t.get("trace", 0)
                - t.get("lower", 0)
                - t.get("compile", 0)
            )
            top = ", ".join(f"{n} {s:.2f}" for n, s in r["top"][: args.show])
            print(
                bench_mlp.md_row(
                    [
                        name,
                        f"{r['first_s']:.2f}",
                        f"{r['first_cpu_s']:.2f}",
                        f"{t.get('trace', 0):.2f}",
                        f"{t.get('lower', 0):.2f}",
                        f"{t.get('compile', 0):.2f}",
                        str(r["counts"].get("compile", 0)),
                        f"{other:.2f}",
                        top,
                    ]
                )
            )


if __name__ == "__main__":
    main()
