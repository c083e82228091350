package hostdeps

import "strings"

// baseCommands are the programs the repository uses that a minimal Debian
// 12 system has: debootstrap --variant=minbase bookworm, which installs the
// packages of priority "required" (Essential ones among them). Each names
// its package; TestBaseInMinbase checks them against the root `make
// fresh-check` built, when there is one. Not there, and so in a package
// list: iproute2, procps (sysctl, kill), xz-utils, ca-certificates.
var baseCommands = map[string]string{
	"apt-cache": "apt", "apt-get": "apt",
	"bash":     "bash",
	"basename": "coreutils", "cat": "coreutils", "chmod": "coreutils", "chroot": "coreutils",
	"cp": "coreutils", "cut": "coreutils", "date": "coreutils", "dd": "coreutils",
	"dirname": "coreutils", "env": "coreutils", "head": "coreutils", "ln": "coreutils",
	"ls": "coreutils", "mkdir": "coreutils", "mktemp": "coreutils", "mv": "coreutils",
	"nproc": "coreutils", "readlink": "coreutils", "rm": "coreutils", "sha256sum": "coreutils",
	"sleep": "coreutils", "sort": "coreutils", "stat": "coreutils", "tail": "coreutils",
	"tee": "coreutils", "test": "coreutils", "timeout": "coreutils", "touch": "coreutils",
	"tr": "coreutils", "true": "coreutils", "truncate": "coreutils", "wc": "coreutils",
	"sh":       "dash",
	"dpkg-deb": "dpkg",
	"find":     "findutils",
	"grep":     "grep",
	"gzip":     "gzip",
	"ldd":      "libc-bin",
	"awk":      "mawk",
	"mount":    "mount", "umount": "mount",
	"sed":     "sed",
	"tar":     "tar",
	"findmnt": "util-linux", "nsenter": "util-linux", "unshare": "util-linux",
}

// baseFiles are host files (not programs) a minimal Debian 12 system has:
// the dynamic loader's directories (guestlab copies programs with their
// libraries into its images).
var baseFiles = map[string]string{
	"/lib/x86_64-linux-gnu": "libc6", "/usr/lib/x86_64-linux-gnu": "libc6",
	"/usr/lib64": "libc6", "/usr/lib": "base-files",
}

// prerequisites are what the README asks of a fresh machine before its two
// commands: git (to clone), make, and Go at /usr/local/go (goRoot).
var prerequisites = map[string]string{
	"git":   "git (README: the prerequisites)",
	"make":  "make (README: the prerequisites)",
	"go":    "Go at " + goRoot,
	"gofmt": "Go at " + goRoot,
}

// implicit are needs no code names, for the lists to cover all the same
// (for `make test`, whose lists are DEPS).
var implicit = []Use{
	{Name: "/etc/ssl/certs/ca-certificates.crt", File: true, Ctx: "test",
		At: "go fetches the modules from the proxy over HTTPS (crypto/x509 reads the bundle)"},
	{Name: "/usr/lib/ipxe/qemu/efi-virtio.rom", File: true, Ctx: "test",
		At: "QEMU loads its NICs' iPXE option ROMs (the PXE boot tests)"},
}

// goRoot is where the README wants Go; everything under it is Go's.
const goRoot = "/usr/local/go"

// dynamicCall is a call whose program the checker cannot follow: where
// the program is named (file, and the expression), what it runs, and why.
type dynamicCall struct {
	Where, Expr string
	Runs        []string
	Why         string
}

