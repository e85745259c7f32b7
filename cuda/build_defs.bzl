"""cuda_library: compiles .cu files with nvcc from /usr/local/cuda.

Each .cu becomes one object file (one genrule running nvcc), compiled for
sm_80 (mma.sync/cp.async: A100, H800, H100, H200) and sm_90a (wgmma/TMA:
H100, H200, H800); the objects are wrapped in a cc_library that links cudart
statically. One .cu per instantiation family keeps these actions parallel.
Every .cu gets cuda/kernel_module.cuh force-included, which registers its
module with //cuda:kernel_preload (a dependency of every cuda_library).
"""

NVCC = "/usr/local/cuda/bin/nvcc"

# Force-included in every .cu: registers the file's module for
# PreloadKernels (cuda/kernel_preload.h: kernels loaded before a ring runs,
# not lazily beside NCCL's kernels).
KERNEL_MODULE_HEADER = "//cuda:kernel_module.cuh"

NVCC_FLAGS = [
    "-std=c++17",
    "-O3",
    "-lineinfo",
    "--expt-relaxed-constexpr",
    "-Xcompiler=-fPIC",
    "-Xcompiler=-Wall",
    "-gencode=arch=compute_80,code=sm_80",
    "-gencode=arch=compute_90a,code=sm_90a",
    "-I.",
]

# nvcc's messages are passed on; ptxas's "wgmma.mma_async instructions are
# serialized" (C7515, C7518, ...) fails the build: it is only an info line,
# yet it makes every wgmma of the kernel wait for the one before it (a 0.65x
# kernel that passes every test). Its causes: an accumulator that may still
# be in flight where control-flow paths join (C7518), accumulator registers
# written by other instructions while a wgmma group is open (C7515).
_NVCC_CMD = """if out=$$(%s 2>&1); then rc=0; else rc=$$?; fi
if [ -n "$$out" ]; then echo "$$out" >&2; fi
if echo "$$out" | grep -q "wgmma.mma_async instructions are serialized"; then
  echo "error: ptxas serialized wgmma in %s (see cuda/build_defs.bzl)" >&2; rm -f $@; exit 1
fi
exit $$rc"""

def cuda_library(name, srcs, hdrs = [], cu_hdrs = [], deps = [], nvcc_flags = [], **kwargs):
    """A cc_library whose .cu sources are compiled by nvcc.

    Args:
      name: the cc_library's name.
      srcs: .cu files (and optional host .cc files, compiled by the C++ rule).
      hdrs: public headers of the library, visible to nvcc too.
      cu_hdrs: other header files the .cu files include (e.g. from core/).
      deps: cc_library dependencies of the host code.
      nvcc_flags: extra nvcc flags.
      **kwargs: passed to the cc_library.
    """
    objects = []
    host_srcs = []
    for src in srcs:
        if not src.endswith(".cu"):
            host_srcs.append(src)
            continue
        obj = "_nvcc_%s/%s.o" % (name, src[:-len(".cu")])
        native.genrule(
            name = "_nvcc_%s_%s" % (name, src[:-len(".cu")].replace("/", "_")),
            srcs = [src, KERNEL_MODULE_HEADER] + hdrs + cu_hdrs,
            outs = [obj],
            cmd = _NVCC_CMD % (" ".join([NVCC] + NVCC_FLAGS + ["-include", "cuda/kernel_module.cuh"] + nvcc_flags +
                                        ["-c", "$(location %s)" % src, "-o", "$@"]), src),
            message = "nvcc %s" % src,
        )
        objects.append(obj)
    native.cc_library(
        name = name,
        srcs = objects + host_srcs,
        hdrs = hdrs,
        deps = deps + ["@cuda//:cudart", "//cuda:kernel_preload"],
        **kwargs
    )
