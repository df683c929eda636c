"""Grouped K-fold CV of the whole recipe (head, then fine-tuning) on a GPU, in JAX.

On 2 CPU cores `python -m tumor_model cv --fine-tune` costs about 20 minutes a fold, so 10-fold
CVs of the fine-tuned recipe, other seeds and fine-tuning levers are out of reach there. This
script re-implements the recipe's two training phases in plain JAX, so that it runs on a machine
with JAX and a GPU but no TensorFlow (the lent H200 has JAX, not TensorFlow, and cannot
download):

    # here, with the dataset: the model's input pixels, the CV folds and the weights, one file
    PYTHONPATH=. python benchmarks/gpu_cv.py export --out .gpu/cv_data.npz
    # there: JAX, numpy, pandas, scipy, scikit-learn, pillow
    PYTHONPATH=. python benchmarks/gpu_cv.py run --data .gpu/cv_data.npz --out results.json

What is the same as the CPU recipe (`tumor_model.train.fit` per fold of `train.cv_splits`):
the folds and inner validation parts (exported from `train.cv_splits`), the input pixels
(`features.load_pixels`, crop-pad), MobileNetV2 with the weights Keras loaded (exported from
the built model, checked against Keras's own features at export time), the per-image stretch,
the head (Dense 250 relu, dropout 0.3, sigmoid), Adam and its learning rates, batch 40, head
early stopping (patience 10, best weights restored), fine-tuning the top N Keras layers'
kernels with BatchNorm frozen and the best validation-loss epoch kept, the augmentation steps
and their ranges, temperature and threshold on the inner validation part (`tumor_model.evaluate`).
What differs: pixels travel as JPEG (quality 90, mean error about 1.2 grey levels, because the
device's upload is limited to 64 MiB); rotation and zoom are one bilinear resampling instead
of two; random streams and weight initialisation come from JAX, not Keras.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image

try:  # `run` needs JAX; `export` (TensorFlow and the dataset, on the CPU) does not
    import jax
    import jax.numpy as jnp
    from jax import lax
    from jax.scipy.ndimage import map_coordinates
except ImportError:
    jax = jnp = lax = map_coordinates = None

# MobileNetV2 (alpha 1.0): (expansion, output channels, repeats, first stride) per stage.
STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1))
STAGES += ((6, 160, 3, 2), (6, 320, 1, 1))
BN_EPSILON = 1e-3
ROLES = {"train": 0, "val": 1, "test": 2}


# ----------------------------------------------------------------------------- export (here)


def export(settings_path: str, out: str, quality: int = 90, folds=(3, 10)) -> dict:
    """Write the model's input pixels (JPEG), labels, CV folds and backbone weights to `out`."""
    from tumor_model import features, train
    from tumor_model.config import Settings
    from tumor_model.model import input_size

    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1-100, got {quality!r}")
    settings = Settings.from_json(settings_path)
    table, _ = train.prepare_table(settings)
    unique = table.drop_duplicates("sha256")
    pixels = features.load_pixels(unique, input_size(settings), settings.geometry)
    blobs = [_jpeg(p, quality) for p in pixels]
    arrays = {
        "jpeg": np.frombuffer(b"".join(blobs), np.uint8),
        "jpeg_end": np.cumsum([len(b) for b in blobs]),
        "row_image": _positions(list(unique.sha256), table.sha256),
        "label": table.label.to_numpy(np.int8),
        "settings": np.array(json.dumps(settings.to_dict())),
        **fold_roles(table, settings.seed, folds),
    }
    weights, tuned, feature_model = keras_backbone(settings)
    arrays.update({f"w/{name}": value for name, value in weights.items()})
    arrays["fine_tune_kernels"] = np.array(tuned)
    check = decode(arrays["jpeg"], arrays["jpeg_end"], range(min(8, len(blobs))))
    arrays["check_pixels"] = check
    arrays["check_features"] = feature_model.predict(check.astype("float32"), verbose=0)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **arrays)
    return {"rows": len(table), "images": len(unique), "bytes": Path(out).stat().st_size}


