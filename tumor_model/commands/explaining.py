"""`predict --explain DIR`: per scan (and per slice of a volume) an overlay PNG and the raw map
as `<name>.map.npy` (float32, 0-1, on the scan's own pixel grid, same orientation), explaining
the predicted class with the model's default map (`serving.maps.default_explanation`) unless
--method / --layer say otherwise. A model folder with a lesion head (`neuroscan lesion-head`)
also gives `<name>.lesion.npy`: P(lesion) per pixel, on the same grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tumor_model.io.geometry import prepare_placed
from tumor_model.io.imageio import ImageLoadError, load_scan
from tumor_model.serving.maps import default_explanation
from tumor_model.serving.overlay import overlay, to_png
from tumor_model.serving.volume import load_volume


class Overlays:
    """Writes the maps of `predict --explain`; `add(result)` returns the result with the paths
    written ("overlay" and "map"; a volume's under each slice)."""

    def __init__(self, predictor, args):
        method, layers = default_explanation(predictor.dir, predictor.model)
        if args.method is not None and args.method != method:
            method, layers = args.method, None  # another method: its default layer
        self.predictor, self.method = predictor, method
        self.layers = predictor.explainer().layers(args.layer or layers, method) or None
        self.alpha, self.colormap = args.alpha, args.colormap
        self.folder = Path(args.explain)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.used: set[str] = set()
        self.lesion = predictor.lesion_map()  # None: the folder has no lesion head

    def add(self, result: dict) -> dict:
        if "slices" in result:
            return self.add_volume(result)
        if result.get("label") is None:  # no verdict (not a brain-MRI slice): no map
            return result
        try:
            image, _ = load_scan(Path(result["file"]), result["file"])
        except ImageLoadError as err:  # the file changed since it was predicted
            return {"file": result["file"], "error": str(err)}
        return {**result, **self.write(image, Path(result["file"]).stem, result["label"])}

    def add_volume(self, result: dict) -> dict:
        sources = result.get("files") or [result["file"]]
        try:
            volume = load_volume([Path(f) for f in sources], sources)
        except ImageLoadError as err:
            return {"file": result["file"], "error": str(err)}
        stem = Path(sources[0]).name.split(".")[0]
        slices = []
        for item in result["slices"]:
            if item.get("label") is None:
                slices.append(item)
                continue
            image = volume.image(item["slice"] - 1)
            slices.append(
                {**item, **self.write(image, f"{stem}_slice{item['slice']:03d}", item["label"])}
            )
        return {**result, "slices": slices, "method": self.method}

    def write(self, image, stem: str, label: str) -> dict:
        """Write one overlay and its raw map; the fields a result gains."""
        target = self.predictor.class_names.index(label)
        pixels, placement = prepare_placed(image, self.predictor.size, self.predictor.geometry)
        expl = self.predictor.explainer().explain(pixels, self.method, target, self.layers)
        path = self.free_path(f"{stem}_{self.method}")
        path.write_bytes(to_png(overlay(pixels, expl.heatmap, self.alpha, self.colormap)))
        raw = placement.back(expl.heatmap, *image.size)
        map_path = path.with_suffix(".map.npy")
        np.save(map_path, np.clip(raw, 0, 1).astype(np.float32))
        out = {
            "overlay": str(path),
            "map": str(map_path),
            "explained": self.predictor.class_names[target],
            "method": self.method,
            "layers": list(expl.layers),
        }
        if self.lesion is not None:
            lesion = placement.back(self.lesion(pixels), *image.size)
            out["lesion_map"] = str(path.with_suffix(".lesion.npy"))
            np.save(out["lesion_map"], np.clip(lesion, 0, 1).astype(np.float32))
        return out

    def free_path(self, stem: str) -> Path:
        """<DIR>/<stem>.png, numbered (_2, _3...) when two inputs share a stem."""
        path, n = self.folder / f"{stem}.png", 1
        while str(path) in self.used or (n > 1 and path.exists()):
            n += 1
            path = self.folder / f"{stem}_{n}.png"
        self.used.add(str(path))
        return path
