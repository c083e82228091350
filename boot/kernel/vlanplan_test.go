package kernel

import (
	"slices"
	"testing"
)

// TestVLANPlan: the management bridge's VLAN changes for every
// combination of vlan:priv= and vlan:pub=, against zosbase v1.0.10
// (063d895) and zos c556dc0, call by call:
//
//	B1 zosbase pkg/network/bootstrap/bridge.go:74  BridgeVlanDel(br, 1, true, true, true, false)   with vlan:priv= (CreateDefaultBridge, called at zos cmds/internet/main.go:163 with env.PrivVlan)
//	B2 zosbase pkg/network/bootstrap/bridge.go:78  BridgeVlanAdd(br, priv, true, true, true, false)
//	P1 zos cmds/internet/main.go:200               BridgeVlanDel(link, 1, true, true, false, false)  only when both are set (:196)
//	P2 zos cmds/internet/main.go:207               BridgeVlanAdd(link, priv, false, false, false, false)
//	P3 zos cmds/internet/main.go:214               BridgeVlanAdd(link, pub, false, false, false, false)
//
// (netlink's arguments: vid, pvid, untagged, self, master.) The filtering
// itself is not a step: zosbase pkg/network/bridge/bridge.go:19-23 makes
// every bridge VLAN-filtering, and so does Bridge.
func TestVLANPlan(t *testing.T) {
	var (
		b1 = VLANStep{Self: true, Del: true, VID: 1, PVID: true, Untagged: true}
		b2 = VLANStep{Self: true, VID: 100, PVID: true, Untagged: true}
		p1 = VLANStep{Del: true, VID: 1, PVID: true, Untagged: true}
		p2 = VLANStep{VID: 100}
		p3 = VLANStep{VID: 200}
	)
	for _, c := range []struct {
		name      string
		priv, pub int
		want      []VLANStep
	}{
		// Neither: bridge and port stay in the kernel's default VLAN 1.
		{"neither", 0, 0, nil},
		// vlan:priv= alone: the port keeps VLAN 1 (untagged frames are
		// dropped there: the bridge itself left it).
		{"priv", 100, 0, []VLANStep{b1, b2, p2}},
		// vlan:pub= alone: nothing on the bridge itself; the port carries
		// the public VLAN tagged for networkd's tozos (PVID 200 there).
		{"pub", 0, 200, []VLANStep{p3}},
		{"both", 100, 200, []VLANStep{b1, b2, p1, p2, p3}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := VLANPlan(c.priv, c.pub); !slices.Equal(got, c.want) {
				t.Fatalf("VLANPlan(%d, %d) =\n %+v\nwant (zosbase's calls)\n %+v", c.priv, c.pub, got, c.want)
			}
		})
	}
}
