package identity

import (
	"crypto/sha256"
	_ "embed"
	"errors"
	"strings"
	"sync"
)

// BIP-39 decoding (mnemonic -> entropy), the one step 0-OS's seed format
// 1.1.0 needs. It is done here rather than with github.com/tyler-smith/go-bip39
// (which zosbase uses, and which the tests check this against) because that
// package builds the word lists of nine languages in its init, in every
// process that links it: ~40 % of netinit's package initialisation, paid by
// PID 1, the daemon's supervisor and its worker, and every `netinit
// modprobe` the kernel runs, on the boot's critical path (under QEMU TCG
// ~0.15 s per process at load). The English list is built on first use.

// bip39English is the BIP-39 English word list
// (https://github.com/bitcoin/bips/blob/master/bip-0039/english.txt,
// SHA-256 2f5eed53a4727b4bf8880d8f3f199efc90e58503646d9ff8eff3a2ed3b24dbda).
//
//go:embed bip39_english.txt
var bip39English string

// bip39Index maps each English word to its 11-bit index.
var bip39Index = sync.OnceValue(func() map[string]uint16 {
	words := strings.Fields(bip39English)
	m := make(map[string]uint16, len(words))
	for i, w := range words {
		m[w] = uint16(i)
	}
	return m
})

// The ways a mnemonic is refused. None quotes the mnemonic: its words are
// the secret.
var (
	errMnemonicCount    = errors.New("not a BIP-39 mnemonic (word count)")
	errMnemonicWord     = errors.New("a word is not in the BIP-39 English list")
	errMnemonicChecksum = errors.New("BIP-39 checksum incorrect")
)

// entropyFromMnemonic decodes a BIP-39 mnemonic as BIP-39 defines it (and
// as go-bip39's EntropyFromMnemonic accepts it): 12, 15, 18, 21 or 24
// words separated by white space, each the 11-bit index of a word of the
// English list; the bits are the entropy ENT (a multiple of 32 bits)
// followed by its checksum CS, the first ENT/32 bits of SHA-256(ENT).
func entropyFromMnemonic(mnemonic string) ([]byte, error) {
	words := strings.Fields(mnemonic)
	n := len(words)
	if n < 12 || n > 24 || n%3 != 0 {
		return nil, errMnemonicCount
	}
	index := bip39Index()
	bits := make([]byte, (n*11+7)/8)
	for i, w := range words {
		v, ok := index[w]
		if !ok {
			return nil, errMnemonicWord
		}
		for b := 0; b < 11; b++ {
			if v&(1<<(10-b)) != 0 {
				pos := i*11 + b
				bits[pos/8] |= 0x80 >> (pos % 8)
			}
		}
	}
	entBytes, csBits := n/3*4, n/3
	ent := bits[:entBytes]
	sum := sha256.Sum256(ent)
	for b := 0; b < csBits; b++ {
		pos := entBytes*8 + b
		if bits[pos/8]>>(7-pos%8)&1 != sum[b/8]>>(7-b%8)&1 {
			return nil, errMnemonicChecksum
		}
	}
	return ent, nil
}
