#!/bin/sh
# mkrelease.sh: the release directory from a kernel and netinit's image.
#
# Usage: mkrelease.sh OUT VMLINUZ INITRAMFS
#   OUT        the release directory (created; existing files replaced)
#   VMLINUZ    the kernel (Debian's hardware flavour)
#   INITRAMFS  netinit's image (mkinitramfs), copied under its own name
# Environment:
#   RELEASE_APPEND     kernel parameters added to both boot paths
#   SOURCE_DATE_EPOCH  every timestamp in the USB image (default 0)
#
# Writes OUT/vmlinuz, OUT/<initramfs>, OUT/netinit.ipxe, OUT/netinit-usb.img,
# OUT/SHA256SUMS. Two runs with the same inputs write the same bytes: the
# GPT's GUIDs and the FAT volume id are fixed, FAT times are
# SOURCE_DATE_EPOCH (mtools honours it), mkfs.fat runs with --invariant.
# Tools: sfdisk (fdisk), mkfs.fat (dosfstools), mmd/mcopy (mtools),
# systemd-boot's EFI binary (systemd-boot-efi).
set -eu

out=$1 vmlinuz=$2 initramfs=$3
: "${RELEASE_APPEND:=}"
: "${SOURCE_DATE_EPOCH:=0}"
export SOURCE_DATE_EPOCH TZ=UTC

# The default kernel parameters: kernel messages on the serial port and the
# screen; the last console= (the screen) is /dev/console, where netinit
# prints its events. cryptomgr.notests skips the kernel's crypto
# self-tests (test vectors, no defence; ~0.6 s under QEMU TCG, see
# qemu.BootParams); fips=1 runs them regardless.
params="console=ttyS0,115200n8 console=tty0 quiet cryptomgr.notests"
[ -z "$RELEASE_APPEND" ] || params="$params $RELEASE_APPEND"
initrd=$(basename "$initramfs")
bootefi=/usr/lib/systemd/boot/efi/systemd-bootx64.efi

mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f "$out/SHA256SUMS"
cp "$vmlinuz" "$out/vmlinuz"
[ "$(cd "$(dirname "$initramfs")" && pwd)/$initrd" = "$(cd "$out" && pwd)/$initrd" ] || cp "$initramfs" "$out/$initrd"

# iPXE: names without a scheme are relative to the script's own URI
# (served by TFTP or HTTP from the same directory). BOOTIF tells netinit
# which NIC booted (pxelinux's format, "01-" = Ethernet); initrd= names the
# initrd for the kernel's EFI stub when iPXE runs under UEFI.
cat >"$out/netinit.ipxe" <<IPXE
#!ipxe
# netinit: boot 0-OS's network init from this directory.
kernel vmlinuz initrd=$initrd BOOTIF=01-\${net0/mac:hexhyp} $params
initrd $initrd
boot
IPXE

# USB stick: GPT with one EFI system partition (FAT32) holding
# systemd-boot as the removable-media loader (EFI/BOOT/BOOTX64.EFI), its
# entry, the kernel and the image. 1 MiB before the partition (GPT) and
# 1 MiB after (backup GPT).
kib=$(( ( $(stat -c %s "$vmlinuz") + $(stat -c %s "$initramfs") + $(stat -c %s "$bootefi") ) / 1024 ))
esp_mib=$(( kib / 1024 + 8 ))
[ "$esp_mib" -ge 40 ] || esp_mib=40 # FAT32 needs >= 65525 clusters
esp=$tmp/esp.img
mkfs.fat -C -F 32 -s 1 -n NETINIT -i 4e455449 --invariant "$esp" $((esp_mib * 1024)) >/dev/null
printf 'timeout 0\ndefault netinit.conf\nrandom-seed-mode off\n' >"$tmp/loader.conf"
printf 'title   netinit (0-OS network init)\nlinux   /vmlinuz\ninitrd  /%s\noptions %s\n' "$initrd" "$params" >"$tmp/netinit.conf"
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries
mcopy -i "$esp" "$bootefi" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$esp" "$tmp/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$tmp/netinit.conf" ::/loader/entries/netinit.conf
mcopy -i "$esp" "$vmlinuz" ::/vmlinuz
mcopy -i "$esp" "$initramfs" "::/$initrd"

img=$out/netinit-usb.img
rm -f "$img"
truncate -s $(( (esp_mib + 2) * 1024 * 1024 )) "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" <<GPT
label: gpt
label-id: 6E657469-6E69-7400-8000-000000000001
first-lba: 2048
start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=6E657469-6E69-7400-8000-000000000002, name="netinit"
GPT
dd if="$esp" of="$img" bs=1M seek=1 conv=notrunc status=none

(cd "$out" && sha256sum vmlinuz "$initrd" netinit.ipxe netinit-usb.img >SHA256SUMS)
echo "release in $out:"
(cd "$out" && ls -l vmlinuz "$initrd" netinit.ipxe netinit-usb.img SHA256SUMS | awk '{printf "  %-24s %10d bytes\n", $9, $5}')
