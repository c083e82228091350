// Package noenv removes the environment variables that make
// yggdrasil-go's core start a debugging HTTP server.
//
// yggdrasil-go/src/core has an init function that serves net/http/pprof on
// the address in $PPROFLISTEN. PID 1 inherits the kernel command line's
// unknown NAME=VALUE words as its environment, so a word on the command
// line would be enough to open a profiler port. This package's init runs
// before core's: since Go 1.21 packages are initialized in import-path
// order among those whose imports are ready (Go spec, "Package
// initialization"), and this package (github.com/threefoldtech/...) needs
// only os and sorts before github.com/yggdrasil-network/... . The ygg
// package imports it, and its tests check that the profiler stays off.
package noenv

import "os"

// Vars are the variables removed from the environment.
var Vars = []string{"PPROFLISTEN"}

func init() {
	for _, v := range Vars {
		os.Unsetenv(v)
	}
}
