"""How long `adapt`'s head retraining takes on this machine (a script, not a timed test).

    PYTHONPATH=. python benchmarks/bench_adapt.py [--anchor 3000] [--local 50] [--dim 1280]
        [--repeats 3]

Random features (the cost does not depend on their values) of the shipped head's shape
(`artifacts/settings.json`). Times, median of `--repeats`, one retrain of the head on `--anchor`
anchor rows plus `--local` local rows: through `adapt.HeadTrainer` (one compiled head, reset for
every retrain; after its first call, as `adapt` makes 21), and the way `adapt` retrained until
2026-12-04 (a fresh head compiled and trained with Keras `fit`, same epochs, batch size, learning
rate and sample weights). Prints one JSON line: seconds per retrain and the anchor-set accuracy
of each, as a check that both learnt. Runs on the Keras backend in KERAS_BACKEND.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import tumor_model  # noqa: F401  (sets TensorFlow's CPU allocator before keras loads)


def fit_per_retrain(settings, start, anchor_x, anchor_y, x, y):
    """adapt's retraining before HeadTrainer: a new head and a Keras `fit` per retrain."""
    import keras

    from tumor_model.config import LOCAL_SHARE
    from tumor_model.model import make_head
    from tumor_model.site import adapt

    head = make_head(settings, anchor_x.shape[1])
    for name, weights in zip(adapt.HEAD_LAYERS, start, strict=True):
        head.get_layer(name).set_weights(weights)
    share = LOCAL_SHARE
    w_local = share * len(anchor_x) / ((1 - share) * len(x))
    ws = np.concatenate([np.ones(len(anchor_x)), np.full(len(x), w_local)]).astype(np.float32)
    head.compile(optimizer=keras.optimizers.Adam(adapt.HEAD_LR), loss="binary_crossentropy")
    head.fit(
        np.concatenate([anchor_x, x]),
        np.concatenate([anchor_y, y]).astype(np.float32),
        sample_weight=ws / ws.mean(),
        epochs=adapt.HEAD_EPOCHS,
        batch_size=adapt.HEAD_BATCH,
        shuffle=True,
        verbose=0,
    )
    return lambda f: head.predict(f, batch_size=512, verbose=0).ravel()


def main(argv=None) -> int:
    from tumor_model.config import Settings
    from tumor_model.model import make_head
    from tumor_model.site import adapt

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--anchor", type=int, default=3000)
    ap.add_argument("--local", type=int, default=50)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    settings = Settings.from_json("artifacts/settings.json")
    rng = np.random.default_rng(0)
    anchor_x = rng.normal(0, 1, (args.anchor, args.dim)).astype(np.float32)
    anchor_y = (anchor_x[:, 0] > 0).astype(int)
    x = rng.normal(0, 1, (args.local, args.dim)).astype(np.float32)
    y = (x[:, 1] > 0).astype(int)
    head = make_head(settings, args.dim)
    start = [head.get_layer(n).get_weights() for n in adapt.HEAD_LAYERS]
    trainer = adapt.HeadTrainer(settings, start, args.dim)
    trainer(anchor_x, anchor_y, x, y)  # the first of adapt's 21 calls traces the step
    runs = {
        "head_trainer": lambda s: trainer(anchor_x, anchor_y, x, y, seed=s)[0],
        "fit_per_retrain": lambda s: fit_per_retrain(settings, start, anchor_x, anchor_y, x, y),
    }
    out = {"anchor": args.anchor, "local": args.local, "dim": args.dim}
    for name, run in runs.items():
        seconds, accuracy = [], []
        for s in range(args.repeats):
            t = time.perf_counter()
            predict = run(s)
            seconds.append(time.perf_counter() - t)
            accuracy.append(float(np.mean((predict(anchor_x) >= 0.5) == anchor_y)))
        out[name] = {"median_s": round(float(np.median(seconds)), 3), "anchor_accuracy": accuracy}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
