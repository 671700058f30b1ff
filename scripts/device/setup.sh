# setup.sh: sourced by the device scripts, in the repository root. Installs the carried wheels when a
# package is missing, gives cli/ its installed import name (twolevel_cli), sets the environment, and
# defines cache_spectrograms (the 300 clips' spectrograms in 8 background processes; the caller waits) and
# gpu_check (the CUDA tests, then benchmarks/gpu_check.py with the caller's arguments; results in $OUT).
PY=${PY:-python3}
"$PY" -c "import nnAudio, soundfile, soxr, click" 2>/dev/null || "$PY" -m pip install -q --no-index --no-deps .whl/*.whl 2>&1 | tail -2
mkdir -p .gpu/py && ln -sfn ../../cli .gpu/py/twolevel_cli
export PYTHONPATH=$PWD:$PWD/.gpu/py TWOLEVEL_CACHE=${TWOLEVEL_CACHE:-$PWD/.gpu/cache} MPLBACKEND=Agg
DATA=.gpu/data/soundtracks-set1
cache_spectrograms() {
  for i in 0 1 2 3 4 5 6 7; do
    OMP_NUM_THREADS=1 "$PY" -c "
from pathlib import Path; from twolevel.training import cached_spectrograms
cached_spectrograms(sorted(Path('$DATA/audio').glob('*.mp3'))[$i::8])" 2>/dev/null &
  done
}
gpu_check() {  # [benchmarks/gpu_check.py arguments]; the caller sets DEV, OUT and el
  el "CUDA tests"
  TWOLEVEL_CHECK_DEVICE=$DEV OMP_NUM_THREADS=4 timeout 120 "$PY" -m pytest -q -p no:cacheprovider -p no:benchmark \
    tests/test_cuda.py tests/test_runtime.py > "$OUT/gpu_tests.log" 2>&1; echo "tests exit $?"; tail -2 "$OUT/gpu_tests.log"
  el "gpu_check"
  OMP_NUM_THREADS=4 timeout 120 "$PY" benchmarks/gpu_check.py --device $DEV --out "$OUT" "$@" 2>&1 | tail -12
}
