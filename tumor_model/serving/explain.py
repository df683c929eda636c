"""Visual explanations of the classifier: Grad-CAM, Grad-CAM++, Layer-CAM, Score-CAM, SmoothGrad.

Thin wrappers around tf-keras-vis, which works with Keras 3 only on a FLAT functional model (ours
is, see `tumor_model.model`). The loaded model is never modified: the `Explainer` works on its
own clone whose sigmoid output is replaced by the linear logit (`ReplaceToLinear`).

What is explained: by default the PREDICTED class. For a "tumor" prediction the score is the
tumour logit z (regions that raised P(tumour)); for a "healthy" prediction it is -z, the logit of
1 - P(tumour) (regions that lowered it). Pass `target=1` or `target=0` to choose yourself.
Score-CAM weighs channels by softmax probabilities, which a single sigmoid unit cannot give, so its
model gets a fixed two-logit layer [0, z]: softmax([0, z]) = [1 - p, p].

`heatmap()` returns a float32 (S, S) map in 0..1 (0 everywhere when nothing pushed the score up);
`tumor_model.serving.overlay` colours it and blends it over the image.

Speed: tf-keras-vis builds a new Keras model (input -> [output, penultimate maps]) on every CAM
call and runs it eagerly: about 0.5 s per Grad-CAM on the shipped MobileNetV2, and memory that
grows with every call. The CAMs (Grad-CAM, ++, Layer-CAM, Score-CAM) therefore run on a graph
compiled once per explainer (`tf.function` over that two-output model, built once) and apply
tf-keras-vis 0.8.7's own formulas to its maps and gradients; `Explainer(..., compiled=False)` runs
tf-keras-vis itself, and the tests check that both give the same map. SmoothGrad always runs in
tf-keras-vis (its `Saliency` builds nothing per call).

Target layers: the CAM methods (`CAMS`) take `layer=`: None (the model card's `last_conv`), a
layer name, or a list of names, fused as Layer-CAM does (`cam_math.fuse_maps`).
`tumor_model.evaluation.localise` measures which method and layer find the lesion.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

import numpy as np

from tumor_model.serving.cam_math import (
    expand_map,
    fuse_maps,
    gradcam_map,
    gradcam_plus_plus_map,
    interpolation_matrix,
    layercam_map,
    quiet_warnings,
    sigmoid,
    to_unit,
)

METHODS = ("gradcam", "gradcam++", "layercam", "scorecam", "smoothgrad")
COMPILED = ("gradcam", "gradcam++", "layercam", "scorecam")  # run on the compiled path by default
CAMS = COMPILED  # the methods that take a target layer (SmoothGrad explains the input pixels)
METHOD_NAMES = {
    "gradcam": "Grad-CAM",
    "gradcam++": "Grad-CAM++",
    "layercam": "Layer-CAM",
    "scorecam": "Score-CAM",
    "smoothgrad": "SmoothGrad",
}


@dataclass(frozen=True)
class Explanation:
    heatmap: np.ndarray  # float32 (S, S) in 0..1
    method: str  # one of METHODS
    target: int  # the class explained: 1 = tumour (score z), 0 = healthy (score -z)
    probability: float | None  # P(tumour), computed only when the target was not given
    seconds: float  # time the map took
    layers: tuple[str, ...] = ()  # the target layers (CAM methods); () for SmoothGrad

    @property
    def empty(self) -> bool:
        """True when no region pushed the explained score up (the map is all zeros)."""
        return float(self.heatmap.max()) <= 1e-6


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown explanation method {method!r}; choose one of {METHODS}")
    return method


class Explainer:
    """Explanations of one flat sigmoid classifier; visualizers are built once, on first use.

    `model`: the classifier (raw RGB 0-255 input (S, S, 3), one sigmoid output); never modified.
    `last_conv`: the layer whose activations the CAM methods use (model card field `last_conv`).
    `threshold`: decision threshold on P(tumour), to find the predicted class.
    """

    def __init__(
        self,
        model,
        last_conv: str,
        threshold: float = 0.5,
        scorecam_max_n: int = 64,
        smooth_samples: int = 16,
        smooth_noise: float = 0.2,
        compiled: bool = True,
    ):
        names = [layer.name for layer in model.layers]
        if last_conv not in names:
            raise ValueError(f"layer {last_conv!r} (last_conv) is not in model {model.name!r}")
        if len(model.inputs) != 1 or len(model.outputs) != 1 or model.output.shape[-1] != 1:
            raise ValueError("Explainer needs a model with one image input and one sigmoid output")
        if len(model.get_layer(last_conv).output.shape) != 4:
            raise ValueError(f"layer {last_conv!r} does not give (batch, h, w, channels) maps")
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        self.model, self.last_conv, self.threshold = model, last_conv, float(threshold)
        self.size = tuple(int(d) for d in model.input.shape[1:3])
        self.scorecam_max_n = int(min(scorecam_max_n, model.get_layer(last_conv).output.shape[-1]))
        self._max_n = int(scorecam_max_n)  # per layer: at most its number of channels
        self.smooth_samples, self.smooth_noise = int(smooth_samples), float(smooth_noise)
        self.compiled = bool(compiled)
        self._lock = threading.RLock()
        self._linear = None
        self._viz: dict = {}
        self._gradients: dict = {}
        self._logits = None

    def layers(self, layer=None, method: str = "gradcam") -> tuple[str, ...]:
        """The target layers of `method` as a tuple: `layer` None means `last_conv`; a name or a
        list of names must each be a layer of the model giving (batch, h, w, channels) maps.
        SmoothGrad takes no layer: ()."""
        check_method(method)
        if method not in CAMS:
            if layer is not None and layer != () and layer != []:
                raise ValueError(
                    f"{method!r} explains the input pixels and takes no layer, got layer {layer!r}"
                )
            return ()
        single = layer is None or isinstance(layer, str)
        names = (self.last_conv,) if layer is None else (layer,) if single else tuple(layer)
        if not names:
            raise ValueError(f"no target layer given for {method!r}")
        known = {lay.name for lay in self.model.layers}
        for name in names:
            if not isinstance(name, str) or name not in known:
                raise ValueError(f"layer {name!r} is not in model {self.model.name!r}")
            if len(self.model.get_layer(name).output.shape) != 4:
                raise ValueError(f"layer {name!r} does not give (batch, h, w, channels) maps")
        if len(set(names)) != len(names):
            raise ValueError(f"target layers repeat a name: {list(names)!r}")
        return names

    # ------------------------------------------------------------------ building (once, cached)

    def linear_model(self):
        """A clone of the model with the same weights whose output is the logit z (not sigmoid)."""
        with self._lock:
            if self._linear is None:
                import keras
                from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

                clone = keras.models.clone_model(self.model)
                clone.set_weights(self.model.get_weights())
                ReplaceToLinear()(clone)
                self._linear = clone
            return self._linear

    def visualizer(self, method: str):
        """The tf-keras-vis object of `method`, built on first use and kept."""
        check_method(method)
        with self._lock:
            if method not in self._viz:
                self._viz[method] = self._build(method)
            return self._viz[method]

    def _build(self, method: str):
        with quiet_warnings():  # tf-keras-vis imports the deprecated scipy.ndimage.interpolation
            from tf_keras_vis.gradcam import Gradcam
            from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
            from tf_keras_vis.saliency import Saliency
            from tf_keras_vis.scorecam import Scorecam

        linear = self.linear_model()
        if method == "gradcam":
            return Gradcam(linear, model_modifier=None, clone=False)
        if method == "gradcam++":
            return GradcamPlusPlus(linear, model_modifier=None, clone=False)
        if method == "layercam":
            from tf_keras_vis.layercam import Layercam

            return Layercam(linear, model_modifier=None, clone=False)
        if method == "smoothgrad":
            return Saliency(linear, model_modifier=None, clone=False)
        import keras

        z = linear.output
        two = keras.layers.Dense(2, use_bias=False, trainable=False, name="two_class_logits")
        model = keras.Model(linear.inputs, two(z), name=f"{self.model.name}_two_logits")
        two.set_weights([np.array([[0.0, 1.0]], dtype="float32")])
        viz = Scorecam(model, model_modifier=None, clone=False)
        viz.model.predict = functools.partial(viz.model.predict, verbose=0)  # no progress bar
        return viz

    def gradient_function(self, layers=None):
        """A compiled function: image batch (1, S, S, 3) -> ([maps], [d logit / d maps], logit z),
        one maps / gradients pair per layer of `layers` (a name or names; default `last_conv`);
        traced once per layer tuple, on first use, and kept."""
        key = self.layers(layers)
        with self._lock:
            if key not in self._gradients:
                import keras
                import tensorflow as tf

                linear = self.linear_model()
                maps = [linear.get_layer(name).output for name in key]
                twin = keras.Model(linear.inputs, [*maps, linear.output], name="maps_and_logit")
                spec = tf.TensorSpec((1, *self.size, 3), tf.float32)

                @tf.function(input_signature=[spec], autograph=False)  # no temporary file
                def gradients(batch):
                    with tf.GradientTape(watch_accessed_variables=False) as tape:
                        tape.watch(batch)
                        *acts, z = twin(batch, training=False)
                        z = z[:, 0]  # inside the tape, or the gradient is None
                    return acts, tape.gradient(z, acts), z

                self._gradients[key] = gradients
            return self._gradients[key]

    def logit_function(self):
        """A compiled function: image batch (n, S, S, 3) -> logits z (n,); traced once."""
        with self._lock:
            if self._logits is None:
                import tensorflow as tf

                linear = self.linear_model()
                spec = tf.TensorSpec((None, *self.size, 3), tf.float32)
                self._logits = tf.function(
                    lambda batch: linear(batch, training=False)[:, 0],
                    input_signature=[spec],
                    autograph=False,
                )
            return self._logits

    # ------------------------------------------------------------------ explaining

    def _batch(self, pixels) -> np.ndarray:
        arr = np.asarray(pixels)
        if arr.shape != (*self.size, 3):
            raise ValueError(
                f"pixels must have shape {(*self.size, 3)} (from geometry.prepare), got {arr.shape}"
            )
        return arr.astype("float32")[None]

    def probability(self, pixels) -> float:
        """P(tumour) of one prepared image (from the clone: z -> sigmoid)."""
        logits = self.logit_function()
        with self._lock:
            return sigmoid(float(np.asarray(logits(self._batch(pixels)))[0]))

    def _maps_and_gradients(self, batch: np.ndarray, layers: tuple[str, ...]):
        """{layer: (maps, gradients)} as float64 arrays and the logit z, from one compiled pass."""
        with self._lock:
            acts, grads, z = self.gradient_function(layers)(batch)
        pairs = {
            name: (np.asarray(a, "float64"), np.asarray(g, "float64"))
            for name, a, g in zip(layers, acts, grads, strict=True)
        }
        return pairs, float(np.asarray(z)[0])

    def _check_target(self, target):
        if target not in (None, 0, 1):
            raise ValueError(f"target must be None (the predicted class), 0 or 1, got {target!r}")

    def explain(
        self, pixels, method: str = "gradcam", target: int | None = None, layer=None
    ) -> Explanation:
        """Explain one prepared image ((S, S, 3) uint8 from `geometry.prepare`); `layer`: the CAM
        methods' target layer(s), see the module docstring (None: `last_conv`)."""
        layers = self.layers(layer, method)
        self._check_target(target)
        batch = self._batch(pixels)
        start = time.perf_counter()
        if self.compiled and method in COMPILED:
            pairs, z = self._maps_and_gradients(batch, layers)
            prob = sigmoid(z) if target is None else None
            target = int(prob >= self.threshold) if target is None else int(target)
            heat = self._compiled_map(method, layers, pairs, z, target, batch)
            return Explanation(heat, method, target, prob, time.perf_counter() - start, layers)
        with self._lock, quiet_warnings():
            prob = self.probability(pixels) if target is None else None
            target = int(prob >= self.threshold) if target is None else int(target)
            sign = 1.0 if target == 1 else -1.0
            viz = self.visualizer(method)
            if method == "smoothgrad":
                heat = to_unit(np.asarray(self._smoothgrad(viz, batch, sign)).reshape(self.size))
            else:
                cams = []
                for name in layers:
                    cam_args = {
                        "penultimate_layer": name,
                        "seek_penultimate_conv_layer": False,
                        "normalize_cam": False,
                    }
                    if method == "scorecam":
                        max_n = min(self._max_n, int(self.model.get_layer(name).output.shape[-1]))
                        cam = viz(lambda out: out[:, target], batch, max_N=max_n, **cam_args)
                    else:
                        cam = viz(lambda out: sign * out[:, 0], batch, **cam_args)
                    cams.append(np.asarray(cam, dtype="float64").reshape(self.size))
                heat = to_unit(fuse_maps(cams, [self._resolution(n) for n in layers]))
        return Explanation(heat, method, target, prob, time.perf_counter() - start, layers)

    def explain_many(self, pixels, configs, target: int | None = None) -> list[Explanation]:
        """`explain` for several (method, layer) pairs of CAM methods on one image, from ONE
        compiled pass over the union of their layers (the maps are those `explain` gives; each
        Explanation's `seconds` is the shared pass plus its own work, not a single call's time)."""
        self._check_target(target)
        wanted = [(m, self.layers(lay, m)) for m, lay in configs]
        bad = [m for m, _ in wanted if m not in COMPILED]
        if bad:
            raise ValueError(f"explain_many runs the compiled CAM methods {COMPILED}, got {bad!r}")
        union = tuple(dict.fromkeys(name for _, layers in wanted for name in layers))
        batch = self._batch(pixels)
        start = time.perf_counter()
        pairs, z = self._maps_and_gradients(batch, union)
        prob = sigmoid(z) if target is None else None
        target = int(prob >= self.threshold) if target is None else int(target)
        shared, out = time.perf_counter() - start, []
        for method, layers in wanted:
            own = time.perf_counter()
            heat = self._compiled_map(method, layers, pairs, z, target, batch)
            seconds = shared + time.perf_counter() - own
            out.append(Explanation(heat, method, target, prob, seconds, layers))
        return out

    def _resolution(self, name: str) -> int:
        shape = self.model.get_layer(name).output.shape
        return int(shape[1]) * int(shape[2])

    def _compiled_map(self, method, layers, pairs, z: float, target: int, batch) -> np.ndarray:
        """The (S, S) map in 0..1 of a compiled CAM method on its layers' maps and gradients."""
        sign = 1.0 if target == 1 else -1.0  # d(-z) = -dz: one pass serves both classes
        cams = []
        for name in layers:
            acts, grads = pairs[name]
            if method == "gradcam":
                cam = gradcam_map(acts, sign * grads)
            elif method == "gradcam++":
                cam = gradcam_plus_plus_map(acts, sign * grads, sign * z)
            elif method == "layercam":
                cam = layercam_map(acts, sign * grads)
            else:
                cam = self._scorecam(batch, acts, target)
            cams.append(expand_map(cam, self.size))
        return to_unit(fuse_maps(cams, [self._resolution(n) for n in layers]))

    def _scorecam(self, batch: np.ndarray, acts: np.ndarray, target: int) -> np.ndarray:
        """Score-CAM as tf-keras-vis computes it: the `scorecam_max_n` maps of largest spatial
        std, upsampled and scaled to 0..1, mask the image; each map is weighted by the class
        probability of its masked image (softmax([0, z]) = [1 - p, p]); ReLU; (1, h, w)."""
        top = np.argsort(-acts.std(axis=(1, 2))[0], kind="stable")[: self._max_n]
        chosen = acts[..., top]
        shapes = zip(acts.shape[1:3], self.size, strict=True)
        rows, cols = (interpolation_matrix(n, s) for n, s in shapes)
        up = np.einsum("yh,hwc,xw->yxc", rows, chosen[0], cols, optimize=True).astype("float32")
        lo, hi = up.min(axis=(0, 1)), up.max(axis=(0, 1))
        masks = np.moveaxis((up - lo) / (hi - lo + 1e-7), -1, 0)[..., None]  # (n, S, S, 1)
        masked = batch * masks  # float32 (n, S, S, 3)
        logits = self.logit_function()
        with self._lock:
            z = np.concatenate(
                [np.asarray(logits(masked[i : i + 32])) for i in range(0, len(masked), 32)]
            )
        p = 1.0 / (1.0 + np.exp(-z.astype("float64")))
        weights = p if target == 1 else 1.0 - p
        return np.maximum((chosen * weights).sum(axis=-1), 0.0)

    def _smoothgrad(self, viz, batch: np.ndarray, sign: float) -> np.ndarray:
        """SmoothGrad with a fixed-seed noise (reproducible): mean |gradient| over noisy copies,
        max over colour channels (scaled to 0..1 by the caller)."""
        n = max(1, self.smooth_samples)
        sigma = self.smooth_noise * float(batch.max() - batch.min() or 255.0)
        noise = np.random.default_rng(0).normal(0.0, sigma, (n, *batch.shape[1:]))
        noisy = (batch + noise).astype("float32")
        grads = viz(
            lambda out: sign * out[:, 0],
            noisy,
            keepdims=True,
            normalize_map=False,
            gradient_modifier=None,
        )
        return np.abs(np.asarray(grads, dtype="float64")).mean(axis=0).max(axis=-1)

    def heatmap(
        self, pixels, method: str = "gradcam", target: int | None = None, layer=None
    ) -> np.ndarray:
        """float32 (S, S) map in 0..1 for one prepared image; see `explain`."""
        return self.explain(pixels, method, target, layer).heatmap


# The CAM formulas of tf-keras-vis 0.8.7 (gradcam.py, gradcam_plus_plus.py, default ReLU
# activation modifier), on one image's maps A (1, h, w, k) and gradients G = dScore/dA.
