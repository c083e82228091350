package main

// observe is the test's eye inside the guest, not a 0-OS program: the
// test image runs it as a zinit oneshot of its own (observe.yaml, no
// after:), so the graph settles only once it is done. With
// standin.observe=1 on the kernel command line (else it exits 0 at once)
// it follows what netinit does while the stand-ins play 0-OS after the
// handoff, and reports on "OBSERVE key=value" lines for
// qemu/TestBootZOSGraph:
//
//   - netinit's Yggdrasil and WireGuard at the start (boot-ygg, boot-wg);
//   - storaged's cache disk over /var/cache (cache-mounted), identityd's
//     seed on it and the node's address it gives (node-ygg);
//   - the two Yggdrasil instances with that address, polled every 100 ms:
//     0-OS's ygg0 in ndmz and netinit's in this namespace, the longest
//     both held it (overlap-ms), until 0-OS's alone has held it for 3 s
//     and netinit's state says handed over (handover, status);
//   - netinit's worker killed (SIGKILL) after the cache disk: the new
//     worker's Yggdrasil and WireGuard key (after-kill-*), and its first
//     clock round, once 0-OS's ntpd runs (clock);
//   - the kernel's module helper and what the root's kmod loads: macvlan
//     (the base's, asked for by the kernel when networkd made npub4) and
//     8021q (a module only netinit's image brings);
//   - the echo requests a peer outside sent to the node's address through
//     0-OS's instance (echoes): it says it waits for them
//     (waiting-for-echoes=ADDRESS, the peer's cue), waits for 21 and then
//     2 s without more, so that the VM is up until the peer is done.
//
// Every wait is bounded; one that ends unmet reports "OBSERVE error=..."
// and exits 1.

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/threefoldtech/netinit/boot/control"
	"github.com/threefoldtech/netinit/boot/identity"
	"github.com/threefoldtech/netinit/boot/overlay/ygg"
	"github.com/threefoldtech/netinit/boot/state"
	"github.com/threefoldtech/netinit/internal/lab"
)

const (
	// observeWait bounds each wait of the observer.
	observeWait = 3 * time.Minute
	// seedFile is where identityd writes the node's seed.
	seedFile = "/var/cache/modules/identityd/seed.txt"
	// echoesWanted is how many echo requests the peer outside sends at
	// least: one answered (the path is there), then 20 in a row.
	echoesWanted = 21
)

func observe([]string) int {
	if cmdlineValue("standin.observe") != "1" {
		return 0
	}
	if err := runObserver(); err != nil {
		observed("error", strconv.Quote(err.Error()))
		return 1
	}
	observed("done", true)
	return 0
}

func observed(k string, v any) { fmt.Printf("OBSERVE %s=%v\n", k, v) }

func runObserver() error {
	st, err := waitState("netinit's Yggdrasil and WireGuard", func(s *state.State) bool {
		return s.Yggdrasil != nil && s.WireGuard != nil
	})
	if err != nil {
		return err
	}
	observed("boot-ygg", st.Yggdrasil.Address)
	observed("boot-wg", st.WireGuard.PublicKey)

	if err := waitFor("storaged's cache disk on /var/cache", func() bool { return mountpoint([]string{"/var/cache"}) == 0 }); err != nil {
		return err
	}
	observed("cache-mounted", true)
	var id *identity.Identity
	if err := waitFor("identityd's seed "+seedFile, func() bool { id, err = identity.Read(seedFile); return err == nil }); err != nil {
		return err
	}
	addr := ygg.AddressOf(id.Key)
	observed("node-ygg", addr)

	if st, err = watchHandover(addr); err != nil {
		return err
	}
	h := st.YggdrasilHandover
	observed("handover", fmt.Sprintf("%s/%s/%s", h.Namespace, h.Interface, h.Address))
	if out, err := exec.Command("/init", "status").CombinedOutput(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "yggdrasil:") {
				observed("status", strconv.Quote(l))
			}
		}
	} else {
		observed("status-error", strconv.Quote(fmt.Sprintf("%v: %s", err, out)))
	}

	old := st.PID
	if err := unix.Kill(old, unix.SIGKILL); err != nil {
		return fmt.Errorf("killing netinit's worker %d: %w", old, err)
	}
	st, err = waitState("a new worker", func(s *state.State) bool {
		return s.PID != old && s.WireGuard != nil && (s.Yggdrasil != nil || s.YggdrasilHandover != nil)
	})
	if err != nil {
		return err
	}
	observed("after-kill-pid", fmt.Sprintf("%d->%d", old, st.PID))
	if h := st.YggdrasilHandover; h != nil {
		observed("after-kill-ygg", "handed-over/"+h.Address)
	} else {
		observed("after-kill-ygg", "running/"+st.Yggdrasil.Address)
	}
	observed("after-kill-wg", st.WireGuard.PublicKey)
	observed("after-kill-own-ygg0", holdsYgg("", addr))
	// The new worker's first clock round: 0-OS's ntpd runs since zinit
	// started it, so the clock is its own.
	st, err = waitState("the new worker's clock round", func(s *state.State) bool { return s.Clock != nil && s.Clock.Rounds > 0 })
	if err != nil {
		return err
	}
	c := st.Clock
	observed("clock", fmt.Sprintf("owner=%q,set=%v,measured=%v,server=%s,error=%q", c.Owner, c.Set, c.Measured, c.Server, c.Error))

	b, _ := os.ReadFile("/proc/sys/kernel/modprobe")
	observed("modprobe-helper", strings.TrimSpace(string(b)))
	observed("macvlan-loaded", loaded("macvlan"))
	before := loaded("8021q")
	out, err := exec.Command("/sbin/modprobe", "8021q").CombinedOutput()
	observed("kmod-8021q", fmt.Sprintf("before=%v,loaded=%v,err=%v,out=%q", before, loaded("8021q"), err, strings.TrimSpace(string(out))))

	// Last, with nothing else going on here: the peer pings now.
	observed("waiting-for-echoes", addr)
	n, last, since := 0, -1, time.Now()
	if err := waitFor("the peer's echo requests in ndmz", func() bool {
		if n = echoes(); n != last {
			last, since = n, time.Now()
		}
		return n >= echoesWanted && time.Since(since) >= 2*time.Second
	}); err != nil {
		return fmt.Errorf("%w (%d seen)", err, n)
	}
	observed("echoes", n)
	return nil
}

