#!/usr/bin/env bash
# fuzz.sh FUZZTIME PKG...: every fuzz target of each package for FUZZTIME.
#
# A target fails on what it finds: a failing input (written to
# testdata/fuzz), a panic, a t.Fatal. Go 1.26's fuzzing coordinator also
# fails a target that found nothing when a worker is still busy at the
# -fuzztime deadline (a starved worker, or one minimising a new input):
# the bare "context deadline exceeded" of go.dev/issue/75804, fixed in
# Go 1.27. That one is not a finding: the target's corpus (its seeds and
# testdata/fuzz) is then run again without fuzzing, and only a failure
# there fails.
set -uo pipefail
time=$1; shift
GO=${GO:-go}
for pkg in "$@"; do
  for f in $($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz'); do
    echo "fuzz $pkg $f"
    out=$($GO test -run='^$' -fuzz="^$f\$" -fuzztime="$time" "$pkg" 2>&1)
    rc=$?
    printf '%s\n' "$out" | tail -n 4
    [ $rc -eq 0 ] && continue
    if printf '%s\n' "$out" | grep -q '^    context deadline exceeded$' &&
       ! printf '%s\n' "$out" | grep -qE 'Failing input written|panic:'; then
      echo "fuzz $pkg $f: the coordinator's deadline race (go.dev/issue/75804), no input found; running the corpus again"
      $GO test -count=1 -run="^$f\$" "$pkg" || exit 1
      continue
    fi
    printf '%s\n' "$out"
    exit 1
  done
done
