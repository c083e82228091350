package dhcp4

import (
	"fmt"
	"strings"
)

// Limits from RFC 1035 section 2.3.4 (63-octet labels, 255-octet names,
// which is 253 characters in text form without the trailing dot) and the
// kernel's hostname limit (HOST_NAME_MAX, 64), which is what the engine
// will pass to sethostname(2).
const (
	maxLabel    = 63
	maxName     = 253
	maxHostname = 64
)

// checkName reports why s is not a valid DNS name in the RFC 1123 section
// 2.1 sense (letters, digits and hyphens, labels that neither start nor end
// with a hyphen; a leading digit is allowed), or nil. One trailing dot (a
// fully qualified name) is accepted.
func checkName(s string) error {
	s = strings.TrimSuffix(s, ".")
	if s == "" {
		return fmt.Errorf("empty name")
	}
	if len(s) > maxName {
		return fmt.Errorf("name is %d characters, more than %d", len(s), maxName)
	}
	for _, label := range strings.Split(s, ".") {
		if err := checkLabel(label); err != nil {
			return err
		}
	}
	return nil
}

func checkLabel(l string) error {
	switch {
	case l == "":
		return fmt.Errorf("empty label")
	case len(l) > maxLabel:
		return fmt.Errorf("label of %d characters, more than %d", len(l), maxLabel)
	case l[0] == '-' || l[len(l)-1] == '-':
		return fmt.Errorf("label %q starts or ends with a hyphen", l)
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("character %q not allowed", c)
		}
	}
	return nil
}

// checkHostname is checkName plus the kernel's hostname length limit.
func checkHostname(s string) error {
	if err := checkName(s); err != nil {
		return err
	}
	if n := len(strings.TrimSuffix(s, ".")); n > maxHostname {
		return fmt.Errorf("hostname is %d characters, more than %d", n, maxHostname)
	}
	return nil
}
