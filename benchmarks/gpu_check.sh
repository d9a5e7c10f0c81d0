#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md and the GPU-only tests, in one run on one GPU machine.
#
#   bash benchmarks/gpu_check.sh OUT [BASELINE_SRC]
#
# Run in the project root with the project importable (on a bare GPU machine: first
# `source .devdata/on-device.sh`, see ../shared/tools/gpu-box/README.md). MNIST is read from
# $MNIST_ROOT (default /tmp/data: ROOT/MNIST/raw/*-ubyte). BASELINE_SRC, if given, is the src/
# folder of an earlier commit (e.g. `git archive 78c0ce3 src | tar -x -C .baseline`): its
# `train` loop and its SVGD are timed in the same run, as the baseline. Each part's output goes to
# OUT/<part>.txt as it runs; a part that fails does not stop the others. PARTS (default: all of
# "tests step step_tuned profile epoch train svgd tf32 graph") picks parts; STEP_ARGS and EPOCH_ARGS replace the benchmarks'
# default arguments (e.g. for a dry run on a CPU).
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT [BASELINE_SRC]}
baseline=${2:-}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
parts=" ${PARTS:-tests step step_tuned profile epoch train svgd tf32 graph} "
part() {  # part NAME COMMAND...: run it, keep its output
  local name=$1; shift
  [[ $parts == *" $name "* ]] || return 0
  echo "== $name: $*" | tee "$out/$name.txt"
  local started=$SECONDS
  "$@" 2>&1 | grep -v -e '^USDT:' -e 'SyncActivityProfilerHandler' | tee -a "$out/$name.txt"
  echo "== $name: exit ${PIPESTATUS[0]}, $((SECONDS - started)) s" | tee -a "$out/$name.txt"
}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
part tests python -m pytest -q -p no:cacheprovider tests/test_capture.py tests/test_convolutions.py \
  tests/test_sampling.py::test_svgd_steps_read_no_value_back_to_the_host
part step python benchmarks/bench_step.py ${STEP_ARGS:---repeats 20 --tf32 on off}
# The same steps with cuDNN timing its algorithms for each shape (training uses its heuristics).
part step_tuned python benchmarks/bench_step.py --cudnn-benchmark --no-baseline ${STEP_ARGS:---repeats 20}
# Where the eager steps' GPU time goes: the top kernels of the Fisher AE and VAE steps.
part profile python benchmarks/profile_step.py --top 25
part epoch python benchmarks/bench_epoch.py ${EPOCH_ARGS:---config config/config.yaml --batches 40}

# The train command's own loop on the real MNIST at the paper's width, one epoch per model.
cat > "$out/mnist_gpu.yaml" <<EOF
results: $out/results
seeds: [0]
device: auto
datasets:
  mnist: {source: torchvision, root: ${MNIST_ROOT:-/tmp/data}, download: false, latent_dim: 8, width: 128${TRAIN_DATA_EXTRA:-}}
models:
  fisher_ae_poly: {method: fisher_ae, prior: polynomial}
  vae: {method: vae}
training: {epochs: 1, batch_size: 128, lr: 2.0e-4, betas: [0.5, 0.999]}
EOF
train_epoch() {  # train_epoch LABEL MODEL [PYTHONPATH prefix]: seconds of the epoch from metrics.csv
  local dir="$out/train/$1/$2"
  rm -rf "$dir"
  PYTHONPATH="${3:+$3:}${PYTHONPATH:-}" python -m fisherae train --config "$out/mnist_gpu.yaml" --dataset mnist \
    --model "$2" --seed 0 --outdir "$dir" --no-progress >/dev/null || return 1
  python - "$dir" "$1" "$2" "$out/mnist_gpu.yaml" <<'PY'
import csv, math, sys
import yaml
row = list(csv.DictReader(open(f"{sys.argv[1]}/metrics.csv")))[-1]
config = yaml.safe_load(open(sys.argv[4]))
n = config["datasets"]["mnist"].get("n_train") or 60000
seconds, batches = float(row["seconds"]), math.ceil(n / config["training"]["batch_size"])
print(f"train loop, {sys.argv[2]}, {sys.argv[3]}: epoch {seconds:.2f} s = {1e3 * seconds / batches:.2f} ms/batch")
PY
  if [ -f "$dir/train.log" ]; then cat "$dir/train.log"; fi
}
train_loops() {
  train_epoch this fisher_ae_poly
  if [ -n "$baseline" ]; then train_epoch baseline fisher_ae_poly "$baseline"; fi
  train_epoch this vae
}
part train train_loops

svgd_runs() {
  python benchmarks/bench_svgd.py --device cuda --particles 10000 --dim 64 --steps 1000
  python benchmarks/bench_svgd.py --device cuda --particles 500 --dim 8 --steps 15000
  python benchmarks/bench_svgd.py --device cuda --steps 1000 --sets 20
  if [ -n "$baseline" ]; then
    python benchmarks/bench_svgd.py --device cuda --particles 10000 --dim 64 --steps 1000 \
      --svgd-from "$baseline/fisherae/sampling.py"
  fi
}
part svgd svgd_runs
# How far the GPU's own TF32 moves a step's gradients from float64, beside IEEE float32's (the
# CPU emulation's figures are in BENCHMARKS.md).
part tf32 python benchmarks/bench_tf32.py --device cuda --root "${MNIST_ROOT:-/tmp/data}" --widths 16 128 \
  --train-steps 100 --seeds 0 1
# How far the CUDA-graph step drifts from the eager one, step after step, in both arithmetics.
graph_runs() {
  python benchmarks/graph_vs_eager.py --steps 8
  python benchmarks/graph_vs_eager.py --steps 8 --tf32 off
}
part graph graph_runs
