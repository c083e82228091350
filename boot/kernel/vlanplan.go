package kernel

// The management bridge's VLANs, exactly as 0-OS builds them (zosbase
// v1.0.10 = 063d895, zos c556dc0; the table test cites each line):
//
//   - zosbase pkg/network/bridge/bridge.go New: every bridge is made
//     VLAN-filtering, whatever the keys. The kernel then has the bridge
//     itself and each new port in its default_pvid, VLAN 1, as PVID and
//     untagged (net/bridge/br_vlan.c, default_pvid).
//   - zosbase pkg/network/bootstrap/bridge.go CreateDefaultBridge (called
//     by zos cmds/internet/main.go configureZOS with vlan:priv=): the
//     bridge itself leaves VLAN 1 and is PVID and untagged in the
//     management VLAN (`bridge vlan add vid N dev zos pvid untagged self`).
//   - zos cmds/internet/main.go configureZOS: the port leaves VLAN 1 only
//     when both vlan:priv= and vlan:pub= are given, then carries the
//     management VLAN and the public VLAN tagged.
//
// With vlan:pub= networkd wires br-pub to zos through the veth `tozos`,
// the port of zos that is PVID and untagged in the public VLAN (zosbase
// pkg/network/public/public.go attachPublicToExit → bridge.Attach →
// attachNic): the public traffic reaches the wire tagged only because zos
// filters and its NIC port carries the public VLAN tagged — so a bridge
// that did not filter with vlan:pub= alone would put 0-OS's public network
// untagged on the management LAN.

// VLANStep is one change of the management bridge's VLAN table, as
// `bridge vlan add|del vid VID dev DEV [pvid] [untagged] [self]` makes it.
type VLANStep struct {
	Self     bool // the bridge itself, else its port (the NIC)
	Del      bool // remove the VLAN, else add it
	VID      int
	PVID     bool // the VLAN untagged frames arriving on the device get
	Untagged bool // frames of the VLAN leave the device untagged
}

// VLANPlan is the changes zosbase makes to the management bridge's
// default VLAN table for vlan:priv=priv and vlan:pub=pub (0: not given),
// in its order. Applied to a bridge made with VLAN filtering, it leaves
// the table 0-OS's own `internet` module leaves.
func VLANPlan(priv, pub int) []VLANStep {
	var steps []VLANStep
	if priv > 0 {
		steps = append(steps,
			VLANStep{Self: true, Del: true, VID: 1, PVID: true, Untagged: true},
			VLANStep{Self: true, VID: priv, PVID: true, Untagged: true})
	}
	if priv > 0 && pub > 0 {
		steps = append(steps, VLANStep{Del: true, VID: 1, PVID: true, Untagged: true})
	}
	for _, v := range []int{priv, pub} {
		if v > 0 {
			steps = append(steps, VLANStep{VID: v})
		}
	}
	return steps
}