def fold_roles(table, seed: int, folds) -> dict:
    """{"roles_<grouping>_<K>": int8 (K, rows), 0 train / 1 val / 2 test} from
    `train.cv_splits`, for each grouping with enough groups for K folds."""
    from tumor_model import train

    y, out = table.label.to_numpy(), {}
    for by in train.CV_GROUPS:
        groups = train.cv_groups(table, by)
        for k in folds:
            if not train.enough_groups(groups, k):
                continue
            roles = np.full((k, len(y)), -1, np.int8)
            for f, tr, va, te in train.cv_splits(y, groups, k, seed):
                roles[f, tr], roles[f, va], roles[f, te] = 0, 1, 2
            out[f"roles_{by}_{k}"] = roles
    return out


def keras_backbone(settings) -> tuple[dict, list, object]:
    """(weights of the backbone layers as Keras built them, the kernels fine-tuning trains,
    the Keras feature model): what the JAX port must reproduce."""
    from tumor_model.model import base_layers, build_model, set_fine_tune

    model, feature_model, _ = build_model(settings)
    set_fine_tune(model, settings.fine_tune_layers)
    body = base_layers(model)
    weights = {w.path: np.asarray(w.numpy()) for layer in body for w in layer.weights}
    names = {layer.name for layer in body}
    tuned = [w.path for w in model.trainable_weights if w.path.split("/")[0] in names]
    return weights, tuned, feature_model


def tf_cv(data_path: str, folds=(3, 10)) -> dict:
    """The TensorFlow frozen-stage CVs (`train.cross_validate`) on the exported JPEG pixels,
    {"<grouping>_<K>": CV}: what the JPEG transport alone does to the port's reference figures."""
    from tumor_model import train
    from tumor_model.config import Settings
    from tumor_model.model import build_model

    with np.load(data_path) as z:
        data = dict(z)
    settings = Settings.from_dict(json.loads(str(data["settings"])))
    table, _ = train.prepare_table(settings)
    if not np.array_equal(table.label.to_numpy(), data["label"]):
        raise ValueError(f"{data_path} was exported from other data than {settings.data_dirs}")
    images = decode(data["jpeg"], data["jpeg_end"], range(len(data["jpeg_end"])))
    _, feature_model, _ = build_model(settings)
    x = feature_model.predict(images.astype("float32"), batch_size=64, verbose=0)
    out = {}
    for by in train.CV_GROUPS:
        for k in folds:
            if f"roles_{by}_{k}" in data:
                cv = train.cross_validate(x[data["row_image"]], table, settings, k, by)
                out[f"{by}_{k}"] = cv
    return out


def _positions(unique_sha: list, sha) -> np.ndarray:
    where = {s: i for i, s in enumerate(unique_sha)}
    return np.array([where[s] for s in sha], np.int32)


def _jpeg(pixels: np.ndarray, quality: int) -> bytes:
    """One image as JPEG; single-channel when its three channels are equal (most MRIs)."""
    grey = bool(np.all(pixels[..., :1] == pixels))
    out = io.BytesIO()
    Image.fromarray(pixels[..., 0] if grey else pixels).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def decode(jpeg: np.ndarray, ends: np.ndarray, which) -> np.ndarray:
    """uint8 (n, H, W, 3) of the exported images at positions `which`."""
    starts = np.concatenate([[0], ends[:-1]])

    def one(i):
        img = Image.open(io.BytesIO(jpeg[starts[i] : ends[i]].tobytes())).convert("RGB")
        return np.asarray(img)

    with ThreadPoolExecutor(8) as pool:
        return np.stack(list(pool.map(one, which)))


# ----------------------------------------------------------------------------- model (JAX)


def blocks():
    """(prefix, expands, stride, residual) of each inverted-residual block, in order."""
    cin, i = 32, 0
    for t, c, n, s in STAGES:
        for j in range(n):
            stride = s if j == 0 else 1
            prefix = "expanded_conv_" if i == 0 else f"block_{i}_"
            yield prefix, t != 1, stride, cin == c and stride == 1
            cin, i = c, i + 1


