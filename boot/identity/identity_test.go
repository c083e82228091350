package identity

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tyler-smith/go-bip39"
	"github.com/yggdrasil-network/yggdrasil-go/src/address"
)

// seed is a fixed 32-byte seed for the tests.
var seed = bytes.Repeat([]byte{0x5a, 0x01, 0xfe, 0x22}, 8)

// zosFile builds a seed file the way zosbase versioned.WriteFile does: the
// version as a JSON string, then the data.
func zosFile(version string, data []byte) []byte {
	return append([]byte(`"`+version+`"`), data...)
}

func mnemonicFile(t *testing.T, s []byte) []byte {
	t.Helper()
	m, err := bip39.NewMnemonic(s)
	if err != nil {
		t.Fatal(err)
	}
	return zosFile("1.1.0", []byte(`{"mnemonic":"`+m+`","threebot_id":7}`))
}

func TestParseFormats(t *testing.T) {
	want := ed25519.NewKeyFromSeed(seed)
	for _, tc := range []struct {
		name   string
		file   []byte
		format Format
	}{
		{"1.0.0", zosFile("1.0.0", seed), FormatV1},
		{"1.1.0", mnemonicFile(t, seed), FormatV11},
		{"unversioned", seed, FormatUnversioned},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, f, err := Parse(tc.file)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if f != tc.format {
				t.Errorf("format %q, want %q", f, tc.format)
			}
			if !k.Equal(want) {
				t.Errorf("key differs from ed25519.NewKeyFromSeed(seed)")
			}
		})
	}
}

// The Yggdrasil address 0-OS gives the node is AddrForKey of the identity's
// public key (GenerateConfig uses the identity key as is).
func TestAddressIsZOSAddress(t *testing.T) {
	k, _, err := Parse(mnemonicFile(t, seed))
	if err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	if got, want := address.AddrForKey(k.Public().(ed25519.PublicKey)), address.AddrForKey(pub); *got != *want {
		t.Fatalf("address %v, want %v", got, want)
	}
}

func TestParseRefuses(t *testing.T) {
	badChecksum := func() []byte {
		m, _ := bip39.NewMnemonic(seed)
		w := strings.Fields(m)
		w[len(w)-1], w[0] = w[0], w[len(w)-1] // words valid, checksum wrong
		return zosFile("1.1.0", []byte(`{"mnemonic":"`+strings.Join(w, " ")+`"}`))
	}()
	short, _ := bip39.NewMnemonic(seed[:16]) // 12 words: 16-byte entropy
	for _, tc := range []struct {
		name, why string
		file      []byte
	}{
		{"empty", "seed is 0 bytes", nil},
		{"trailing newline", "seed is 33 bytes", append(append([]byte{}, seed...), '\n')},
		{"1.0.0 short", "seed is 31 bytes", zosFile("1.0.0", seed[:31])},
		{"1.0.0 newline", "seed is 33 bytes", zosFile("1.0.0", append(append([]byte{}, seed...), '\n'))},
		{"unknown version", `unknown version "2.0.0"`, zosFile("2.0.0", seed)},
		{"1.1.0 not json", "not a JSON object", zosFile("1.1.0", seed)},
		{"1.1.0 checksum", "mnemonic", badChecksum},
		{"1.1.0 12 words", "seed is 16 bytes", zosFile("1.1.0", []byte(`{"mnemonic":"`+short+`"}`))},
		{"1.1.0 empty", "mnemonic", zosFile("1.1.0", []byte(`{}`))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Parse(tc.file)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err %v, want ErrInvalid saying %q", err, tc.why)
			}
		})
	}
}

func TestReadNeverQuotesTheSeed(t *testing.T) {
	dir := t.TempDir()
	secret := "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon wrongword"
	p := filepath.Join(dir, "seed.txt")
	if err := os.WriteFile(p, zosFile("1.1.0", []byte(`{"mnemonic":"`+secret+`"}`)), 0o400); err != nil {
		t.Fatal(err)
	}
	_, err := Read(p)
	if err == nil {
		t.Fatal("bad mnemonic accepted")
	}
	for _, w := range []string{"abandon", "wrongword"} {
		if strings.Contains(err.Error(), w) {
			t.Fatalf("error quotes the mnemonic: %v", err)
		}
	}
	if !strings.Contains(err.Error(), p) {
		t.Fatalf("error does not name the file: %v", err)
	}
}

func TestReadPermissions(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "seed.txt")
	if err := os.WriteFile(p, zosFile("1.0.0", seed), 0o400); err != nil {
		t.Fatal(err)
	}
	id, err := Read(p)
	if err != nil || id.Warning != "" || id.Format != FormatV1 || id.Path != p {
		t.Fatalf("0400 file: %+v, %v", id, err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	id, err = Read(p)
	if err != nil || !strings.Contains(id.Warning, "0644") {
		t.Fatalf("0644 file: want a warning naming the mode, got %+v, %v", id, err)
	}
	if _, err := Read(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if err := os.WriteFile(p, bytes.Repeat([]byte{'"'}, maxSize+10), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("huge file: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(zosFile("1.0.0", seed))
	f.Add(seed)
	f.Add(zosFile("1.1.0", []byte(`{"mnemonic":"x"}`)))
	f.Add([]byte(`"1.1.0"{"mnemonic":"legal winner thank year wave sausage worth useful legal winner thank yellow"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, format, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error not ErrInvalid: %v", err)
			}
			return
		}
		if len(k) != ed25519.PrivateKeySize {
			t.Fatalf("key of %d bytes", len(k))
		}
		if format == FormatUnversioned && len(b) != ed25519.SeedSize {
			t.Fatalf("unversioned file of %d bytes accepted", len(b))
		}
	})
}
