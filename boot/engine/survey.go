package engine

import (
	"slices"

	"github.com/threefoldtech/netinit/boot/kernel"
	"github.com/threefoldtech/netinit/boot/spec"
)

// Skipped is a link that discovery leaves alone when no links are named.
type Skipped struct {
	Link string
	// Why: "veth", "bridge", "netinit.ignore=eth*", "not Ethernet (none)".
	Why string
}

// Survey lists the links present now, as discovery would see them when
// Config.Links is empty: the names it would manage, and the others
// (loopback aside) with why. vlan= links and bond= bonds count as
// managed once the spec asks for them, whether or not they exist yet.
func Survey(spec *spec.Spec) (manage []string, skipped []Skipped, err error) {
	links, err := kernel.Netlink{}.Links()
	if err != nil {
		return nil, nil, err
	}
	var vlans []string
	for _, v := range spec.VLANs {
		vlans = append(vlans, v.Name)
		manage = append(manage, v.Name)
	}
	// bond= bonds too (made before discovery, bond.go); their ports
	// are the bond's.
	ports := map[string]string{}
	for _, b := range spec.Bonds {
		vlans = append(vlans, b.Name)
		manage = append(manage, b.Name)
		ps, _ := bondPorts(b, links)
		for _, p := range ps {
			ports[p] = b.Name
		}
	}
	for _, l := range links {
		name := l.Name
		if b := ports[name]; b != "" {
			skipped = append(skipped, Skipped{Link: name, Why: "a port of " + b})
			continue
		}
		switch why := l.SkipReason(spec.Ignore, vlans); why {
		case "":
			if !slices.Contains(manage, name) {
				manage = append(manage, name)
			}
		case "loopback":
		default:
			skipped = append(skipped, Skipped{Link: name, Why: why})
		}
	}
	return manage, skipped, nil
}
