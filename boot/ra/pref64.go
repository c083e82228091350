package ra

// optPREF64 is the PREF64 option type (RFC 8781 section 4).
const optPREF64 = 38

// raHeaderLen is the length of a Router Advertisement before its options
// (ICMPv6 header, then RFC 4861 section 4.2's fixed fields).
const raHeaderLen = 16

// dropBadPREF64 returns the RA b without its malformed PREF64 options.
// RFC 8781 section 4: a PREF64 option is 16 octets, and a receiver MUST
// ignore one whose Prefix Length Code is not one of 0..5 — the option, not
// the whole RA, which is what mdlayher/ndp would do (it refuses a message
// with any option it cannot parse). Other options, and option framing
// errors, are left for ndp to judge. b is not modified.
func dropBadPREF64(b []byte) []byte {
	if len(b) < raHeaderLen {
		return b
	}
	var out []byte
	for i := raHeaderLen; i < len(b); {
		if len(b)-i < 2 || b[i+1] == 0 || int(b[i+1])*8 > len(b)-i {
			return b // broken framing: ndp refuses the message
		}
		l := int(b[i+1]) * 8
		if b[i] == optPREF64 && (l != 16 || b[i+3]&0x7 > 5) {
			if out == nil {
				out = append(out, b[:i]...)
			}
		} else if out != nil {
			out = append(out, b[i:i+l]...)
		}
		i += l
	}
	if out == nil {
		return b
	}
	return out
}
