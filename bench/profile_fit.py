"""Where does minidl's fit spend its time, compared with a hand-written scan?

    python bench/profile_fit.py --workload digits-b32 --rounds 6 --block 10
    python bench/profile_fit.py --compile --workload digits-b32 --rounds 4
    python bench/profile_fit.py --overhead --workload digits-b32

Times, in one process, round by round in a shuffled order (so a busy machine
slows every variant alike), ``--block`` epochs of each of:

  scan         a hand-written epoch like bench_mlp.py's reference (optax
               loss, plain forward pass, no per-step key, no NaN guard)
  +apply       the same, with the forward pass through minidl's Model.apply
  +loss        ... and minidl's SparseCategoricalCrossentropy
  +key         ... and a PRNG key folded in for every step
  +stats       ... and the per-step stats vector (stack of loss and metrics)
  +guard       ... and the end-of-epoch NaN guard (jnp.where over the state):
               this is what minidl's epoch function does
  +stats,pad   +stats, but the last, smaller batch padded to a full one and
               masked, so the step is compiled once instead of twice
  epoch_fn     minidl's own compiled epoch, called directly
  step-jit     one jitted call per step (host permutation), for comparison
  bench scan   bench_mlp.py's scan loop, whole, with its Python per epoch
  fit          minidl.fit, the time between two epoch ends (adds fit's
               Python per epoch: syncs, history, callbacks; for short
               epochs that overlaps the next epoch, so read its mean)

Each of the first six differs from the one above it by one thing, so the
difference between neighbours is the cost of that thing.

--compile times tracing + lowering and XLA compilation of each variant (process
CPU seconds, fresh jit objects each round). --overhead times fit's fixed
per-epoch cost on an epoch of a single step, against the scan loop's.
"""

from __future__ import annotations

import argparse
import statistics
import time

import bench_mlp
import jax
import jax.numpy as jnp
import numpy as np
import optax
from bench_mlp import SYNTHETIC_ROWS, WORKLOADS, load_data, md_row

import minidl_core
import minidl_core.losses
from minidl_core import _training
from minidl_core.layers import Dense, Relu


def build_model(sizes):
    layers = []
    for units in sizes[1:-1]:
        layers += [Dense(units=units), Relu()]
    layers.append(Dense(units=sizes[-1]))
    return minidl_core.Sequential(layers, input_shape=sizes[0], seed=0)