// dynamicCalls: each must match a call (else the table is stale).
var dynamicCalls = []dynamicCall{
	{"scripts/fresh-check.sh", `"$self"`, nil, "the script itself, again inside the new namespaces"},
	{"boot/control/control_test.go", "exe", nil, "the test binary, copied where a non-root user may run it"},
	{"boot/engine/bench_lab_test.go", "tl.args(dir)", []string{"dhcpcd"},
		"the bench's clients: netinit and u-root's dhclient (built by the test with go) and dhcpcd"},
	{"boot/engine/bench_lab_test.go", "peer", nil, "qemu/testdata/yggpeer, built by the test with go"},
	{"qemu/boot_test.go", "b.path", nil, "netinit and the next-stage stand-in, built by the tests with go"},
	{"boot/engine/engine_lab_test.go", "binPath", nil, "netinit, built by the tests with go"},
	{"internal/lab/wireguard.go", "out", nil, "wireguard-go, built by the lab with go"},
	{"internal/farm/farm.go", "f.cfg.Netinit", nil, "netinit, built by make farm"},
	{"internal/farm/farm.go", "f.cfg.PublicPeer", nil, "the public Yggdrasil peer: the farm binary itself"},
	{"boot/pid1/supervise_linux.go", "s.path", nil,
		"the worker PID 1 supervises: netinit itself at boot; tests pass /bin/sh and /bin/sleep, named there"},
	{"boot/pid1/pid1_linux.go", "c[0]", nil, "the next stage in the node image (DefaultNext), not on the host"},
	{"initramfs/debug.go", "g", []string{"go"}, "goTool: $GO, else $GOROOT/bin/go, else go on PATH, else " + goRoot + "/bin/go"},
	{"cmd/netinit/zos_lab_test.go", `filepath.Join(tools, "yggpeer")`, nil, "qemu/testdata/yggpeer, built by the test with go"},
	{"cmd/netinit/zos_lab_test.go", `filepath.Join(tools, "identityd")`, nil, "a stand-in (qemu/testdata/standin), built by the test with go"},
	{"cmd/netinit/zos_lab_test.go", `filepath.Join(tools, "networkd")`, nil, "a stand-in (qemu/testdata/standin), built by the test with go"},
	{"cmd/netinit/zos_lab_test.go", "node.bin", nil, "netinit, built by the test with go"},
	{"boot/clock/hostile_lab_linux_test.go", `filepath.Join(dir, "ntpd")`, nil, "a stand-in ntpd, written by the test"},
	{"boot/overlay/zosygg_linux_test.go", "filepath.Join(dir, name)", nil, "the test binary, linked as yggdrasil and mycelium"},
	{"qemu/graph_test.go", "zinit", nil, "qemu/testdata/zosnode built by the test, as zinit"},
	{"qemu/testdata/zosnode/main.go", "out", nil, "a zinit service's exec line, split (run at zinit.go's p)"},
	{"qemu/testdata/zosnode/zinit.go", "p", []string{"sh", "sleep", "test", "touch", "true", "wc"},
		"the zinit runner's services: on the host TestZinitRunner's (it requires these), in the guest the image's"},
	{"qemu/guestlab/host.go", `filepath.Join("/usr/sbin", b)`, nil, "a program the guest lab copies, looked for in /usr/sbin too"},
	{"qemu/guestlab/host.go", "cfg.Binaries", []string{"dnsmasq", "radvd"},
		"guestlab.Config.Binaries: the host's programs a test copies into its guest (guestlab_test.go, zosvlan_test.go)"},
	{"internal/lab/node.go", "script", []string{"mount", "sleep", "mkdir", "readlink", "ln", "cp"},
		"a node's PID 1 script: its mounts, the caller's boot script (zos_lab_test.go's mounts, links and copies), sleep"},
	{"initramfs/debug.go", `filepath.Join(root, "bin", "go")`, []string{"go"}, "goTool: $GOROOT/bin/go"},
	{"cmd/vmrun/main.go", "opts.QEMU", []string{"qemu-system-x86_64"}, "QEMU (qemu.Options.QEMU, default qemu-system-x86_64)"},
	{"qemu/qemu.go", "opts.QEMU", []string{"qemu-system-x86_64"}, "QEMU (Options.QEMU, default qemu-system-x86_64)"},
	{"qemu/qemu.go", "res.Args[0]", []string{"qemu-system-x86_64"}, "QEMU's command line, built from Options.QEMU"},
	{"qemu/accel.go", "p", []string{"qemu-system-x86_64"}, "the QEMU binary whose identity keys the accelerator cache"},
	{"qemu/qemu_test.go", "p", []string{"/bin/sh", "sleep", "awk"}, "fakeQEMU: a shell script standing in for QEMU"},
}

