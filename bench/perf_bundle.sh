#!/usr/bin/env bash
# Packs this machine's Linux perf with every library it loads and its
# dynamic loader, so that a device call can profile host code (the GPU
# machines have no perf: ncu, cuda-gdb and compute-sanitizer only).
#   bench/perf_bundle.sh .dev/perf.tar.xz     (.tar.xz: xz-packed, ~8 MB; .tar: not)
# On the device (carry the file):
#   mkdir -p /tmp/perf && tar -C /tmp/perf -xf .dev/perf.tar.xz
#   /tmp/perf/perf record -g -F 2999 -p PID -- sleep 4     # attach once warm
#   /tmp/perf/perf report --tid PID --no-children --sort dso,sym --stdio -g none
# `perf` in the bundle runs the packed binary through the packed loader, so
# the device's own libraries (another glibc) do not matter. Python 3.12+
# started with `python3 -X perf` names its functions in the report (py::NAME
# frames; Ubuntu's Python keeps frame pointers, so -g's call chains hold
# through it). --call-graph dwarf works too, but its report took minutes on
# a 4-second sample (fifty-first session). Installs Debian's linux-perf
# first when perf is missing.
set -euo pipefail
out=${1:?usage: bench/perf_bundle.sh OUT.tar.xz|OUT.tar}
if ! command -v perf > /dev/null; then
  echo "perf_bundle: installing linux-perf" >&2
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends linux-perf >&2
fi
perf=$(readlink -f "$(command -v perf)")
loader=$(ldd "$perf" | awk '/ld-linux/ {print $1}')
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/lib"
cp -L "$perf" "$dir/lib/perf.bin"
ldd "$perf" | awk '/=> \// {print $3}' | xargs cp -L -t "$dir/lib"
cp -L "$loader" "$dir/lib/"
cat > "$dir/perf" <<WRAPPER
#!/bin/sh
d=\${0%/*}/lib
exec "\$d/$(basename "$loader")" --library-path "\$d" "\$d/perf.bin" "\$@"
WRAPPER
chmod +x "$dir/perf"
case $out in
  *.tar.xz) tar -C "$dir" -cf - . | xz -T0 -6 > "$out" ;;
  *.tar) tar -C "$dir" -cf "$out" . ;;
  *) echo "perf_bundle: $out is neither .tar.xz nor .tar" >&2; exit 1 ;;
esac
echo "perf_bundle: $out ($(du -h "$out" | cut -f1), $("$dir/perf" --version))"
