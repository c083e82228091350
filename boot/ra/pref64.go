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
	ok := eachOption(b[raHeaderLen:], func(off int, o []byte) {
		if o[0] == optPREF64 && (len(o) != 16 || o[3]&0x7 > 5) {
			if out == nil {
				out = append(out, b[:raHeaderLen+off]...)
			}
		} else if out != nil {
			out = append(out, o...)
		}
	})
	if !ok || out == nil {
		return b // broken framing: ndp refuses the message
	}
	return out
}

// eachOption calls f with each option of opts (the options of an NDP
// message, RFC 4861 section 4.6: type, length in units of 8 octets, never
// 0) and its offset in opts, in order. It stops at the first option whose
// length is 0 or runs past opts, and then reports false.
func eachOption(opts []byte, f func(off int, o []byte)) bool {
	for i := 0; i < len(opts); {
		if len(opts)-i < 2 || opts[i+1] == 0 || int(opts[i+1])*8 > len(opts)-i {
			return false
		}
		l := int(opts[i+1]) * 8
		f(i, opts[i:i+l])
		i += l
	}
	return true
}
