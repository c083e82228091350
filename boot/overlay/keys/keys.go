// Package keys stores the overlay identities of a node: the Yggdrasil
// ed25519 key and the WireGuard Curve25519 key.
//
// # File format
//
// A key file is one PEM block of type "PRIVATE KEY" holding the key in
// PKCS #8 (RFC 5208; ed25519 and X25519 per RFC 8410), preceded by a
// comment header line:
//
//	# netinit ed25519 private key (do not share)
//	-----BEGIN PRIVATE KEY-----
//	MC4CAQAwBQYDK2VwBCIEI...
//	-----END PRIVATE KEY-----
//
// It is the format `openssl genpkey -algorithm ed25519|x25519` writes and
// yggdrasil-go's PrivateKeyPath reads, so a key can be made or inspected
// with standard tools. Files are mode 0600 in a 0700 directory and are
// written atomically (temporary file, fsync, rename, fsync of the
// directory).
//
// # Corrupt files
//
// An identity is precious: a node's overlay address is derived from it.
// A key file that can't be used (unreadable, wrong format, wrong key type,
// a directory or a dangling symlink in its place) is never deleted or
// overwritten. It is renamed to NAME.corrupt-<unix time>; if that rename
// fails the file is left alone and the key is kept in NAME.alt instead.
// Either way the Event says so, so that the caller can print it on the
// console and record it in the state's problems.
//
// Key material never appears in logs, errors or events: messages only name
// files.
package keys

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Event describes what Load had to do besides reading a key.
type Event struct {
	// Created is true when a new key was generated (first use, or the old
	// file was unusable).
	Created bool
	// MovedAside is the path the unusable key file was renamed to, or "".
	MovedAside string
	// Problem is a one-line description for the console and the state's
	// problems ("" when all went well). It never contains key material.
	Problem string
	// Ephemeral is true when the key could not be saved: it is valid for
	// this boot only and the identity will change at the next boot.
	Ephemeral bool
}

// maxKeyFile bounds how much of a key file is read: a PEM PKCS #8 key of
// these types is about 120 bytes.
const maxKeyFile = 4096

// kind is one key type the package stores.
type kind struct {
	name   string                       // for messages and the header line
	parse  func(der []byte) (any, bool) // nil, false when the DER isn't this kind
	gen    func() (any, error)
	encode func(any) ([]byte, error) // to PKCS #8 DER
}

var ed25519Kind = kind{
	name: "ed25519",
	parse: func(der []byte) (any, bool) {
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, false
		}
		ek, ok := k.(ed25519.PrivateKey)
		return ek, ok && len(ek) == ed25519.PrivateKeySize
	},
	gen: func() (any, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	},
	encode: x509.MarshalPKCS8PrivateKey,
}

var x25519Kind = kind{
	name: "x25519",
	parse: func(der []byte) (any, bool) {
		k, err := x509.ParsePKCS8PrivateKey(der)
		if err != nil {
			return nil, false
		}
		xk, ok := k.(*ecdh.PrivateKey)
		if !ok || xk.Curve() != ecdh.X25519() {
			return nil, false
		}
		return xk, true
	},
	gen: func() (any, error) {
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		clamp(&b)
		return ecdh.X25519().NewPrivateKey(b[:])
	},
	encode: x509.MarshalPKCS8PrivateKey,
}

// clamp applies the X25519 scalar clamping of RFC 7748 section 5
// ("decodeScalar25519"), as WireGuard stores its private keys.
func clamp(k *[32]byte) {
	k[0] &= 248
	k[31] &= 127
	k[31] |= 64
}

// LoadEd25519 returns the ed25519 private key stored at dir/name, creating
// it (mode 0600 in a 0700 dir) on first use. See the package comment for
// what happens to a corrupt file. The error is non-nil only when no key at
// all could be produced; a key that could not be saved is returned with
// Event.Ephemeral set.
func LoadEd25519(dir, name string) (ed25519.PrivateKey, Event, error) {
	k, ev, err := load(dir, name, ed25519Kind)
	if err != nil {
		return nil, ev, err
	}
	return k.(ed25519.PrivateKey), ev, nil
}

// LoadCurve25519 is LoadEd25519 for a WireGuard (X25519) private key. The
// returned key is clamped per RFC 7748 section 5.
func LoadCurve25519(dir, name string) ([32]byte, Event, error) {
	var out [32]byte
	k, ev, err := load(dir, name, x25519Kind)
	if err != nil {
		return out, ev, err
	}
	copy(out[:], k.(*ecdh.PrivateKey).Bytes())
	clamp(&out)
	return out, ev, nil
}

// Ed25519FromSeed derives an ed25519 key deterministically from a node
// seed file, so that a node re-installed from the same seed gets the same
// overlay identity. The ed25519 seed (RFC 8032 section 5.1.5) is
//
//	SHA-512/256("netinit " + label + "\x00" || contents of path)
//
// The label separates the keys derived for different uses (e.g.
// "yggdrasil") from one seed. The file must hold at least 32 bytes.
func Ed25519FromSeed(path, label string) (ed25519.PrivateKey, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, fmt.Errorf("keys: seed %s: %w", path, err)
	}
	if len(b) < 32 {
		return nil, fmt.Errorf("keys: seed %s: %d bytes, want at least 32", path, len(b))
	}
	h := sha512.New512_256()
	h.Write([]byte("netinit " + label + "\x00"))
	h.Write(b)
	return ed25519.NewKeyFromSeed(h.Sum(nil)), nil
}

