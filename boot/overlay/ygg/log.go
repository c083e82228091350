package ygg

import (
	"fmt"
	"strings"

	"github.com/threefoldtech/netinit/boot/console"
	"github.com/threefoldtech/netinit/boot/spec"
)

// logger adapts Options.Logf to yggdrasil-go's core.Logger. Debug and
// trace output is dropped. yggdrasil-go logs public keys and addresses,
// never the private key, but some lines name a peer's URI whole
// (src/core/link.go: "Link %q reached inconsistent error state"), so the
// secrets of every URI in a line are redacted as the state file's are.
type logger struct{ logf console.Logf }

func (l logger) out(level, s string) {
	l.logf("yggdrasil: %s%s", level, spec.RedactURIs(strings.TrimRight(s, "\n")))
}

func (l logger) Printf(f string, a ...any) { l.out("", fmt.Sprintf(f, a...)) }
func (l logger) Println(a ...any)          { l.out("", fmt.Sprintln(a...)) }
func (l logger) Infof(f string, a ...any)  { l.out("", fmt.Sprintf(f, a...)) }
func (l logger) Infoln(a ...any)           { l.out("", fmt.Sprintln(a...)) }
func (l logger) Warnf(f string, a ...any)  { l.out("warning: ", fmt.Sprintf(f, a...)) }
func (l logger) Warnln(a ...any)           { l.out("warning: ", fmt.Sprintln(a...)) }
func (l logger) Errorf(f string, a ...any) { l.out("error: ", fmt.Sprintf(f, a...)) }
func (l logger) Errorln(a ...any)          { l.out("error: ", fmt.Sprintln(a...)) }
func (l logger) Debugf(string, ...any)     {}
func (l logger) Debugln(...any)            {}
func (l logger) Traceln(...any)            {}
