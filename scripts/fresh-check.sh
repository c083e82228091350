#!/usr/bin/env bash
# fresh-check.sh: the README's two commands (`make qemu`, `make test`) on a
# fresh Debian 12 machine, as a new user would run them (make fresh-check).
#
# 1. A minimal Debian 12 root: debootstrap's minbase variant of bookworm
#    from the mirror the host's apt uses, with the same bookworm,
#    bookworm-updates and bookworm-security sources a Debian 12 machine
#    has, plus the README's prerequisites: git and make (installed without
#    recommends, so that everything else must come from the Makefile).
#    Cached as $CACHE/fresh/bookworm-minbase.tar.gz (apt's lists and
#    downloads removed) with the list of minbase's own packages beside it
#    (bookworm-minbase.packages, which internal/hostdeps' test reads);
#    delete both to build the root again.
# 2. A per-run copy of that root under $FRESH_DIR, a `git clone` of this
#    repository's committed HEAD into /root/netinit (uncommitted changes are
#    not tested), and the host's site configuration copied in (read, never
#    changed): resolv.conf and the local CA certificates of
#    /usr/local/share/ca-certificates (a TLS-intercepting proxy's, say).
# 3. In a new mount and PID namespace, so that no mount and no process can
#    outlive the run: the root bound on itself (`ip netns exec` needs / to
#    be a mount point), /proc, /sys, /dev (with /dev/pts and /dev/net/tun),
#    /run as a tmpfs (`ip netns` keeps its names in /run/netns: the root's
#    own, so lab namespaces cannot collide with tests on the host),
#    /usr/local/go read-only; then `make qemu` and `make test` in the clone
#    with PATH=/usr/local/go/bin:... and the host's Go proxy settings, each
#    bounded by a timeout, each timed.
# 4. Always (also on failure or interrupt): every process of the run is
#    killed, the root is removed, and no mount may remain under it.
#
# Environment: CACHE (.cache), BUILD (build: the logs go to
# $BUILD/fresh-check), FRESH_DIR (where the per-run root goes, default
# /var/tmp: it needs ~6 GiB), FRESH_MIRROR (the Debian mirror; default the
# host apt's), FRESH_TIMEOUT_QEMU (40m), FRESH_TIMEOUT_TEST (120m), GO (go).
# Output: the time of each command and PASS or FAIL; exit status 0 on PASS.
set -euo pipefail

