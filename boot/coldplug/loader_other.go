//go:build !linux

package coldplug

import "errors"

var errNotLinux = errors.New("kernel modules need Linux")

type noLoader struct{}

func defaultLoader() Loader { return noLoader{} }

func (noLoader) Load(name, path string) error { return errNotLinux }

func kernelRelease() (string, error) { return "", errNotLinux }
