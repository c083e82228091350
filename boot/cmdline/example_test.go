package cmdline_test

import (
	"fmt"
	"strings"

	"github.com/threefoldtech/netinit/boot/cmdline"
)

func Example() {
	conf := strings.NewReader("# /etc/netinit/netinit.conf\ntimeout=90s\nignore=veth*\nmtu=10\n")
	s, problems := cmdline.ParseConfig(conf, "netinit.conf")
	s, p := cmdline.Merge(s, `BOOT_IMAGE=/vmlinuz quiet ip=eth0:dhcp netinit.ignore=docker* netinit.timeout="abc"`)
	problems = append(problems, p...)

	fmt.Println(s.Timeout, s.RATimeout, s.Ignore, s.IP[0].Device, s.IP[0].Method)
	fmt.Println(s.Given)
	for _, p := range problems {
		fmt.Println(p)
	}
	// Output:
	// 1m30s 0s [docker*] eth0 dhcp
	// [ip netinit.ignore netinit.timeout]
	// netinit.conf:4: mtu="10": not an MTU (want 68..65535)
	// cmdline: netinit.timeout="abc": not a duration (want e.g. 60s)
}
