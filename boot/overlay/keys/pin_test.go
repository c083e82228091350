package keys

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPinned: the key of the first start is pinned and read first by the
// next ones, also when the key dir was replaced meanwhile (a disk mounted
// over it); an ed25519 pin keeps its origin; a pin that is not a key is
// moved aside and the key dir's key is pinned again.
func TestPinned(t *testing.T) {
	pin, dir := filepath.Join(t.TempDir(), "pin"), filepath.Join(t.TempDir(), "keys")
	first, _, err := LoadCurve25519Pinned(pin, dir, "wg.key")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil { // the key dir hidden
		t.Fatal(err)
	}
	again, ev, err := LoadCurve25519Pinned(pin, dir, "wg.key")
	if err != nil || again != first || ev.Created {
		t.Fatalf("after the key dir changed: same key %v, event %+v, %v", again == first, ev, err)
	}
	if fi, err := os.Stat(filepath.Join(pin, "wg.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pin file: %v %v", fi, err)
	}

	_, k, _ := ed25519.GenerateKey(nil)
	if err := PinEd25519(pin, "ygg.key", k, "0-os node identity /x/seed.txt (format 1.0.0)"); err != nil {
		t.Fatal(err)
	}
	got, origin, _, ok := PinnedEd25519(pin, "ygg.key")
	if !ok || !got.Equal(k) || origin != "0-os node identity /x/seed.txt (format 1.0.0)" {
		t.Fatalf("pinned ed25519: ok %v same %v origin %q", ok, got.Equal(k), origin)
	}
	if b, _ := os.ReadFile(filepath.Join(pin, "ygg.key")); strings.Contains(string(b), "seed") && !strings.Contains(string(b), "Origin:") {
		t.Errorf("origin not in a PEM header:\n%s", b)
	}

	if err := os.WriteFile(filepath.Join(pin, "wg.key"), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	third, ev, err := LoadCurve25519Pinned(pin, dir, "wg.key")
	if err != nil || ev.MovedAside == "" || !strings.Contains(ev.Problem, "pinned x25519 key") {
		t.Fatalf("corrupt pin: event %+v, %v", ev, err)
	}
	if again, _, _ := LoadCurve25519Pinned(pin, dir, "wg.key"); again != third {
		t.Errorf("the key dir's key is not pinned again")
	}
	if _, _, _, ok := PinnedEd25519("", "ygg.key"); ok {
		t.Errorf("no pin dir gives a pin")
	}
}
