//go:build !netinit_lab

package main

// labBuild: this is the production build, in the Internet's own rules
// (internet_lab.go is the lab's).
const labBuild = false
