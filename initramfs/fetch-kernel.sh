#!/bin/sh
# fetch-kernel.sh: fetch a pinned Debian kernel package and unpack the parts
# netinit's image build and QEMU tests need.
#
# Usage: KERNEL_VERSION=6.1.0-47-cloud-amd64 [CACHE=.cache | CACHE_DIR=.cache/kernel] fetch-kernel.sh
#
# The version string is the ABI name plus flavour, as in the package name
# linux-image-<KERNEL_VERSION>. KERNEL_FLAVOUR (cloud-amd64|amd64) only
# changes the default version: KERNEL_FLAVOUR=amd64 gives 6.1.0-47-amd64, the
# flavour with the real hardware NIC drivers.
#
# Result (idempotent, guarded by a stamp file):
#   $CACHE_DIR/<ver>/vmlinuz   the kernel
#   $CACHE_DIR/<ver>/config    the kernel's .config
#   $CACHE_DIR/<ver>/modules/  = lib/modules/<ver> from the package
# The last line of output is the path of vmlinuz.
#
# Only Debian's configured apt mirrors are used (apt-get download).
set -eu

KERNEL_ABI=${KERNEL_ABI:-6.1.0-47}
KERNEL_FLAVOUR=${KERNEL_FLAVOUR:-cloud-amd64}
KERNEL_VERSION=${KERNEL_VERSION:-$KERNEL_ABI-$KERNEL_FLAVOUR}
CACHE_DIR=${CACHE_DIR:-${CACHE:-.cache}/kernel}

log() { echo "fetch-kernel: $*" >&2; }

# The flavour is whatever follows the ABI name "X.Y.Z-N-".
flavour_of() { echo "$1" | sed -E 's/^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-//'; }

pkg_known() {
	# apt-cache policy prints "Candidate: (none)" or nothing for unknown packages.
	apt-cache policy "linux-image-$1" 2>/dev/null | grep -q 'Candidate: [0-9]'
}

newest_of_flavour() {
	fl=$1
	apt-cache search --names-only "^linux-image-[0-9.]+-[0-9]+-$fl\$" 2>/dev/null |
		awk '{print $1}' | sed 's/^linux-image-//' |
		grep -E "^[0-9]+\.[0-9]+\.[0-9]+-[0-9]+-$fl\$" | sort -V | tail -n1
}

want=$KERNEL_VERSION
if [ -f "$CACHE_DIR/$want/.stamp" ]; then
	log "using cached $CACHE_DIR/$want"
	echo "$CACHE_DIR/$want/vmlinuz"
	exit 0
fi

# Index missing? Refresh once, only then.
if ! pkg_known "$want"; then
	log "linux-image-$want not in the apt index; running apt-get update"
	apt-get update -qq >&2 || log "apt-get update failed"
fi
if ! pkg_known "$want"; then
	fl=$(flavour_of "$want")
	alt=$(newest_of_flavour "$fl")
	if [ -z "$alt" ]; then
		log "ERROR: neither linux-image-$want nor any linux-image-*-$fl is known to apt"
		exit 1
	fi
	echo "################################################################" >&2
	echo "WARNING: pinned kernel linux-image-$want is not available;" >&2
	echo "WARNING: falling back to the newest known: linux-image-$alt" >&2
	echo "WARNING: update KERNEL_VERSION ($want -> $alt) to pin it again." >&2
	echo "################################################################" >&2
	want=$alt
	if [ -f "$CACHE_DIR/$want/.stamp" ]; then
		log "using cached $CACHE_DIR/$want"
		echo "$CACHE_DIR/$want/vmlinuz"
		exit 0
	fi
fi

mkdir -p "$CACHE_DIR"
cache=$(cd "$CACHE_DIR" && pwd)
dl="$cache/.download"
rm -rf "$dl"
mkdir -p "$dl"
chmod 0777 "$dl" # let apt's _apt sandbox user write there

download() { (cd "$dl" && apt-get download -q "linux-image-$want" >&2); }
if ! download; then
	log "apt-get download failed; refreshing the index and retrying"
	apt-get update -qq >&2
	download
fi

deb=$(ls "$dl"/linux-image-"$want"_*.deb | head -n1)
log "unpacking $(basename "$deb")"
x="$dl/x"
mkdir -p "$x"
dpkg-deb -x "$deb" "$x"

out="$cache/$want"
rm -rf "$out"
mkdir -p "$out"
mv "$x/boot/vmlinuz-$want" "$out/vmlinuz"
mv "$x/boot/config-$want" "$out/config"
mv "$x/lib/modules/$want" "$out/modules"
basename "$deb" >"$out/.stamp"
rm -rf "$dl"

log "kernel $want ready in $out"
echo "$CACHE_DIR/$want/vmlinuz"
