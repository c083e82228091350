package clock

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/threefoldtech/netinit/boot/atomicfile"
)

// buildTime is when the image's source was committed, in Unix seconds:
// the Makefile stamps it (-ldflags -X, `git log -1 --format=%ct`). The
// build's own clock cannot be used: images are built with
// SOURCE_DATE_EPOCH=0 to be byte-identical, and the commit's time is as
// reproducible. Empty in a build without it (go test, go build): no build
// floor then.
var buildTime string

// BuildTime is when the image's source was committed (zero when the
// build did not say).
func BuildTime() time.Time {
	sec, err := strconv.ParseInt(buildTime, 10, 64)
	if err != nil || sec <= 0 {
		return time.Time{}
	}
	return time.Unix(sec, 0).UTC()
}

// DefaultFloorFile is where the boot daemon saves the time it last
// confirmed. 0-OS mounts its cache disk over /var/cache after the handoff:
// from then on the file is on the node's disk, and the next boot's daemon
// reads it again once 0-OS has mounted the disk (before that, /var/cache
// is the initramfs's and holds none).
const DefaultFloorFile = "/var/cache/netinit/clock"

// Floor returns the floor of a Syncer: the image's build time or the time
// saved in path (SaveFloor), whichever is later, read at each call (the
// cache disk may be mounted later). path "" is the build time alone.
func Floor(path string) func() time.Time {
	return func() time.Time {
		f := BuildTime()
		if path == "" {
			return f
		}
		if t, err := readFloor(path); err == nil && t.After(f) {
			f = t
		}
		return f
	}
}

// SaveFloor saves t in path (RFC 3339, one line), for Floor.
func SaveFloor(path string, t time.Time) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("saving the clock floor: %w", err)
	}
	if err := atomicfile.Write(path, []byte(t.UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return fmt.Errorf("saving the clock floor: %w", err)
	}
	return nil
}

// readFloor reads what SaveFloor wrote. What does not parse is no floor.
func readFloor(path string) (time.Time, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339, strings.TrimSpace(string(b)))
}
