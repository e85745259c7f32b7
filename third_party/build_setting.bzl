"""A boolean build setting (a user-defined flag, no bazel-skylib here)."""

def _impl(ctx):
    return []

bool_setting = rule(implementation = _impl, build_setting = config.bool(flag = True))
