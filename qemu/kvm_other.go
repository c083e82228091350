//go:build !linux

package qemu

func kvmProbe() bool { return false }
