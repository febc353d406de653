#!/usr/bin/env bash
# Summarise a verbose `go test -v ./...` log: each package's result line, the
# output of failed tests, and one closing line "N passed, N failed, N skipped"
# counting individual tests (subtests included).
set -u
log=${1:-test.log}
[ -f "$log" ] || { echo "no test log $log"; exit 1; }
# Output of failed tests: from "=== RUN" of a failing test to its "--- FAIL".
awk '
  /^=== RUN/ { buf = $0 "\n"; next }
  { buf = buf $0 "\n" }
  /^[ \t]*--- FAIL/ { printf "%s", buf; buf = "" }
  /^panic:/ { p = 1 }
  p { print }
' "$log" | tail -n 400
grep -E '^(ok|FAIL|---|\?)[[:space:]]' "$log" | grep -Ev '^---' || true
grep -E '^(ok|FAIL)[[:space:]]' "$log" >/dev/null || tail -n 50 "$log"
pass=$(grep -cE '^[[:space:]]*--- PASS' "$log")
fail=$(grep -cE '^[[:space:]]*--- FAIL' "$log")
skip=$(grep -cE '^[[:space:]]*--- SKIP' "$log")
echo "tests: $pass passed, $fail failed, $skip skipped"
