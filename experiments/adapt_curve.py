"""Learning curve of `adapt` at simulated sites (plan D in docs/experiments.md).

A site is data the model never saw: (i) the Kaggle set held out, the model trained on Figshare +
OASIS; (ii) each of 5 image-size folds of the Kaggle set, the model trained on the other Kaggle
sizes + Figshare + OASIS. The model is the frozen stage (ImageNet MobileNetV2 features + head,
the shipped recipe's settings, temperature folded in). For k labelled scans of the site (drawn
stratified, `--draws` times) the three steps of `adapt` run on those k alone, exactly as the
command runs them (tumor_model.site.adapt), and the rest of the site (no duplicate group of the k)
is the test. Prints and writes a JSON of pooled balanced accuracy, sensitivity and specificity
with 95% bootstrap CIs per site kind, k and step.

    python experiments/adapt_curve.py --data-dir ../shared/data/brain-tumor-dataset \
        --data-dir ../shared/data/figshare-cheng-t1ce --data-dir ../shared/data/oasis-healthy \
        --out docs/lab/adapt_curve.json
    python experiments/adapt_curve.py --table docs/lab/adapt_curve.json   # the README's table
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tumor_model import metrics  # noqa: E402
from tumor_model.config import LOCAL_SHARE
from tumor_model.evaluation.crossval import INNER_FOLDS, frozen_head, recorded_settings  # noqa: E402
from tumor_model.model import fold_temperature  # noqa: E402
from tumor_model.site import adapt
from tumor_model.site.anchor import anchor_rows
from tumor_model.training import data, split
from tumor_model.training.features import extract_for  # noqa: E402

KAGGLE = "brain-tumor-dataset"
STEPS = ("before", "recalibrated", "retrained")


def sites(table):
    """(kind, name, train mask, site mask) of every simulated site."""
    src, y = data.sources(table).to_numpy(), table.label.to_numpy()
    kaggle = src == KAGGLE
    yield "kaggle held out", KAGGLE, ~kaggle, kaggle
    k_rows = np.flatnonzero(kaggle)
    sub = table.iloc[k_rows]
    groups = split.fold_groups(sub, "source")
    for i, (_, test) in enumerate(split.grouped_folds(y[k_rows], groups, 5, 314)):
        site = np.zeros(len(table), bool)
        site[k_rows[test]] = True
        yield "kaggle image-size fold", f"size fold {i + 1}", ~site, site


def model_for(x, table, train_mask, settings):
    """The frozen-stage model of the rows in `train_mask`: head (temperature folded), threshold."""
    y, groups = table.label.to_numpy(), table.group.to_numpy()
    rest = np.flatnonzero(train_mask)
    inner = split.grouped_folds(y[rest], groups[rest], INNER_FOLDS, settings.seed)[0]
    head, temperature, thr = frozen_head(x, table, rest[inner[0]], rest[inner[1]], settings)
    fold_temperature(head, temperature)
    return head, thr


def draw(rng, y, groups, k):
    """k site rows, half of each class where possible, one per duplicate group."""
    first = {}
    for i in rng.permutation(len(y)):
        first.setdefault(groups[i], i)
    picks = np.array(list(first.values()))
    per = {c: picks[y[picks] == c] for c in (0, 1)}
    n1 = min(len(per[1]), k // 2)
    n0 = min(len(per[0]), k - n1)
    return np.concatenate([per[1][:n1], per[0][:n0]])


def retrained_step(share: float) -> str:
    """The step's name in the results: "retrained" at adapt's own local share."""
    return "retrained" if share == LOCAL_SHARE else f"retrained, local share {share:g}"


SITE_NAMES = {  # the site kinds of `sites`, as the README's table names them
    "kaggle held out": "the Kaggle set (trained on Figshare + OASIS)",
    "kaggle image-size fold": "Kaggle image sizes (5 folds pooled)",
}


def _ci(metric: dict) -> str:
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


def markdown_table(record: dict) -> str:
    """The README's learning-curve table (markdown) from a record this script wrote: per site
    kind and k, balanced accuracy as the model is and after `adapt` retrained its head, and the
    sensitivity and specificity after, with their 95% CIs."""
    got = {(r["site"], r["k"], r["step"]): r for r in record["results"]}
    lines = [
        "| site (never seen in training) | k local scans | as it is | after `adapt` | "
        "sensitivity after | specificity after |",
        "|---|---|---|---|---|---|",
    ]
    last = None
    for (site, k, step), r in got.items():
        if step != "retrained":
            continue
        before = got[(site, k, "before")]["balanced_accuracy"]
        shown = "" if site == last else SITE_NAMES.get(site, site)
        last = site
        cells = [shown, str(k), _ci(before), f"**{_ci(r['balanced_accuracy'])}**"]
        cells += [_ci(r["sensitivity"]), _ci(r["specificity"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts", help="whose settings.json is the recipe")
    ap.add_argument("--data-dir", action="append")
    ap.add_argument("--table", metavar="JSON", help="print the markdown table of a saved run")
    ap.add_argument("--cache-dir", default=".cache/features")
    ap.add_argument("--ks", default="20,50,100")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--boot", type=int, default=1000)
    ap.add_argument(
        "--local-share",
        default=str(LOCAL_SHARE),
        help="the site's share of the retraining loss; several, comma-separated, run on the "
        "same draws (a share other than LOCAL_SHARE is reported as its own step)",
    )
    ap.add_argument(
        "--sites", default=None, help="comma-separated site names to run (default: all sites)"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.table:
        print(markdown_table(json.loads(Path(args.table).read_text())))
        return 0
    if not args.data_dir:
        ap.error("--data-dir is required (or --table JSON)")
    shares = [float(v) for v in args.local_share.split(",")]
    wanted = None if args.sites is None else set(args.sites.split(","))
    start = time.time()
    settings = recorded_settings(args.artifacts, args.cache_dir)
    settings = dataclasses.replace(settings, data_dirs=tuple(args.data_dir), bootstrap=args.boot)
    table, _ = split.prepare_table(settings)
    x = extract_for(settings, table)
    y, groups = table.label.to_numpy(), table.group.to_numpy()
    ks = [int(k) for k in args.ks.split(",")]
    pooled = {}  # (kind, k, step) -> lists of (labels, probs, thresholds)
    for kind, name, train_mask, site_mask in sites(table):
        if wanted is not None and name not in wanted:
            continue
        head, thr = model_for(x, table, train_mask, settings)
        anchor = anchor_rows(table.assign(split=np.where(train_mask, "train", "other")))
        ax, ay = x[anchor], y[anchor]
        trainer = adapt.HeadTrainer(
            settings, [head.get_layer(n).get_weights() for n in adapt.HEAD_LAYERS], x.shape[1]
        )
        site = np.flatnonzero(site_mask)
        p_site = head.predict(x[site], verbose=0).ravel()
        for k in ks:
            for d in range(args.draws):
                rng = np.random.default_rng(1000 * k + d)
                local = site[draw(rng, y[site], groups[site], k)]
                rest = site[~np.isin(groups[site], groups[local])]
                p_rest = p_site[np.isin(site, rest)]
                p_local = p_site[np.isin(site, local)]
                yl, yr = y[local], y[rest]
                t, th = metrics.decide(yl, p_local, True, -1.0)
                got = {
                    "before": (p_rest, thr),
                    "recalibrated": (metrics.apply_temperature(p_rest, t), th),
                }
                for share in shares:
                    f, _, _, th_new = adapt.adapted_head(
                        trainer, ax, ay, x[local], yl, share, groups=groups[local], seed=d
                    )
                    got[retrained_step(share)] = (f(x[rest]), th_new)
                for step, (p, th_step) in got.items():
                    pooled.setdefault((kind, k, step), []).append(
                        (yr, p, np.full(len(yr), th_step))
                    )
                ba = {
                    s: metrics.point_metrics(metrics.confusion(yr, p, th_step))["balanced_accuracy"]
                    for s, (p, th_step) in got.items()
                }
                print(
                    f"[{time.time() - start:6.0f}s] {name} k={k} draw {d}: rest {len(rest)}, "
                    + ", ".join(f"{s} {v:.3f}" for s, v in ba.items()),
                    flush=True,
                )
    results = []
    for (kind, k, step), parts in pooled.items():
        yy = np.concatenate([a for a, _, _ in parts])
        pp = np.concatenate([b for _, b, _ in parts])
        tt = np.concatenate([c for _, _, c in parts])
        m = metrics.bootstrap(yy, pp, tt, args.boot, 0)
        results.append(
            {
                "site": kind,
                "k": k,
                "step": step,
                "predictions": int(len(yy)),
                **{
                    key: m[key]
                    for key in ("balanced_accuracy", "sensitivity", "specificity", "roc_auc")
                },
            }
        )
        b = m["balanced_accuracy"]
        print(
            f"{kind:24s} k={k:3d} {step:12s} balanced {b['value']:.4f} "
            f"[{b['ci_low']:.4f}, {b['ci_high']:.4f}]"
        )
    record = {
        "ran": "2-core AMD EPYC CPU machine, TensorFlow, "
        + time.strftime("%Y-%m-%d", time.gmtime()),
        "seconds": round(time.time() - start),
        "draws": args.draws,
        "sites": sorted(wanted) if wanted is not None else "all",
        "recipe": "frozen stage of the shipped recipe (ImageNet features + head)",
        "results": results,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