# inside ROOT LOGS: in the new namespaces, mount, run and time.
inside() {
	local root=$1 logs=$2 cmd var start st took verdict rc=0 env kv
	mount --bind "$root" "$root"
	mount -t proc proc "$root/proc"
	mount --bind /sys "$root/sys"
	mount --rbind /dev "$root/dev"
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
	mkdir -p "$root/usr/local/go"
	mount --bind /usr/local/go "$root/usr/local/go"
	mount -o remount,bind,ro "$root/usr/local/go"
	env=(HOME=/root USER=root LOGNAME=root LANG=C.UTF-8 TERM=dumb
		PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
	while IFS= read -r kv; do env+=("$kv"); done <"$logs/goenv"
	for cmd in qemu test; do
		var=FRESH_TIMEOUT_${cmd^^}
		start=$(date +%s)
		set +e
		timeout --kill-after=30s "${!var}" chroot "$root" /usr/bin/env -i "${env[@]}" \
			/bin/bash -c 'cd /root/netinit && exec make "$0"' "$cmd" 2>&1 | tee "$logs/$cmd.log"
		st=${PIPESTATUS[0]}
		set -e
		took=$(($(date +%s) - start))
		verdict=ok
		[ "$st" -eq 0 ] || verdict="FAILED (exit $st$([ "$st" -ne 124 ] || echo ", timeout ${!var}"))"
		printf 'make %s\t%dm%02ds\t%s\n' "$cmd" $((took / 60)) $((took % 60)) "$verdict" >>"$logs/times"
		echo "fresh-check: make $cmd took $((took / 60))m$((took % 60))s: $verdict"
		[ "$st" -eq 0 ] || { rc=1; break; }
	done
	return $rc
}

log() { echo "fresh-check: $*" >&2; }

# Each long step runs in the background (CMD &; wait_job SIG) so that an
# interrupt is handled at once; stop_job ends it with SIG: timeout(1)
# passes SIGTERM on to its command, and unshare --kill-child (which ignores
# SIGTERM) takes its namespace with it when it dies of SIGKILL.
job= jobsig=
wait_job() {
	job=$! jobsig=$1
	local st=0
	wait "$job" || st=$?
	job=
	return $st
}
stop_job() {
	[ -z "$job" ] || { kill "-$jobsig" "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true; }
	job=
}

run= base=
cleanup() {
	local rc=$? d p r m
	set +e
	trap - EXIT INT TERM
	stop_job
	for d in $run $base; do
		# Every process whose root is in the run's tree.
		for p in /proc/[0-9]*; do
			r=$(readlink "$p/root" 2>/dev/null) || continue
			case $r in "$d" | "$d"/*) kill -9 "${p#/proc/}" 2>/dev/null ;; esac
		done
		# The mounts were made in the run's own namespace, gone with it:
		# none should be seen here. Whatever is, is unmounted, deepest first.
		findmnt -rn -o TARGET | grep -E "^$d(/|$)" | sort -r | while read -r m; do umount -l "$m"; done
		if findmnt -rn -o TARGET | grep -qE "^$d(/|$)"; then
			log "ERROR: mounts left under $d; not removing it"
			rc=1
			continue
		fi
		rm -rf --one-file-system "$d"
	done
	exit $rc
}

main() {
	: "${CACHE:=.cache}" "${BUILD:=build}" "${FRESH_DIR:=/var/tmp}" "${GO:=go}"
	: "${FRESH_TIMEOUT_QEMU:=40m}" "${FRESH_TIMEOUT_TEST:=120m}"
	export FRESH_TIMEOUT_QEMU FRESH_TIMEOUT_TEST
	local self src cache logs sources mirror tarball root head v val rc
	self=$(readlink -f "$0")
	src=$(git rev-parse --show-toplevel)
	cd "$src"
	mkdir -p "$CACHE/fresh" "$BUILD"
	cache=$(cd "$CACHE/fresh" && pwd)
	logs=$(cd "$BUILD" && pwd)/fresh-check
	rm -rf "$logs"
	mkdir -p "$logs"

	# The host apt's Debian sources for bookworm: "deb URI SUITE main".
	sources=$(apt-cache policy | awk '$3 ~ /^bookworm(-updates|-security)?\/main$/ { split($3, s, "/"); print "deb " $2 " " s[1] " main" }' | sort -u)
	mirror=${FRESH_MIRROR:-$(printf '%s\n' "$sources" | awk '$3 == "bookworm" { print $2; exit }')}
	[ -n "$mirror" ] || { log "no bookworm mirror in the host's apt sources; set FRESH_MIRROR"; exit 1; }
	[ -n "$sources" ] || sources="deb $mirror bookworm main"

	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	# 1. The cached root.
	tarball=$cache/bookworm-minbase.tar.gz
	if [ ! -f "$tarball" ] || [ ! -f "$cache/bookworm-minbase.packages" ]; then
		base=$(mktemp -d "$FRESH_DIR/netinit-fresh-base.XXXXXX")
		log "debootstrap --variant=minbase bookworm from $mirror (cached in $tarball)"
		# In its own mount namespace: whatever debootstrap mounts dies with it.
		timeout --kill-after=30s 30m unshare --mount --propagation=private -- \
			debootstrap --variant=minbase bookworm "$base/root" "$mirror" >"$logs/debootstrap.log" 2>&1 &
		wait_job TERM || { tail -n 20 "$logs/debootstrap.log"; log "debootstrap failed (log: $logs/debootstrap.log)"; exit 1; }
		# What minbase has, before the prerequisites.
		chroot "$base/root" dpkg-query -W -f '${Package}\n' | sort >"$cache/bookworm-minbase.packages.tmp"
		printf '%s\n' "$sources" >"$base/root/etc/apt/sources.list"
		cp -L /etc/resolv.conf "$base/root/etc/resolv.conf"
		log "installing the README's prerequisites: git make"
		timeout --kill-after=30s 15m unshare --mount --propagation=private --pid --fork --kill-child -- \
			bash -c 'mount -t proc proc "$0/proc" && chroot "$0" /usr/bin/env -i DEBIAN_FRONTEND=noninteractive \
				PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends git make && apt-get clean"' \
			"$base/root" >>"$logs/debootstrap.log" 2>&1 &
		wait_job TERM || { tail -n 20 "$logs/debootstrap.log"; log "installing git and make failed"; exit 1; }
		rm -rf "$base/root/var/lib/apt/lists/"* "$base/root/etc/resolv.conf"
		tar --numeric-owner -C "$base/root" -czf "$tarball.tmp" .
		mv "$cache/bookworm-minbase.packages.tmp" "$cache/bookworm-minbase.packages"
		mv "$tarball.tmp" "$tarball"
		rm -rf --one-file-system "$base"
		base=
	fi

	# 2. The per-run root, the site configuration, the clone.
	run=$(mktemp -d "$FRESH_DIR/netinit-fresh.XXXXXX")
	root=$run/root
	mkdir "$root"
	tar --numeric-owner -C "$root" -xzf "$tarball"
	cp -L /etc/resolv.conf "$root/etc/resolv.conf"
	if [ -d /usr/local/share/ca-certificates ]; then
		mkdir -p "$root/usr/local/share"
		cp -rL /usr/local/share/ca-certificates "$root/usr/local/share/"
	fi
	head=$(git rev-parse HEAD)
	[ -z "$(git status --porcelain)" ] || log "uncommitted changes are not tested: the clone is of HEAD $head"
	timeout 5m git clone -q --no-hardlinks "$src" "$root/root/netinit"
	[ "$(git -C "$root/root/netinit" rev-parse HEAD)" = "$head" ] || { log "the clone is not at HEAD $head"; exit 1; }
	# The host's Go module settings: the module proxy is how modules come.
	for v in GOPROXY GONOPROXY GOPRIVATE GOSUMDB GONOSUMDB GOINSECURE GOFLAGS; do
		val=$("$GO" env "$v")
		[ -z "$val" ] || echo "$v=$val"
	done >"$logs/goenv"
	log "root $root (Debian $(cat "$root/etc/debian_version")), clone of $head"
	log "go settings: $(tr '\n' ' ' <"$logs/goenv")"

	# 3. The two commands.
	rc=0
	unshare --mount --propagation=private --pid --fork --kill-child -- "$self" --inside "$root" "$logs" &
	wait_job KILL || rc=$?
	echo "fresh-check: $(date -u +%Y-%m-%d), $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), load $(cut -d' ' -f1-3 /proc/loadavg)"
	sed 's/^/fresh-check:   /' "$logs/times" 2>/dev/null || true
	if [ $rc -eq 0 ]; then echo "fresh-check: PASS"; else echo "fresh-check: FAIL (logs: $logs)"; fi
	exit $rc
}

if [ "${1:-}" = --inside ]; then
	inside "$2" "$3"
else
	main "$@"
fi
