#!/usr/bin/env bash
# The device check: lr_study end to end on this machine's accelerator, in under 8 minutes
# on one GPU. Run from anywhere; it works in the checkout's root:
#
#   bash benchmarks/device_check.sh                        # the check (a GPU, a TPU)
#   DEVICE_CHECK_QUICK=1 bash benchmarks/device_check.sh   # tiny settings: a CPU in minutes
#
# It uses the machine's own Python and jax ($PYTHON, default python3). The pure-Python
# packages that Python lacks (ml-collections; absl-py where missing) are installed, to a
# temporary folder on PYTHONPATH, from wheels in benchmarks/wheels/ (git-ignored), which
# one command fetches on any machine with a network:
#
#   pip download --no-deps -d benchmarks/wheels ml-collections==1.1.0 absl-py==2.5.1
#
# MNIST's four official files go in data/mnist/ (git-ignored; $MNIST_DIR to change), e.g.
# `mkdir -p data/mnist && cp ../shared/data/mnist/*-ubyte.gz data/mnist/`.
#
# Steps, each timed, its output in device_check.log, ok or FAILED in device_check.md
# (the script goes on after a failure and exits 1 at the end):
#   default_study       python launch.py (the digits study, 3 seeds, 40 epochs), then the
#                       same command again, which must train nothing (resume);
#   mnist_study         experiments/mnist_decay_vs_batch.py in 4 of its 30 epochs
#                       (--config.epochs_scale=0.134) from the files in $MNIST_DIR, twice;
#   throughput          python -m benchmarks.throughput, small settings, no TensorFlow
#                       ($THROUGHPUT_FLAGS replaces them);
#   wrn_speed           python -m benchmarks.wrn_speed: WRN-16-4 at B = 128 and 1024, float32
#                       and bfloat16, images/s and MFU ($WRN_FLAGS replaces the settings);
#   device_invariance   the device-count-invariance tests (1, 4 and 8 devices train to the
#                       same state): on the accelerators where there are 8 or more, else on
#                       8 host devices (JAX_PLATFORMS=cpu) with this machine's jax.
# Results: benchmarks/results/<device kind>/ (device_check.md, device_check.log,
# throughput.json/.md, wrn_speed.json/.md); the studies' runs under runs/device_check/.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
QUICK=${DEVICE_CHECK_QUICK:-0}
MNIST_DIR=${MNIST_DIR:-data/mnist}
RUNS=runs/device_check
export PYTHONUNBUFFERED=1

