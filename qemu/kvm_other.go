//go:build !linux

package qemu

import "errors"

func kvmProbe() error { return errors.New("KVM is Linux only") }
