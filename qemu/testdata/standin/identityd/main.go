// Command identityd stands in for 0-OS's identityd in what netinit reads
// of it: the node identity's seed file. Like zosbase's FileStore.Set
// (pkg/identity/store/file.go) it writes the ed25519 seed as version
// "1.0.0" + the 32 bytes (versioned.WriteFile, mode 0400) to
// ROOT/seed.txt (ROOT: /var/cache/modules/identityd), keeping a seed that
// is there already, says the node's Yggdrasil address (the one 0-OS's
// GenerateConfig gives: the identity's key as is), and runs until SIGTERM
// as a service does.
//
//	identityd [-root DIR] [-seed HEX] [-exit]
package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/threefoldtech/netinit/boot/identity"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
)

func main() {
	root := flag.String("root", "/var/cache/modules/identityd", "identityd's directory")
	seedHex := flag.String("seed", "", "the seed (hex, 32 bytes); default: a new one")
	exit := flag.Bool("exit", false, "exit once the seed is written")
	flag.Parse()
	path := filepath.Join(*root, "seed.txt")
	if _, err := os.Stat(path); err != nil {
		seed := make([]byte, ed25519.SeedSize)
		if *seedHex != "" {
			b, err := hex.DecodeString(*seedHex)
			if err != nil || len(b) != ed25519.SeedSize {
				fail(fmt.Errorf("-seed: want %d hex bytes", ed25519.SeedSize))
			}
			seed = b
		} else if _, err := rand.Read(seed); err != nil {
			fail(err)
		}
		if err := os.MkdirAll(*root, 0o755); err != nil {
			fail(err)
		}
		if err := os.WriteFile(path, append([]byte(`"1.0.0"`), seed...), 0o400); err != nil {
			fail(err)
		}
	}
	id, err := identity.Read(path)
	if err != nil {
		fail(err)
	}
	fmt.Printf("IDENTITYD seed %s address %s\n", path, ygg.AddressOf(id.Key))
	if *exit {
		return
	}
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "identityd:", err)
	os.Exit(1)
}
