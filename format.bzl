"""cpp_sources(): a package's C++/CUDA sources, for //:format_test."""

def cpp_sources(exclude = []):
    """Declares :cpp_sources, every .cc/.h/.cu/.cuh below the package.

    Args:
      exclude: files left out (generated ones that are not formatted).
    """
    native.filegroup(
        name = "cpp_sources",
        srcs = native.glob(["**/*.cc", "**/*.h", "**/*.cu", "**/*.cuh"], exclude = exclude),
        visibility = ["//:__pkg__"],
    )
