// Package atomicfile replaces or creates files so that a reader, or a
// reboot, sees the old content or the new, never a mix: the data goes to
// a temporary file in the same directory, is fsynced, then moved into
// place, and the directory is fsynced so that the move survives a crash.
package atomicfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces path with data, with mode perm.
func Write(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// Create puts data at path, with mode perm, only if nothing is there: it
// never replaces a file that appeared meanwhile (another process wrote
// one, or a human put one back) and then fails with fs.ErrExist. On a
// file system without hard links it falls back to a plain rename.
func Create(path string, data []byte, perm fs.FileMode) error {
	tmp, err := writeTemp(path, data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	SyncDir(filepath.Dir(path))
	return nil
}

// writeTemp writes data to a new temporary file beside path and returns
// its name. The mode is set before any byte is written: a secret is never
// readable by others, even for a moment.
func writeTemp(path string, data []byte, perm fs.FileMode) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	return tmp, nil
}

// SyncDir fsyncs the directory dir, so that a rename or link in it is
// durable. Errors are ignored: some file systems cannot sync a directory,
// and the file itself is already safe.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}
