"""pip install ./python: the ringattn package with its C library.

    ./bazelw build //python:libringattn.so
    python3 -m pip install --no-build-isolation ./python   # offline

The library is taken from RINGATTN_LIB, else bazel-bin/python/libringattn.so
next to this tree, and installed inside the package (ringattn/_capi.py
loads it from there). It links Debian's shared Abseil (libabsl*.so, from
libabsl-dev's runtime package): the Abseil libraries it needs are installed
beside it (found there through its $ORIGIN run path), so the package loads
on machines without Abseil, such as a GPU node with only Python and torch."""

import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.dist import Distribution

here = os.path.dirname(os.path.abspath(__file__))
library = os.environ.get("RINGATTN_LIB") or os.path.join(here, "..", "bazel-bin", "python",
                                                          "libringattn.so")
if not os.path.exists(library):
    raise SystemExit(f"ringattn: no C library at {library}; run `./bazelw build "
                     "//python:libringattn.so` first (or set RINGATTN_LIB)")


def abseil_libraries(path):
    """The files of the Abseil libraries `path` links, as the loader finds them here (ldd)."""
    try:
        listing = subprocess.run(["ldd", path], check=True, capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"ringattn: cannot list the shared libraries of {path} with ldd: {e}")
    found = []
    for line in listing.splitlines():
        fields = line.split()  # "libabsl_base.so.20220623 => /lib/.../libabsl_base.so.20220623 (0x...)"
        if not fields or not fields[0].startswith("libabsl_"):
            continue
        if len(fields) < 3 or not os.path.isabs(fields[2]):
            raise SystemExit(f"ringattn: {path} needs {fields[0]}, which is not installed here "
                             "(expected Debian's libabsl-dev, as the build uses)")
        found.append(fields[2])
    return found


package_dir = os.path.join(here, "ringattn")
for stale in glob.glob(os.path.join(package_dir, "libabsl_*.so*")):
    os.remove(stale)
shutil.copyfile(library, os.path.join(package_dir, "libringattn.so"))
for abseil in abseil_libraries(library):
    shutil.copyfile(abseil, os.path.join(package_dir, os.path.basename(abseil)))  # the file, not a link


class BinaryDistribution(Distribution):
    """The package carries a platform library: not a pure-Python wheel."""

    def has_ext_modules(self):
        return True


setup(
    name="ringattn",
    version="0.1.0",
    description="Exact ring attention over sequences too long for one GPU (C ABI + ctypes)",
    packages=["ringattn"],
    package_data={"ringattn": ["libringattn.so", "libabsl_*.so*"]},
    distclass=BinaryDistribution,
    python_requires=">=3.9",
    install_requires=["numpy"],
)
