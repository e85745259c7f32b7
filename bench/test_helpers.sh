# Sourced by the bench scripts' sh_tests: a scratch folder removed at exit
# ($work), `fail` and `expect_error`.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=""
# fail MESSAGE: says what failed, shows the last output ($out, and the file
# $fail_log names where a test sets it), exits 1.
fail() {
  echo "FAIL: $*"
  echo "$out"
  if [[ -n "${fail_log:-}" && -f "$fail_log" ]]; then cat "$fail_log"; fi
  exit 1
}
# expect_error WHAT MESSAGE COMMAND...: COMMAND must fail, with MESSAGE (a
# grep pattern; "" for any) in what it wrote to stderr.
expect_error() {
  local what=$1 message=$2
  shift 2
  if "$@" 2> "$work/err"; then fail "$what accepted"; fi
  grep -q -- "$message" "$work/err" || fail "$what: no '$message' in: $(cat "$work/err")"
}
