// Command kconfigcheck checks a kernel .config against netinit's
// requirements (kernel-config/netinit.config).
//
//	kconfigcheck -config .cache/kernel/6.1.0-47-cloud-amd64/config -skip-class hw
//
// It prints every unmet requirement and exits 1 if any of them is in a
// class that is neither skipped (-skip-class) nor downgraded to a warning
// (-warn-class). Exit status 2 means bad usage or unreadable input.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	kernelconfig "github.com/threefoldtech/netinit/kernel-config"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flag := flag.NewFlagSet("kconfigcheck", flag.ContinueOnError)
	flag.SetOutput(stderr)
	var (
		config   = flag.String("config", "", "kernel .config to check (required)")
		fragment = flag.String("fragment", "kernel-config/netinit.config", "requirements fragment")
		skip     = flag.String("skip-class", "", "comma separated requirement classes to ignore (e.g. hw for cloud kernels)")
		warn     = flag.String("warn-class", "", "comma separated requirement classes reported as warnings only")
	)
	if err := flag.Parse(args); err != nil {
		return 2
	}
	if *config == "" || flag.NArg() != 0 {
		flag.Usage()
		return 2
	}
	cfg, err := kernelconfig.ReadConfig(*config)
	if err != nil {
		fmt.Fprintln(stderr, "kconfigcheck:", err)
		return 2
	}
	reqs, err := kernelconfig.ReadFragment(*fragment)
	if err != nil {
		fmt.Fprintln(stderr, "kconfigcheck:", err)
		return 2
	}
	skipped, warned := set(*skip), set(*warn)
	failed, warnings, checked := 0, 0, 0
	for _, r := range reqs {
		if !skipped[r.Class] {
			checked++
		}
	}
	for _, u := range kernelconfig.Check(cfg, reqs) {
		switch {
		case skipped[u.Class]:
		case warned[u.Class]:
			warnings++
			fmt.Fprintln(stdout, "WARN", u)
		default:
			failed++
			fmt.Fprintln(stdout, "FAIL", u)
		}
	}
	fmt.Fprintf(stdout, "%s: %d requirements checked, %d unmet, %d warnings\n", *config, checked, failed, warnings)
	if failed > 0 {
		return 1
	}
	return 0
}

func set(list string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(list, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}