// watchHandover polls both instances with addr until 0-OS's alone has
// held it for 3 s and the state says handed over. It reports when 0-OS's
// came up and the longest both held it.
func watchHandover(addr netip.Addr) (*state.State, error) {
	zosNS := filepath.Join(netnsDir, ndmz)
	var zosUp, both, alone time.Time
	var longest time.Duration
	var st *state.State
	end := time.Now().Add(observeWait)
	for ; time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		now := time.Now()
		zos, own := holdsYgg(zosNS, addr), holdsYgg("", addr)
		if zos && zosUp.IsZero() {
			zosUp = now
			observed("zos-up", fmt.Sprintf("%.3f", uptime()))
		}
		switch {
		case zos && own:
			if both.IsZero() {
				both = now
			}
			longest = max(longest, now.Sub(both))
		default:
			both = time.Time{}
		}
		if !zos || own {
			alone = time.Time{}
			continue
		}
		if alone.IsZero() {
			alone = now
		}
		if now.Sub(alone) < 3*time.Second {
			continue
		}
		if st = liveState(); st != nil && st.YggdrasilHandover != nil && st.Yggdrasil == nil {
			observed("overlap-ms", longest.Milliseconds())
			return st, nil
		}
	}
	observed("overlap-ms", longest.Milliseconds())
	return nil, fmt.Errorf("no handover within %v (0-OS's up: %v; state %+v)", observeWait, !zosUp.IsZero(), st)
}

// holdsYgg reports whether the link ygg0 in the network namespace bound
// at nsPath ("": this one) holds addr.
func holdsYgg(nsPath string, addr netip.Addr) bool { return lab.HoldsAddr(nsPath, "ygg0", addr) }

// echoes is Icmp6InEchos of ndmz (0 when unknown).
func echoes() int {
	ns, err := netns.GetFromPath(filepath.Join(netnsDir, ndmz))
	if err != nil {
		return 0
	}
	defer ns.Close()
	n := 0
	_ = inNetns(ns, func() error {
		// /proc/thread-self/net is the calling thread's namespace's.
		f, err := os.Open("/proc/thread-self/net/snmp6")
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "Icmp6InEchos" {
				n, _ = strconv.Atoi(f[1])
			}
		}
		return nil
	})
	return n
}

// loaded reports whether the kernel has module name loaded.
func loaded(name string) bool {
	_, err := os.Stat("/sys/module/" + name + "/initstate")
	return err == nil
}

// liveState asks netinit's daemon for its state (nil if it does not
// answer).
func liveState() *state.State {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	rep, err := control.Call(ctx, control.DefaultPath, "status")
	if err != nil {
		return nil
	}
	return rep.State
}

// waitState waits until netinit's state satisfies cond.
func waitState(what string, cond func(*state.State) bool) (*state.State, error) {
	var st *state.State
	err := waitFor(what, func() bool { st = liveState(); return st != nil && cond(st) })
	return st, err
}

// waitFor polls cond every 200 ms for observeWait.
func waitFor(what string, cond func() bool) error {
	end := time.Now().Add(observeWait)
	for !cond() {
		if time.Now().After(end) {
			return fmt.Errorf("no %s within %v", what, observeWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil
}