missing=$("$PY" -c 'import importlib.util as u
print(*(w for m, w in (("ml_collections", "ml_collections"), ("absl", "absl_py"))
        if u.find_spec(m) is None))') || exit 1
if [ -n "$missing" ]; then
  site=$(mktemp -d)
  wheels=()
  for name in $missing; do wheels+=(benchmarks/wheels/"$name"-*.whl); done
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$site" "${wheels[@]}" \
    || { echo "device_check: install $missing from benchmarks/wheels/ (see the header)"; exit 1; }
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi

device=$("$PY" -c 'import jax, re
print(re.sub(r"[^a-z0-9]+", "_", jax.devices()[0].device_kind.lower()).strip("_"))') || exit 1
num_devices=$("$PY" -c 'import jax; print(jax.local_device_count())') || exit 1
OUT=benchmarks/results/$device
LOG=$OUT/device_check.log
mkdir -p "$OUT" "$RUNS"
: >"$LOG"

if [ "$QUICK" = 1 ]; then
  DIGITS_FLAGS=(--config.seeds=0, --config.epochs_scale=0.1)
  MNIST_FLAGS=(--config=experiments/mnist_decay_vs_batch.py:decay --config.seeds=0,
               --config.epochs_scale=0.1)
  THROUGHPUT=(--dataset=digits --batch_sizes=64,128 --rounds=1 --epochs=2 --notorch
              --nocold_start --noise_settings=)
  WRN=(--depth=10 --width=1 --batch_sizes=16 --updates=2 --rounds=1)
else
  DIGITS_FLAGS=()
  MNIST_FLAGS=(--config=experiments/mnist_decay_vs_batch.py --config.epochs_scale=0.134)
  THROUGHPUT=(--dataset=mnist --manual_dir="$MNIST_DIR" --batch_sizes=64,128,1024 --rounds=3
              --epochs=3 --notorch --nocold_start --noise_settings=)
  WRN=()
fi
[ -n "${THROUGHPUT_FLAGS:-}" ] && read -ra THROUGHPUT <<<"$THROUGHPUT_FLAGS"
[ -n "${WRN_FLAGS:-}" ] && read -ra WRN <<<"$WRN_FLAGS"
# The tests that compare 1, 4 and 8 devices, or pmapped values with one device's.
INVARIANCE_TESTS=(tests/test_ghost_step.py tests/test_ghost_batch_norm.py
                  tests/test_gradient_noise.py -k 'pmap or devices or accumulated')
[ "$num_devices" -ge 8 ] && invariance_platform="" || invariance_platform=cpu

study_twice() {  # WORKDIR FLAGS...: a fresh study, then the same command, which must train nothing
  local workdir=$1 rerun
  shift
  rm -rf "$workdir"
  "$PY" launch.py --workdir="$workdir" "$@" || return
  rerun=$("$PY" launch.py --workdir="$workdir" "$@" 2>&1) || { echo "$rerun"; return 1; }
  echo "$rerun"
  grep -q 'train step compiled 0 time(s)' <<<"$rerun" || { echo 'the rerun trained'; return 1; }
}

mnist_study() {
  for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz \
           t10k-labels-idx1-ubyte.gz; do
    [ -f "$MNIST_DIR/$f" ] || { echo "no $MNIST_DIR/$f: copy MNIST's four files there"; return 1; }
  done
  study_twice "$RUNS/mnist" "${MNIST_FLAGS[@]}" --config.dataset.manual_dir="$MNIST_DIR"
}

rows=()
failed=0
step() {  # NAME COMMAND...: runs it into the log, records ok/FAILED and its seconds
  local name=$1 start=$SECONDS status=ok
  shift
  echo "== $name: $*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG" || { status=FAILED; failed=1; }
  rows+=("| $name | $status | $((SECONDS - start)) |")
  echo "== $name: $status in $((SECONDS - start)) s" | tee -a "$LOG"
}

step default_study study_twice "$RUNS/digits" "${DIGITS_FLAGS[@]}"
step mnist_study mnist_study
step throughput "$PY" -m benchmarks.throughput "${THROUGHPUT[@]}" --out_dir="$OUT"
step wrn_speed "$PY" -m benchmarks.wrn_speed "${WRN[@]}" --out_dir="$OUT"
step device_invariance env JAX_PLATFORMS="$invariance_platform" \
  "$PY" -m pytest -q -p no:cacheprovider "${INVARIANCE_TESTS[@]}"

[ "$QUICK" = 1 ] && how='DEVICE_CHECK_QUICK=1 ' settings='quick (tiny)' \
  || how='' settings='full'
versions=$("$PY" -c 'import jax, sys
print(f"jax {jax.__version__}, Python {sys.version.split()[0]}")')
commit=$(git rev-parse --short HEAD 2>/dev/null || echo 'no git')
[ -n "$invariance_platform" ] && where='8 host devices (JAX_PLATFORMS=cpu)' \
  || where='the accelerators'
[ $failed = 0 ] && verdict=ok || verdict=FAILED
{
  echo "# Device check: $device"
  echo
  echo "\`${how}bash benchmarks/device_check.sh\` at $commit on $num_devices × $device," \
       "$versions, $(date -u '+%Y-%m-%d %H:%M UTC'); $settings settings; device-count" \
       "invariance on $where."
  echo
  echo '| step | status | seconds |'
  echo '| --- | --- | ---: |'
  printf '%s\n' "${rows[@]}"
  echo "| total | $verdict | $SECONDS |"
} >"$OUT/device_check.md"
cat "$OUT/device_check.md"
exit $failed
