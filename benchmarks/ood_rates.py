"""How often the out-of-distribution guard flags real brain MRI and how often it flags what is
not a brain-MRI slice (the table in docs/reliability.md; a short version in the README).

    PYTHONPATH=. python benchmarks/ood_rates.py [--artifacts artifacts] [--per-source 400]
        [--data-dir ROOT ...] [--part held]

Brain MRI: the files of every source the guard never saw (`pipeline.guard_table`, "test"
rows: the artifacts' test split, and for a source `neuroscan refit-guard --data-dir` added, the
half it held out; the default roots are the three shared sources), at most --per-source files
each (a fixed-seed sample). Not MRI (`non_mri_images`): photos shipped by packages
(skimage.data when scikit-image is installed, sklearn's sample images), PIL-drawn shapes,
scenes and text, noise of several kinds, blank images, gradients, colour charts and small
synthetic DICOM phantoms, each kind split by instance into a "tune" part (looked at while
choosing the checks' limits) and a "held" part (reported by default). Prints a markdown table:
flagged rates per source and per kind, and which checks fired. Writes nothing.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

import tumor_model  # noqa: F401  (sets TensorFlow's CPU allocator before keras loads)

PARTS = ("tune", "held")
ROOTS = tuple(
    f"../shared/data/{name}"
    for name in ("brain-tumor-dataset", "figshare-cheng-t1ce", "oasis-healthy")
)


# ----------------------------------------------------------------------------- non-MRI images


def _package_photos() -> list[tuple[str, str, Image.Image]]:
    """(kind, name, image): the pictures scikit-image (if installed) and scikit-learn ship."""
    out = []
    try:
        import skimage.data

        folder = Path(skimage.data.__file__).parent
        for path in sorted(folder.glob("*")):
            if path.suffix.lower() not in (".png", ".jpg", ".gif", ".tif"):
                continue
            try:
                with Image.open(path) as img:
                    out.append(("photo (skimage)", path.name, img.convert("RGB")))
            except OSError:  # a TIFF PIL cannot decode
                continue
        faces = np.load(folder / "lfw_subset.npy")  # 200 small face photos, float 0..1
        for i in range(0, len(faces), 10):
            grey = Image.fromarray((faces[i] * 255).astype(np.uint8)).resize((100, 100))
            out.append(("photo (skimage)", f"lfw_subset[{i}]", grey.convert("RGB")))
    except ImportError:
        pass
    import sklearn.datasets

    folder = Path(sklearn.datasets.__file__).parent / "images"
    for path in sorted(folder.glob("*.jpg")):
        with Image.open(path) as img:
            photo = img.convert("RGB")
        out.append(("photo (sklearn)", path.name, photo))
        w, h = photo.size  # crops: the same photos framed differently
        out.append(("photo (sklearn)", f"{path.name} crop", photo.crop((w // 4, h // 4, w, h))))
        out.append(("photo (sklearn)", f"{path.name} grey", photo.convert("L").convert("RGB")))
    return out


def _colour(rng) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, 3))


def _drawing(seed: int) -> Image.Image:
    """Random shapes (rectangles, ellipses, lines, polygons) on a random background."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(160, 400))
    grey = seed % 3 == 0
    background = (int(rng.integers(0, 256)),) * 3 if grey else _colour(rng)
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 15))):
        fill = (int(rng.integers(0, 256)),) * 3 if grey else _colour(rng)
        x0, y0 = (int(v) for v in rng.integers(0, size, 2))
        x1, y1 = x0 + int(rng.integers(10, size // 2)), y0 + int(rng.integers(10, size // 2))
        shape = int(rng.integers(0, 4))
        if shape == 0:
            draw.rectangle([x0, y0, x1, y1], fill=fill)
        elif shape == 1:
            draw.ellipse([x0, y0, x1, y1], fill=fill)
        elif shape == 2:
            draw.line([x0, y0, x1, y1], fill=fill, width=int(rng.integers(1, 8)))
        else:
            pts = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(5)]
            draw.polygon(pts, fill=fill)
    return img


def _scene(seed: int, size: int = 320) -> Image.Image:
    """A colourful synthetic outdoor-like scene: sky gradient, ground, sun, houses."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, size)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    sky = (top * (1 - y) + bottom * y) * np.ones((1, size, 1))
    img = Image.fromarray(sky.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    horizon = int(size * rng.uniform(0.5, 0.75))
    draw.rectangle([0, horizon, size, size], fill=_colour(rng))
    r = int(rng.integers(15, 40))
    cx, cy = int(rng.integers(r, size - r)), int(rng.integers(r, horizon - r))
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(255, 220, 60))
    for _ in range(int(rng.integers(3, 8))):
        w, h = int(rng.integers(20, 70)), int(rng.integers(20, 90))
        x0 = int(rng.integers(0, size - w))
        draw.rectangle([x0, horizon - h, x0 + w, horizon], fill=_colour(rng))
    return img


WORDS = (
    "brain tumour scan report patient slice axial contrast the of and model lorem ipsum dolor "
    "sit amet consectetur 2026 MRI T1 T2 FLAIR result normal finding"
).split()


def _text(seed: int) -> Image.Image:
    """Lines of words rendered with PIL's font: dark on light, light on dark or coloured."""
    rng = np.random.default_rng(seed)
    w, h = int(rng.integers(200, 500)), int(rng.integers(150, 450))
    style = seed % 3
    ink, paper = [((20, 20, 20), (250, 250, 250)), ((235, 235, 235), (0, 0, 0))][style % 2]
    if style == 2:
        ink, paper = _colour(rng), _colour(rng)
    img = Image.new("RGB", (w, h), paper)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=int(rng.integers(10, 28)))
    y = int(rng.integers(2, 20))
    while y < h - 10:
        line = " ".join(rng.choice(WORDS, int(rng.integers(2, 12))))
        draw.text((int(rng.integers(2, 20)), y), line, fill=ink, font=font)
        y += int(font.size * rng.uniform(1.2, 2.0))
    return img


