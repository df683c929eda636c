#!/usr/bin/env bash
# Plan O (docs/experiments.md): leave-one-source-out CV of the whole recipe for R_A, the shipped
# recipe on all three sources with label smoothing 0.1, on packed data (`neuroscan pack`), then
# the frozen stage's CVs on the same pixels if time is left. Made for a lent GPU (JAX); runs
# anywhere the package runs.
#
#   experiments/gpu_loso.sh KAGGLE_PACK OTHERS_PACK WEIGHTS OUT [SECONDS]
#
# KAGGLE_PACK: the Kaggle set packed; OTHERS_PACK: Figshare and OASIS packed together (a
# one-class root is packed with its partner); WEIGHTS: the ImageNet MobileNetV2 file; OUT: a
# folder for the results; SECONDS: the time budget (default 540), after which a job is stopped.
# PLAN_O_EXTRA='{"fine_tune_epochs": 1}' changes settings (for a quick check of the script).
set -uo pipefail
kaggle=$1 others=$2 weights=$3 out=$4 budget=${5:-540}
start=$SECONDS
left() { echo $((budget - (SECONDS - start))); }
export KERAS_BACKEND=${KERAS_BACKEND:-jax} PYTHONUNBUFFERED=1
export JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/plan_o_jax_cache}
mkdir -p "$out"
recipe=$(mktemp -d)/r_a
python3 experiments/r_a_recipe.py "$recipe" "$weights"
roots=(--data-dir "$kaggle" --data-dir "$others" --cache-dir /tmp/plan_o_features)

run() {  # name, then the cv arguments; stdout JSON and the log kept in $out, timed
    local name=$1
    shift
    local t0=$SECONDS
    timeout "$(left)" python3 -m tumor_model cv --artifacts "$recipe" --save "${roots[@]}" "$@" \
        >"$out/$name.json" 2> >(tee "$out/$name.log" >&2)
    echo "$name: exit $?, $((SECONDS - t0)) s" | tee -a "$out/times.txt"
}
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)" \
    | tee "$out/times.txt"
run loso_fine_tuned --by loso --fine-tune
[ "$(left)" -gt 60 ] && run frozen --by source --folds 10
cp "$recipe/metrics.json" "$out/metrics.json" 2>/dev/null
echo "total $((SECONDS - start)) s" | tee -a "$out/times.txt"
