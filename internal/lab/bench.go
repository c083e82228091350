package lab

import (
	"os"
	"strconv"
	"testing"
)

// Bench skips the test unless NETINIT_BENCH=1 (make bench, make
// bench-smoke) and returns how many runs each row takes: the variable
// runsVar, else def. A smoke run takes one, and its bench tests run in
// parallel: their numbers mean nothing there, only that they come.
func Bench(t *testing.T, runsVar string, def int) int {
	t.Helper()
	if os.Getenv("NETINIT_BENCH") != "1" {
		t.Skip("make bench sets NETINIT_BENCH=1")
	}
	if BenchSmoke() {
		t.Parallel()
		return 1
	}
	v := os.Getenv(runsVar)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a number of runs (1 or more)", runsVar, v)
	}
	return n
}

// BenchSmoke reports whether this is `make bench-smoke`
// (NETINIT_BENCH_SMOKE=1): one run per row, and a row left without a
// number fails the test, so that the bench code cannot rot unseen.
func BenchSmoke() bool { return os.Getenv("NETINIT_BENCH_SMOKE") == "1" }

// BenchMiss reports a run that produced no number: `make bench` logs it
// (its row says so), `make bench-smoke` fails.
func BenchMiss(t testing.TB, format string, args ...any) {
	t.Helper()
	if BenchSmoke() {
		t.Errorf(format, args...)
		return
	}
	t.Logf(format, args...)
}
