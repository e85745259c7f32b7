"""A cc_binary shared library built with Debian's shared Abseil.

Debian's static Abseil archives are not position-independent, so the C ABI
library (//:libringattn.so) links the shared ones: this rule builds its
target with //third_party:absl_shared set (a configuration transition), so that
`bazel build //...` and tests can use the library while everything else
links Abseil statically.
"""

def _shared_absl_impl(settings, attr):
    return {"//third_party:absl_shared": True}

_shared_absl = transition(
    implementation = _shared_absl_impl,
    inputs = [],
    outputs = ["//third_party:absl_shared"],
)

def _impl(ctx):
    lib = ctx.attr.library[0][DefaultInfo].files.to_list()[0]
    out = ctx.actions.declare_file(ctx.attr.name)
    ctx.actions.symlink(output = out, target_file = lib)
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

shared_absl_library = rule(
    implementation = _impl,
    attrs = {
        "library": attr.label(cfg = _shared_absl, mandatory = True),
        "_allowlist_function_transition": attr.label(
            default = "@bazel_tools//tools/allowlists/function_transition_allowlist",
        ),
    },
)
