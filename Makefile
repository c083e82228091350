# netinit — the two commands are `make qemu` and `make test` (see README.md).
# Both install what they need on a fresh Debian 12 machine.
SHELL := /bin/bash
GO ?= go
BUILD ?= build
CACHE ?= .cache
KERNEL_VERSION ?= 6.1.0-47-cloud-amd64
KDIR := $(CACHE)/kernel/$(KERNEL_VERSION)
KERNEL := $(KDIR)/vmlinuz
MODULES_DIR := $(KDIR)/modules
# lz4: the kernel unpacks it fastest (~0.35 s sooner to /init than gzip
# under TCG; 8.6 MiB against 7.4; docs/design.md). The release is zstd.
IMAGE := $(BUILD)/initramfs.cpio.lz4
export SOURCE_DATE_EPOCH ?= 0
export CGO_ENABLED := 0
# The clock's floor is the committed HEAD's time (boot/clock BuildTime): as
# reproducible as the image (SOURCE_DATE_EPOCH=0 cannot be a floor).
GOBUILD := $(GO) build -trimpath -ldflags="-s -w -X main.version=$(shell git describe --always --dirty 2>/dev/null || echo dev) \
	-X github.com/threefoldtech/netinit/boot/clock.buildTime=$(shell git log -1 --format=%ct 2>/dev/null)"

# make release and its QEMU boots (PXE through SeaBIOS + iPXE, USB through
# OVMF): a path stands for a package without a command. Defined before DEPS:
# DEPS is expanded at once (:=), so a later definition would be empty here
# (internal/hostdeps fails on that).
# kmod: make baked remakes a base's binary module indexes with depmod
# (initramfs/kmodindex.go); the tests run its modprobe and modinfo against
# them, and the QEMU boot of 0-OS's graph carries its kmod as the root's.
RELEASE_DEPS := zstd:zstd sfdisk:fdisk mkfs.fat:dosfstools mcopy:mtools mmd:mtools \
	depmod:kmod modprobe:kmod modinfo:kmod kmod:kmod \
	/usr/lib/systemd/boot/efi/systemd-bootx64.efi:systemd-boot-efi \
	/usr/share/OVMF/OVMF_CODE_4M.fd:ovmf /usr/share/OVMF/OVMF_VARS_4M.fd:ovmf \
	/usr/lib/ipxe/qemu/efi-virtio.rom:ipxe-qemu
# Debian packages the tests and the VM need, as command:package, beyond
# what a minimal Debian 12 has (internal/hostdeps checks that every program
# the Makefile, the scripts and the tests run is here or there). chrony is
# a real NTP server for the clock tests (never started as a service here;
# its chronyc sets the lying servers' clocks, and chronyd copied as ntpd
# stands in for 0-OS's);
# dhcpcd is 0-OS's DHCP client, run by the stand-in networkd in the ndmz (and a peer make bench compares with)
# namespace; ping is the peer outside a node that pings it over Yggdrasil;
# lldpd is a switch's LLDP agent for the LLDP tests (not a service here);
# procps: sysctl and kill (a path: `command -v kill` finds the shell's);
# ca-certificates: go fetches the modules from the proxy over HTTPS.
DEPS := qemu-system-x86_64:qemu-system-x86 dnsmasq:dnsmasq-base radvd:radvd iperf3:iperf3 \
	wg:wireguard-tools nft:nftables ip:iproute2 ss:iproute2 sysctl:procps /usr/bin/kill:procps \
	chronyd:chrony chronyc:chrony lz4:lz4 xz:xz-utils dhcpcd:dhcpcd5 ping:iputils-ping \
	curl:curl lldpd:lldpd lldpcli:lldpd /etc/ssl/certs/ca-certificates.crt:ca-certificates $(RELEASE_DEPS)
# make fresh-check builds a Debian 12 root.
FRESH_DEPS := debootstrap:debootstrap

.PHONY: all build deps kernel image qemu test bench fuzz vet clean farm fresh-check FORCE
all: image

## deps: install missing Debian packages (only when missing). Their
## services are neither started nor enabled: the tests run the servers
## themselves, in network namespaces, and the host's network and clock are
## never touched.
deps:
	@$(call install,$(DEPS))

