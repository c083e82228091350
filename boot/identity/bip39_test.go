package identity

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/tyler-smith/go-bip39"
	"github.com/tyler-smith/go-bip39/wordlists"
)

// The embedded list is BIP-39's English list, word for word.
func TestBIP39List(t *testing.T) {
	if got := fmt.Sprintf("%x", sha256.Sum256([]byte(bip39English))); got != "2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda" {
		t.Errorf("bip39_english.txt SHA-256 %s, not BIP-39's english.txt", got)
	}
	if got := strings.Fields(bip39English); strings.Join(got, " ") != strings.Join(wordlists.English, " ") {
		t.Errorf("the list has %d words, differing from go-bip39's %d", len(got), len(wordlists.English))
	}
}

// BIP-39's own test vectors (bip-0039 "Test vectors", the English ones
// from trezor/python-mnemonic vectors.json).
func TestBIP39Vectors(t *testing.T) {
	for _, v := range []struct{ entropy, mnemonic string }{
		{"00000000000000000000000000000000", "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"},
		{"7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f", "legal winner thank year wave sausage worth useful legal winner thank yellow"},
		{"ffffffffffffffffffffffffffffffffffffffffffffffff", "zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo when"},
		{"8080808080808080808080808080808080808080808080808080808080808080", "letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic avoid letter advice cage absurd amount doctor acoustic bless"},
		{"9e885d952ad362caeb4efe34a8e91bd2", "ozone drill grab fiber curtain grace pudding thank cruise elder eight picnic"},
		{"f585c11aec520db57dd353c69554b21a89b20fb0650966fa0a9d6f74fd989d8f", "void come effort suffer camp survey warrior heavy shoot primary clutch crush open amazing screen patrol group space point ten exist slush involve unfold"},
	} {
		got, err := entropyFromMnemonic(v.mnemonic)
		if err != nil || hex.EncodeToString(got) != v.entropy {
			t.Errorf("%q: %x, %v; want %s", v.mnemonic, got, err, v.entropy)
		}
	}
}

// Every length, and every kind of damage, decodes as go-bip39 decodes it.
func TestBIP39AgreesWithGoBIP39(t *testing.T) {
	for size := 16; size <= 32; size += 4 {
		for i := 0; i < 50; i++ {
			ent := make([]byte, size)
			rand.Read(ent)
			m, err := bip39.NewMnemonic(ent)
			if err != nil {
				t.Fatal(err)
			}
			w := strings.Fields(m)
			variants := []string{
				m,
				"  " + strings.Join(w, " \t\n ") + "\n", // any white space
				strings.Join(append(w[1:], w[0]), " "),  // rotated: checksum
				strings.Join(w[:len(w)-1], " "),         // a word short
				strings.Join(append(w[:len(w)-1], "zoo"), " "),     // last word changed
				strings.Join(append(w[:1], w...), " "),             // a word more
				strings.Replace(m, w[0], strings.ToUpper(w[0]), 1), // case matters
				strings.Replace(m, w[0], "notaword", 1),
			}
			for _, v := range variants {
				compareBIP39(t, v)
			}
		}
	}
}

func compareBIP39(t *testing.T, m string) {
	t.Helper()
	want, wantErr := bip39.EntropyFromMnemonic(m)
	got, err := entropyFromMnemonic(m)
	if (err == nil) != (wantErr == nil) || !bytes.Equal(got, want) {
		t.Fatalf("%q: got %x, %v; go-bip39 %x, %v", m, got, err, want, wantErr)
	}
}

func FuzzMnemonic(f *testing.F) {
	f.Add("legal winner thank year wave sausage worth useful legal winner thank yellow")
	f.Add("zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo zoo when")
	f.Add("abandon abandon abandon")
	f.Fuzz(func(t *testing.T, m string) {
		compareBIP39(t, m)
	})
}