func dynamicEntry(d Dynamic) int {
	file, _, _ := strings.Cut(d.At, ":")
	for i, e := range dynamicCalls {
		if e.Expr == d.Expr && e.Where == file {
			return i
		}
	}
	return -1
}

// notPackaged are names that no Debian package provides, nor should:
// paths in the node image (read by code that runs there), files the code
// writes, values under test, programs the tests build and put on PATH.
type notPackagedName struct{ Where, Name, Why string }

var notPackaged = []notPackagedName{
	{"boot/pid1/pid1_linux.go", "/bin/gosh", "a shell in the image"},
	{"boot/pid1/pid1_linux.go", "/bbin/gosh", "a shell in the image"},
	{"boot/pid1/pid1_linux.go", "/bin/elvish", "a shell in the image"},
	{"boot/pid1/pid1_linux.go", "/sbin/zinit", "0-OS's init in the image"},
	{"boot/pid1/pid1_linux.go", "/sbin/init", "an init in the image"},
	{"boot/coldplug/coldplug.go", "/lib/modules", "the image's modules"},
	{"boot/coldplug/helper.go", "/sbin/modprobe", "the final root's modprobe, the kernel's default helper"},
	{"boot/coldplug/helper_test.go", "/usr/local/sbin/other-helper", "a helper path under test"},
	{"boot/cmdline/", "/sbin/zinit", "a kernel parameter's value under test"},

	{"qemu/rootswitch_test.go", "/sbin/zinit", "a file in a test image"},
	{"qemu/handoff_test.go", "/sbin/nextstage", "a file in a test image"},
	{"qemu/graph_test.go", "/sbin/bootstrap", "a service's program in a test image"},
	{"qemu/graph_test.go", "/sbin/zinit", "a file in a test image"},
	{"qemu/zoshandover_test.go", "/bin/kmod", "the image's kmod (a link's target)"},
	{"qemu/zoshandover_test.go", "/sbin/modprobe", "the guest's module helper, expected"},
	{"qemu/zosvlan_test.go", "/sbin/netinit", "netinit in the guest lab's image (guestlab.NetinitPath)"},
	{"qemu/guestlab/guestlab.go", "/sbin/guestlab-check", "the next stage in the guest lab's image"},
	{"qemu/guestlab/guestlab.go", "/sbin/netinit", "netinit in the guest lab's image (NetinitPath)"},
	{"qemu/guestlab/host.go", "/usr/sbin", "where the guest lab also looks for a program it copies"},
	{"qemu/testdata/zosnode/networkd.go", "yggdrasil", "the stand-in yggdrasil (zosnode itself), put on its PATH by the tests"},
	{"Makefile", "/usr/sbin/policy-rc.d", "written by the install macro (keeps services from starting)"},
	{"scripts/fresh-check.sh", "/usr/local/share/ca-certificates", "the host's site configuration, copied when present"},
}

// guest is code that runs only in a QEMU guest: what it uses is the
// image's, not the host's.
var guest = []struct{ Where, Why string }{
	{"qemu/testdata/nextstage/", "the next stage in test images"},
	{"qemu/testdata/zosnode/standin.go", "zosnode's table of the image's programs"},
	{"qemu/testdata/zosnode/bootstrap.go", "0-OS's bootstrap in the guest"},
	{"qemu/testdata/zosnode/observe.go", "the test's eye in the guest"},
	{"initramfs/testdata/bootcheck/", "the check in test images"},
	{"qemu/guestlab/guest_linux.go", "the guest lab's /init"},
}

func guestEntry(at string) int {
	for i, e := range guest {
		if strings.HasPrefix(at, e.Where) {
			return i
		}
	}
	return -1
}

func notPackagedEntry(u Use) int {
	for i, e := range notPackaged {
		if e.Name == u.Name && strings.HasPrefix(u.At, e.Where) {
			return i
		}
	}
	return -1
}
