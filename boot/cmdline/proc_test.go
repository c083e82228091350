package cmdline

import "testing"

func TestReadKernel(t *testing.T) {
	line, err := ReadKernel()
	if err != nil {
		t.Skipf("no %s: %v", ProcCmdline, err)
	}
	s, ps := Parse(line)
	checkSpec(t, line, s, ps)
	t.Logf("%d problems on this host's command line", len(ps))
}
