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
// written atomically (temporary file, fsync, hard link to the name, which
// never replaces a file that appeared meanwhile — rename only on a file
// system without hard links — fsync of the directory).
//
// # Corrupt files
//
// An identity is precious: a node's overlay address is derived from it.
// A key file that is not a key (wrong format, wrong key type, too large,
// a directory or a dangling symlink in its place) is never deleted or
// overwritten. It is renamed to NAME.corrupt-<unix time>; if that rename
// fails the file is left alone and the key is kept in NAME.alt instead.
// Either way the Event says so, so that the caller can print it on the
// console and record it in the state's problems.
//
// A file that cannot be read (EIO from a failing disk, EACCES from a
// security module, ...) is not corrupt: it may read fine at the next
// boot. It is read three times; then it is left exactly as it is, and a
// key for this boot only is used (Event.Ephemeral), said loudly.
//
// A key file whose mode is not 0600, or a key directory whose mode is not
// 0700, is fixed and the fix is reported in Event.Problem (someone may
// have read the key meanwhile).
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
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/threefoldtech/netinit/boot/atomicfile"
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
// "yggdrasil") from one seed. The file must hold at least 32 bytes. Every
// byte is part of the seed, a trailing newline included: `echo` and
// `printf` make different identities, and stripping it now would change
// the identity of nodes whose seed file has one. The file must be a
// regular file with no permission for group or others (a seed readable
// by others gives away the identity, one writable by others lets them
// choose it).
func Ed25519FromSeed(path, label string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("keys: seed %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("keys: seed %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("keys: seed %s: mode %04o gives group or others access to the node's identity; chmod 600 it", path, perm)
	}
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
	fixed, err := ensureDir(dir)
	if err != nil {
		return ephemeral(kd, ev, fmt.Sprintf("%s key: key directory %s: %v", kd.name, dir, err))
	}
	note(&ev, fixed)
	path := filepath.Join(dir, name)
	k, fixed, bad, fail := readRetry(path, kd)
	note(&ev, fixed)
	if k != nil {
		return k, ev, nil
	}
	if fail != nil {
		return ephemeral(kd, ev, addTo(ev.Problem, fmt.Sprintf("%s key %s could not be read (%v): it is NOT replaced (a read error is not corruption)", kd.name, path, fail)))
	}
	if bad != nil {
		// The file is there but unusable: keep it for a human.
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if _, err := os.Lstat(aside); err == nil {
			aside += "-" + strconv.Itoa(os.Getpid())
		}
		if err := rename(path, aside); err == nil {
			ev.MovedAside = aside
			ev.Problem = addTo(ev.Problem, fmt.Sprintf("%s key %s is unusable (%v): moved to %s, a new key was made", kd.name, path, bad, aside))
			atomicfile.SyncDir(dir)
		} else {
			// It can't be moved: leave it exactly as it is and keep
			// the key in a second file.
			ev.Problem = addTo(ev.Problem, fmt.Sprintf("%s key %s is unusable (%v) and could not be moved aside (%v): it was left in place", kd.name, path, bad, err))
			path += ".alt"
			k, fixed, bad2, fail2 := readRetry(path, kd)
			note(&ev, fixed)
			switch {
			case k != nil:
				ev.Problem += "; using " + path
				return k, ev, nil
			case fail2 != nil:
				return ephemeral(kd, ev, ev.Problem+fmt.Sprintf("; %s could not be read (%v)", path, fail2))
			case bad2 != nil:
				return ephemeral(kd, ev, ev.Problem+fmt.Sprintf("; %s is unusable too (%v)", path, bad2))
			}
		}
	}
	k, err = kd.gen()
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
	if bad != nil && ev.MovedAside == "" {
		ev.Problem += "; a new key was made in " + path
	}
	return k, ev, nil
}

// note adds a permission fix to ev's problem.
func note(ev *Event, fixed string) {
	if fixed != "" {
		ev.Problem = addTo(ev.Problem, fixed)
	}
}

func addTo(problem, more string) string {
	if problem == "" || more == "" {
		return problem + more
	}
	return problem + "; " + more
}

// readRetry is read, tried up to three times while the file cannot be
// read (a read error may pass; a parse failure will not).
func readRetry(path string, kd kind) (k any, fixed string, bad, fail error) {
	for i := 0; ; i++ {
		k, fixed, bad, fail = read(path, kd)
		if fail == nil || i == 2 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
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

// read returns the key in path, and a note when its mode was fixed. No
// key and no error: there is no file. bad: there is something that is not
// a key. fail: it could not be read. Neither error holds key material.
func read(path string, kd kind) (k any, fixed string, bad, fail error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil, nil
	}
	if err != nil {
		return nil, "", nil, errors.New(errText(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, "", fmt.Errorf("not a regular file (%s)", fi.Mode().Type()), nil
	}
	b, err := readBounded(path)
	if errors.Is(err, errTooLarge) {
		return nil, "", err, nil
	}
	if err != nil {
		return nil, "", nil, errors.New(errText(err))
	}
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, "", errors.New("no PEM PRIVATE KEY block"), nil
	}
	k, ok := kd.parse(block.Bytes)
	if !ok {
		return nil, "", fmt.Errorf("not a PKCS #8 %s key", kd.name), nil
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		if err := os.Chmod(path, 0o600); err != nil {
			fixed = fmt.Sprintf("%s key %s has mode %04o (others may have read it) and could not be set to 0600: %s", kd.name, path, perm, errText(err))
		} else {
			fixed = fmt.Sprintf("%s key %s had mode %04o (others may have read it): set to 0600", kd.name, path, perm)
		}
	}
	return k, fixed, nil, nil
}

// errText is the error's text without a path (which os errors include).
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

var errTooLarge = fmt.Errorf("larger than %d bytes", maxKeyFile)

func readBounded(path string) ([]byte, error) {
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, maxKeyFile+1)
	n, err := io.ReadFull(f, b)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return nil, err
	}
	if n > maxKeyFile {
		return nil, errTooLarge
	}
	return b[:n], nil
}

// ensureDir makes dir (0700) if needed; it returns a note when it had to
// fix its mode.
func ensureDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", errors.New("not a directory")
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return "", err
		}
		return fmt.Sprintf("key directory %s had mode %04o: set to 0700", dir, perm), nil
	}
	return "", nil
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
	// Never replace something that appeared meanwhile (another process
	// made a key, or a human put one back).
	if err := atomicfile.Create(path, data, 0o600); err != nil {
		return errors.New(errText(err))
	}
	return nil
}

// rename is os.Rename and openFile os.Open; tests replace them to
// simulate a file that can't be moved or read.
var (
	rename   = os.Rename
	openFile = os.Open
)
