# Helpers shared by the CI stages (sourced, not run).

# remove_tree DIR: removes a root filesystem or its half-built .tmp, after unmounting whatever a killed
# run left mounted under it (mmdebstrap mounts /proc, /sys and /dev inside while it installs; cut off,
# it leaves them, and rm then fails on "Read-only file system" inside sys/). Deepest mounts first.
remove_tree() {
    local dir="$1" target
    [ -e "$dir" ] || return 0
    dir="$(cd "$dir" && pwd -P)"
    findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0 "/", d) == 1' | sort -r | while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done
    if findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0 "/", d) == 1' | grep -q .; then
        echo "error: $dir still has mounts under it after unmounting; unmount them by hand (findmnt | grep $dir)" >&2
        return 1
    fi
    # --one-file-system: never descend into a mount that appeared meanwhile (it could be the host's /sys)
    rm -rf --one-file-system "$dir"
}

# apt_install PACKAGE...: Debian's packages. The two preparers start at once on a new machine, and apt's
# own locks fail at once instead of waiting ("Could not get lock /var/lib/apt/lists/lock", seen here),
# so they take turns on a lock of ours (fd 8, released when the subshell ends).
apt_install() {
    (
        flock -w 900 8 || { echo "error: /var/lock/yolox_deploy-apt.lock held for 15 min" >&2; exit 1; }
        apt-get -o DPkg::Lock::Timeout=300 update -qq
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "$@" >/dev/null
    ) 8>/var/lock/yolox_deploy-apt.lock
}

# lock_cache DIR: holds DIR's lock until this script exits, waiting for a previous run's stage that is
# still going (one killed with SIGKILL, whose trap could not stop its preparers), so that two stages
# never build the same root filesystem at once.
lock_cache() {
    mkdir -p "$1"
    exec 9>"$1/.lock"
    if ! flock -n 9; then
        echo "waiting for another run's stage that holds $1/.lock" >&2
        flock -w 1800 9 || { echo "error: $1/.lock still held after 30 min" >&2; return 1; }
    fi
}
