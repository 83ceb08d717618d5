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

# apt_install PACKAGE...: Debian's packages, waiting for the dpkg lock (the two preparers may install at once)
apt_install() {
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
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