def _conv(x, kernel, stride=1, groups=1):
    return lax.conv_general_dilated(
        x,
        kernel,
        (stride, stride),
        "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


def _bn(x, w, name):
    scale = w[f"{name}/gamma"] / jnp.sqrt(w[f"{name}/moving_variance"] + BN_EPSILON)
    return x * scale + (w[f"{name}/beta"] - w[f"{name}/moving_mean"] * scale)


def _relu6(x):
    return jnp.clip(x, 0.0, 6.0)


def preprocess(x):
    """Raw 0-255 pixels -> the per-image min-max stretch -> [-1, 1] (BackbonePreprocess)."""
    lo = x.min(axis=(1, 2, 3), keepdims=True)
    hi = x.max(axis=(1, 2, 3), keepdims=True)
    x = (x - lo) * (255.0 / jnp.maximum(hi - lo, 1.0))
    return x / 127.5 - 1.0


def backbone(w: dict, x):
    """Pooled MobileNetV2 features (n, 1280) of preprocessed images; BatchNorm in inference."""
    x = _relu6(_bn(_conv(x, w["Conv1/kernel"], 2), w, "bn_Conv1"))
    for prefix, expands, stride, residual in blocks():
        h = x
        if expands:
            h = _relu6(_bn(_conv(h, w[f"{prefix}expand/kernel"]), w, f"{prefix}expand_BN"))
        depth = w[f"{prefix}depthwise/kernel"]  # (3, 3, C, 1) -> grouped (3, 3, 1, C)
        h = _conv(h, depth.reshape(3, 3, 1, -1), stride, groups=depth.shape[2])
        h = _relu6(_bn(h, w, f"{prefix}depthwise_BN"))
        h = _bn(_conv(h, w[f"{prefix}project/kernel"]), w, f"{prefix}project_BN")
        x = x + h if residual else h
    x = _relu6(_bn(_conv(x, w["Conv_1/kernel"]), w, "Conv_1_bn"))
    return x.mean(axis=(1, 2))


def head_logit(w: dict, f, dropout: float = 0.0, key=None):
    """Dense(relu) -> Dropout -> Dense(1): the logit of P(tumour)."""
    h = jax.nn.relu(f @ w["head/dense_kernel"] + w["head/dense_bias"])
    if key is not None and dropout > 0:
        keep = jax.random.bernoulli(key, 1.0 - dropout, h.shape)
        h = jnp.where(keep, h / (1.0 - dropout), 0.0)
    return (h @ w["head/out_kernel"] + w["head/out_bias"])[:, 0]


def init_head(key, dim: int, units: int) -> dict:
    """Glorot-uniform kernels and zero biases, as Keras's Dense defaults."""
    k1, k2 = jax.random.split(key)

    def glorot(k, n_in, n_out):
        limit = math.sqrt(6.0 / (n_in + n_out))
        return jax.random.uniform(k, (n_in, n_out), jnp.float32, -limit, limit)

    return {
        "head/dense_kernel": glorot(k1, dim, units),
        "head/dense_bias": jnp.zeros(units),
        "head/out_kernel": glorot(k2, units, 1),
        "head/out_bias": jnp.zeros(1),
    }


def bce(logit, y):
    """Binary cross-entropy from logits, per example."""
    return jax.nn.softplus(logit) - y * logit


def adam(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-7):
    """One Adam step as Keras takes it; state = (step, first moments, second moments)."""
    t, m, v = state
    t = t + 1
    m = jax.tree.map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
    v = jax.tree.map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
    alpha = lr * jnp.sqrt(1 - b2**t) / (1 - b1**t)
    params = jax.tree.map(lambda p, a, b: p - alpha * a / (jnp.sqrt(b) + eps), params, m, v)
    return params, (t, m, v)


def adam_state(params):
    zeros = jax.tree.map(jnp.zeros_like, params)
    return jnp.zeros((), jnp.float32), zeros, zeros


# ----------------------------------------------------------------------------- augmentation


def augment(x, key, resample: float):
    """The fine-tuning augmentation of `train.pixel_dataset` on a float batch (0-255): flip,
    rotation (+-0.03 turn) and zoom (+-10%) with zero fill, contrast (0.7-1.3), brightness
    (+-15%), optional down-and-up resampling, gamma (0.7-1.4), noise (sd 3), clipped."""
    keys = jax.random.split(key, x.shape[0])
    return jax.vmap(partial(_augment_one, resample=resample))(x, keys)


def _augment_one(img, key, resample: float):
    k = jax.random.split(key, 8)
    u = partial(jax.random.uniform, shape=())
    img = jnp.where(u(k[0]) < 0.5, img[:, ::-1], img)
    side = img.shape[0]
    angle = u(k[1], minval=-0.03, maxval=0.03) * 2 * math.pi
    zoom = u(k[2], minval=0.9, maxval=1.1)
    centre = (side - 1) / 2.0
    r, c = jnp.meshgrid(jnp.arange(side) - centre, jnp.arange(side) - centre, indexing="ij")
    rows = centre + zoom * (jnp.cos(angle) * r - jnp.sin(angle) * c)
    cols = centre + zoom * (jnp.sin(angle) * r + jnp.cos(angle) * c)
    img = jnp.stack(
        [map_coordinates(img[..., ch], [rows, cols], order=1, cval=0.0) for ch in range(3)],
        axis=-1,
    )
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = jnp.clip((img - mean) * u(k[3], minval=0.7, maxval=1.3) + mean, 0, 255)
    img = jnp.clip(img + u(k[4], minval=-0.15, maxval=0.15) * 255.0, 0, 255)
    if resample:
        img = _resample(img, u(k[5], minval=1.0 - resample, maxval=1.0))
    gamma = jnp.exp(u(k[6], minval=-0.35, maxval=0.35))
    img = 255.0 * (jnp.clip(img, 0, 255) / 255.0) ** gamma
    return jnp.clip(img + 3.0 * jax.random.normal(k[7], img.shape), 0, 255)


def _resample(img, factor):
    """Shrink by `factor` (antialiased) and enlarge back: the blur of a lower-resolution scan."""
    zero = jnp.zeros(2)
    small = jax.image.scale_and_translate(
        img, img.shape, (0, 1), jnp.full(2, factor), zero, "linear", antialias=True
    )
    return jax.image.scale_and_translate(
        small, img.shape, (0, 1), jnp.full(2, 1.0 / factor), zero, "linear", antialias=True
    )


# ----------------------------------------------------------------------------- training


@dataclass(frozen=True)
class Recipe:
    """One CV job's recipe; fields left None take the exported settings' values."""

    fine_tune: bool = True  # False: the frozen-feature stage alone
    layers: str = "top"  # top: the exported top-N kernels (settings.fine_tune_layers); all
    epochs: int | None = None  # maximum fine-tuning epochs (the best validation-loss one is kept)
    lr: float | None = None  # fine-tuning Adam learning rate
    seed: int | None = None  # training seed: head initialisation, dropout, fine-tuning batch
    # order, augmentation (the folds and the head's batch order follow the settings' seed)
    resample: float | None = None  # down-and-up resampling strength in the augmentation

    def resolve(self, settings: dict) -> Recipe:
        """This recipe with every unset field taken from the exported settings."""
        own = {"epochs": "fine_tune_epochs", "lr": "fine_tune_lr", "seed": "seed"}
        own["resample"] = "resample"
        values = {f: settings[k] for f, k in own.items() if getattr(self, f) is None}
        return replace(self, **values)


class Trainer:
    """Everything one CV needs on the device: pixels, frozen features, jitted steps."""

    def __init__(self, data: dict, batch: int = 40, eval_batch: int = 200):
        self.settings = json.loads(str(data["settings"]))
        self.batch, self.eval_batch = batch, eval_batch
        self.y = data["label"].astype(np.float32)
        images = decode(data["jpeg"], data["jpeg_end"], range(len(data["jpeg_end"])))
        self.pixels = jax.device_put(images[data["row_image"]])
        self.w0 = {k[2:]: jnp.asarray(v) for k, v in data.items() if k.startswith("w/")}
        self.top = [str(n) for n in data["fine_tune_kernels"]]
        self.head_epoch = jax.jit(_head_epoch, static_argnames=("dropout",))
        self.fine_tune_step = jax.jit(_fine_tune_step, static_argnames=("dropout", "resample"))
        self.full_logit = jax.jit(_full_logit)
        self._features = jax.jit(lambda w, x: backbone(w, preprocess(x.astype(jnp.float32))))
        self.features = self.predict_rows(lambda x: self._features(self.w0, x))

    def predict_rows(self, fn, rows=None):
        """fn over every row (or `rows`) of the pixels in fixed-size batches (one compile)."""
        rows = np.arange(len(self.y)) if rows is None else np.asarray(rows)
        out = []
        for start in range(0, len(rows), self.eval_batch):
            chunk = rows[start : start + self.eval_batch]
            padded = np.pad(chunk, (0, self.eval_batch - len(chunk)))
            out.append(np.asarray(fn(self.pixels[padded]))[: len(chunk)])
        return np.concatenate(out)

    # --- phase 1: head on frozen features
    def train_head(self, key, tr, va):
        s = self.settings
        f, y = jnp.asarray(self.features), jnp.asarray(self.y)
        params = init_head(key, f.shape[1], s["dense_units"])
        state = adam_state(params)
        steps = max(len(tr) // self.batch, 1)  # full batches, as the CPU recipe drops the rest
        best, best_loss, wait = params, np.inf, 0
        rng = np.random.default_rng(s["seed"])
        for _ in range(s["head_epochs"]):
            order = rng.permutation(tr)[: steps * self.batch].reshape(steps, -1)
            key, sub = jax.random.split(key)
            params, state = self.head_epoch(
                params, state, f, y, jnp.asarray(order), sub, s["head_lr"], s["dropout"]
            )
            loss = float(bce(head_logit(params, f[va]), y[va]).mean())
            if loss < best_loss:
                best, best_loss, wait = params, loss, 0
            else:
                wait += 1
                if wait >= s["patience"]:
                    break
        return best

    # --- phase 2: fine-tuning on augmented pixels
    def fine_tune(self, key, head, tr, va, recipe: Recipe):
        names = self.top if recipe.layers == "top" else [k for k in self.w0 if "kernel" in k]
        tuned = {**{n: self.w0[n] for n in names}, **head}
        frozen = {k: v for k, v in self.w0.items() if k not in tuned}
        state = adam_state(tuned)
        rng = np.random.default_rng(recipe.seed)
        steps = max(len(tr) // self.batch, 1)
        best, best_loss = tuned, np.inf  # as Keras: the best of the epochs run, not the start
        for _ in range(recipe.epochs):
            order = rng.permutation(tr)[: steps * self.batch].reshape(steps, -1)
            for idx in order:
                key, sub = jax.random.split(key)
                tuned, state = self.fine_tune_step(
                    tuned,
                    state,
                    frozen,
                    self.pixels[idx],
                    self.y[idx],
                    sub,
                    recipe.lr,
                    self.settings["dropout"],
                    recipe.resample,
                )
            loss = self.val_loss(frozen, tuned, va)
            if loss < best_loss:
                best, best_loss = tuned, loss
        return {**frozen, **best}

    def val_loss(self, frozen, tuned, va):
        logits = self.logits({**frozen, **tuned}, va)
        return float(np.mean(np.logaddexp(0, logits) - self.y[va] * logits))

    def logits(self, weights, rows):
        return self.predict_rows(lambda x: self.full_logit(weights, x), rows)


def _head_epoch(params, state, f, y, order, key, lr, dropout):
    def step(carry, idx):
        params, state, key = carry
        key, sub = jax.random.split(key)

        def loss(p):
            return bce(head_logit(p, f[idx], dropout, sub), y[idx]).mean()

        params, state = adam(params, jax.grad(loss)(params), state, lr)
        return (params, state, key), None

    (params, state, _), _ = jax.lax.scan(step, (params, state, key), order)
    return params, state


def _fine_tune_step(tuned, state, frozen, pixels, y, key, lr, dropout, resample):
    k_aug, k_drop = jax.random.split(key)
    x = augment(pixels.astype(jnp.float32), k_aug, resample)

    def loss(t):
        w = {**frozen, **t}
        return bce(head_logit(w, backbone(w, preprocess(x)), dropout, k_drop), y).mean()

    return adam(tuned, jax.grad(loss)(tuned), state, lr)


def _full_logit(w, x):
    return head_logit(w, backbone(w, preprocess(x.astype(jnp.float32))))


# ----------------------------------------------------------------------------- CV


def cross_validate(trainer: Trainer, roles: np.ndarray, recipe: Recipe, name: str) -> dict:
    """Grouped K-fold CV of `recipe` on the exported folds, reported as `train.cross_validate`."""
    from tumor_model import evaluate

    recipe, s = recipe.resolve(trainer.settings), trainer.settings
    y = trainer.y.astype(int)
    probs, thresholds = np.zeros(len(y)), np.zeros(len(y))
    fold_acc, seconds = [], []
    for k, fold in enumerate(roles):
        start = time.perf_counter()
        tr, va, te = (np.flatnonzero(fold == ROLES[r]) for r in ("train", "val", "test"))
        key = jax.random.PRNGKey(recipe.seed + k)
        k_head, k_tune = jax.random.split(key)
        head = trainer.train_head(k_head, tr, va)
        if recipe.fine_tune:
            weights = trainer.fine_tune(k_tune, head, tr, va, recipe)
            val_p, test_p = (_sigmoid(trainer.logits(weights, r)) for r in (va, te))
        else:
            val_p, test_p = (
                _sigmoid(np.asarray(head_logit(head, trainer.features[r]))) for r in (va, te)
            )
        temperature, threshold = evaluate.decide(y[va], val_p, s["calibrate"], s["threshold"])
        probs[te], thresholds[te] = evaluate.apply_temperature(test_p, temperature), threshold
        fold_acc.append(float(np.mean((probs[te] >= threshold) == y[te])))
        seconds.append(time.perf_counter() - start)
        print(
            f"{name} fold {k + 1}/{len(roles)}: accuracy {fold_acc[-1]:.4f} ({seconds[-1]:.1f} s)",
            flush=True,
        )
    result = evaluate.report(y, probs, thresholds, s["bootstrap"], s["seed"])
    result.update(
        folds=len(roles), fold_accuracy=fold_acc, fold_seconds=seconds, recipe=asdict(recipe)
    )
    return result


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


JOBS = {  # name: (grouping, folds, recipe), in the order they run
    "frozen_duplicate_3": ("duplicate", 3, Recipe(fine_tune=False)),
    "full_duplicate_3": ("duplicate", 3, Recipe()),
    "frozen_duplicate_10": ("duplicate", 10, Recipe(fine_tune=False)),
    "frozen_source_10": ("source", 10, Recipe(fine_tune=False)),
    "full_duplicate_10": ("duplicate", 10, Recipe()),
    "full_source_10": ("source", 10, Recipe()),
    "full_duplicate_10_seed315": ("duplicate", 10, Recipe(seed=315)),
    "all_layers_duplicate_10": ("duplicate", 10, Recipe(layers="all")),
    "epochs16_duplicate_10": ("duplicate", 10, Recipe(epochs=16)),
    "all_layers_source_10": ("source", 10, Recipe(layers="all")),
    "epochs16_source_10": ("source", 10, Recipe(epochs=16)),
}
# metrics.json keys `store` fills, and the jobs they come from
STORED = {"cv_fine_tuned_gpu": "full_duplicate_10", "cv_source_fine_tuned_gpu": "full_source_10"}


def check_port(trainer: Trainer, data: dict) -> float:
    """Largest |JAX - Keras| pooled feature on the exported check images."""
    ours = trainer._features(trainer.w0, jnp.asarray(data["check_pixels"]))
    return float(np.max(np.abs(np.asarray(ours) - data["check_features"])))


def run(data_path: str, out: str, jobs, budget_s: float, limit: int = 0) -> dict:
    jax.config.update("jax_default_matmul_precision", "highest")  # float32 as on the CPU, no TF32
    if jax is None:
        raise ImportError("gpu_cv run needs JAX: pip install jax (on a GPU: jax[cuda13])")
    begin = time.perf_counter()
    with np.load(data_path) as z:
        data = dict(z)
    if limit:
        data = _subsample(data, limit)
    device = jax.devices()[0]
    results = {"device": f"{device.platform}: {device.device_kind}", "jax": jax.__version__}
    results["jobs"] = {}
    trainer = Trainer(data)
    results["port_max_abs_feature_diff"] = check_port(trainer, data)
    results["setup_seconds"] = time.perf_counter() - begin
    print(json.dumps({k: v for k, v in results.items() if k != "jobs"}), flush=True)
    for name in jobs:
        if name not in JOBS:
            raise ValueError(f"unknown job {name!r}; choose from {sorted(JOBS)}")
        by, k, recipe = JOBS[name]
        if f"roles_{by}_{k}" not in data:
            results["jobs"][name] = {"skipped": f"no {by}-grouped {k}-fold split was exported"}
            continue
        if time.perf_counter() - begin > budget_s:
            results["jobs"][name] = {"skipped": f"time budget {budget_s:.0f} s spent"}
            continue
        start = time.perf_counter()
        try:
            result = cross_validate(trainer, data[f"roles_{by}_{k}"], recipe, name)
        except Exception as err:  # noqa: BLE001 - one failing job must not cost the others
            results["jobs"][name] = {"failed": f"{type(err).__name__}: {err}"}
            print(f"{name} failed: {type(err).__name__}: {err}", flush=True)
            continue
        result.update(groups=by, seconds=time.perf_counter() - start)
        results["jobs"][name] = result
        acc = result["metrics"]["accuracy"]
        print(
            f"{name}: accuracy {acc['value']:.4f} [{acc['ci_low']:.4f}, {acc['ci_high']:.4f}] "
            f"AUC {result['metrics']['roc_auc']['value']:.4f} "
            f"({result['seconds']:.0f} s)",
            flush=True,
        )
        Path(out).write_text(json.dumps(results, indent=1, default=float))
    Path(out).write_text(json.dumps(results, indent=1, default=float))
    return results


def store(results_path: str, data_path: str, artifacts: str, where="", into=None) -> dict:
    """Copy the whole-recipe CVs of a `run` into `artifacts`/metrics.json (`into`: metrics key
    -> job, by default `STORED`'s 10-fold ones), with their fold sizes and what ran them."""
    from tumor_model import train

    results = json.loads(Path(results_path).read_text())
    settings = json.loads(Path(artifacts, "settings.json").read_text())
    out = {}
    with np.load(data_path) as data:
        for key, job in (into or STORED).items():
            block = results["jobs"].get(job, {})
            if "metrics" not in block:
                continue
            by, k, recipe = JOBS[job]
            out[key] = {
                **block,
                "fold_size": (data[f"roles_{by}_{k}"] == ROLES["test"]).sum(axis=1).tolist(),
                "groups": f"{by}: {train.CV_GROUPS[by]}",
                "recipe": (
                    f"full recipe: head + fine-tuning of the top {settings['fine_tune_layers']} "
                    f"layers; JAX port (benchmarks/gpu_cv.py) on {where or results['device']}"
                ),
            }
    if not out:
        raise ValueError(
            f"{results_path} holds none of the jobs {sorted((into or STORED).values())}"
        )
    train.update_metrics(Path(artifacts), out)
    return out


def _subsample(data: dict, n: int) -> dict:
    """n random rows (a smoke test); folds keep their roles on those rows."""
    rows = np.sort(np.random.default_rng(0).permutation(len(data["label"]))[:n])
    out = dict(data)
    out["row_image"], out["label"] = data["row_image"][rows], data["label"][rows]
    for key in data:
        if key.startswith("roles_"):
            out[key] = data[key][:, rows]
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="write pixels, folds and weights (needs the dataset)")
    ex.add_argument("--settings", default="artifacts/settings.json")
    ex.add_argument("--out", default=".gpu/cv_data.npz")
    ex.add_argument("--quality", type=int, default=90, help="JPEG quality of the pixels")
    go = sub.add_parser("run", help="run CV jobs in JAX (on the GPU where there is one)")
    go.add_argument("--data", default=".gpu/cv_data.npz")
    go.add_argument("--out", default="gpu_cv.json")
    go.add_argument("--jobs", nargs="+", default=list(JOBS), help=f"of {list(JOBS)}")
    go.add_argument("--budget", type=float, default=480.0, help="start no job after this, s")
    go.add_argument("--limit", type=int, default=0, help="first N rows only (smoke test)")
    ref = sub.add_parser("tf-cv", help="TensorFlow frozen-stage CVs on the exported pixels")
    ref.add_argument("--data", default=".gpu/cv_data.npz")
    keep = sub.add_parser("store", help="put the 10-fold whole-recipe CVs into metrics.json")
    keep.add_argument("--results", default="gpu_cv.json")
    keep.add_argument("--data", default=".gpu/cv_data.npz")
    keep.add_argument("--artifacts", default="artifacts")
    keep.add_argument("--where", default="", help="the machine, in words (default: results')")
    args = parser.parse_args(argv)
    if args.command == "export":
        print(json.dumps(export(args.settings, args.out, args.quality)))
    elif args.command == "run":
        run(args.data, args.out, args.jobs, args.budget, args.limit)
    elif args.command == "tf-cv":
        for name, cv in tf_cv(args.data).items():
            m = cv["metrics"]
            print(f"{name}: accuracy {m['accuracy']['value']:.4f} AUC {m['roc_auc']['value']:.4f}")
    else:
        print(sorted(store(args.results, args.data, args.artifacts, args.where)))


if __name__ == "__main__":
    main()
