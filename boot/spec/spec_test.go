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
	checkEnum[methodWords](t)
	checkEnum[yggWords](t)
	checkEnum[wgWords](t)
	checkEnum[rootWords](t)
	checkEnum[testWords](t)
	checkEnum[protoWords](t)
	if p := (Port{Port: 53, Proto: UDP}); p.String() != "53/udp" {
		t.Errorf("Port.String() = %q", p.String())
	}
	if m := Method(200); m.String() != "invalid(200)" {
		t.Errorf("Method(200).String() = %q", m.String())
	}
}

func checkEnum[W words](t *testing.T) {
	t.Helper()
	n := len(wordsOf[W]())
	for i := 0; i < n; i++ {
		v := Enum[W](i)
		b, err := v.MarshalText()
		if err != nil || string(b) != v.String() {
			t.Errorf("%T(%d): %q, %v", v, i, b, err)
			continue
		}
		var back Enum[W]
		if err := back.UnmarshalText(b); err != nil || back != v {
			t.Errorf("%T %q: back %v, %v", v, b, back, err)
		}
	}
	if _, err := Enum[W](n).MarshalText(); err == nil {
		t.Errorf("%T(%d) marshals", Enum[W](n), n)
	}
	var e Enum[W]
	if err := e.UnmarshalText([]byte("bogus")); err == nil || e != 0 {
		t.Errorf("%T: \"bogus\" unmarshals (%v)", e, e)
	}
}
