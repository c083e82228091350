package main

// identityd stands in for 0-OS's identityd (zos etc/zinit/identityd.yaml:
// `exec: identityd`, test `zbusdebug --module identityd`) in what netinit
// reads of it: the node identity's seed file. Like zosbase's FileStore.Set
// (pkg/identity/store/file.go) it writes the ed25519 seed as version
// "1.0.0" + the 32 bytes (versioned.WriteFile, mode 0400) to
// ROOT/seed.txt (ROOT: /var/cache/modules/identityd, on the cache disk
// storaged mounted), keeping a seed that is there already, says the
// node's Yggdrasil address (the one 0-OS's GenerateConfig gives: the
// identity's key as is), registers its zbus module and runs until SIGTERM
// as a service does.
//
//	identityd [-root DIR] [-seed HEX] [-exit]

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/threefoldtech/netinit/boot/identity"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
)

func identityd(args []string) int {
	fs := flag.NewFlagSet("identityd", flag.ContinueOnError)
	root := fs.String("root", "/var/cache/modules/identityd", "identityd's directory")
	seedHex := fs.String("seed", "", "the seed (hex, 32 bytes); default: a new one")
	exit := fs.Bool("exit", false, "exit once the seed is written")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	path, err := writeSeed(*root, *seedHex)
	if err == nil {
		var id *identity.Identity
		if id, err = identity.Read(path); err == nil {
			say("identityd", "seed %s address %s", path, ygg.AddressOf(id.Key))
		}
	}
	if err != nil {
		say("identityd", "%v", err)
		return 1
	}
	if *exit {
		return 0
	}
	return daemon(register("identityd"))(nil)
}

// writeSeed writes root/seed.txt unless it is there, and returns its path.
func writeSeed(root, seedHex string) (string, error) {
	path := filepath.Join(root, "seed.txt")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	seed := make([]byte, ed25519.SeedSize)
	if seedHex != "" {
		b, err := hex.DecodeString(seedHex)
		if err != nil || len(b) != ed25519.SeedSize {
			return "", fmt.Errorf("-seed: want %d hex bytes", ed25519.SeedSize)
		}
		seed = b
	} else if _, err := rand.Read(seed); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, append([]byte(`"1.0.0"`), seed...), 0o400)
}
