package spec

import "testing"

func TestIPHelpers(t *testing.T) {
	tests := []struct {
		method           Method
		dhcp4, ra, dhcp6 bool
	}{
		{MethodDHCP, true, false, false},
		{MethodOn, true, true, false},
		{MethodAuto6, false, true, false},
		{MethodEither6, false, true, true},
		{MethodDHCP6, false, false, true},
		{MethodStatic, false, false, false},
		{MethodOff, false, false, false},
	}
	for _, tt := range tests {
		c := IPConfig{Method: tt.method}
		if c.WantsDHCP4() != tt.dhcp4 || c.WantsRA() != tt.ra || c.WantsDHCP6() != tt.dhcp6 {
			t.Errorf("%s: %v %v %v", tt.method, c.WantsDHCP4(), c.WantsRA(), c.WantsDHCP6())
		}
	}
}

// TestEnumText: every value of every enum goes through its text form and
// back (the hand-over to the daemon is JSON); an unknown word or value is
// an error, never a silent default.
func TestEnumText(t *testing.T) {
	type textEnum interface {
		MarshalText() ([]byte, error)
		String() string
	}
	check := func(n int, get func(i int) textEnum, set func(b []byte) (textEnum, error)) {
		t.Helper()
		for i := 0; i < n; i++ {
			v := get(i)
			b, err := v.MarshalText()
			if err != nil || string(b) != v.String() {
				t.Errorf("%T(%d): %q, %v", v, i, b, err)
				continue
			}
			back, err := set(b)
			if err != nil || back != v {
				t.Errorf("%T %q: back %v, %v", v, b, back, err)
			}
		}
		if _, err := get(n).MarshalText(); err == nil {
			t.Errorf("%T(%d) marshals", get(n), n)
		}
		if _, err := set([]byte("bogus")); err == nil {
			t.Errorf("%T: \"bogus\" unmarshals", get(0))
		}
	}
	check(len(methodNames), func(i int) textEnum { return Method(i) },
		func(b []byte) (textEnum, error) { var v Method; err := v.UnmarshalText(b); return v, err })
	check(len(yggNames), func(i int) textEnum { return YggMode(i) },
		func(b []byte) (textEnum, error) { var v YggMode; err := v.UnmarshalText(b); return v, err })
	check(len(wgNames), func(i int) textEnum { return WGMode(i) },
		func(b []byte) (textEnum, error) { var v WGMode; err := v.UnmarshalText(b); return v, err })
	check(len(rootNames), func(i int) textEnum { return Root(i) },
		func(b []byte) (textEnum, error) { var v Root; err := v.UnmarshalText(b); return v, err })
	check(len(testNames), func(i int) textEnum { return Test(i) },
		func(b []byte) (textEnum, error) { var v Test; err := v.UnmarshalText(b); return v, err })
	check(len(protoNames), func(i int) textEnum { return Proto(i) },
		func(b []byte) (textEnum, error) { var v Proto; err := v.UnmarshalText(b); return v, err })
	if p := (Port{Port: 53, Proto: UDP}); p.String() != "53/udp" {
		t.Errorf("Port.String() = %q", p.String())
	}
}
