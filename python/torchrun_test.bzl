"""A test that runs a Python script under torchrun (python/torchrun_test.sh)
with the package and the built library."""

def torchrun_test(name, nproc, script, args = [], data = []):
    """`script` (a path or a $(location)) under torchrun with `nproc`
    processes and `args`. --redirects 2 --tee 1: Debian's torch 1.13
    torchrun fails on Python 3.11 with its default "0", whose flag value
    Python 3.11 no longer iterates."""
    native.sh_test(
        name = name,
        size = "medium",
        srcs = ["torchrun_test.sh"],
        args = ["--nproc_per_node=%d" % nproc, "--redirects", "2", "--tee", "1", script] + args,
        data = [
            ":libringattn.so",
            "python_test.sh",
            "sanitizer_env.sh",
        ] + native.glob(["ringattn/*.py"]) + data,
    )
