package keys

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/pem"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/threefoldtech/netinit/boot/atomicfile"
)

// # Pinned keys
//
// The key directory can be hidden under the node: 0-OS mounts its cache
// disk over /var/cache after the handoff, and netinit's default key
// directory (/var/cache/netinit/keys, in the RAM root at boot) is then
// another directory, empty or holding an older boot's keys. A worker
// restarted after that would make new keys: a new Yggdrasil address, a
// WireGuard key the gateway does not know. So the key a boot uses is
// pinned: copied, at first use, into a pin directory that no later mount
// hides (/run/netinit/keys at boot: /run is netinit's tmpfs, moved into
// the final root, never on a disk), and read from there first by every
// later start in the same boot. The key directory stays what makes a key
// last across boots. A pinned file has the format above plus a PEM
// header "Origin" saying where the key came from (never the key).

// originHeader is the PEM header of a pinned key that says where it came
// from.
const originHeader = "Origin"

// PinnedEd25519 reads the ed25519 key pinned in pin/name and where it came
// from. ok is false when there is none (or pin is ""). A pinned file that
// is not a key is moved aside (the Event says so) and is no pin.
func PinnedEd25519(pin, name string) (k ed25519.PrivateKey, origin string, ev Event, ok bool) {
	if pin == "" {
		return nil, "", ev, false
	}
	got, origin, ev, ok := readPinned(pin, name, ed25519Kind)
	if !ok {
		return nil, "", ev, false
	}
	return got.(ed25519.PrivateKey), origin, ev, true
}

// PinEd25519 pins k in pin/name with its origin (words, never the key),
// replacing the pin there. Nothing is done when pin is "".
func PinEd25519(pin, name string, k ed25519.PrivateKey, origin string) error {
	if pin == "" {
		return nil
	}
	return writePin(pin, name, ed25519Kind, k, origin)
}

// LoadCurve25519Pinned is LoadCurve25519 with a pin: the key pinned in
// pin/name when there is one, else the key of dir/name (made on first
// use), then pinned. A pin equal to dir is no pin.
func LoadCurve25519Pinned(pin, dir, name string) ([32]byte, Event, error) {
	var out [32]byte
	if pin == "" || filepath.Clean(pin) == filepath.Clean(dir) {
		return LoadCurve25519(dir, name)
	}
	k, _, pev, ok := readPinned(pin, name, x25519Kind)
	if ok {
		copy(out[:], k.(*ecdh.PrivateKey).Bytes())
		clamp(&out)
		return out, pev, nil
	}
	out, ev, err := LoadCurve25519(dir, name)
	if pev.Problem != "" {
		ev.Problem = addTo(pev.Problem, ev.Problem)
		ev.MovedAside = pev.MovedAside
	}
	if err != nil {
		return out, ev, err
	}
	return out, pinAfter(pin, name, x25519Kind, out, dir, ev), nil
}

// pinAfter pins the X25519 key k loaded from dir; a pin that cannot be
// written is said in the event (the key is used all the same).
func pinAfter(pin, name string, kd kind, k [32]byte, dir string, ev Event) Event {
	xk, err := ecdh.X25519().NewPrivateKey(k[:])
	if err == nil {
		err = writePin(pin, name, kd, xk, "key in "+dir)
	}
	if err != nil {
		ev.Problem = addTo(ev.Problem, fmt.Sprintf("%s key not pinned in %s (%v): a restart after a mount over %s may use another key", kd.name, pin, err, dir))
	}
	return ev
}

// readPinned reads pin/name. A file that is not a key of kind kd is moved
// aside and said in the event.
func readPinned(pin, name string, kd kind) (any, string, Event, bool) {
	var ev Event
	path := filepath.Join(pin, name)
	k, fixed, bad, fail := readRetry(path, kd)
	note(&ev, fixed)
	switch {
	case k != nil:
		return k, pinOrigin(path), ev, true
	case fail != nil:
		ev.Problem = addTo(ev.Problem, fmt.Sprintf("pinned %s key %s could not be read (%v)", kd.name, path, fail))
	case bad != nil:
		aside := path + ".corrupt"
		if err := rename(path, aside); err != nil {
			aside = "nowhere: " + err.Error()
		}
		ev.MovedAside = aside
		ev.Problem = addTo(ev.Problem, fmt.Sprintf("pinned %s key %s is unusable (%v): moved to %s", kd.name, path, bad, aside))
	}
	return nil, "", ev, false
}

// pinOrigin is the Origin header of the pinned key at path ("" if none).
func pinOrigin(path string) string {
	b, err := readBounded(path)
	if err != nil {
		return ""
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return ""
	}
	return block.Headers[originHeader]
}

// writePin replaces pin/name with k (mode 0600 in a 0700 directory).
func writePin(pin, name string, kd kind, k any, origin string) error {
	if name == "" || name != filepath.Base(name) || name == "." || name == ".." {
		return fmt.Errorf("keys: bad key file name %q", name)
	}
	if _, err := ensureDir(pin); err != nil {
		return fmt.Errorf("pin directory %s: %w", pin, err)
	}
	der, err := kd.encode(k)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	b := &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	if origin = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, origin); origin != "" {
		b.Headers = map[string]string{originHeader: origin}
	}
	data := []byte("# netinit " + kd.name + " private key, pinned for this boot (do not share)\n")
	data = append(data, pem.EncodeToMemory(b)...)
	if err := atomicfile.Write(filepath.Join(pin, name), data, 0o600); err != nil {
		return fmt.Errorf("pin %s: %s", name, errText(err))
	}
	return nil
}
