package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/threefoldtech/netinit/boot/atomicfile"
	"github.com/threefoldtech/netinit/boot/lease"
)

// Write stores s at path atomically: a temporary file in the same
// directory is written, fsynced, renamed over path, and the directory is
// fsynced, so a reader (or a reboot) sees the old file or the new one,
// never a partial one. The shell-sourceable env file is written the same
// way beside it (path with .json replaced by .env).
func Write(path string, s *State) error {
	s.Schema = Schema
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("state: encode: %w", err)
	}
	b = append(b, '\n')
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := atomicfile.Write(path, b, 0o644); err != nil {
		return fmt.Errorf("state: write %s: %w", path, err)
	}
	envPath := strings.TrimSuffix(path, filepath.Ext(path)) + ".env"
	if err := atomicfile.Write(envPath, Env(s), 0o644); err != nil {
		return fmt.Errorf("state: write %s: %w", envPath, err)
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

// Env renders the shell-sourceable form of s, as klibc's
// /run/net-IFACE.conf is used by scripts. Values are single-quoted.
func Env(s *State) []byte {
	var v4, v6 []string
	for _, ifc := range s.Interfaces {
		if ifc.Name != s.Uplink {
			continue
		}
		for _, a := range ifc.Addresses {
			if a.Source == lease.SourceLinkLocal {
				continue
			}
			if strings.Contains(a.CIDR, ":") {
				v6 = append(v6, a.CIDR)
			} else {
				v4 = append(v4, a.CIDR)
			}
		}
	}
	pub := "0"
	if s.PublicIPv6 {
		pub = "1"
	}
	kv := map[string]string{
		"NETINIT_SCHEMA":      fmt.Sprint(Schema),
		"NETINIT_PHASE":       string(s.Phase),
		"NETINIT_UPLINK":      s.Uplink,
		"NETINIT_UPLINK_NIC":  s.UplinkNIC,
		"NETINIT_UPLINK_VLAN": vlanEnv(s.UplinkVLAN),
		"NETINIT_IPV4":        strings.Join(v4, " "),
		"NETINIT_IPV6":        strings.Join(v6, " "),
		"NETINIT_PUBLIC_IPV6": pub,
		"NETINIT_DNS":         strings.Join(s.DNS, " "),
		"NETINIT_SEARCH":      strings.Join(s.Search, " "),
		"NETINIT_NTP":         strings.Join(s.NTP, " "),
		"NETINIT_HOSTNAME":    s.Hostname,
	}
	for _, r := range s.Routes {
		if r.Dev != s.Uplink || (r.Dst != "0.0.0.0/0" && r.Dst != "::/0") {
			continue
		}
		if strings.Contains(r.Dst, ":") {
			kv["NETINIT_GATEWAY6"] = r.Via
		} else {
			kv["NETINIT_GATEWAY4"] = r.Via
		}
	}
	if s.Yggdrasil != nil {
		kv["NETINIT_YGGDRASIL"] = s.Yggdrasil.Address
	}
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("# netinit state, schema 1; see /run/netinit/state.json\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, shellQuote(kv[k]))
	}
	return b.Bytes()
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// vlanEnv is a VLAN ID for state.env, "" when untagged.
func vlanEnv(id int) string {
	if id == 0 {
		return ""
	}
	return fmt.Sprint(id)
}
