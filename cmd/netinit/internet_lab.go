//go:build netinit_lab

package main

// labBuild: the lab build of netinit (internal/lab.BuildNetinit: go build
// -tags netinit_lab) runs in namespaces numbered from the documentation
// ranges, which stand for the Internet there.
const labBuild = true
