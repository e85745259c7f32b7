#!/bin/sh
echo "coverage is not supported in the offline build (third_party/remote_coverage_tools)" >&2
exit 1
