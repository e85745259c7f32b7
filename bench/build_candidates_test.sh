#!/usr/bin/env bash
# bench/build_candidates.sh on a scratch repository with a stand-in build
# (BAZEL) whose "binaries" are the tree's version file: HEAD alone, one and
# two commits applied, the tree reset after each, and the refusals -- a
# dirty tree, a bad candidate, an unknown or conflicting commit, a failed
# build -- each with its message and the tree left as it was.
set -euo pipefail
script="$(cd "$(dirname "$0")" && pwd)/build_candidates.sh"
source "$(dirname "$0")/test_helpers.sh"  # $work, fail, expect_error
repo="$work/repo"
mkdir -p "$repo"
export HOME="$work" GIT_CONFIG_NOSYSTEM=1  # the test's sandbox: no user or system git config
cd "$repo"
git init -q
git config user.email test@example.com
git config user.name test
echo v1 > version.txt
git add version.txt
git commit -qm base
echo v2 > version.txt
git commit -qam "candidate v2"
git revert --no-edit HEAD > /dev/null
v2=$(git rev-parse HEAD~1)
echo extra > extra.txt
git add extra.txt
git commit -qm "candidate extra"
git revert --no-edit HEAD > /dev/null
extra=$(git rev-parse HEAD~1)
echo v3 > version.txt
git commit -qam "a new version (conflicts with v2)"
conflict=$(git rev-parse HEAD)
git reset -q --hard HEAD~1
# The stand-in build: each target's file under bazel-bin holds the tree's
# version and, where present, extra.txt. FAIL_BUILD=1 fails.
cat > "$work/bazel" <<'STANDIN'
#!/usr/bin/env bash
[[ $1 == build ]] || { echo "args: $*" >&2; exit 1; }
[[ -z ${FAIL_BUILD:-} ]] || { echo "build failed" >&2; exit 1; }
for target in "${@:2}"; do
  [[ $target == //* ]] || { echo "not a target: $target" >&2; exit 1; }
  path=${target#//}
  path="bazel-bin/${path/://}"
  mkdir -p "$(dirname "$path")"
  cat version.txt $( [[ -f extra.txt ]] && echo extra.txt) > "$path"
done
STANDIN
chmod +x "$work/bazel"
export BAZEL="$work/bazel" CANDIDATE_TARGETS="//a/b:flash_test //c:kernel_bench"
echo "bazel-bin" > .git/info/exclude
unpacked() { xz -dc "$work/out/$1/$2.xz" | tr '\n' ' '; }

out=$("$script" "$work/out" one="$v2" base= two="$v2+$extra" 2>&1) || fail "three candidates"
[[ $(unpacked base flash_test) == "v1 " ]] || fail "base: $(unpacked base flash_test)"
[[ $(unpacked one kernel_bench) == "v2 " ]] || fail "one: $(unpacked one kernel_bench)"
[[ $(unpacked two flash_test) == "v2 extra " ]] || fail "two: $(unpacked two flash_test)"
head -1 "$work/out/two/REV" | grep -q "^$(git rev-parse --short HEAD) + $v2 + $extra$" || fail "two's REV line"
grep -q "2 files changed" "$work/out/two/REV" || fail "two's diff stat"
grep -q "^flash_test [0-9a-f]\{16\}$" "$work/out/one/REV" || fail "one's checksum line"
[[ $(cat version.txt) == v1 && ! -e extra.txt ]] || fail "tree not reset"
git diff --quiet HEAD || fail "tree not clean"

echo dirty >> version.txt
expect_error "a dirty tree" "changes to tracked files" "$script" "$work/out" x="$v2"
[[ $(tail -1 version.txt) == dirty ]] || fail "the dirty change was touched"
git checkout -q version.txt

# OUT_DIR relative to where it is run, not to the tree's top.
mkdir -p sub
(cd sub && "$script" rel x= > /dev/null 2>&1) || fail "a relative OUT_DIR"
[[ -f sub/rel/x/flash_test.xz ]] || fail "a relative OUT_DIR: not under sub/"
rm -rf sub

expect_error "a bad candidate" "NAME=\[REV" "$script" "$work/out" "no name"
expect_error "an unknown commit" "no commit nope" "$script" "$work/out" x=nope
expect_error "no candidate" "usage" "$script" "$work/out"
# v2 then a commit that rewrites the same line from v1: it does not apply.
expect_error "a conflict" "does not apply" "$script" "$work/out" x="$v2+$conflict"
[[ $(cat version.txt) == v1 ]] && git diff --quiet HEAD || fail "tree not reset after a conflict"
FAIL_BUILD=1 expect_error "a failed build" "the build failed" "$script" "$work/out" x="$extra"
[[ ! -e extra.txt ]] && git diff --quiet HEAD || fail "tree not reset after a failed build"
echo "PASS"