func load(dir, name string, kd kind) (any, Event, error) {
	var ev Event
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return nil, ev, fmt.Errorf("keys: bad key file name %q", name)
	}
	if err := ensureDir(dir); err != nil {
		return ephemeral(kd, ev, fmt.Sprintf("%s key: key directory %s: %v", kd.name, dir, err))
	}
	path := filepath.Join(dir, name)
	k, bad := read(path, kd)
	if k != nil {
		return k, ev, nil
	}
	if bad != nil {
		// The file is there but unusable: keep it for a human.
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if _, err := os.Lstat(aside); err == nil {
			aside += "-" + strconv.Itoa(os.Getpid())
		}
		if err := rename(path, aside); err == nil {
			ev.MovedAside = aside
			ev.Problem = fmt.Sprintf("%s key %s is unusable (%v): moved to %s, a new key was made", kd.name, path, bad, aside)
			syncDir(dir)
		} else {
			// It can't be moved: leave it exactly as it is and keep
			// the key in a second file.
			ev.Problem = fmt.Sprintf("%s key %s is unusable (%v) and could not be moved aside (%v): it was left in place", kd.name, path, bad, err)
			path += ".alt"
			if k, bad2 := read(path, kd); k != nil {
				ev.Problem += "; using " + path
				return k, ev, nil
			} else if bad2 != nil {
				return ephemeral(kd, ev, ev.Problem+fmt.Sprintf("; %s is unusable too (%v)", path, bad2))
			}
		}
	}
	k, err := kd.gen()
	if err != nil {
		return nil, ev, fmt.Errorf("keys: generate %s key: %w", kd.name, err)
	}
	ev.Created = true
	if err := write(path, kd, k); err != nil {
		p := fmt.Sprintf("%s key: saving %s: %v", kd.name, path, err)
		if ev.Problem != "" {
			p = ev.Problem + "; " + p
		}
		ev.Problem = p + "; the key is valid for this boot only"
		ev.Ephemeral = true
		return k, ev, nil
	}
	if ev.Problem != "" && ev.MovedAside == "" {
		ev.Problem += "; a new key was made in " + path
	}
	return k, ev, nil
}

// ephemeral returns a fresh key that is not saved.
func ephemeral(kd kind, ev Event, problem string) (any, Event, error) {
	k, err := kd.gen()
	if err != nil {
		return nil, ev, fmt.Errorf("keys: generate %s key: %w", kd.name, err)
	}
	ev.Created = true
	ev.Ephemeral = true
	ev.Problem = problem + "; the key is valid for this boot only"
	return k, ev, nil
}

// read returns the key in path; (nil, nil) when there is no file; (nil,
// reason) when there is something unusable. The reason never holds key
// material.
func read(path string, kd kind) (any, error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	b, err := readBounded(path)
	if err != nil {
		return nil, errors.New("unreadable: " + errText(err))
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("no PEM PRIVATE KEY block")
	}
	k, ok := kd.parse(block.Bytes)
	if !ok {
		return nil, fmt.Errorf("not a PKCS #8 %s key", kd.name)
	}
	if fi.Mode().Perm() != 0o600 {
		_ = os.Chmod(path, 0o600)
	}
	return k, nil
}

// errText is the error's text without a path (which os errors include).
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxKeyFile+1)
	n, err := f.Read(b)
	if n == 0 && err != nil {
		return nil, err
	}
	if n > maxKeyFile {
		return nil, fmt.Errorf("larger than %d bytes", maxKeyFile)
	}
	return b[:n], nil
}

func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return errors.New("not a directory")
	}
	if fi.Mode().Perm() != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// write stores k in path atomically: a reader (or a crash) sees either
// no file or the whole key.
func write(path string, kd kind, k any) error {
	der, err := kd.encode(k)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	data := []byte("# netinit " + kd.name + " private key (do not share)\n")
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...)
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return errors.New(errText(err))
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		return errors.New(errText(err))
	}
	if _, err := f.Write(data); err != nil {
		return errors.New(errText(err))
	}
	if err := f.Sync(); err != nil {
		return errors.New(errText(err))
	}
	if err := f.Close(); err != nil {
		return errors.New(errText(err))
	}
	// Never replace something that appeared meanwhile (another process
	// made a key, or a human put one back): link fails if path exists.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return errors.New(errText(err))
		}
		// A file system without hard links: plain rename.
		if err := os.Rename(tmp, path); err != nil {
			return errors.New(errText(err))
		}
	}
	ok = true
	os.Remove(tmp)
	syncDir(dir)
	return nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// rename is os.Rename; tests replace it to simulate a file that can't be
// moved.
var rename = os.Rename
