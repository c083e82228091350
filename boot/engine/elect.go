package engine

// election is what the uplink is chosen from.
type election struct {
	cmdline string   // netinit.uplink=
	bootif  string   // the managed link whose MAC is BOOTIF's, "" if none
	asked   []string // links that asked to install a default route, in order
}

// elect chooses the uplink: netinit.uplink= first, then the BOOTIF link,
// then the first link whose client asked to install a default route. It
// returns "" when nothing chose one yet, and whether the choice is fixed
// (cmdline or BOOTIF: never changes).
func elect(in election) (link, reason string, fixed bool) {
	switch {
	case in.cmdline != "":
		return in.cmdline, "cmdline", true
	case in.bootif != "":
		return in.bootif, "bootif", true
	case len(in.asked) > 0:
		return in.asked[0], "first-default-route", false
	}
	return "", "", false
}
