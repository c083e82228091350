// Package cmdline turns the kernel command line and the netinit config file
// into a typed spec.Spec (boot/spec).
//
// Parsing never fails as a whole: every malformed or unknown netinit token
// becomes a Problem that names the offending token, the token is dropped
// (the key keeps its previous value: the config file's or the default) and
// everything else is still applied. A value that is not valid UTF-8 is a
// problem too: every value is text, and goes into JSON (the hand-over to
// the daemon, the state).
//
// # Sources and precedence
//
// spec.Defaults < config file < kernel command line. Parse applies a
// command line on top of spec.Defaults, ParseConfig applies a config file on
// top of them, and Merge applies a command line on top of an existing Spec (in
// practice the config file's). Load does all three.
//
// Scalar keys: the last valid occurrence wins. List keys (ip=, nameserver=,
// vlan=, netinit.wg.peer= and every comma-separated key): the occurrences
// within one source accumulate; the first valid occurrence in a source
// replaces the list inherited from a lower source, so a list given on the
// command line replaces the config file's list instead of extending it.
// (bond= and netinit.bond= are the exception: one list of bonds by name,
// a later bond of a name replacing the earlier, whatever its source.)
// Comma-separated lists keep each element once. A malformed token changes
// nothing: the key keeps the value of the lower source (or the default).
//
// # Command line lexing
//
// As the kernel does it (lib/cmdline.c next_arg, kernel/params.c): tokens
// are separated by whitespace, double quotes group whitespace
// (key="a b" or "key=a b"), the quote marks around a value are removed, and
// a bare "--" ends the parameters (the rest belongs to init). In netinit key
// names '-' and '_' are equivalent (netinit.ra-timeout = netinit.ra_timeout),
// as the kernel treats module parameters. A token without '=' has no value;
// it is accepted only by boolean keys (meaning "on").
//
// u-root's pkg/cmdline (v0.16.0) is not used for the lexing: its public
// API only reads /proc/cmdline ("netinit up --cmdline" passes a string), it
// folds the line into a map (ip= may be given several times), it treats
// every Unicode quotation mark (', «, ...) as a quote where the kernel
// knows only '"', and its dequote slices value[1:len-1], which panics on a
// lone '"'.
//
// # Config file
//
// /etc/netinit/netinit.conf in the image (DefaultConfigPath), or --config
// PATH for "netinit up". The same keys and value grammar, one key=value per
// line; the "netinit." prefix is optional there; blank lines and lines whose
// first non-blank character is '#' are ignored; whitespace around key and
// value is trimmed and one pair of double quotes around the value is
// removed. Every line is netinit's, so an unknown key is a problem. Problems
// are reported as "netinit.conf:7: key=value: reason".
//
// # Keys
//
//	netinit.test=poweroff      test mode: print the state between markers
//	                           and power off instead of exec'ing
//	netinit.test=panic         the same, after a deliberate panic in the
//	                           bring-up (proves it is contained)
//	netinit.test=daemon-crash  the same, after the network daemon's first
//	                           start dies (proves PID 1 restarts it)
//	netinit.next="PATH ARG..." the next stage and its arguments (default
//	                           /sbin/zinit init, else /sbin/init)
//	netinit.root=tmpfs[:SIZE]|off  copy the initramfs into a tmpfs (default
//	                           size 1536M) and switch root to it before
//	                           anything starts, as 0-OS's initramfs does;
//	                           default: on when the next stage is zinit
//	netinit.uplink=IFNAME      force the uplink
//	BOOTIF=01-aa-bb-cc-dd-ee-ff  PXE boot interface (pxelinux/iPXE: ARP
//	                           hardware type "01" = Ethernet, then the MAC);
//	                           a plain MAC (aa:bb:cc:dd:ee:ff) is accepted too
//	netinit.ignore=GLOB,...    interface names never managed (path.Match)
//	netinit.timeout=DUR        overall bring-up deadline (default 60s); a Go
//	                           duration ("90s", "2m") or bare seconds ("60")
//	netinit.ra_timeout=DUR     how long to wait for a Router Advertisement
//	                           (default 3s; 0 s when ip= is given and none
//	                           asks for IPv6 autoconfiguration, e.g.
//	                           ip=dhcp, unless this key is given)
//	netinit.dhcp4_timeout=DUR  how long an uplink whose IPv6 is complete
//	                           waits for a DHCPv4 lease before it is ready
//	                           without IPv4 (default 3s; ip=dhcp always
//	                           waits for IPv4)
//	netinit.mtu=N              MTU of the uplink, 68..65535
//	ip=...                     see below; repeatable (one per link)
//	nameserver=IP              repeatable; dns1/dns2 of ip= are added
//	vlan=NAME:PARENT           802.1Q VLAN; the ID comes from NAME as dracut
//	                           names it: vlan0005, vlan5, eth0.0005, eth0.5
//	bond=NAME:PORT,PORT[:OPTIONS[:MTU]]  a bond (dracut); a port is an
//	                           interface name or a MAC (01-aa-bb-..., aa-bb-...,
//	                           aa:bb:...); OPTIONS name=value,... with the
//	                           bonding driver's names (mode=802.3ad,miimon=100);
//	                           repeatable, with netinit.bond=NAME:... adding to
//	                           the same list across the sources (a later bond
//	                           of a name replaces the earlier)
//	netinit.bond=auto|off      802.3ad bonds from the LACPDUs the NICs hear
//	                           (default: auto at boot when runmode= is given)
//	netinit.keydir=PATH        absolute directory for overlay keys
//	netinit.ygg=auto|on|off|auto-inbound   Yggdrasil (default auto)
//	netinit.ygg.peers=URI,...  tcp:// tls:// quic:// ws:// wss:// socks://
//	                           sockstls:// URIs with host:port
//	netinit.ygg.multicast=on|off  link-local peer discovery (default on)
//	netinit.ygg.lan_peers=N    at most N LAN (multicast) peers (default 8; 0 = no bound)
//	netinit.ygg.takeback=DUR   how long 0-OS's own Yggdrasil must be gone
//	                           before netinit takes the key back (default 2m)
//	netinit.ygg.seed=PATH      absolute path of the Yggdrasil key seed
//	netinit.ygg.listen=URI,... tcp:// tls:// quic:// listeners with an IP
//	                           and port ([::]:9943); default on a node with
//	                           public IPv6: tcp://[::]:9943,tls://[::]:9944
//	netinit.identity=PATH      the 0-OS node identity seed file; its key is
//	                           the Yggdrasil key (default: 0-OS's own paths)
//	netinit.wg=auto|on|off     WireGuard (default auto)
//	netinit.wg.peer=KEY@HOST:PORT  repeatable; KEY is base64 of 32 bytes,
//	                           HOST a name, an IPv4 or a [IPv6]
//	netinit.wg.address=CIDR,...  tunnel addresses
//	netinit.wg.allowed=CIDR,...  allowed IPs (stored masked)
//	netinit.allow=PORT/PROTO,...  inbound ports to open, PROTO tcp or udp
//	netinit.probe.targets=HOST:PORT,...
//	netinit.probe.reflectors=HOST:PORT,...
//	netinit.ntp=HOST,...       NTP servers (names or addresses)
//	netinit.lldp=listen|send|off  LLDP on the physical links: record what
//	                           the switch announces (default listen),
//	                           also announce the node (send), or neither
//	                           (off); spanning-tree BPDUs are always heard
//	netinit.bridge=NAME|off    the management bridge 0-OS expects (zos):
//	                           the uplink NIC is enslaved to it and the
//	                           clients run on it (default: zos at boot
//	                           when runmode= is given, else off)
//	runmode=prod|test|qa|dev   0-OS's grid network; selects the default
//	                           Yggdrasil peers and probe targets (package
//	                           runmode) for the keys no source set
//	vlan:priv=ID|none          0-OS: the management VLAN (1..4094), or
//	vlan:pub=ID|none           untagged (none, untagged, un); recorded
//	version=WORD               0-OS: v3, v3light, v4 (the last one wins);
//	                           v3light and v4 are network-light nodes
//	                           (netinit.ygg=auto leaves Yggdrasil off)
//
// 0-OS's other keys (farmer_id=, secret=, zos-debug, ...) are not
// netinit's and are passed over without a problem.
//
// Booleans accept on/off, yes/no, true/false, 1/0. Other kernel parameters
// (console=, root=, quiet, BOOT_IMAGE=, ...) are ignored.
//
// # ip=
//
// The dracut (dracut.cmdline(7)) / NetworkManager-initrd grammar:
//
//	ip=METHOD
//	ip=DEV:METHOD[:[MTU][:MAC]]
//	ip=CLIENT:[PEER]:[GATEWAY]:[NETMASK]:[HOSTNAME]:[DEV]:METHOD[:[MTU][:MAC]]
//	ip=CLIENT:[PEER]:[GATEWAY]:[NETMASK]:[HOSTNAME]:[DEV]:METHOD[:[DNS1][:DNS2]]
//
// IPv6 addresses are written in brackets ([2001:db8::2]); NETMASK is dotted
// (255.255.255.0, IPv4 only, contiguous) or a prefix length (24, 64); CLIENT
// (or PEER, as dracut allows) may also carry the prefix itself
// (192.0.2.5/24, [2001:db8::2/64]); given twice, the lengths must agree. The
// MAC may be written with dashes, or with colons (its six colon-separated
// fields are joined back). After METHOD, a field that is an IP address
// selects the DNS form. A gateway of 0.0.0.0 or :: means "no gateway".
// DEV empty means every link. HOSTNAME follows RFC 1123, DEV the kernel's
// interface name rules (at most 15 bytes, no '/', ':' or whitespace).
//
// METHOD is stored as a spec.Method in IPConfig.Method:
//
//	dhcp           DHCPv4 only (no IPv6 autoconfiguration)
//	dhcp6          DHCPv6 only
//	auto6          IPv6 stateless autoconfiguration (RA; DHCPv6 if the RA's
//	               M/O flags ask for it, RFC 4861 4.2)
//	either6        auto6 and a DHCPv6 client, both started at once and both
//	               kept (dracut runs dhcp6 only when auto6 fails; netinit
//	               does not wait for that)
//	on, any        -> MethodOn: DHCPv4 and auto6 (dracut: "any available
//	               source")
//	none, off      -> MethodStatic when CLIENT is given, else MethodOff
//	               (nothing is configured on DEV)
//
// A CLIENT address given with an autoconf METHOD (dhcp, ...) is kept in
// IPConfig.Address with that Method; only "static" asks for it to be
// configured as is. ibft, link6, bootp and rarp are not supported and
// reported. A malformed
// ip= is dropped as a whole, with a problem naming the field:
//
//	cmdline: ip="192.0.2.5::192.0.2.1:255.0.255.0::eth0:none": field 4 (netmask) "255.0.255.0": not a contiguous mask
package cmdline
