// Package identity reads the 0-OS node identity: the ed25519 seed that
// 0-OS's identityd keeps in a seed file and registers on chain. 0-OS uses
// that key, as is, as the node's Yggdrasil key (zosbase
// pkg/network/yggdrasil/config.go: GenerateConfig), so a node's 200::/7
// address is known from its on-chain public key. netinit reads the same
// file to give the node that same address from the first boot on.
//
// The file formats are the ones identityd writes (zosbase
// pkg/identity/store/file.go and pkg/versioned):
//
//   - version "1.0.0": the JSON string "1.0.0" immediately followed by the
//     32-byte ed25519 seed (RFC 8032 section 5.1.5), binary;
//   - version "1.1.0": the JSON string "1.1.0" followed by a JSON object
//     {"mnemonic": "..."} whose BIP-39 entropy is the 32-byte seed;
//   - unversioned: the 32-byte seed alone (the oldest nodes).
//
// Like identityd, netinit takes the bytes exactly: a seed of another size
// (a trailing newline included) is refused, never trimmed or padded —
// guessing could produce a different key, and with it a different address.
//
// The seed is a secret: nothing in this package logs it, and errors never
// quote the file's content. netinit never writes the file.
package identity

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Paths where 0-OS keeps the seed: identityd's primary file, on the cache
// disk mounted after the handoff, and its mirrors on every mounted disk
// (zosbase store.FileStore.mirrorPaths: /mnt/<disk>/seed.txt).
const (
	ZOSPath       = "/var/cache/modules/identityd/seed.txt"
	ZOSMirrorGlob = "/mnt/*/seed.txt"
)

// Format is the kind of seed file that was read.
type Format string

const (
	FormatV1          Format = "1.0.0"       // versioned, binary seed
	FormatV11         Format = "1.1.0"       // versioned, BIP-39 mnemonic
	FormatUnversioned Format = "unversioned" // raw 32-byte seed
)

// ErrInvalid is wrapped by every error about a file's content (as opposed
// to errors reading it).
var ErrInvalid = errors.New("invalid identity seed file")

// maxSize bounds what is read: a 1.1.0 file with a 24-word mnemonic is
// about 200 bytes.
const maxSize = 4096

// Identity is a node identity read from a seed file.
type Identity struct {
	Key    ed25519.PrivateKey
	Format Format
	Path   string
	// Warning is set when the file was usable but something about it
	// should be fixed (its permissions).
	Warning string
}

// Public is the identity's public key (the node's on-chain key).
func (id *Identity) Public() ed25519.PublicKey { return id.Key.Public().(ed25519.PublicKey) }

// Read reads and parses the seed file at path. Errors name the path and
// what is wrong, never the content.
func Read(path string) (*Identity, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("identity %s: %w: not a regular file", path, ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	if len(b) > maxSize {
		return nil, fmt.Errorf("identity %s: %w: larger than %d bytes", path, ErrInvalid, maxSize)
	}
	key, format, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	id := &Identity{Key: key, Format: format, Path: path}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		id.Warning = fmt.Sprintf("identity %s: mode %#o lets others read the node's secret seed (0-OS writes 0400)", path, perm)
	}
	return id, nil
}

// Parse decodes the content of a seed file.
func Parse(b []byte) (ed25519.PrivateKey, Format, error) {
	version, rest, versioned := splitVersion(b)
	switch {
	case !versioned:
		k, err := fromSeed(b)
		return k, FormatUnversioned, err
	case version == string(FormatV1):
		k, err := fromSeed(rest)
		return k, FormatV1, err
	case version == string(FormatV11):
		var v struct {
			Mnemonic string `json:"mnemonic"`
		}
		if err := json.Unmarshal(rest, &v); err != nil {
			return nil, FormatV11, fmt.Errorf("%w: version 1.1.0 but not a JSON object with a mnemonic", ErrInvalid)
		}
		// Checks the words, the count and the BIP-39 checksum.
		seed, err := entropyFromMnemonic(v.Mnemonic)
		if err != nil {
			return nil, FormatV11, fmt.Errorf("%w: mnemonic: %v", ErrInvalid, err)
		}
		k, err := fromSeed(seed)
		return k, FormatV11, err
	default:
		return nil, Format(version), fmt.Errorf("%w: unknown version %q (know 1.0.0, 1.1.0)", ErrInvalid, printable(version))
	}
}

// splitVersion takes the leading JSON string of a versioned file (zosbase
// versioned.NewReader: a JSON string that parses as a version, the data
// right after it). A file that does not start with a JSON string is
// unversioned, as there.
func splitVersion(b []byte) (version string, rest []byte, ok bool) {
	if len(b) == 0 || b[0] != '"' {
		return "", nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var s string
	if err := dec.Decode(&s); err != nil {
		return "", nil, false
	}
	if !looksLikeVersion(s) {
		return "", nil, false
	}
	return s, b[dec.InputOffset():], true
}

// looksLikeVersion is the shape of a semantic version, MAJOR.MINOR.PATCH
// (zosbase versioned.Parse is blang/semver).
func looksLikeVersion(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || len(p) > 9 || strings.Trim(p, "0123456789") != "" {
			return false
		}
	}
	return true
}

func fromSeed(seed []byte) (ed25519.PrivateKey, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed is %d bytes, want %d", ErrInvalid, len(seed), ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// printable keeps a version string from the file safe to log.
func printable(s string) string {
	if len(s) > 32 {
		s = s[:32] + "..."
	}
	return s
}

// Find returns the first 0-OS seed file that exists: ZOSPath, then the
// mirrors in lexical order. "" when there is none.
func Find() string {
	if _, err := os.Stat(ZOSPath); err == nil {
		return ZOSPath
	}
	mirrors, _ := filepath.Glob(ZOSMirrorGlob)
	for _, m := range mirrors {
		if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
			return m
		}
	}
	return ""
}
