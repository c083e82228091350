package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func mode(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCreateAndReuse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k1, ev, err := LoadEd25519(dir, "ygg.key")
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Created || ev.Problem != "" || ev.MovedAside != "" || ev.Ephemeral {
		t.Fatalf("first load: event %+v", ev)
	}
	if len(k1) != ed25519.PrivateKeySize {
		t.Fatalf("key size %d", len(k1))
	}
	if m := mode(t, dir); m != 0o700 {
		t.Errorf("dir mode %o, want 700", m)
	}
	if m := mode(t, filepath.Join(dir, "ygg.key")); m != 0o600 {
		t.Errorf("file mode %o, want 600", m)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "ygg.key"))
	if !strings.HasPrefix(string(b), "# netinit ed25519 private key") || !strings.Contains(string(b), "-----BEGIN PRIVATE KEY-----") {
		t.Errorf("file format:\n%s", b)
	}
	k2, ev, err := LoadEd25519(dir, "ygg.key")
	if err != nil {
		t.Fatal(err)
	}
	if ev != (Event{}) {
		t.Errorf("second load: event %+v", ev)
	}
	if !k1.Equal(k2) {
		t.Error("second load returned a different key")
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("dir holds %d entries, want 1", len(ents))
	}
}

func TestCurve25519(t *testing.T) {
	dir := t.TempDir()
	k1, ev, err := LoadCurve25519(dir, "wg.key")
	if err != nil || !ev.Created {
		t.Fatalf("%v %+v", err, ev)
	}
	// RFC 7748 section 5 clamping.
	if k1[0]&7 != 0 || k1[31]&128 != 0 || k1[31]&64 == 0 {
		t.Errorf("key not clamped: %x %x", k1[0], k1[31])
	}
	k2, ev, err := LoadCurve25519(dir, "wg.key")
	if err != nil || ev.Created {
		t.Fatalf("%v %+v", err, ev)
	}
	if k1 != k2 {
		t.Error("reload returned a different key")
	}
	// An ed25519 key file is the wrong type for WireGuard.
	if _, _, err := LoadEd25519(dir, "ygg.key"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "ygg.key"), filepath.Join(dir, "wg2.key")); err != nil {
		t.Fatal(err)
	}
	_, ev, err = LoadCurve25519(dir, "wg2.key")
	if err != nil || !ev.Created || ev.MovedAside == "" {
		t.Fatalf("wrong key type: %v %+v", err, ev)
	}
}

// secretTexts are the encodings of a key that must never be in a message.
func secretTexts(raw []byte) []string {
	return []string{hex.EncodeToString(raw), base64.StdEncoding.EncodeToString(raw)[:20], string(raw)}
}

func TestCorrupt(t *testing.T) {
	cases := []struct {
		name  string
		setup func(t *testing.T, p string) // makes something unusable at p
	}{
		{"garbage", func(t *testing.T, p string) { os.WriteFile(p, []byte("hello\n"), 0o600) }},
		{"empty", func(t *testing.T, p string) { os.WriteFile(p, nil, 0o600) }},
		{"truncated", func(t *testing.T, p string) {
			os.WriteFile(p, []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n"), 0o600)
		}},
		{"too-large", func(t *testing.T, p string) { os.WriteFile(p, bytes.Repeat([]byte("A"), 10000), 0o600) }},
		{"directory", func(t *testing.T, p string) {
			os.Mkdir(p, 0o700)
			os.WriteFile(filepath.Join(p, "inside"), []byte("keep me"), 0o600)
		}},
		{"dangling-symlink", func(t *testing.T, p string) { os.Symlink("/nonexistent/netinit-key", p) }},
		{"symlink-loop", func(t *testing.T, p string) { os.Symlink(filepath.Base(p), p) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "ygg.key")
			c.setup(t, p)
			before, _ := os.Lstat(p)
			k, ev, err := LoadEd25519(dir, "ygg.key")
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Created || ev.MovedAside == "" || ev.Problem == "" || ev.Ephemeral {
				t.Fatalf("event %+v", ev)
			}
			if !strings.HasPrefix(ev.MovedAside, p+".corrupt-") {
				t.Errorf("moved to %s", ev.MovedAside)
			}
			after, err := os.Lstat(ev.MovedAside)
			if err != nil {
				t.Fatalf("the corrupt file was not kept: %v", err)
			}
			if before.Mode() != after.Mode() || before.Size() != after.Size() {
				t.Errorf("moved file differs: %v/%d vs %v/%d", before.Mode(), before.Size(), after.Mode(), after.Size())
			}
			if c.name == "directory" {
				if b, _ := os.ReadFile(filepath.Join(ev.MovedAside, "inside")); string(b) != "keep me" {
					t.Error("directory contents lost")
				}
			}
			// The new key is saved and reused.
			k2, ev2, err := LoadEd25519(dir, "ygg.key")
			if err != nil || ev2 != (Event{}) || !k.Equal(k2) {
				t.Fatalf("reload after repair: %v %+v equal=%v", err, ev2, k.Equal(k2))
			}
			for _, s := range secretTexts(k) {
				if strings.Contains(ev.Problem, s) {
					t.Error("problem text holds key material")
				}
			}
		})
	}
}