def make_epoch(
    model, n, batch, tx, *, apply, loss, key, stats, guard, pad=False, donate=True
):
    dense = [layer.name for layer in model.layers if isinstance(layer, Dense)]
    minidl_loss = minidl_core.losses.SparseCategoricalCrossentropy(from_logits=True)
    full, rest = n // batch, n % batch

    def forward(params, xb, k):
        if apply:
            return model.apply(params, xb, key=k, training=True)
        for name in dense[:-1]:
            xb = jax.nn.relu(xb @ params[name]["w"] + params[name]["b"])
        return xb @ params[dense[-1]]["w"] + params[dense[-1]]["b"]

    def loss_fn(params, xb, yb, k, mask=None):
        pred = forward(params, xb, k)
        if mask is not None:  # mean over the real rows of a padded batch
            per = (
                minidl_loss.per_sample(yb, pred)
                if loss
                else (optax.softmax_cross_entropy_with_integer_labels(pred, yb))
            )
            return jnp.sum(per * mask) / jnp.sum(mask)
        if loss:
            return minidl_loss(yb, pred)
        return optax.softmax_cross_entropy_with_integer_labels(pred, yb).mean()

    def step(carry, xb, yb, k, mask=None):
        params, opt_state = carry
        value, grads = jax.value_and_grad(loss_fn)(params, xb, yb, k, mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        out = jnp.stack([value]) if stats else value
        if mask is not None:
            out = out * jnp.sum(mask)
        return (optax.apply_updates(params, updates), opt_state), out

    def padded_epoch(params, opt_state, x, y, epoch_key):
        # Every batch, the last one padded and masked, through one step body.
        steps = -(-n // batch)
        order_key, step_key = jax.random.split(epoch_key)
        order = jax.random.permutation(order_key, n)
        order = jnp.concatenate([order, order[: steps * batch - n]]).reshape(
            steps, batch
        )
        masks = (
            (jnp.arange(steps * batch) < n).astype(jnp.float32).reshape(steps, batch)
        )

        def body(carry, inputs):
            i, ids, mask = inputs
            k = jax.random.fold_in(step_key, i) if key else None
            return step(carry, x[ids], y[ids], k, mask)

        start = (params, opt_state)
        carry, sums = jax.lax.scan(body, start, (jnp.arange(steps), order, masks))
        mean = sums.sum(axis=0) / n
        if guard:
            finite = jnp.isfinite(mean if not stats else mean[0])
            carry = jax.tree.map(lambda a, b: jnp.where(finite, a, b), carry, start)
        return carry[0], carry[1], mean

    def epoch(params, opt_state, x, y, epoch_key):
        order_key, step_key = jax.random.split(epoch_key)
        order = jax.random.permutation(order_key, n)
        batches = order[: full * batch].reshape(full, batch)

        def body(carry, inputs):
            i, ids = inputs
            k = jax.random.fold_in(step_key, i) if key else None
            return step(carry, x[ids], y[ids], k)

        start = (params, opt_state)
        carry, losses = jax.lax.scan(body, start, (jnp.arange(full), batches))
        total = losses.sum(axis=0) * batch
        if rest:
            ids = order[full * batch :]
            k = jax.random.fold_in(step_key, full) if key else None
            carry, last = step(carry, x[ids], y[ids], k)
            total = total + last * rest
        mean = total / n
        if guard:
            finite = jnp.isfinite(mean if not stats else mean[0])
            carry = jax.tree.map(lambda a, b: jnp.where(finite, a, b), carry, start)
        return carry[0], carry[1], mean

    return jax.jit(
        padded_epoch if pad else epoch, donate_argnums=(0, 1) if donate else ()
    )


# minidl's step (apply, loss, key, stats), no guard, the remainder padded and masked
PADDED = {
    "apply": True,
    "loss": True,
    "key": True,
    "stats": True,
    "guard": False,
    "pad": True,
}


def make_step_loop(model, n, batch, tx):
    dense = [layer.name for layer in model.layers if isinstance(layer, Dense)]

    def loss_fn(params, xb, yb):
        for name in dense[:-1]:
            xb = jax.nn.relu(xb @ params[name]["w"] + params[name]["b"])
        pred = xb @ params[dense[-1]]["w"] + params[dense[-1]]["b"]
        return optax.softmax_cross_entropy_with_integer_labels(pred, yb).mean()

    def step(params, opt_state, total, x, y, ids):
        value, grads = jax.value_and_grad(loss_fn)(params, x[ids], y[ids])
        updates, opt_state = tx.update(grads, opt_state, params)
        return (
            optax.apply_updates(params, updates),
            opt_state,
            total + value * ids.shape[0],
        )

    step = jax.jit(step, donate_argnums=(0, 1, 2))
    rng = np.random.default_rng(0)

    def epoch(params, opt_state, x, y, _key):
        order = rng.permutation(n).astype(np.int32)
        total = jnp.zeros((), jnp.float32)
        for s in range(0, n, batch):
            params, opt_state, total = step(
                params, opt_state, total, x, y, order[s : s + batch]
            )
        return params, opt_state, total / n

    return epoch


def compile_times(model, n, batch, tx, xd, yd, flags, rounds) -> None:
    """Fresh jit objects each round, so nothing comes from a cache."""
    loss_obj = minidl_core.losses.SparseCategoricalCrossentropy(from_logits=True)
    plan = _training._Plan(n, batch, True)
    params = model.partition(model.params)[0]
    frozen = model.partition(model.params)[1]
    opt_state = tx.init(params)
    key = jax.random.key(0)

    def builders():
        yield (
            "scan",
            lambda: make_epoch(model, n, batch, tx, **dict.fromkeys(flags, False)),
            False,
        )
        for i, flag in enumerate(flags):
            yield (
                "+" + flag,
                (
                    lambda i=i: make_epoch(
                        model, n, batch, tx, **{f: j <= i for j, f in enumerate(flags)}
                    )
                ),
                False,
            )
        yield (
            "+stats,no donation",
            lambda: make_epoch(
                model, n, batch, tx, **dict(PADDED, pad=False, donate=False)
            ),
            False,
        )
        yield "+stats,pad", lambda: make_epoch(model, n, batch, tx, **PADDED), False
        yield (
            "epoch_fn",
            lambda: _training._make_epoch_fn(model, loss_obj, {}, tx, plan),
            True,
        )

    lower_s: dict[str, list[float]] = {}
    compile_s: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name, build, real in builders():
            fn = build()
            start = time.process_time()
            if real:
                lowered = fn.lower(params, opt_state, frozen, xd, yd, key)
            else:
                lowered = fn.lower(params, opt_state, xd, yd, key)
            middle = time.process_time()
            lowered.compile()
            end = time.process_time()
            lower_s.setdefault(name, []).append(middle - start)
            compile_s.setdefault(name, []).append(end - middle)
    print(
        f"n={n}, batch={batch}; process CPU seconds, "
        f"min (median) over {rounds} rounds\n"
    )
    print("| variant | trace+lower (s) | XLA compile (s) |")
    print("|---|---:|---:|")
    for name in lower_s:
        lo, co = lower_s[name], compile_s[name]
        print(
            f"| {name} | {min(lo):.2f} ({statistics.median(lo):.2f}) | "
            f"{min(co):.2f} ({statistics.median(co):.2f}) |"
        )


def fixed_overhead(model, sizes, x, y, batch, epochs: int = 400) -> None:
    """Per-epoch cost of fit beyond the compiled epoch, on a one-step epoch."""
    loss_obj = minidl_core.losses.SparseCategoricalCrossentropy(from_logits=True)
    ends: list[float] = []

    class Clock(minidl_core.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    results = {}
    for attempt in range(2):
        ends.clear()
        minidl_core.fit(
            model,
            x,
            y,
            loss=loss_obj,
            optimizer="adam",
            learning_rate=1e-3,
            epochs=epochs,
            batch_size=batch,
            callbacks=[Clock()],
            verbose=0,
        )
        fit_times = np.diff(ends)[50:]
        marks, _ = bench_mlp.run_scan(x, y, sizes, batch, epochs)
        scan_times = np.diff([m[0] for m in marks])[50:]
        results[attempt] = (
            np.median(fit_times),
            fit_times.min(),
            np.median(scan_times),
            scan_times.min(),
        )
    print(
        f"one step of {batch} rows per epoch, {epochs} epochs, "
        "two attempts (microseconds)\n"
    )
    print(
        "| attempt | fit median | fit min | scan median | scan min "
        "| fit - scan (median) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for attempt, (fm, fl, sm, sl) in results.items():
        print(
            md_row(
                [str(attempt + 1)]
                + [f"{1e6 * v:.0f}" for v in (fm, fl, sm, sl, fm - sm)]
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workload", default="digits-b8", choices=list(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--rows", type=int, default=SYNTHETIC_ROWS)
    parser.add_argument(
        "--block",
        type=int,
        default=1,
        help="epochs each variant runs back to back in a round (warm caches)",
    )
    parser.add_argument(
        "--overhead",
        action="store_true",
        help="time the fixed per-epoch cost of fit on a one-batch epoch instead",
    )
    parser.add_argument(
        "--compile",
        action="store_true",
        help="time tracing+lowering and XLA compilation of each variant instead",
    )
    args = parser.parse_args()
    dataset, sizes, batch = WORKLOADS[args.workload]
    x, y = load_data(dataset, args.rows, None) if dataset != "digits" else (None, None)
    if dataset == "digits":
        data = minidl_core.get_dataset("digits")()
        x, y = np.asarray(data.x_train, np.float32), np.asarray(data.y_train, np.int32)
    n = len(x)
    model = build_model(sizes)
    tx = optax.adam(1e-3)
    xd, yd = jax.device_put(x), jax.device_put(y)

    flags = ["apply", "loss", "key", "stats", "guard"]
    variants = {"scan": make_epoch(model, n, batch, tx, **dict.fromkeys(flags, False))}
    for i, flag in enumerate(flags):
        variants["+" + flag] = make_epoch(
            model, n, batch, tx, **{f: j <= i for j, f in enumerate(flags)}
        )
    variants["+stats,pad"] = make_epoch(model, n, batch, tx, **PADDED)
    loss_obj = minidl_core.losses.SparseCategoricalCrossentropy(from_logits=True)
    plan = _training._Plan(n, batch, True)
    real = _training._make_epoch_fn(model, loss_obj, {}, tx, plan)
    frozen = model.partition(model.params)[1]
    epoch_index = np.int32(0)
    variants["epoch_fn"] = lambda p, s, x, y, k: real(
        p, s, frozen, x, y, k, epoch_index
    )[:3]
    variants["step-jit"] = make_step_loop(model, n, batch, tx)

    if args.compile:
        compile_times(model, n, batch, tx, xd, yd, flags, args.rounds)
        return
    if args.overhead:
        fixed_overhead(model, sizes, x[:batch], y[:batch], batch)
        return

    states = {}
    compile_s = {}
    for name, fn in variants.items():
        params = jax.tree.map(jnp.copy, model.partition(model.params)[0])
        opt_state = tx.init(params)
        start = time.perf_counter()
        params, opt_state, mean = fn(params, opt_state, xd, yd, jax.random.key(0))
        float(jnp.ravel(mean)[0])
        compile_s[name] = time.perf_counter() - start
        states[name] = (params, opt_state)

    times: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    times["fit"] = []
    cpu["fit"] = []
    fit_model = build_model(sizes)
    ends: list[float] = []
    cpu_ends: list[float] = []

    class Clock(minidl_core.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())
            cpu_ends.append(time.process_time())

    order = list(variants)
    shuffler = np.random.default_rng(0)
    keys = [jax.random.key(i + 1) for i in range(args.rounds * args.block)]
    times["bench scan"], cpu["bench scan"] = [], []
    for r in range(args.rounds):
        shuffler.shuffle(order)  # no variant always runs first or last
        for name in order:
            fn = variants[name]
            params, opt_state = states[name]
            for b in range(args.block):
                start, start_cpu = time.perf_counter(), time.process_time()
                params, opt_state, mean = fn(
                    params, opt_state, xd, yd, keys[r * args.block + b]
                )
                np.asarray(mean)
                times[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
            states[name] = (params, opt_state)
        # The two whole loops the benchmark compares, each with its own Python
        # per-epoch work; each compiles anew, so its first epoch is left out.
        marks, _ = bench_mlp.run_scan(x, y, sizes, batch, 1 + max(2, args.block))
        times["bench scan"].extend(np.diff([m[0] for m in marks])[1:])
        cpu["bench scan"].extend(np.diff([m[1] for m in marks])[1:])
        ends.clear()
        cpu_ends.clear()
        minidl_core.fit(
            fit_model,
            x,
            y,
            loss=loss_obj,
            optimizer="adam",
            learning_rate=1e-3,
            epochs=1 + max(2, args.block),
            batch_size=batch,
            callbacks=[Clock()],
            verbose=0,
            seed=r,
        )
        times["fit"].extend(np.diff(ends)[1:])
        cpu["fit"].extend(np.diff(cpu_ends)[1:])

    ref = min(times["scan"])
    ref_cpu = min(cpu["scan"])
    steps = -(-n // batch)
    print(
        f"workload {args.workload}: n={n}, batch={batch}, {steps} steps/epoch, "
        f"{args.rounds} interleaved rounds of {args.block} epoch(s) per variant\n"
    )
    print(
        "| variant | compile+1st epoch (s) | wall min (ms) | wall median (ms) "
        "| wall mean (ms) | wall min / scan | wall mean / scan | CPU min (ms) "
        "| CPU median (ms) | CPU min / scan "
        "| CPU per step over scan (us) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    ref_mean = statistics.fmean(times["scan"])
    for name, values in times.items():
        first = compile_s.get(name)
        first_text = f"{first:.2f}" if first is not None else "-"
        lo, mid, mean = min(values), statistics.median(values), statistics.fmean(values)
        clo, cmid = min(cpu[name]), statistics.median(cpu[name])
        print(
            md_row(
                [
                    name,
                    first_text,
                    f"{1e3 * lo:.2f}",
                    f"{1e3 * mid:.2f}",
                    f"{1e3 * mean:.2f}",
                    f"{lo / ref:.3f}",
                    f"{mean / ref_mean:.3f}",
                    f"{1e3 * clo:.2f}",
                    f"{1e3 * cmid:.2f}",
                    f"{clo / ref_cpu:.3f}",
                    f"{1e6 * (clo - ref_cpu) / steps:+.1f}",
                ]
            )
        )


if __name__ == "__main__":
    main()
