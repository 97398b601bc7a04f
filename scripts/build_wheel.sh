#!/usr/bin/env bash
# Build the release wheel for any Linux with glibc >= 2.17 (manylinux2014 = manylinux_2_17) and
# check it with auditwheel. A plain `maturin build` tags the wheel with the build machine's glibc
# (manylinux_2_34 on Debian 12), which pip on an older Linux refuses; linking against glibc 2.17
# needs either a manylinux2014 container or zig as the linker (maturin --zig), used here.
#
#   scripts/build_wheel.sh            # -> dist/selective_w2sg-*-cp310-abi3-manylinux_2_17_*.whl
#   OUT=wheels scripts/build_wheel.sh
#
# The tools (maturin, ziglang, auditwheel) are taken from the current Python when it has them,
# else installed into a throwaway virtual environment (never into the current Python).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-dist}
PY=${PYTHON:-python3}

have() { "$PY" -c "import $1" 2>/dev/null; }
if ! (command -v maturin >/dev/null && have ziglang && have auditwheel); then
    VENV=${WHEEL_VENV:-${TMPDIR:-/tmp}/sw2s-wheel-venv}
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "maturin>=1.9,<2" ziglang auditwheel
    PATH="$VENV/bin:$PATH"
    PY="$VENV/bin/python"
fi

mkdir -p "$OUT"
before=$(ls "$OUT"/*.whl 2>/dev/null || true)
# The ziglang package ships the zig binary; put its folder on PATH for maturin.
ZIG_DIR=$("$PY" -c 'import os, ziglang; print(os.path.dirname(ziglang.__file__))')
PATH="$ZIG_DIR:$PATH" maturin build --release --compatibility manylinux2014 --zig --out "$OUT"
wheel=$(ls -t "$OUT"/*.whl | head -n 1)
case "$before" in *"$wheel"*) echo "no new wheel in $OUT" >&2; exit 1 ;; esac

echo "== auditwheel show $wheel"
report=$("$PY" -m auditwheel show "$wheel")
echo "$report"
case "$wheel" in
    *manylinux_2_17*|*manylinux2014*) ;;
    *) echo "FAIL: $wheel is not tagged manylinux2014 / manylinux_2_17" >&2; exit 1 ;;
esac
if ! grep -q 'consistent with the following platform tag:' <<<"$report" \
        || ! grep -Eq 'manylinux_2_17|manylinux2014' <<<"$report"; then
    echo "FAIL: auditwheel does not place $wheel at manylinux_2_17" >&2
    exit 1
fi
echo "OK: $wheel (manylinux_2_17, checked by auditwheel)"