define install
missing=""; for d in $(1); do c=$${d%%:*}; p=$${d##*:}; \
  command -v $$c >/dev/null 2>&1 || [ -x /usr/sbin/$$c ] || [ -f $$c ] || missing="$$missing $$p"; done; \
if [ -n "$$missing" ]; then echo "deps: installing$$missing"; \
  export DEBIAN_FRONTEND=noninteractive; guard=""; \
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; \
    chmod +x /usr/sbin/policy-rc.d; guard=1; fi; \
  apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
    { apt-get update -qq && apt-get install -y --no-install-recommends $$missing; }; rc=$$?; \
  [ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; \
  for p in $$missing; do case $$p in chrony|dhcpcd5|radvd|iperf3|lldpd) ! command -v systemctl >/dev/null || \
    systemctl disable $${p%5} >/dev/null 2>&1 || true;; esac; done; \
  exit $$rc; \
fi
endef

## build: the static netinit binary
build: $(BUILD)/netinit
$(BUILD)/netinit: FORCE
	@mkdir -p $(BUILD)
	GOOS=linux GOARCH=amd64 $(GOBUILD) -o $@ ./cmd/netinit
	@echo "netinit binary: $$(stat -c %s $@) bytes"

# --- image (helper A) ---
# KERNEL_VERSION=6.1.0-47-amd64 selects Debian's plain flavour, which carries
# the hardware NIC drivers the cloud flavour leaves out.
.PHONY: kconfig image-debug
## kernel: fetch the pinned Debian kernel package once into $(CACHE)
kernel: $(KDIR)/.stamp
$(CACHE)/kernel/%/.stamp:
	KERNEL_VERSION=$* CACHE=$(CACHE) ./initramfs/fetch-kernel.sh

## image: the initramfs (reproducible)
image: $(BUILD)/netinit kernel
	$(GO) run ./cmd/mkinitramfs -compress lz4 -init $(BUILD)/netinit -modules-dir $(MODULES_DIR) \
	  -file initramfs/netinit.conf:/etc/netinit/netinit.conf:0644 \
	  -kernel-release $(KERNEL_VERSION) -o $(IMAGE)

## image-debug: the initramfs plus u-root's shell and core commands in /bin
image-debug: $(BUILD)/netinit kernel
	$(GO) run ./cmd/mkinitramfs -debug -init $(BUILD)/netinit -modules-dir $(MODULES_DIR) \
	  -file initramfs/netinit.conf:/etc/netinit/netinit.conf:0644 \
	  -kernel-release $(KERNEL_VERSION) -o $(BUILD)/initramfs-debug.cpio.gz

## kconfig: check the kernel's config against kernel-config/netinit.config
##   (hardware NIC drivers are class hw, skipped for cloud flavours)
KCONFIG_SKIP ?= $(if $(findstring cloud,$(KERNEL_VERSION)),hw)
kconfig: kernel
	$(GO) run ./cmd/kconfigcheck -config $(KDIR)/config -fragment kernel-config/netinit.config \
	  -skip-class "$(KCONFIG_SKIP)"
# --- end image ---

# --- release (helper H4) ---
# The hardware flavour: every Ethernet driver of Debian's amd64 kernel.
HW_KERNEL_VERSION ?= 6.1.0-47-amd64
HW_KDIR := $(CACHE)/kernel/$(HW_KERNEL_VERSION)
RELEASE ?= $(BUILD)/release
RELEASE_APPEND ?=
# zstd: 18.2 MiB with every Ethernet driver and the firmware they name
# (12.4 MiB without it), and the kernel unpacks it faster than gzip; xz is
# smaller but ~10 s slower to unpack under TCG.
RELEASE_COMPRESS ?= zstd
RELEASE_IMAGE := initramfs.cpio$(patsubst %,.%,$(subst zstd,zst,$(subst gzip,gz,$(subst none,,$(RELEASE_COMPRESS)))))
# NIC firmware: the pinned Debian packages fetch-firmware.sh unpacks; the
# image takes from them only the files its modules name (modinfo firmware=).
FIRMWARE_SET ?= bookworm-20230210-5
FIRMWARE_DIR := $(CACHE)/firmware/$(FIRMWARE_SET)/lib/firmware
FIRMWARE_FLAGS = -firmware-dir $(FIRMWARE_DIR) -firmware-missing $(BUILD)/firmware-missing.txt
.PHONY: kernel-hw release firmware
## kernel-hw: fetch the hardware flavour (HW_KERNEL_VERSION) into $(CACHE)
kernel-hw: $(HW_KDIR)/.stamp
## firmware: fetch the pinned firmware packages (FIRMWARE_SET) into $(CACHE)
firmware: $(CACHE)/firmware/$(FIRMWARE_SET)/.stamp
# curl (DEPS) fetches them: deps first, order-only (the stamp is what counts).
$(CACHE)/firmware/%/.stamp: | deps
	FIRMWARE_SET=$* CACHE=$(CACHE) ./initramfs/fetch-firmware.sh

## release: build/release/ — vmlinuz, initramfs, netinit.ipxe, netinit-usb.img,
##   SHA256SUMS (reproducible; RELEASE_APPEND='k=v ...' adds kernel parameters)
release: deps kernel-hw firmware $(BUILD)/netinit
	@mkdir -p $(RELEASE)
	$(GO) run ./cmd/mkinitramfs -compress $(RELEASE_COMPRESS) -init $(BUILD)/netinit \
	  -modules-dir $(HW_KDIR)/modules -kernel-release $(HW_KERNEL_VERSION) $(FIRMWARE_FLAGS) \
	  -file initramfs/netinit.conf:/etc/netinit/netinit.conf:0644 -o $(RELEASE)/$(RELEASE_IMAGE)
	RELEASE_APPEND="$(RELEASE_APPEND)" ./initramfs/mkrelease.sh $(RELEASE) $(HW_KDIR)/vmlinuz $(RELEASE)/$(RELEASE_IMAGE)

## baked: netinit baked into an existing node image, BASE=zos.cpio[.gz|.xz|.zst]
##   -> $(RELEASE)/initramfs-baked.cpio.*: the base's files, its /init as
##   /init.base, netinit as /init, module indexes merged (kmod's binary ones
##   remade by depmod); conflicts fail
.PHONY: baked
baked: deps kernel-hw $(BUILD)/netinit
	@test -n "$(BASE)" || { echo "baked: BASE=path/to/node-image.cpio.xz is required"; exit 1; }
	@mkdir -p $(RELEASE)
	$(GO) run ./cmd/mkinitramfs -base $(BASE) -compress $(RELEASE_COMPRESS) -init $(BUILD)/netinit \
	  -modules-dir $(HW_KDIR)/modules -kernel-release $(HW_KERNEL_VERSION) \
	  -file initramfs/netinit.conf:/etc/netinit/netinit.conf:0644 -o $(RELEASE)/$(subst initramfs,initramfs-baked,$(RELEASE_IMAGE))
# --- end release ---

# --- qemu (helper B) ---
QEMU_APPEND ?=
QEMU_TIMEOUT ?= 90s
QEMU_NET ?= $(empty)
QEMU_LOG ?= $(BUILD)/console.log
## qemu: build everything, boot the VM, stream the console, show the result
##   (QEMU_APPEND='netinit.x=y', QEMU_NET='-netdev spec', NETINIT_QEMU_ACCEL=tcg|kvm,
##   BOOT=direct|pxe|usb NIC=virtio|e1000e|rtl8139: anything but direct+virtio
##   boots a release of the hardware flavour built in $(BUILD)/qemu-release)
##   The accelerator is KVM only when the kernel boots under it (else TCG,
##   with the reason; see README); NETINIT_QEMU_ACCEL forces one.
BOOT ?= direct
NIC ?= virtio
QEMU_RELEASE := $(BUILD)/qemu-release
QEMU_HW := $(if $(and $(filter direct,$(BOOT)),$(filter virtio,$(NIC))),,1)
qemu: deps $(if $(QEMU_HW),qemu-release,image)
	$(GO) run ./cmd/vmrun -append "$(QEMU_APPEND)" -nic $(if $(filter virtio,$(NIC)),virtio-net-pci,$(NIC)) \
	  $(if $(filter pxe,$(BOOT)),-pxe $(QEMU_RELEASE),$(if $(filter usb,$(BOOT)),-usb $(QEMU_RELEASE)/netinit-usb.img, \
	    $(if $(QEMU_HW),-kernel $(QEMU_RELEASE)/vmlinuz -initramfs $(QEMU_RELEASE)/$(RELEASE_IMAGE),-kernel $(KERNEL) -initramfs $(IMAGE)))) \
	  -timeout $(QEMU_TIMEOUT) $(if $(QEMU_NET),-net "$(QEMU_NET)") -log $(QEMU_LOG)
.PHONY: qemu-release
qemu-release:
	$(MAKE) --no-print-directory release RELEASE=$(QEMU_RELEASE) \
	  RELEASE_APPEND="console=ttyS0 netinit.test=poweroff $(QEMU_APPEND)"

## qemu-test: only the QEMU boot tests (the guest lab too) and coldplug
.PHONY: qemu-test
qemu-test: deps kernel kernel-hw firmware
	NETINIT_LAB=1 NETINIT_KERNEL=$(abspath $(KERNEL)) NETINIT_MODULES_DIR=$(abspath $(MODULES_DIR)) \
	  NETINIT_HW_KERNEL=$(abspath $(HW_KDIR)/vmlinuz) NETINIT_FIRMWARE_DIR=$(abspath $(FIRMWARE_DIR)) $(GO) test -count=1 -timeout 10m -v ./qemu ./qemu/guestlab ./boot/coldplug
# --- end qemu ---

## test: every test (unit, namespace labs with real servers, QEMU boots)
test: deps kernel kernel-hw firmware vet
	NETINIT_LAB=1 NETINIT_KERNEL=$(abspath $(KERNEL)) NETINIT_MODULES_DIR=$(abspath $(MODULES_DIR)) \
	  NETINIT_HW_KERNEL=$(abspath $(HW_KDIR)/vmlinuz) NETINIT_FIRMWARE_DIR=$(abspath $(FIRMWARE_DIR)) \
	  $(GO) test -count=1 -timeout 25m ./...

vet:
	$(GO) vet ./...
	@bad=$$(gofmt -l $$(find . -name '*.go' -not -path './.cache/*')); test -z "$$bad" || { echo "gofmt needed: $$bad"; exit 1; }

## bench: bring-up time against u-root dhclient and dhcpcd (median of 5 runs, ratios)
##   and QEMU boots: power-on -> ready / -> reachable over Yggdrasil (median of 5)
bench: deps kernel
	NETINIT_LAB=1 NETINIT_BENCH=1 $(GO) test -count=1 -timeout 20m -run '^TestBench' ./boot/engine/ -v 2>&1 | \
	  grep -v '^=== \|^--- \|^PASS\|^ok '
	set -o pipefail; NETINIT_LAB=1 NETINIT_BENCH=1 NETINIT_KERNEL=$(abspath $(KERNEL)) NETINIT_MODULES_DIR=$(abspath $(MODULES_DIR)) \
	  $(GO) test -count=1 -timeout 20m -run '^TestBench(QEMU|Bond)$$' ./qemu/ -v 2>&1 | \
	  awk '/^    [a-z_]*test\.go:[0-9]+: go /{skip=1; next} skip && /^        /{next} {skip=0} !/^(=== |--- |PASS|ok )/'

## bench-smoke: make bench with one run per row (log in $(BUILD)/bench-smoke.log):
##   a run that yields no number, or a bench test that skips, fails (CI runs
##   it so that the bench code cannot rot)
.PHONY: bench-smoke
bench-smoke: deps kernel
	@mkdir -p $(BUILD)
	set -o pipefail; NETINIT_LAB=1 NETINIT_BENCH=1 NETINIT_BENCH_SMOKE=1 NETINIT_KERNEL=$(abspath $(KERNEL)) \
	  NETINIT_MODULES_DIR=$(abspath $(MODULES_DIR)) $(GO) test -count=1 -timeout 5m -run '^TestBench' -v \
	  ./boot/engine/ ./qemu/ 2>&1 | tee $(BUILD)/bench-smoke.log | grep -E '^(--- |ok |FAIL)'
	@! grep -E -- '^\s*--- SKIP: TestBench' $(BUILD)/bench-smoke.log

## farm: N netinit daemons on one LAN (namespaces, dnsmasq, Yggdrasil LAN
##   peering): time to all-addressed, reachability, RSS and CPU per node
##   (N=10,25,50 for several sizes; K=lan_peers, default the daemon's;
##   FARM_FLAGS=-public adds a public peer behind a NAT;
##   FARM_FLAGS=-neigh-table=8192 raises the kernel's IPv6 neighbour table
##   cap, one for all namespaces, for the run (needed from ~50 nodes);
##   CSV in $(BUILD)/farm.csv; results in docs/farm.md)
N ?= 10
K ?= -1
FARM_FLAGS ?=
farm: deps build
	$(GO) run ./cmd/farm -netinit $(BUILD)/netinit -n $(N) -lan-peers $(K) -csv $(BUILD)/farm.csv $(FARM_FLAGS)

## fresh-check: the README's two commands on a fresh Debian 12 root (debootstrap
##   minbase, cached in $(CACHE)/fresh; a clone of HEAD; logs in $(BUILD)/fresh-check;
##   FRESH_TIMEOUT_QEMU, FRESH_TIMEOUT_TEST bound each; docs/testing.md)
fresh-check:
	@$(call install,$(FRESH_DEPS))
	CACHE=$(CACHE) BUILD=$(BUILD) GO=$(GO) ./scripts/fresh-check.sh

## fuzz: run every fuzz target for FUZZTIME each
FUZZTIME ?= 30s
fuzz:
	GO=$(GO) ./scripts/fuzz.sh $(FUZZTIME) $$($(GO) list ./...)

clean:
	rm -rf $(BUILD)
FORCE:
