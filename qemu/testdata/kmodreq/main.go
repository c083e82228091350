// Command kmodreq is the next stage of the QEMU test of netinit's modprobe
// helper. netinit execs it as PID 1; it creates a VLAN link on the uplink,
// for which the kernel calls request_module("rtnl-link-vlan") (8021q is in
// the image but not loaded), and prints what it saw ("KMODREQ key=value"
// lines, then the state file between the result markers) before powering
// the VM off.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/state"
)

func main() {
	defer poweroff()
	say := func(k string, v any) { fmt.Printf("KMODREQ %s=%v\n", k, v) }
	helper, err := os.ReadFile("/proc/sys/kernel/modprobe")
	say("helper", strings.TrimSpace(string(helper)))
	st, err := state.Read(state.DefaultPath)
	if err != nil {
		say("state-error", err)
		return
	}
	_, err = os.Stat("/sys/module/8021q")
	say("8021q-before", err == nil)
	parent, err := netlink.LinkByName(st.Uplink)
	if err != nil {
		say("uplink-error", err)
		return
	}
	vlan := &netlink.Vlan{LinkAttrs: netlink.LinkAttrs{Name: "probe.42", ParentIndex: parent.Attrs().Index}, VlanId: 42}
	say("vlan-add-error", netlink.LinkAdd(vlan))
	_, err = os.Stat("/sys/module/8021q")
	say("8021q-after", err == nil)
	b, _ := json.Marshal(st)
	fmt.Printf("NETINIT-RESULT-BEGIN\n%s\nNETINIT-RESULT-END\n", b)
}

func poweroff() {
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}
