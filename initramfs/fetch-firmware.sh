#!/bin/sh
# fetch-firmware.sh: fetch the pinned Debian firmware packages that carry
# the NIC firmware the hardware image's modules name (`modinfo -F
# firmware`), verify them, and unpack them once into the cache.
#
# Usage: [CACHE=.cache] [DEBIAN_MIRROR=URI] fetch-firmware.sh
#
# Result (idempotent, guarded by a stamp file):
#   $CACHE/firmware/$FIRMWARE_SET/lib/firmware/   the packages' files
# The last line of output is that directory. mkinitramfs -firmware-dir
# takes from it only the files the included modules name.
#
# The packages are Debian bookworm's (non-free-firmware, and main's
# firmware-linux-free for the PCMCIA cis/ files), the release the kernel
# (linux-image-6.1.0-47-*) belongs to. They were chosen by their file lists
# (the suite's Contents-all) against the firmware= of every module of
# initramfs.DefaultModules in the amd64 flavour; a file no package has is
# listed by mkinitramfs at build time. Each is pinned by version (in its
# pool path) and sha256, like the kernel package by its version: a mirror
# serving other bytes fails the fetch.
#
# The mirror is the one the host's apt uses for the release's main suite
# (/etc/apt/sources.list and sources.list.d, one-line or deb822), unless
# DEBIAN_MIRROR names one. The host's apt need not list non-free-firmware:
# the pool is the same mirror's.
set -eu

CACHE=${CACHE:-.cache}
FIRMWARE_SET=${FIRMWARE_SET:-bookworm-20230210-5}
SUITE=bookworm

# pool path, sha256 (from the suite's Packages index).
PACKAGES="
pool/non-free-firmware/f/firmware-nonfree/firmware-bnx2_20230210-5_all.deb 36e3cc703c59130207cf288d8dbf20c765c8956df6a74c7865c706aa61e694ae
pool/non-free-firmware/f/firmware-nonfree/firmware-bnx2x_20230210-5_all.deb 27a81b94a771a4e08ea49ffbf67be246cdcc20c6390e93b5d79659950cfb6aaf
pool/non-free-firmware/f/firmware-nonfree/firmware-cavium_20230210-5_all.deb 95fed31bc232d8926247fbe1d189e4db0e94bbfe5a02109c87b9d9383b350aa9
pool/non-free-firmware/f/firmware-nonfree/firmware-misc-nonfree_20230210-5_all.deb bc837b3c19f046d48e4f2fb5530ab10b93a6e9e263d60ba06a345d13cee96422
pool/non-free-firmware/f/firmware-nonfree/firmware-myricom_20230210-5_all.deb 1ea772c6f146101668ee948ff6f91d6b4a129a4397e09f2dbfcacd6db2e4b3b5
pool/non-free-firmware/f/firmware-nonfree/firmware-netronome_20230210-5_all.deb d13080bbdf93facfbaae1c90e349a78ded3c4687f73ee1c1e2834108c0e8163f
pool/non-free-firmware/f/firmware-nonfree/firmware-netxen_20230210-5_all.deb 4fbf16b6f42351bc6a7a192895becd9737e79782af5352c9f1cf4daf5228d395
pool/non-free-firmware/f/firmware-nonfree/firmware-qlogic_20230210-5_all.deb 2c1a254d2c496ef0be29d5eeb016113825785b13ca87ec5e3246bd109ff61897
pool/non-free-firmware/f/firmware-nonfree/firmware-realtek_20230210-5_all.deb 586ce39fc23f8b1d121bd430f5e187c80701df650f4baba05771d828444b075c
pool/main/f/firmware-free/firmware-linux-free_20200122-1_all.deb 5586b8870114b214d004a0107e317376b5a38556aa8cf411712491a1241cd1fc
"

log() { echo "fetch-firmware: $*" >&2; }

out="$CACHE/firmware/$FIRMWARE_SET"
if [ -f "$out/.stamp" ]; then
	log "using cached $out"
	echo "$out/lib/firmware"
	exit 0
fi

# mirror prints the URI of the host's apt source for $SUITE's main suite.
mirror() {
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		# deb [options] URI SUITE COMPONENT...
		sed -E 's/\[[^]]*\]//' "$f" | awk -v s="$SUITE" '$1 == "deb" && $3 == s { print $2; exit }'
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822 stanzas: URIs: and Suites: fields, blank-line separated.
		awk -v s="$SUITE" '
			/^[ \t]*$/ { if (uri != "" && hit) { print uri; exit } uri = ""; hit = 0; next }
			tolower($1) == "uris:" { uri = $2 }
			tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
			END { if (uri != "" && hit) print uri }' "$f"
	done
}

uri=${DEBIAN_MIRROR:-$(mirror | head -n1)}
if [ -z "$uri" ]; then
	log "ERROR: no apt source for $SUITE in /etc/apt (set DEBIAN_MIRROR=URI of a Debian mirror)"
	exit 1
fi
uri=${uri%/}

mkdir -p "$CACHE/firmware"
tmp="$CACHE/firmware/.download-$$"
rm -rf "$tmp"
mkdir -p "$tmp/root"
trap 'rm -rf "$tmp"' EXIT

echo "$PACKAGES" | while read -r pool sum; do
	[ -n "$pool" ] || continue
	deb="$tmp/$(basename "$pool")"
	log "fetching $(basename "$pool")"
	curl -fsS --retry 3 -m 300 -o "$deb" "$uri/$pool"
	echo "$sum  $deb" | sha256sum -c --quiet - >&2 || {
		log "ERROR: $(basename "$pool"): sha256 is not the pinned $sum"
		exit 1
	}
	dpkg-deb -x "$deb" "$tmp/root"
	basename "$pool" >>"$tmp/root/.stamp"
done

# bookworm's packages install under /lib/firmware (usrmerge moves them
# later); take whichever the packages used.
rm -rf "$out"
mkdir -p "$out/lib"
if [ -d "$tmp/root/usr/lib/firmware" ]; then
	mv "$tmp/root/usr/lib/firmware" "$out/lib/firmware"
else
	mv "$tmp/root/lib/firmware" "$out/lib/firmware"
fi
mv "$tmp/root/.stamp" "$out/.stamp"
log "firmware $FIRMWARE_SET ready in $out"
echo "$out/lib/firmware"
