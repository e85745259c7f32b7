#!/usr/bin/env bash
# `pip install ./python` offline (no index, no build isolation) into a
# private prefix, then the installed package alone (no PYTHONPATH into the
# tree, no RINGATTN_LIB at import) runs a forward against numpy, with the
# Abseil libraries it links loaded from the package.
#   python/pip_install_test.sh   (data: python/, libringattn.so)
set -euo pipefail
source python/sanitizer_env.sh
tmp="${TEST_TMPDIR:-$(mktemp -d)}"
cp -rL python "$tmp/src"  # pip writes build files next to setup.py
RINGATTN_LIB="$PWD/python/libringattn.so" /usr/bin/python3 -m pip install --quiet \
  --no-build-isolation --no-deps --no-index --target "$tmp/site" "$tmp/src"
ls "$tmp/site/ringattn/libringattn.so"
# The Abseil libraries it links are installed beside it and load from there
# ($ORIGIN before the system's folders), so no libabsl-dev is needed.
package="$(realpath "$tmp/site/ringattn")"
needed="$(ldd "$package/libringattn.so" | awk '/^[[:space:]]*libabsl_/ {print $1, $3}')"
[[ -n "$needed" ]] || { echo "FAIL: ldd lists no Abseil library for the installed libringattn.so"; exit 1; }
while read -r name where; do
  [[ "$(realpath "$where")" == "$package/$name" ]] ||
    { echo "FAIL: $name loads from $where, expected the package's copy $package/$name"; exit 1; }
done <<< "$needed"
echo "$(wc -l <<< "$needed") Abseil libraries load from the installed package"
cd "$tmp"
env -u RINGATTN_LIB PYTHONPATH="$tmp/site" /usr/bin/python3 - <<'PY'
import numpy as np
import ringattn
assert ringattn.__file__.startswith(__import__("os").environ["PYTHONPATH"]), ringattn.__file__
world = ringattn.World(1)
ring = ringattn.Ring(world, 0, layout="ring", seqlen=16, num_heads=1, head_dim=8, causal=True)
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, 16, 1, 8)).astype(np.float32) for _ in range(3))
out, _ = ring.forward(q, k, v)
s = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(8)
s = np.where(np.tril(np.ones((16, 16), bool)), s, -np.inf)
p = np.exp(s - s.max(-1, keepdims=True))
ref = np.einsum("bhqk,bkhd->bqhd", p / p.sum(-1, keepdims=True), v)
err = float(np.abs(out - ref).max())
print(f"installed ringattn from {ringattn.__file__}: forward max abs error {err:.1e}")
assert err < 1e-5
PY
