package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"github.com/threefoldtech/netinit/boot/atomicfile"
)

// Write stores s at path atomically (atomicfile.Write): a reader, or a
// reboot, sees the old document or the new one, never a partial one.
func Write(path string, s *State) error {
	s.Schema = Schema
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("state: encode: %w", err)
	}
	b = append(b, '\n')
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("state: write %s: %w", path, err)
	}
	return nil
}

// Read parses a state file and checks its schema version.
func Read(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	return Decode(b)
}

// Decode parses a state document. A document of another schema version
// is an error. Fields this netinit does not know are skipped: within a
// schema fields are only ever added (docs/state.md), so an older `netinit
// status` must read a newer daemon's file.
func Decode(b []byte) (*State, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var s State
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("state: decode: %w", err)
	}
	if s.Schema != Schema {
		return nil, fmt.Errorf("state: schema %d, this netinit reads schema %d", s.Schema, Schema)
	}
	return &s, nil
}
