# Sourced by the Python tests' scripts: under --config=asan|ubsan the
# library needs its sanitizer runtime loaded first (python3 itself is not
# instrumented; its own leaks are not ours), and libstdc++ with it: python3
# does not link it, and ASan's __cxa_throw interceptor finds no real
# function to call when it is loaded later (by torch), so any C++ exception
# torch throws and catches would abort. TSan cannot be preloaded into an
# uninstrumented interpreter (it crashes): the test passes with a message
# (//:ringattn_c_test covers the ABI's threads under TSan).
runtime=$(ldd python/libringattn.so | grep -oE '/[^ ]*lib(a|t|ub)san\.so[^ ]*' | head -1 || true)
if [[ "$runtime" == *libtsan* ]]; then
  echo "skipped under ThreadSanitizer: $runtime cannot be preloaded into python3"
  exit 0
fi
if [[ -n "$runtime" ]]; then
  libstdcxx=$(/sbin/ldconfig -p | grep -oE '/[^ ]*/libstdc\+\+\.so\.6$' | head -1 || true)
  export LD_PRELOAD="$runtime${libstdcxx:+ $libstdcxx}" ASAN_OPTIONS=detect_leaks=0
fi