def _noise(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    kind = seed % 6
    size = (int(rng.integers(64, 300)), int(rng.integers(64, 300)))
    shape = (size[1], size[0])
    if kind == 0:  # uniform colour noise
        return Image.fromarray(rng.integers(0, 256, (*shape, 3), np.uint8), "RGB")
    if kind == 1:  # uniform grey noise
        grey = rng.integers(0, 256, shape, np.uint8)
    elif kind == 2:  # gaussian grey noise around a random level
        grey = np.clip(rng.normal(rng.uniform(40, 200), rng.uniform(10, 60), shape), 0, 255)
    elif kind == 3:  # salt and pepper on black
        grey = np.where(rng.random(shape) < rng.uniform(0.05, 0.5), 255, 0)
    elif kind == 4:  # smooth (blurred) grey noise, cloud-like
        small = rng.random((max(2, shape[0] // 16), max(2, shape[1] // 16))) * 255
        grey = np.asarray(Image.fromarray(small.astype(np.uint8)).resize(size, Image.BICUBIC))
    else:  # smooth colour noise
        small = rng.integers(0, 256, (max(2, shape[0] // 16), max(2, shape[1] // 16), 3))
        return Image.fromarray(small.astype(np.uint8), "RGB").resize(size, Image.BICUBIC)
    return Image.fromarray(np.asarray(grey, dtype=np.uint8)).convert("RGB")


def _blank(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    size = (int(rng.integers(32, 400)), int(rng.integers(32, 400)))
    value = [(0, 0, 0), (255, 255, 255), (128, 128, 128)][seed % 4] if seed % 4 < 3 else None
    return Image.new("RGB", size, value or _colour(rng))


def _gradient(seed: int) -> Image.Image:
    """Linear, radial and diagonal grey or colour ramps."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(64, 320)), int(rng.integers(64, 320))
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    kind = seed % 3
    if kind == 0:
        ramp = xx * w / max(h, w) if seed % 2 else yy
    elif kind == 1:
        ramp = 1 - np.clip(np.hypot(yy - h / max(h, w) / 2, xx - w / max(h, w) / 2) * 2, 0, 1)
    else:
        ramp = (xx + yy) / 2
    ramp = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    if seed % 4 == 3:  # a colour ramp between two random colours
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        return Image.fromarray((a * (1 - ramp[..., None]) + b * ramp[..., None]).astype(np.uint8))
    return Image.fromarray((ramp * 255).astype(np.uint8)).convert("RGB")


def _chart(seed: int) -> Image.Image:
    """Colour charts: bars, a grid of patches, a hue wheel."""
    rng = np.random.default_rng(seed)
    kind = seed % 3
    if kind == 0:  # SMPTE-like vertical bars
        bars = rng.integers(0, 256, (int(rng.integers(5, 12)), 3)).astype(np.uint8)
        row = np.repeat(bars, 40, axis=0)
        return Image.fromarray(np.repeat(row[None], int(rng.integers(120, 300)), axis=0))
    if kind == 1:  # a grid of patches (a Macbeth-like chart) with dark gaps
        rows, cols, side = int(rng.integers(3, 7)), int(rng.integers(4, 8)), 40
        img = Image.new("RGB", (cols * (side + 6) + 6, rows * (side + 6) + 6), (20, 20, 20))
        draw = ImageDraw.Draw(img)
        for r in range(rows):
            for c in range(cols):
                x0, y0 = 6 + c * (side + 6), 6 + r * (side + 6)
                draw.rectangle([x0, y0, x0 + side, y0 + side], fill=_colour(rng))
        return img
    size = int(rng.integers(120, 320))  # hue wheel on black
    yy, xx = (np.mgrid[0:size, 0:size] - size / 2) / (size / 2)
    hue = (np.arctan2(yy, xx) / (2 * np.pi) + 0.5) * 255
    sat = np.clip(np.hypot(yy, xx), 0, 1) * 255
    val = np.where(np.hypot(yy, xx) <= 1, 255, 0)
    hsv = np.stack([hue, sat, val], axis=-1).astype(np.uint8)
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _phantom_pixels(seed: int, size: int) -> np.ndarray:
    """A Shepp-Logan-like head phantom: flat-valued ellipses (uint16)."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size] - size / 2) / (size / 2)
    img = np.zeros((size, size))
    ellipses = [(0, 0, 0.69, 0.92, 1.0), (0, -0.02, 0.66, 0.87, -0.6)]
    for _ in range(int(rng.integers(2, 6))):
        ellipses.append((*rng.uniform(-0.4, 0.4, 2), *rng.uniform(0.05, 0.3, 2), 0.2))
    for cx, cy, ax, ay, value in ellipses:
        img[((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1] += value
    return (np.clip(img, 0, None) * 1000).astype(np.uint16)


def phantom_dicom(seed: int, size: int = 64) -> bytes:
    """A small synthetic DICOM (MR storage) of a flat-valued head phantom, no patient tags."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = _phantom_pixels(seed, size).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


GENERATORS = {
    "drawing": _drawing,
    "scene": _scene,
    "text": _text,
    "noise": _noise,
    "blank": _blank,
    "gradient": _gradient,
    "colour chart": _chart,
}


def non_mri_images(per_kind: int = 24) -> list[dict]:
    """[{kind, name, image (PIL RGB), part}]: what is not a brain-MRI slice. Instances of each
    kind alternate between the "tune" and the "held" part (package photos by sorted name)."""
    from tumor_model.io.imageio import load_image

    out = []
    for i, (kind, name, img) in enumerate(_package_photos()):
        out.append({"kind": kind, "name": name, "image": img, "part": PARTS[i % 2]})
    for kind, make in GENERATORS.items():
        for seed in range(per_kind):
            name = f"{kind} {seed}"
            out.append({"kind": kind, "name": name, "image": make(seed), "part": PARTS[seed % 2]})
    for seed in range(per_kind // 2):
        name = f"phantom_{seed}.dcm"
        img = load_image(phantom_dicom(seed, size=(64, 128, 256)[seed % 3]), name)
        out.append({"kind": "DICOM phantom", "name": name, "image": img, "part": PARTS[seed % 2]})
    return out


# ----------------------------------------------------------------------------- measurement


def _rate(flags) -> str:
    flags = list(flags)
    return f"{np.mean(flags):.1%} ({sum(flags)}/{len(flags)})" if flags else "-"


def main(argv=None) -> int:
    from tumor_model.release.pipeline import guard_table
    from tumor_model.serving.predict import Predictor

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--artifacts", default="artifacts")
    p.add_argument(
        "--data-dir", action="append", metavar="ROOT", help="default: " + ", ".join(ROOTS)
    )
    p.add_argument("--per-source", type=int, default=400, help="MRI files per source (sample)")
    p.add_argument("--part", choices=(*PARTS, "all"), default="held", help="non-MRI part shown")
    args = p.parse_args(argv)
    predictor = Predictor(args.artifacts)
    if predictor.guard is None:
        print(f"{args.artifacts} has no OOD guard", file=sys.stderr)
        return 1
    start = time.perf_counter()
    rows = ["| images | measured on | flagged | checks that fired |", "|---|---|---|---|"]
    table = guard_table(args.artifacts, args.data_dir or ROOTS)
    held = table[table.split == "test"]
    for source, part in held.groupby("source", sort=False):
        files = [Path(r) / p for r, p in zip(part.root, part.path, strict=True)]
        if len(files) > args.per_source:
            pick = np.random.default_rng(0).choice(len(files), args.per_source, replace=False)
            files = [files[i] for i in sorted(pick)]
        results = predictor.predict_files(files)
        scored = [r for r in results if "error" not in r]
        fired = _fired(scored)
        what = f"{len(scored)} held-out files" + (
            f" (of {len(part)})" if len(part) > len(scored) else ""
        )
        rows.append(
            f"| MRI: {source} | {what} | {_rate(not r['is_mri'] for r in scored)} | {fired} |"
        )
    items = [i for i in non_mri_images() if args.part in ("all", i["part"])]
    by_kind: dict[str, list] = {}
    for item in items:
        by_kind.setdefault(item["kind"], []).append(
            predictor.predict_one(item["image"], item["name"])
        )
    everything = []
    for kind, results in by_kind.items():
        everything += results
        missed = [r["file"] for r in results if r["is_mri"]]
        note = _fired(results) + (f"; passed: {', '.join(missed)}" if missed else "")
        rows.append(
            f"| not MRI: {kind} | {len(results)} ({args.part}) | "
            f"{_rate(not r['is_mri'] for r in results)} | {note} |"
        )
    rows.append(
        f"| **not MRI, all kinds** | {len(everything)} ({args.part}) | "
        f"**{_rate(not r['is_mri'] for r in everything)}** | |"
    )
    print("\n".join(rows))
    print(f"\n{time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


def _fired(results: list[dict]) -> str:
    counts: dict[str, int] = {}
    for r in results:
        for check in r.get("ood_checks") or ():
            counts[check] = counts.get(check, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))


if __name__ == "__main__":
    raise SystemExit(main())
