"""Train the same MLP on the same data with minidl and its peers, side by side.

    python bench/bench_mlp.py                  # every workload, every framework
    python bench/bench_mlp.py --quick          # shorter: fewer epochs, smaller data
    python bench/bench_mlp.py --only minidl,scan --repeats 10
    python bench/bench_mlp.py --summarize bench/results/*.json

Every framework trains with Adam (learning rate 1e-3), reshuffles the rows
every epoch, uses every row every epoch (the last, smaller batch included)
and runs in its own fresh process, so one framework's threads, caches or
environment variables never touch another's timings. The reference is
``scan``: a hand-written JAX + optax loop that runs a whole epoch as one
compiled ``lax.scan``. Ratios are relative to it.

Timing: "first epoch" runs from the call that starts training to the end of
the first epoch, so it includes tracing and compilation; each later epoch is
the time between two consecutive epoch ends, with the epoch's loss read back
to the host (a device sync) at each end. Results go to bench/results/ as JSON.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import itertools
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MARK = "@@RESULT@@ "
LEARNING_RATE = 1e-3

# name -> (dataset, layer sizes, batch size)
WORKLOADS: dict[str, tuple[str, tuple[int, ...], int]] = {
    "digits-b32": ("digits", (64, 128, 128, 10), 32),
    "digits-b8": ("digits", (64, 128, 128, 10), 8),
    "synth784-b128": ("synthetic", (784, 512, 512, 10), 128),
}
SYNTHETIC_ROWS = 60_000
SYNTHETIC_ROWS_QUICK = 5_000

# name -> (what it is, module that must be importable)
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "scan": ("JAX + optax, epoch in one lax.scan (reference)", "optax"),
    "jax": ("JAX + optax, one jitted call per step", "optax"),
    "minidl": ("minidl fit", "minidl_core"),
    "keras": ("Keras 3 fit, JAX backend", "keras"),
    "equinox": ("Equinox, filter_jit per step", "equinox"),
    "nnx": ("Flax NNX, nnx.jit per step (cached_partial)", "flax"),
    "torch": ("PyTorch eager, CPU", "torch"),
}
JAX_BASED = {"scan", "jax", "minidl", "keras", "equinox", "nnx"}
DISTRIBUTIONS = [
    "jax",
    "jaxlib",
    "optax",
    "minidl",
    "keras",
    "equinox",
    "flax",
    "torch",
    "numpy",
]


# ---------------------------------------------------------------------------
# Data, shared by every framework.


def load_data(dataset: str, rows: int, digits_file: str | None):
    import numpy as np

    if dataset == "digits":
        with np.load(digits_file) as data:
            return data["x"], data["y"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, 784), dtype=np.float32)
    w = rng.standard_normal((784, 10), dtype=np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)  # learnable, fixed labels
    return x, y


def mlp_flops_per_sample(sizes: tuple[int, ...]) -> int:
    """Training FLOPs per example: forward 2*MACs, backward 4*MACs."""
    macs = sum(a * b for a, b in itertools.pairwise(sizes))
    return 6 * macs


# ---------------------------------------------------------------------------
# The trainers. Each takes (x, y, layer sizes, batch size, epochs) and returns
# ([stamp() at the start and at the end of every epoch], the last epoch's loss).


_deadline = [float("inf")]
MIN_EPOCHS = 3  # the first and at least two steady ones, whatever the budget


def stamp() -> tuple[float, float]:
    """Wall-clock and process CPU seconds (all threads), read together."""
    return time.perf_counter(), time.process_time()


def enough(ends: list) -> bool:
    """Stop early once past the time budget with at least MIN_EPOCHS done."""
    return len(ends) - 1 >= MIN_EPOCHS and time.perf_counter() > _deadline[0]


def per_step_epochs(step, state, x, y, batch, epochs):
    """Train with one jitted call per batch, as the per-step peers do.

    ``step(*state, total, x, y, ids)`` returns the new state followed by the
    new ``total``, the running sum of each batch's mean loss times its size.
    The order of the rows is drawn on the host every epoch.
    """
    import jax.numpy as jnp
    import numpy as np

    n = len(x)
    rng = np.random.default_rng(0)
    ends, loss = [stamp()], None
    for _ in range(epochs):
        order = rng.permutation(n).astype(np.int32)
        total = jnp.zeros((), jnp.float32)
        for start in range(0, n, batch):
            *state, total = step(*state, total, x, y, order[start : start + batch])
        loss = float(total) / n
        ends.append(stamp())
        if enough(ends):
            break
    return ends, loss


def warm_jax() -> None:
    """Start the JAX backend outside any timing; no framework is favoured."""
    import jax
    import jax.numpy as jnp

    jax.jit(lambda a: a + 1)(jnp.zeros(4)).block_until_ready()


def run_scan(x, y, sizes, batch, epochs):
    import jax
    import jax.numpy as jnp
    import optax

    n = len(x)
    full, rest = n // batch, n % batch
    tx = optax.adam(LEARNING_RATE)

    def init(key):
        params = []
        keys = jax.random.split(key, len(sizes) - 1)
        for k, (a, b) in zip(keys, itertools.pairwise(sizes), strict=True):
            limit = (6.0 / (a + b)) ** 0.5
            params.append(
                (
                    jax.random.uniform(k, (a, b), jnp.float32, -limit, limit),
                    jnp.zeros(b),
                )
            )
        return params

    def forward(params, xb):
        for w, b in params[:-1]:
            xb = jax.nn.relu(xb @ w + b)
        w, b = params[-1]
        return xb @ w + b

    def loss_fn(params, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(
            forward(params, xb), yb
        ).mean()

    def step(carry, xb, yb):
        params, opt_state = carry
        loss, grads = jax.value_and_grad(loss_fn)(params, xb, yb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    def epoch(params, opt_state, x, y, key, index):
        order = jax.random.permutation(jax.random.fold_in(key, index), n)
        batches = order[: full * batch].reshape(full, batch)
        carry, losses = jax.lax.scan(
            lambda c, ids: step(c, x[ids], y[ids]), (params, opt_state), batches
        )
        total = losses.sum() * batch
        if rest:
            ids = order[full * batch :]
            carry, last = step(carry, x[ids], y[ids])
            total = total + last * rest
        return carry[0], carry[1], total / n

    epoch = jax.jit(epoch, donate_argnums=(0, 1))
    key = jax.random.key(0)
    params = init(key)
    opt_state = tx.init(params)
    xd, yd = jax.device_put(x), jax.device_put(y)
    ends, loss = [stamp()], None
    for i in range(epochs):
        params, opt_state, loss = epoch(params, opt_state, xd, yd, key, i)
        loss = float(loss)
        ends.append(stamp())
        if enough(ends):
            break
    return ends, loss


def run_jax(x, y, sizes, batch, epochs):
    import jax
    import jax.numpy as jnp
    import optax

    tx = optax.adam(LEARNING_RATE)
    key = jax.random.key(0)
    params = []
    keys = jax.random.split(key, len(sizes) - 1)
    for k, (a, b) in zip(keys, itertools.pairwise(sizes), strict=True):
        limit = (6.0 / (a + b)) ** 0.5
        params.append(
            (jax.random.uniform(k, (a, b), jnp.float32, -limit, limit), jnp.zeros(b))
        )

    def loss_fn(params, xb, yb):
        for w, b in params[:-1]:
            xb = jax.nn.relu(xb @ w + b)
        w, b = params[-1]
        return optax.softmax_cross_entropy_with_integer_labels(xb @ w + b, yb).mean()

    def step(params, opt_state, total, x, y, ids):
        loss, grads = jax.value_and_grad(loss_fn)(params, x[ids], y[ids])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (
            optax.apply_updates(params, updates),
            opt_state,
            total + loss * ids.shape[0],
        )

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    opt_state = tx.init(params)
    xd, yd = jax.device_put(x), jax.device_put(y)
    return per_step_epochs(step, (params, opt_state), xd, yd, batch, epochs)


def run_minidl(x, y, sizes, batch, epochs):
    import minidl_core
    import minidl_core.losses
    from minidl_core.layers import Dense, Relu

    layers = []
    for units in sizes[1:-1]:
        layers += [Dense(units=units), Relu()]
    layers.append(Dense(units=sizes[-1]))
    model = minidl_core.Sequential(layers, input_shape=sizes[0], seed=0)

    ends: list = []

    class Clock(minidl_core.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(stamp())
            if enough(ends):
                self.model.stop_training = True

    ends.append(stamp())
    history = minidl_core.fit(
        model,
        x,
        y,
        loss=minidl_core.losses.SparseCategoricalCrossentropy(from_logits=True),
        optimizer="adam",
        learning_rate=LEARNING_RATE,
        epochs=epochs,
        batch_size=batch,
        shuffle=True,
        seed=0,
        callbacks=[Clock()],
        verbose=0,
    )
    return ends, float(history["loss"][-1])


def run_keras(x, y, sizes, batch, epochs):
    import keras

    assert keras.backend.backend() == "jax", keras.backend.backend()
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((sizes[0],))]
        + [keras.layers.Dense(u, activation="relu") for u in sizes[1:-1]]
        + [keras.layers.Dense(sizes[-1])]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    ends: list = []
    losses: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            losses.append(float(logs["loss"]))  # a device sync
            ends.append(stamp())
            if enough(ends):
                self.model.stop_training = True

    ends.append(stamp())
    model.fit(
        x,
        y,
        batch_size=batch,
        epochs=epochs,
        shuffle=True,
        verbose=0,
        callbacks=[Clock()],
    )
    return ends, losses[-1]


def run_equinox(x, y, sizes, batch, epochs):
    import equinox as eqx
    import jax
    import optax

    class MLP(eqx.Module):
        layers: list

        def __init__(self, key):
            keys = jax.random.split(key, len(sizes) - 1)
            self.layers = [
                eqx.nn.Linear(a, b, key=k)
                for k, (a, b) in zip(keys, itertools.pairwise(sizes), strict=True)
            ]

        def __call__(self, xb):
            for layer in self.layers[:-1]:
                xb = jax.nn.relu(jax.vmap(layer)(xb))
            return jax.vmap(self.layers[-1])(xb)

    model = MLP(jax.random.key(0))
    tx = optax.adam(LEARNING_RATE)
    opt_state = tx.init(eqx.filter(model, eqx.is_array))

    @eqx.filter_jit
    def step(model, opt_state, total, x, y, ids):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(
                m(x[ids]), y[ids]
            ).mean()

        loss, grads = eqx.filter_value_and_grad(loss_fn)(model)
        updates, opt_state = tx.update(
            grads, opt_state, eqx.filter(model, eqx.is_array)
        )
        return eqx.apply_updates(model, updates), opt_state, total + loss * ids.shape[0]

    xd, yd = jax.device_put(x), jax.device_put(y)
    return per_step_epochs(step, (model, opt_state), xd, yd, batch, epochs)


def run_nnx(x, y, sizes, batch, epochs):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from flax import nnx

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.layers = nnx.List(
                [nnx.Linear(a, b, rngs=rngs) for a, b in itertools.pairwise(sizes)]
            )

        def __call__(self, xb):
            for layer in self.layers[:-1]:
                xb = nnx.relu(layer(xb))
            return self.layers[-1](xb)

    model = MLP(nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, x, y, ids):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(
                m(x[ids]), y[ids]
            ).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss * ids.shape[0]

    step = nnx.cached_partial(train_step, model, optimizer)
    n = len(x)
    xd, yd = jax.device_put(x), jax.device_put(y)
    rng = np.random.default_rng(0)
    ends, loss = [stamp()], None
    for _ in range(epochs):
        order = rng.permutation(n).astype(np.int32)
        sums = [
            step(xd, yd, order[start : start + batch]) for start in range(0, n, batch)
        ]
        loss = float(jnp.sum(jnp.stack(sums))) / n
        ends.append(stamp())
        if enough(ends):
            break
    return ends, loss


def run_torch(x, y, sizes, batch, epochs):
    import torch

    torch.manual_seed(0)
    layers: list = []
    for a, b in itertools.pairwise(sizes[:-1]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    layers.append(torch.nn.Linear(sizes[-2], sizes[-1]))
    model = torch.nn.Sequential(*layers)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    n = len(x)
    generator = torch.Generator().manual_seed(0)
    ends, loss = [stamp()], None
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        total = torch.zeros(())
        for start in range(0, n, batch):
            ids = order[start : start + batch]
            optimizer.zero_grad(set_to_none=True)
            batch_loss = torch.nn.functional.cross_entropy(model(xt[ids]), yt[ids])
            batch_loss.backward()
            optimizer.step()
            total += batch_loss.detach() * len(ids)
        loss = float(total) / n
        ends.append(stamp())
        if enough(ends):
            break
    return ends, loss


TRAINERS = {
    "scan": run_scan,
    "jax": run_jax,
    "minidl": run_minidl,
    "keras": run_keras,
    "equinox": run_equinox,
    "nnx": run_nnx,
    "torch": run_torch,
}


def matmul_limit(size: int = 2048, tries: int = 20) -> dict:
    """Best-of-``tries`` float32 GFLOP/s of a jitted (size x size) jnp.dot.

    Also per CPU-second (process time over all threads), which a busy
    machine disturbs far less than wall-clock time.
    """
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (size, size), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (size, size), jnp.float32)
    dot = jax.jit(jnp.dot)
    dot(a, b).block_until_ready()
    best = best_cpu = float("inf")
    for _ in range(tries):
        start, start_cpu = time.perf_counter(), time.process_time()
        dot(a, b).block_until_ready()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    flops = 2 * size**3
    return {
        "size": size,
        "best_s": best,
        "gflops": flops / best / 1e9,
        "best_cpu_s": best_cpu,
        "gflops_per_cpu_s": flops / best_cpu / 1e9,
    }


def worker(args: argparse.Namespace) -> None:
    name, workload = args.worker
    if name == "matmul":
        warm_jax()
        print(MARK + json.dumps(matmul_limit()), flush=True)
        return
    dataset, sizes, batch = WORKLOADS[workload]
    x, y = load_data(dataset, args.rows, args.digits_file)
    if name in JAX_BASED:
        warm_jax()
    else:
        import torch

        torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
        (torch.ones(64, 64) @ torch.ones(64, 64)).sum().item()
    _deadline[0] = time.perf_counter() + (args.budget or float("inf"))
    ends, loss = TRAINERS[name](x, y, sizes, batch, args.epochs)
    wall = [b[0] - a[0] for a, b in itertools.pairwise(ends)]
    cpu = [b[1] - a[1] for a, b in itertools.pairwise(ends)]
    print(
        MARK
        + json.dumps(
            {"rows": len(x), "epoch_s": wall, "epoch_cpu_s": cpu, "final_loss": loss}
        ),
        flush=True,
    )


# ---------------------------------------------------------------------------
# The driver.


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for dist in DISTRIBUTIONS:
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


def machine() -> dict[str, object]:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model or platform.processor(),
        "platform": platform.platform(),
        "env": {
            k: os.environ.get(k)
            for k in (
                "OPENBLAS_CORETYPE",
                "OPENBLAS_L2_SIZE",
                "XLA_FLAGS",
                "OMP_NUM_THREADS",
            )
        },
    }


def run_worker(
    name: str,
    workload: str,
    epochs: int,
    rows: int,
    digits_file: str,
    args: argparse.Namespace,
) -> dict:
    env = dict(os.environ)
    env["KERAS_BACKEND"] = "jax"  # only this child process sees it
    if name == "torch" and args.torch_wait_policy != "default":
        env.setdefault("OMP_WAIT_POLICY", args.torch_wait_policy.upper())
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        workload,
        "--epochs",
        str(epochs),
        "--rows",
        str(rows),
        "--digits-file",
        digits_file,
        "--budget",
        str(args.budget),
        "--torch-threads",
        str(args.torch_threads),
    ]
    timeout = args.timeout
    try:
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK) :])
    tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
    return {"error": f"exit {done.returncode}: " + " | ".join(tail)}


def prepare_digits(directory: str) -> str:
    import numpy as np

    import minidl_core

    data = minidl_core.get_dataset("digits")()
    path = os.path.join(directory, "digits.npz")
    np.savez(
        path,
        x=np.asarray(data.x_train, np.float32),
        y=np.asarray(data.y_train, np.int32),
    )
    return path


def summarize_epochs(
    firsts: list[float],
    steady: list[float],
    first_cpu: list[float],
    steady_cpu: list[float],
    rows: int,
    sizes: tuple[int, ...],
    batch: int,
) -> dict:
    """One table row from first-epoch and steady epoch times (seconds)."""
    median = statistics.median(steady)
    return {
        "first_s": statistics.median(firsts),
        "first_min_s": min(firsts),
        "first_max_s": max(firsts),
        "first_cpu_s": statistics.median(first_cpu) if first_cpu else None,
        "median_s": median,
        "mean_s": statistics.fmean(steady),
        "min_s": min(steady),
        "max_s": max(steady),
        "cpu_median_s": statistics.median(steady_cpu) if steady_cpu else None,
        "samples_per_s": rows / median,
        "gflops": rows * mlp_flops_per_sample(sizes) / median / 1e9,
        "steps_per_epoch": -(-rows // batch),
        "steady_epochs": len(steady),
        "runs": len(firsts),
    }


def _ratio(row: dict, ref: dict, key: str) -> str:
    if row.get(key) and ref.get(key):
        return f"{row[key] / ref[key]:.2f}"
    return "-"


def _paired(row: dict) -> str:
    ratios = row.get("round_ratios") or []
    if not ratios:
        return "-"
    text = f"{statistics.median(ratios):.2f}"
    if len(ratios) > 1:
        text += f" ({min(ratios):.2f}-{max(ratios):.2f})"
    return text


def add_round_ratios(summary: dict, rounds: list[dict]) -> None:
    """Each framework's median steady epoch over the scan loop's, per round.

    A round runs every framework once, close together in time, so the load
    of a shared machine disturbs the two sides of each ratio alike.
    """
    for workload, per in summary.items():
        for name, row in per.items():
            ratios = []
            for round_ in rounds:
                mine = round_.get(workload, {}).get(name, {})
                ref = round_.get(workload, {}).get("scan", {})
                if mine.get("epoch_s") and ref.get("epoch_s"):
                    ratios.append(
                        statistics.median(mine["epoch_s"][1:] or mine["epoch_s"])
                        / statistics.median(ref["epoch_s"][1:] or ref["epoch_s"])
                    )
            if "median_s" in row:
                row["round_ratios"] = ratios


COLUMNS = [
    "workload",
    "framework",
    "first epoch (s)",
    "first epoch CPU (s)",
    "steady epoch median (ms)",
    "min / max (ms)",
    "epochs",
    "samples/s",
    "x scan (median)",
    "x scan (mean)",
    "x scan (CPU)",
    "x scan, per round",
    "GFLOP/s",
    "% of matmul",
    "% of matmul per CPU-s",
]


def md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table(results: dict, limit: float | None, cpu_limit: float | None = None) -> str:
    lines = [md_row(COLUMNS), "|---|---|" + "---:|" * (len(COLUMNS) - 2)]
    for workload, per in results.items():
        dataset = WORKLOADS[workload][0]
        ref = per.get("scan", {})
        for name in sorted(per, key=lambda n: list(FRAMEWORKS).index(n)):
            row = per[name]
            if "median_s" not in row:
                reason = row.get("error") or row.get("skipped") or ""
                blanks = [""] * (len(COLUMNS) - 3)
                lines.append(md_row([workload, name, reason, *blanks]))
                continue
            gflops = pct = pct_cpu = "-"
            if dataset == "synthetic":
                gflops = f"{row['gflops']:.1f}"
                if limit:
                    pct = f"{100 * row['gflops'] / limit:.0f}%"
                if cpu_limit and row.get("cpu_median_s"):
                    per_cpu = row["gflops"] * row["median_s"] / row["cpu_median_s"]
                    pct_cpu = f"{100 * per_cpu / cpu_limit:.0f}%"
            first = f"{row['first_s']:.2f}"
            if row.get("runs", 1) > 1:
                first += f" ({row['first_min_s']:.2f}-{row['first_max_s']:.2f})"
            first_cpu = "-"
            if row.get("first_cpu_s") is not None:
                first_cpu = f"{row['first_cpu_s']:.2f}"
            cells = [
                workload,
                name,
                first,
                first_cpu,
                f"{1e3 * row['median_s']:.1f}",
                f"{1e3 * row['min_s']:.1f} / {1e3 * row['max_s']:.1f}",
                str(row["steady_epochs"]),
                f"{row['samples_per_s']:,.0f}",
                _ratio(row, ref, "median_s"),
                _ratio(row, ref, "mean_s"),
                _ratio(row, ref, "cpu_median_s"),
                _paired(row),
                gflops,
                pct,
                pct_cpu,
            ]
            lines.append(md_row(cells))
    return "\n".join(lines)


def run_round(
    workload: str,
    chosen: list[str],
    available: dict[str, bool],
    shuffler: random.Random,
    epochs: int,
    rows: int,
    digits_file: str,
    args: argparse.Namespace,
    notes: list[str],
) -> dict[str, dict]:
    """Every chosen framework once on ``workload``, each in a fresh process."""
    records: dict[str, dict] = {}
    # A fresh order every time, so no framework always runs first or last
    # while the machine's load drifts.
    order = list(chosen)
    shuffler.shuffle(order)
    for name in order:
        if not available[name]:
            records[name] = {"skipped": "not installed"}
            continue
        record = run_worker(name, workload, epochs, rows, digits_file, args)
        records[name] = record
        if "error" in record:
            notes.append(f"{workload}/{name}: {record['error']}")
            print(f"{workload:>14} {name:>8}  ERROR {record['error']}", flush=True)
            continue
        row = pool([{workload: {name: record}}])[workload][name]
        print(
            f"{workload:>14} {name:>8}  first {row['first_s']:6.2f} s  "
            f"steady median {1e3 * row['median_s']:8.1f} ms  "
            f"(min {1e3 * row['min_s']:.1f}, max {1e3 * row['max_s']:.1f})  "
            f"loss {row['final_loss']:.4f}",
            flush=True,
        )
    return records


def pool(rounds: list[dict[str, dict[str, dict]]]) -> dict[str, dict[str, dict]]:
    """One table row per workload and framework from every round's records.

    The first epoch is the median over rounds; steady epochs are pooled.
    """
    summary: dict[str, dict[str, dict]] = {}
    for workload in dict.fromkeys(w for r in rounds for w in r):
        rows = None
        summary[workload] = {}
        for name in dict.fromkeys(n for r in rounds for n in r.get(workload, {})):
            records = [r[workload][name] for r in rounds if name in r.get(workload, {})]
            good = [rec for rec in records if "epoch_s" in rec]
            if not good:
                summary[workload][name] = records[0]
                continue
            for rec in good:
                if (rows or rec["rows"]) != rec["rows"]:
                    sys.exit(
                        f"{workload}: the records disagree on its size "
                        "(--quick mixed with full runs?)"
                    )
                rows = rec["rows"]
            cpu = [rec.get("epoch_cpu_s", []) for rec in good]
            summary[workload][name] = summarize_epochs(
                [rec["epoch_s"][0] for rec in good],
                [t for rec in good for t in rec["epoch_s"][1:]],
                [c[0] for c in cpu if c],
                [t for c in cpu for t in c[1:]],
                good[0]["rows"],
                *WORKLOADS[workload][1:],
            )
            summary[workload][name]["final_loss"] = good[-1].get("final_loss")
    return summary


def main_run(args: argparse.Namespace) -> None:
    chosen = (
        list(FRAMEWORKS)
        if not args.only
        else [s.strip() for s in args.only.split(",") if s.strip()]
    )
    unknown = [s for s in chosen if s not in FRAMEWORKS]
    if unknown:
        sys.exit(
            f"--only: unknown framework(s) {unknown}; "
            f"choose from {', '.join(FRAMEWORKS)}"
        )
    workloads = list(WORKLOADS) if not args.workloads else args.workloads.split(",")
    bad = [w for w in workloads if w not in WORKLOADS]
    if bad:
        sys.exit(f"--workloads: unknown {bad}; choose from {', '.join(WORKLOADS)}")
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 5)
    if args.budget is None:
        args.budget = 3.0 if args.quick else 30.0
    epochs = 1 + repeats
    rows = SYNTHETIC_ROWS_QUICK if args.quick else SYNTHETIC_ROWS
    notes: list[str] = []
    available = {}
    for name in chosen:
        module = FRAMEWORKS[name][1]
        available[name] = importlib.util.find_spec(module) is not None
        if not available[name]:
            notes.append(f"{name}: skipped, `{module}` is not installed")
    if (
        importlib.util.find_spec("minidl_core") is None
        or importlib.util.find_spec("jax") is None
    ):
        sys.exit("bench_mlp needs minidl (pip install -e .) and jax installed")

    if "torch" in chosen and available.get("torch"):
        policy = os.environ.get("OMP_WAIT_POLICY") or (
            None
            if args.torch_wait_policy == "default"
            else args.torch_wait_policy.upper()
        )
        notes.append(
            f"torch: {args.torch_threads or os.cpu_count()} threads, "
            f"OMP_WAIT_POLICY={policy or 'unset'}"
        )
    if os.environ.get("OPENBLAS_CORETYPE"):
        notes.append(
            f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set; left alone "
            "(XLA does not use OpenBLAS, and this torch build uses MKL/oneDNN)"
        )
    seed = args.seed if args.seed is not None else int(time.time())
    shuffler = random.Random(seed)
    load_start = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        digits_file = prepare_digits(scratch)
        limit = cpu_limit = None
        measure_limit = any(WORKLOADS[w][0] == "synthetic" for w in workloads)
        limits: list[float] = []
        cpu_limits: list[float] = []

        def measure() -> None:
            peak = run_worker(
                "matmul", next(iter(WORKLOADS)), 1, rows, digits_file, args
            )
            if "gflops" in peak:
                limits.append(peak["gflops"])
                cpu_limits.append(peak["gflops_per_cpu_s"])
                print(
                    f"matmul limit: {peak['gflops']:.1f} GFLOP/s, "
                    f"{peak['gflops_per_cpu_s']:.1f} GFLOP per CPU-second "
                    "(2048x2048 float32 jnp.dot, best of 20)",
                    flush=True,
                )
            else:
                notes.append(f"matmul limit: {peak.get('error')}")

        if measure_limit:
            measure()
        rounds: list[dict[str, dict[str, dict]]] = []
        for number in range(args.rounds):
            if args.rounds > 1:
                print(f"round {number + 1} of {args.rounds}", flush=True)
            rounds.append({})
            for workload in workloads:
                rounds[-1][workload] = run_round(
                    workload,
                    chosen,
                    available,
                    shuffler,
                    epochs,
                    rows,
                    digits_file,
                    args,
                    notes,
                )
        if measure_limit:
            measure()  # again at the end; the best of the two counts
            limit = max(limits) if limits else None
            cpu_limit = max(cpu_limits) if cpu_limits else None
    elapsed = time.time() - started
    load_end = os.getloadavg()
    notes.append(
        f"load average (1 min) at start {load_start[0]:.2f}, at end {load_end[0]:.2f} "
        f"on {os.cpu_count()} cores"
    )
    summary = pool(rounds)
    add_round_ratios(summary, rounds)
    text = table(summary, limit, cpu_limit)
    print()
    print(text)
    for note in notes:
        print(f"- {note}")
    print(
        f"\n{len(workloads)} workloads, {args.rounds} round(s) of {repeats} "
        f"steady epochs each, {elapsed:.0f} s in all"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"bench_mlp-{stamp}{'-quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "quick": args.quick,
                "repeats": repeats,
                "rounds": args.rounds,
                "order_seed": seed,
                "synthetic_rows": rows,
                "elapsed_s": elapsed,
                "loadavg_start": load_start,
                "loadavg_end": load_end,
                "versions": versions(),
                "machine": machine(),
                "matmul_limit_gflops": limit,
                "matmul_limit_runs_gflops": limits,
                "matmul_limit_gflops_per_cpu_s": cpu_limit,
                "workloads": {
                    w: {
                        "sizes": WORKLOADS[w][1],
                        "batch": WORKLOADS[w][2],
                        "dataset": WORKLOADS[w][0],
                    }
                    for w in workloads
                },
                "frameworks": {n: FRAMEWORKS[n][0] for n in chosen},
                "summary": summary,
                "raw": {
                    w: {n: [r[w][n] for r in rounds] for n in rounds[0][w]}
                    for w in workloads
                },
                "notes": notes,
            },
            indent=1,
        )
    )
    print(f"results: {out}")


def main_summarize(files: list[str]) -> None:
    """Pool every steady epoch of several result files into one table."""
    runs = [json.loads(Path(f).read_text()) for f in files]
    # Each run's rounds (one, in files written before rounds existed).
    rounds: list[dict[str, dict[str, dict]]] = []
    for run in runs:
        count = run.get("rounds", 1)
        for i in range(count):
            rounds.append(
                {
                    workload: {
                        name: records[i] if isinstance(records, list) else records
                        for name, records in per.items()
                        if not isinstance(records, list) or i < len(records)
                    }
                    for workload, per in run["raw"].items()
                }
            )
    workloads = {w for r in rounds for w in r}
    for r in rounds:
        for w in workloads:
            r.setdefault(w, {})
    combined = pool(rounds)
    add_round_ratios(combined, rounds)
    limits = [r["matmul_limit_gflops"] for r in runs if r.get("matmul_limit_gflops")]
    limit = max(limits) if limits else None
    cpu_limits = [
        r["matmul_limit_gflops_per_cpu_s"]
        for r in runs
        if r.get("matmul_limit_gflops_per_cpu_s")
    ]
    cpu_limit = max(cpu_limits) if cpu_limits else None
    print(f"{len(runs)} runs: {', '.join(r['date'] for r in runs)}")
    if limit:
        print(
            f"matmul limit: best {limit:.1f} GFLOP/s "
            f"(runs: {', '.join(f'{v:.1f}' for v in limits)})"
        )
    print(
        "first epoch: median (min-max) over rounds; steady epochs pooled over rounds\n"
    )
    print(table(combined, limit, cpu_limit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="fewer epochs and a 5,000-row synthetic set",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="steady epochs timed after the first (default 5, quick 2)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run every framework this many times, each in a fresh process, "
        "one round after another; ratios are also taken round by round",
    )
    parser.add_argument(
        "--only", default="", help=f"comma-separated subset of: {','.join(FRAMEWORKS)}"
    )
    parser.add_argument(
        "--workloads",
        default="",
        help=f"comma-separated subset of: {','.join(WORKLOADS)}",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300,
        help="seconds allowed per framework and workload",
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds of training per framework and workload after which no "
        "further epoch starts once the first and two steady epochs are done "
        "(default 30, quick 3)",
    )
    parser.add_argument(
        "--torch-wait-policy",
        choices=["passive", "active", "default"],
        default="passive",
        help="OMP_WAIT_POLICY for the torch process, unless already set "
        "(default passive: spinning OpenMP threads collapse on a busy machine)",
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=0,
        help="torch.set_num_threads (default: every core, as JAX uses)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seeds the order in which frameworks run (default: the clock; recorded)",
    )
    parser.add_argument(
        "--summarize",
        nargs="+",
        metavar="JSON",
        help="combine earlier result files into one table",
    )
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--rows", type=int, default=SYNTHETIC_ROWS, help=argparse.SUPPRESS
    )
    parser.add_argument("--digits-file", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.worker:
        worker(args)
    elif args.summarize:
        main_summarize(args.summarize)
    else:
        main_run(args)


if __name__ == "__main__":
    main()
