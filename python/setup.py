"""pip install ./python: the ringattn package with its C library.

    ./bazelw build //python:libringattn.so
    python3 -m pip install --no-build-isolation ./python   # offline

The library is taken from RINGATTN_LIB, else bazel-bin/python/libringattn.so
next to this tree, and installed inside the package (ringattn/_capi.py
loads it from there). It links Debian's shared Abseil (libabsl*.so, from
libabsl-dev's runtime package)."""

import os
import shutil

from setuptools import setup
from setuptools.dist import Distribution

here = os.path.dirname(os.path.abspath(__file__))
library = os.environ.get("RINGATTN_LIB") or os.path.join(here, "..", "bazel-bin", "python",
                                                          "libringattn.so")
if not os.path.exists(library):
    raise SystemExit(f"ringattn: no C library at {library}; run `./bazelw build "
                     "//python:libringattn.so` first (or set RINGATTN_LIB)")
shutil.copyfile(library, os.path.join(here, "ringattn", "libringattn.so"))


class BinaryDistribution(Distribution):
    """The package carries a platform library: not a pure-Python wheel."""

    def has_ext_modules(self):
        return True


setup(
    name="ringattn",
    version="0.1.0",
    description="Exact ring attention over sequences too long for one GPU (C ABI + ctypes)",
    packages=["ringattn"],
    package_data={"ringattn": ["libringattn.so"]},
    distclass=BinaryDistribution,
    python_requires=">=3.9",
    install_requires=["numpy"],
)