func TestCorruptCannotMove(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "ygg.key")
	os.WriteFile(p, []byte("not a key"), 0o600)
	old := rename
	rename = func(string, string) error { return errors.New("read-only file system") }
	t.Cleanup(func() { rename = old })

	k, ev, err := LoadEd25519(dir, "ygg.key")
	if err != nil {
		t.Fatal(err)
	}
	if !ev.Created || ev.MovedAside != "" || !strings.Contains(ev.Problem, "left in place") || ev.Ephemeral {
		t.Fatalf("event %+v", ev)
	}
	if b, _ := os.ReadFile(p); string(b) != "not a key" {
		t.Fatalf("corrupt file was changed: %q", b)
	}
	if _, err := os.Stat(p + ".alt"); err != nil {
		t.Fatalf("no alternative key file: %v", err)
	}
	// Next boot: same situation, the alternative key is reused.
	k2, ev2, err := LoadEd25519(dir, "ygg.key")
	if err != nil || ev2.Created || !strings.Contains(ev2.Problem, ".alt") || !k.Equal(k2) {
		t.Fatalf("second load: %v %+v equal=%v", err, ev2, k.Equal(k2))
	}
}

func TestUnwritableDir(t *testing.T) {
	base := t.TempDir()
	// A file where the key directory should be: nothing can be saved.
	os.WriteFile(filepath.Join(base, "keys"), []byte("x"), 0o600)
	k, ev, err := LoadEd25519(filepath.Join(base, "keys"), "ygg.key")
	if err != nil || len(k) != ed25519.PrivateKeySize {
		t.Fatal(err)
	}
	if !ev.Ephemeral || !ev.Created || ev.Problem == "" {
		t.Fatalf("event %+v", ev)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "keys")); string(b) != "x" {
		t.Error("the file in the way was changed")
	}
}

func TestBadName(t *testing.T) {
	for _, n := range []string{"", ".", "..", "a/b", "../x"} {
		if _, _, err := LoadEd25519(t.TempDir(), n); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
}

func TestSeed(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	os.WriteFile(seed, bytes.Repeat([]byte{7}, 64), 0o600)
	a, err := Ed25519FromSeed(seed, "yggdrasil")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Ed25519FromSeed(seed, "yggdrasil")
	c, _ := Ed25519FromSeed(seed, "other")
	if !a.Equal(b) {
		t.Error("not deterministic")
	}
	if a.Equal(c) {
		t.Error("labels don't separate keys")
	}
	os.WriteFile(seed, []byte("short"), 0o600)
	if _, err := Ed25519FromSeed(seed, "yggdrasil"); err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("short seed: %v", err)
	}
}

// TestReadErrorIsNotCorruption: a key file that cannot be read (EIO,
// EACCES) is left exactly as it is, not moved aside nor replaced; a key
// for this boot only is used, said loudly; once it reads again the same
// identity is back.
func TestReadErrorIsNotCorruption(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.EIO, syscall.EACCES} {
		t.Run(errno.Error(), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "keys")
			k1, _, err := LoadEd25519(dir, "ygg.key")
			if err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, "ygg.key")
			before, _ := os.ReadFile(p)
			var opens int
			openFile = func(name string) (*os.File, error) {
				opens++
				return nil, &os.PathError{Op: "open", Path: name, Err: errno}
			}
			k2, ev, err := LoadEd25519(dir, "ygg.key")
			openFile = os.Open
			if err != nil {
				t.Fatal(err)
			}
			if !ev.Ephemeral || ev.MovedAside != "" || !strings.Contains(ev.Problem, "could not be read") ||
				!strings.Contains(ev.Problem, errno.Error()) || !strings.Contains(ev.Problem, "NOT replaced") {
				t.Fatalf("event %+v", ev)
			}
			if opens != 3 {
				t.Errorf("%d reads tried, want 3", opens)
			}
			if k2.Equal(k1) {
				t.Error("the ephemeral key is the stored one")
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Fatal("the key file was changed")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Fatalf("dir holds %d entries, want the key alone", len(ents))
			}
			k3, ev, err := LoadEd25519(dir, "ygg.key")
			if err != nil || ev != (Event{}) || !k3.Equal(k1) {
				t.Fatalf("once readable: %v %+v same=%v", err, ev, k3.Equal(k1))
			}
		})
	}
}

// TestPermissionFixReported: a key file or key dir open to others is
// fixed and the fix is reported; the key is kept.
func TestPermissionFixReported(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	k1, _, err := LoadEd25519(dir, "ygg.key")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "ygg.key")
	os.Chmod(p, 0o644)
	os.Chmod(dir, 0o755)
	k2, ev, err := LoadEd25519(dir, "ygg.key")
	if err != nil || !k2.Equal(k1) || ev.Created || ev.Ephemeral {
		t.Fatalf("load: %v %+v", err, ev)
	}
	for _, want := range []string{"key directory " + dir + " had mode 0755: set to 0700", p + " had mode 0644 (others may have read it): set to 0600"} {
		if !strings.Contains(ev.Problem, want) {
			t.Errorf("problem %q lacks %q", ev.Problem, want)
		}
	}
	if mode(t, p) != 0o600 || mode(t, dir) != 0o700 {
		t.Errorf("modes %o %o", mode(t, p), mode(t, dir))
	}
}

// TestSeedFile: the seed is the file's bytes exactly (a trailing newline
// is part of it); a seed open to group or others is refused.
func TestSeedFile(t *testing.T) {
	dir := t.TempDir()
	seed := filepath.Join(dir, "seed")
	os.WriteFile(seed, bytes.Repeat([]byte{'s'}, 40), 0o600)
	a, err := Ed25519FromSeed(seed, "yggdrasil")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(seed, append(bytes.Repeat([]byte{'s'}, 40), '\n'), 0o600)
	b, err := Ed25519FromSeed(seed, "yggdrasil")
	if err != nil || a.Equal(b) {
		t.Fatalf("a trailing newline did not change the identity (%v)", err)
	}
	for _, m := range []os.FileMode{0o644, 0o604, 0o620} {
		os.Chmod(seed, m)
		if _, err := Ed25519FromSeed(seed, "yggdrasil"); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %o: %v", m, err)
		}
	}
	if _, err := Ed25519FromSeed(dir, "yggdrasil"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory as seed: %v", err)
	}
}
