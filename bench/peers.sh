#!/usr/bin/env bash
# peers.sh - berth's peer driver: measures docker (20.10) and podman (4.3) on this machine so that
# berth can be compared with them side by side (bench/containers.py and bench/images.py call it;
# berth's own side is measured by those scripts on the same kind of file system, same images).
# It began as the reference driver handed to the project and keeps its phases, floors, images
# and file systems (it adds the commit / diff floors, the pull phase and skopeo's copy), so
# results compare with the bench/results-*.json recorded with the reference.
#
# Every bench run sets up an ISOLATED engine instance under a fresh temp dir (own dockerd
# data-root/exec-root/socket/pidfile/config-file, or own podman root/runroot/tmpdir/
# network-config-dir), imports two images built locally (busybox = the host's static
# /bin/busybox + applet symlinks; debian = tar of $DEBROOT), measures, writes JSON, prints a
# table and tears everything down (stops the daemons it started, unmounts, detaches its loop).
#
# Usage:
#   peers.sh bench --engine docker|podman --driver overlay2|overlay|vfs|btrfs --json OUT [--fs FS] [opts]
#   peers.sh floor --json OUT [--fs FS] [opts]   # runc run, exec, tar|sha256, tar -x, cp -a floors
#                                                # (+ skopeo copy to a dir: with --registry)
#   peers.sh table RESULT.json...                # re-print the tables of result files
#
# --fs FS: where the engine's data root (or the floor's copy targets) lives:
#   ext4   fresh sparse file on $WORKBASE, loop device, mkfs.ext4 (journal on), mounted  [default]
#   xfs    same with mkfs.xfs            btrfs  same with mkfs.btrfs   [forced for --driver btrfs]
#   host   a plain directory under $WORKBASE (on a journal-less root ext4 every inode creation
#          linearly skips inodes deleted in the last 5-10 minutes, so results there depend on
#          what was deleted shortly before)
#
# Options:
#   --workdir DIR          parent of the temp dirs (default /tmp/peerbench)
#   --reps-run N           run --rm latency reps (default 20, +2 warm-ups reported separately)
#   --n-lifecycle N        containers per create/start/wait/rm batch (default 50)
#   --reps-lifecycle N     batches (default 3)
#   --reps-commit N        commit reps, each on a fresh container (default 3)
#   --reps-diff N          diff reps on one fresh container (default 5)
#   --reps-io N            import / save / load / pull reps (default 3)
#   --reps-floor N         reps of the file-system floors (default 5; fsfloor in bench: --reps-io)
#   --phases LIST          comma list of fsfloor,import,run,lifecycle,commit,diff,save,load,pull
#                          (default all; pull only with --registry)
#   --registry HOST:PORT   a plain-http registry holding --pull-ref (bench/images.py starts one): the
#                          pull phase pulls it into an empty instance; floor runs `skopeo copy` of it
#   --pull-ref REPO:TAG    the image pulled from --registry (default bench/debian:bench)
#   --loop-size SIZE       size of the sparse loop file (default 16G)
#   --keep                 keep the temp dir (engines are still stopped and mounts removed)
#   --quick                tiny rep counts (smoke test)
# Environment: DOCKER_CLI (default /usr/bin/docker = the 20.10 CLI matching dockerd), DOCKERD, PODMAN,
#   RUNC, DEBROOT (default .cache/debroot of this checkout, only read; `make .cache/debroot.done`
#   makes it), BUSYBOX_BIN (default /bin/busybox, static).
#
# Timing: bash $EPOCHREALTIME around one CLI invocation (wall clock, us resolution), its
# stdout/stderr going to files. Page cache warm. No fsync inside timed regions by this script;
# `sync` (plus `btrfs filesystem sync` + `btrfs subvolume sync` on btrfs) runs before every
# timed I/O step so writeback / subvolume cleanup of the previous step does not land in it.

set -uo pipefail
export LC_ALL=C
unset DOCKER_HOST DOCKER_CONTEXT DOCKER_TLS_VERIFY DOCKER_CERT_PATH

if (( BASH_VERSINFO[0] < 5 )); then echo "peers.sh needs bash >= 5 (EPOCHREALTIME)" >&2; exit 2; fi
if [[ $(id -u) != 0 ]]; then echo "peers.sh must run as root" >&2; exit 2; fi

SELF=$(readlink -f "$0")
PY=/usr/bin/python3; [[ -x $PY ]] || PY=python3
DOCKER_CLI=${DOCKER_CLI:-/usr/bin/docker}
DOCKERD=${DOCKERD:-dockerd}
PODMAN=${PODMAN:-podman}
RUNC=${RUNC:-runc}
DEBROOT=${DEBROOT:-$(dirname "$(dirname "$SELF")")/.cache/debroot}
BUSYBOX_BIN=${BUSYBOX_BIN:-/bin/busybox}

WORKBASE=/tmp/peerbench
REPS_RUN=20 N_LC=50 REPS_LC=3 REPS_COMMIT=3 REPS_DIFF=5 REPS_IO=3 REPS_FLOOR=5
PHASES="fsfloor,import,run,lifecycle,commit,diff,save,load,pull"
REGISTRY="" PULL_REF=bench/debian:bench
LOOP_SIZE=16G
KEEP=0 JSON_OUT="" ENGINE="" DRIVER="" FS="" POSARGS=()

# The process run inside the debian container before commit / diff.
read -r -d '' WRITER <<'PYEOF'
import os
os.makedirs('/bench/small')
for i in range(5000):
    with open('/bench/small/f%05d' % i, 'wb') as f:
        f.write(os.urandom(1024))
with open('/bench/big.bin', 'wb') as f:
    for i in range(200):
        f.write(os.urandom(1 << 20))
victims = []
for root, dirs, files in os.walk('/usr/share/doc'):
    for n in files:
        p = os.path.join(root, n)
        if os.path.isfile(p) and not os.path.islink(p):
            victims.append(p)
victims.sort()
assert len(victims) >= 100, len(victims)
for p in victims[:100]:
    os.remove(p)
print('writer ok: 5000x1KiB + 200MiB written, 100 base files deleted')
PYEOF

# The same files, written by the host's python3 under a directory (the commit / diff floors).
read -r -d '' FLOOR_WRITER <<'PYEOF'
import os, sys
root = sys.argv[1]
os.makedirs(root + '/bench/small')
for i in range(5000):
    with open(root + '/bench/small/f%05d' % i, 'wb') as f:
        f.write(os.urandom(1024))
with open(root + '/bench/big.bin', 'wb') as f:
    for i in range(200):
        f.write(os.urandom(1 << 20))
PYEOF

usage() { sed -n '2,53p' "$SELF" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

CMD=${1:-}; [[ -n $CMD ]] || usage; shift
while (( $# )); do
  case $1 in
    --engine) ENGINE=$2; shift 2;;
    --driver) DRIVER=$2; shift 2;;
    --fs) FS=$2; shift 2;;
    --json) JSON_OUT=$2; shift 2;;
    --workdir) WORKBASE=$2; shift 2;;
    --reps-run) REPS_RUN=$2; shift 2;;
    --n-lifecycle) N_LC=$2; shift 2;;
    --reps-lifecycle) REPS_LC=$2; shift 2;;
    --reps-commit) REPS_COMMIT=$2; shift 2;;
    --reps-diff) REPS_DIFF=$2; shift 2;;
    --reps-io) REPS_IO=$2; shift 2;;
    --reps-floor) REPS_FLOOR=$2; shift 2;;
    --phases) PHASES=$2; shift 2;;
    --loop-size) LOOP_SIZE=$2; shift 2;;
    --registry) REGISTRY=$2; shift 2;;
    --pull-ref) PULL_REF=$2; shift 2;;
    --keep) KEEP=1; shift;;
    --quick) REPS_RUN=3 N_LC=5 REPS_LC=1 REPS_COMMIT=1 REPS_DIFF=2 REPS_IO=1 REPS_FLOOR=2; shift;;
    -h|--help) usage 0;;
    -*) echo "unknown option $1" >&2; usage;;
    *) POSARGS+=("$1"); shift;;
  esac
done
# ----------------------------------------------------------------------------- recording
RUN="" LOG="" SAMPLES="" INFO="" ERRORS="" CMDS=""
LAST_US=0
rec()  { printf '%s\t%s\n' "$1" "$2" >>"$SAMPLES"; }            # metric <tab> microseconds
info() { printf '%s\t%s\n' "$1" "${2//$'\n'/\\n}" >>"$INFO"; }    # key <tab> value
err()  { printf '%s\t%s\n' "$1" "${2//$'\n'/\\n}" >>"$ERRORS"; echo "  ERROR [$1]: $2" >&2; }
say()  { echo "[$(date +%T)] $*" >&2; }
cmdline() {   # KEY argv...   (shell-quoted; the bare tokens | && ; are kept literal)
  local k=$1 a s=""; shift
  for a in "$@"; do case $a in '|'|'&&'|';') s+="$a ";; *) s+="$(printf '%q' "$a") ";; esac; done
  printf '%s\t%s\n' "$k" "${s% }" >>"$CMDS"
}
shortcmd() { local a s=""; for a in "$@"; do (( ${#a} > 60 )) && a="<${#a}-char arg>"; s+="$(printf '%q' "$a") "; done; echo "${s% }"; }

# tm METRIC STDOUT-FILE cmd...   time one command; stderr -> $LOG; sample recorded when rc == 0
tm() {
  local m=$1 out=$2 t0 t1 rc; shift 2
  t0=$EPOCHREALTIME
  "$@" >"$out" 2>>"$LOG"; rc=$?
  t1=$EPOCHREALTIME
  LAST_US=$(( ${t1/./} - ${t0/./} ))
  if (( rc == 0 )); then rec "$m" "$LAST_US"; else err "$m" "rc=$rc: $(shortcmd "$@") :: $(tail -n 2 "$LOG" | tr '\n' ' ')"; fi
  return $rc
}
# untimed helper: output to the log, failures recorded
q() { "$@" >>"$LOG" 2>&1 || { local rc=$?; err "${QCTX:-cmd}" "rc=$rc: $(shortcmd "$@") :: $(tail -n 2 "$LOG" | tr '\n' ' ')"; return $rc; }; }

has_phase() { [[ ,$PHASES, == *,$1,* ]]; }

DATA_MNT="" LOOPDEV=""
settle() {
  sync
  if [[ $FS == btrfs && -n $DATA_MNT ]]; then
    # commit the transaction and poke the cleaner, then wait until deleted subvolumes are really gone
    btrfs filesystem sync "$DATA_MNT" >/dev/null 2>&1
    btrfs subvolume sync "$DATA_MNT" >/dev/null 2>&1 || true
  fi
}

new_run_dir() {   # SHORTNAME  (kept short: podman refuses runroots longer than 50 chars)
  mkdir -p "$WORKBASE"
  RUN=$(mktemp -d "$WORKBASE/$1.XXXXXX")
  LOG=$RUN/bench.log SAMPLES=$RUN/samples.tsv INFO=$RUN/info.tsv ERRORS=$RUN/errors.tsv CMDS=$RUN/cmds.tsv
  : >"$SAMPLES"; : >"$INFO"; : >"$ERRORS"; : >"$CMDS"; : >"$LOG"; : >"$RUN/started_pids"
  export TMPDIR=$RUN/tmp; mkdir -p "$TMPDIR"     # podman's image_copy_tmp_dir falls back to $TMPDIR
  if [[ $ENGINE == docker ]]; then               # keep the docker CLI away from ~/.docker
    export DOCKER_CONFIG=$RUN/docker-cli-config; mkdir -p "$DOCKER_CONFIG"; echo '{}' >"$DOCKER_CONFIG/config.json"
  else unset DOCKER_CONFIG; fi                   # podman would read $DOCKER_CONFIG/config.json for auth
  info workdir "$RUN"
  info loadavg_start "$(cat /proc/loadavg)"
}

# ----------------------------------------------------------------------------- data file system
setup_datafs() {   # uses FS; sets DATA_MNT
  case $FS in
    host) DATA_MNT=$RUN/data; mkdir -p "$DATA_MNT"
          info data_fs "host directory $DATA_MNT on $(findmnt -n -o SOURCE,FSTYPE,OPTIONS -T "$DATA_MNT") (journal: $(jtask "$DATA_MNT"))"
          return 0;;
    ext4|xfs|btrfs) ;;
    *) err setup "unknown --fs $FS"; return 1;;
  esac
  truncate -s "$LOOP_SIZE" "$RUN/fs.img"
  LOOPDEV=$(losetup -f --show "$RUN/fs.img") || { err setup "losetup failed"; return 1; }
  echo "$LOOPDEV" >"$RUN/loopdev"
  local mk
  case $FS in
    ext4)  mk=(mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0,nodiscard "$LOOPDEV");;
    xfs)   mk=(mkfs.xfs -q -f -K "$LOOPDEV");;
    btrfs) mk=(mkfs.btrfs -q -f -K "$LOOPDEV");;
  esac
  "${mk[@]}" >>"$LOG" 2>&1 || { err setup "${mk[*]} failed: $(tail -n 3 "$LOG")"; return 1; }
  DATA_MNT=$RUN/fs; mkdir -p "$DATA_MNT"
  mount "$LOOPDEV" "$DATA_MNT" || { err setup "mount $LOOPDEV failed"; return 1; }
  cmdline data_fs_mkfs "${mk[@]}"
  info data_fs "$FS on $LOOPDEV (sparse $LOOP_SIZE file $RUN/fs.img on $(findmnt -n -o FSTYPE -T "$RUN")), mounted at $DATA_MNT with $(findmnt -n -o OPTIONS "$DATA_MNT")"
}
jtask() { local d; d=$(findmnt -n -o SOURCE -T "$1"); d=${d##*/}; [[ -r /sys/fs/ext4/$d/journal_task ]] && cat "/sys/fs/ext4/$d/journal_task" || echo n/a; }

# ----------------------------------------------------------------------------- inputs
make_busybox_rootfs() {   # DIR
  local r=$1 p
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,etc,tmp,root}
  cp "$BUSYBOX_BIN" "$r/bin/busybox"
  while read -r p; do
    [[ $p == bin/busybox || -e $r/$p || -L $r/$p ]] && continue
    ln -s /bin/busybox "$r/$p"
  done < <("$BUSYBOX_BIN" --list-full)
}
make_inputs() {
  say "building inputs: busybox rootfs tar, debian rootfs tar of $DEBROOT"
  make_busybox_rootfs "$RUN/busybox-rootfs"
  tar --numeric-owner -C "$RUN/busybox-rootfs" -cf "$RUN/busybox.tar" .
  tar --numeric-owner -C "$DEBROOT" -cf "$RUN/debroot.tar" .
  info busybox_tar_bytes "$(stat -c %s "$RUN/busybox.tar")"
  info debroot_tar_bytes "$(stat -c %s "$RUN/debroot.tar")"
  info debroot_entries "$(find "$DEBROOT" -xdev | wc -l)"
  info debroot_du_kib "$(du -sk "$DEBROOT" | cut -f1)"
}

# ----------------------------------------------------------------------------- engines
# E ... : the engine under test;  E2 ... : the separate, empty instance used for load
ECLI=() ECLI2=() IMG_BB="" IMG_DEB=""

start_dockerd() {   # NAME DATAROOT -> echo socket path
  local d=$RUN/$1 data=$2 pid i
  mkdir -p "$d/exec" "$data"
  echo '{}' >"$d/daemon.json"
  local args=("$DOCKERD" --config-file "$d/daemon.json" --data-root "$data" --exec-root "$d/exec"
              -H "unix://$d/docker.sock" --pidfile "$d/docker.pid"
              --iptables=false --ip6tables=false --bridge=none --storage-driver "$DRIVER")
  cmdline "dockerd_$1" "${args[@]}"
  "${args[@]}" >"$d/dockerd.log" 2>&1 &
  pid=$!
  echo "$pid" >>"$RUN/started_pids"
  for ((i = 0; i < 240; i++)); do
    "$DOCKER_CLI" -H "unix://$d/docker.sock" version >/dev/null 2>&1 && { echo "$d/docker.sock"; return 0; }
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  err setup "dockerd $1 did not come up: $(tail -n 5 "$d/dockerd.log")"
  return 1
}

stop_pid() {   # PID  (only PIDs recorded in started_pids)
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < 240; i++)); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.25; done
  say "pid $pid did not stop on TERM, sending KILL"; kill -KILL "$pid" 2>/dev/null; sleep 0.5
}

# Podman (as root) asks the OCI runtime for RLIMIT_NOFILE=1048576 unless told otherwise. Here the
# hard limit is $(ulimit -Hn) and root lacks CAP_SYS_RESOURCE, so every container start fails with
# "error setting rlimit type 7: operation not permitted". Podman therefore gets a containers.conf
# that is the system one plus default_ulimits = nofile=<current hard>:<current hard> (what docker
# containers inherit from dockerd here) and nproc=<pid_max>:<pid_max> (podman's built-in default).
podman_conf() {
  local hn np src=/usr/share/containers/containers.conf line
  hn=$(ulimit -Hn); np=$(cat /proc/sys/kernel/pid_max)
  line="default_ulimits = [\"nofile=$hn:$hn\", \"nproc=$np:$np\"]"
  [[ -f /etc/containers/containers.conf ]] && src=/etc/containers/containers.conf
  if [[ -f $src ]] && grep -q '^\[containers\]' "$src"; then
    awk -v u="$line" '{ print } /^\[containers\]/ && !d { print u; d = 1 }' "$src" >"$RUN/containers.conf"
  else
    printf '[containers]\n%s\n' "$line" >"$RUN/containers.conf"
  fi
  export CONTAINERS_CONF=$RUN/containers.conf
  info podman_containers_conf "CONTAINERS_CONF=$RUN/containers.conf = $src + '$line' (ulimit -Hn=$hn; CAP_SYS_RESOURCE in CapEff: $(( (0x$(awk '/^CapEff/ {print $2}' /proc/self/status) >> 24) & 1 )))"
}

podman_cli() {  # NAME DATA-PARENT RUNROOT ARRAYNAME -> fills the array with the podman command line
  local name=$1 parent=$2 rr=$3
  local -n arr=$4
  local p=$RUN/$name
  (( ${#rr} <= 50 )) || { err setup "podman runroot '$rr' is longer than 50 characters (podman refuses it); use a shorter --workdir"; return 1; }
  mkdir -p "$parent/root" "$rr" "$p/tmp" "$p/net"
  if [[ -z ${CONTAINERS_STORAGE_CONF:-} || $CONTAINERS_STORAGE_CONF != "$RUN"/* ]]; then
    # pin storage.conf so no system storage.conf can leak in; --root/--runroot/--storage-driver override it per instance
    printf '[storage]\ndriver = "%s"\ngraphroot = "%s"\nrunroot = "%s"\n' "$DRIVER" "$parent/root" "$rr" >"$RUN/storage.conf"
    export CONTAINERS_STORAGE_CONF=$RUN/storage.conf
  fi
  arr=("$PODMAN" --root "$parent/root" --runroot "$rr" --tmpdir "$p/tmp" --storage-driver "$DRIVER"
       --cgroup-manager cgroupfs --events-backend file --runtime runc --network-config-dir "$p/net")
  cmdline "podman_$name" "${arr[@]}"
}

E()  { "${ECLI[@]}" "$@"; }
E2() { "${ECLI2[@]}" "$@"; }

engine_setup() {
  local sock
  case $ENGINE in
    docker)
      IMG_BB=busybox:bench IMG_DEB=debian:bench
      sock=$(start_dockerd docker "$DATA_MNT/docker-data") || return 1
      ECLI=("$DOCKER_CLI" -H "unix://$sock")
      cmdline docker_cli "${ECLI[@]}"
      E info --format '{{json .}}' >"$RUN/engine-info.json" 2>>"$LOG"
      E version --format '{{json .}}' >"$RUN/engine-version.json" 2>>"$LOG"
      ;;
    podman)
      IMG_BB=localhost/busybox:bench IMG_DEB=localhost/debian:bench
      podman_conf
      podman_cli podman "$DATA_MNT/podman" "$RUN/rr1" ECLI || return 1
      E info --format json >"$RUN/engine-info.json" 2>>"$LOG" || { err setup "podman info failed: $(tail -n 3 "$LOG")"; return 1; }
      E version --format json >"$RUN/engine-version.json" 2>>"$LOG"
      ;;
    *) err setup "unknown engine $ENGINE"; return 1;;
  esac
}

load_engine_setup() {   # a second, empty instance of the same engine + driver on the same data fs (once)
  local sock
  ((${#ECLI2[@]})) && return 0
  case $ENGINE in
    docker) sock=$(start_dockerd docker-load "$DATA_MNT/docker-load-data") || return 1
            ECLI2=("$DOCKER_CLI" -H "unix://$sock");;
    podman) podman_cli podman-load "$DATA_MNT/podman-load" "$RUN/rr2" ECLI2 || return 1;;
  esac
}

img_size() { E image inspect --format '{{.Size}}' "$1" 2>>"$LOG"; }
n_images() { "$@" images -aq 2>>"$LOG" | wc -l; }
ref() { if [[ $ENGINE == podman ]]; then echo "localhost/$1"; else echo "$1"; fi; }

# ----------------------------------------------------------------------------- phases
phase_fsfloor() {   # the same file-system work without an engine, on the engine's data fs, right now
  local r
  say "fs floor on the data fs: tar -x debroot.tar, cp -a $DEBROOT ($REPS_IO reps, nothing deleted until teardown)"
  for ((r = 1; r <= REPS_IO; r++)); do
    mkdir -p "$DATA_MNT/fsfloor/x$r"; settle
    tm fs_tar_x_s /dev/null tar --numeric-owner -C "$DATA_MNT/fsfloor/x$r" -xf "$RUN/debroot.tar"
  done
  for ((r = 1; r <= REPS_IO; r++)); do
    mkdir -p "$DATA_MNT/fsfloor"; settle
    tm fs_cp_a_s /dev/null cp -a "$DEBROOT" "$DATA_MNT/fsfloor/c$r"
  done
  settle
}

phase_import() {
  local r
  say "f. import debian rootfs tar ($REPS_IO reps)"
  for ((r = 1; r <= REPS_IO; r++)); do
    settle
    if [[ $ENGINE == podman ]]; then tm import_s /dev/null E import -q "$RUN/debroot.tar" "$IMG_DEB"
    else tm import_s /dev/null E import "$RUN/debroot.tar" "$IMG_DEB"; fi
    (( r < REPS_IO )) && { QCTX=import_rmi q E rmi "$IMG_DEB"; settle; }
  done
  if [[ $ENGINE == podman ]]; then cmdline import "${ECLI[@]}" import -q FILE "$IMG_DEB"; else cmdline import "${ECLI[@]}" import FILE "$IMG_DEB"; fi
}

phase_run() {
  local r
  say "a. run --rm --network none busybox /bin/true (2 warm-ups + $REPS_RUN reps)"
  settle
  for r in 1 2; do tm run_warmup_s /dev/null E run --rm --network none "$IMG_BB" /bin/true; done
  for ((r = 1; r <= REPS_RUN; r++)); do tm run_s /dev/null E run --rm --network none "$IMG_BB" /bin/true; done
  cmdline run "${ECLI[@]}" run --rm --network none "$IMG_BB" /bin/true
}

phase_lifecycle() {
  local b i n t0 t1 c0 ok wc
  say "b. create+start+wait+rm x$N_LC in sequence ($REPS_LC batches)"
  for ((b = 1; b <= REPS_LC; b++)); do
    settle
    t0=$EPOCHREALTIME
    for ((i = 1; i <= N_LC; i++)); do
      n=lc-$b-$i; c0=$EPOCHREALTIME; ok=1
      tm lc_create_s /dev/null E create --name "$n" --network none "$IMG_BB" /bin/true || ok=0
      if ((ok)); then tm lc_start_s /dev/null E start "$n" || ok=0; fi
      if ((ok)); then
        tm lc_wait_s "$RUN/wait.out" E wait "$n" || ok=0
        wc=; read -r wc <"$RUN/wait.out"; [[ $wc == 0 ]] || { err lifecycle "exit code of $n: '$wc'"; ok=0; }
      fi
      tm lc_rm_s /dev/null E rm "$n" || ok=0
      t1=$EPOCHREALTIME
      ((ok)) && rec lc_per_container_s $(( ${t1/./} - ${c0/./} ))
    done
    t1=$EPOCHREALTIME
    rec lc_batch_total_s $(( ${t1/./} - ${t0/./} ))
  done
  info lifecycle_containers_per_batch "$N_LC"
  cmdline lifecycle "${ECLI[@]}" create --name NAME --network none "$IMG_BB" /bin/true '&&' start NAME '&&' wait NAME '&&' rm NAME
}

run_writer() {  # NAME   (its duration is kept as writer_run_s, for information)
  tm writer_run_s "$RUN/writer.out" E run --name "$1" --network none "$IMG_DEB" /usr/bin/python3 -c "$WRITER" || return 1
  grep -q 'writer ok' "$RUN/writer.out" || { err writer "unexpected writer output: $(cat "$RUN/writer.out")"; return 1; }
}

phase_commit() {
  local r n
  say "c. commit of a container with 5000x1KiB + 200MiB written, 100 base files deleted ($REPS_COMMIT reps)"
  for ((r = 1; r <= REPS_COMMIT; r++)); do
    n=cm-$r
    run_writer "$n" || continue
    settle
    if [[ $ENGINE == podman ]]; then tm commit_s /dev/null E commit -q "$n" "$(ref benchcommit:$r)"
    else tm commit_s /dev/null E commit "$n" "$(ref benchcommit:$r)"; fi
    [[ $r == 1 ]] && info image_size_committed_bytes "$(img_size "$(ref benchcommit:$r)")"
    QCTX=commit_cleanup q E rm "$n"
    QCTX=commit_cleanup q E rmi "$(ref benchcommit:$r)"
    settle
  done
  cmdline writer "${ECLI[@]}" run --name NAME --network none "$IMG_DEB" /usr/bin/python3 -c WRITER
  if [[ $ENGINE == podman ]]; then cmdline commit "${ECLI[@]}" commit -q NAME IMAGE; else cmdline commit "${ECLI[@]}" commit NAME IMAGE; fi
}

phase_diff() {
  local r
  say "d. diff on such a container ($REPS_DIFF reps on one container)"
  run_writer df-1 || return 1
  settle
  for ((r = 1; r <= REPS_DIFF; r++)); do tm diff_s "$RUN/diff.out" E diff df-1; done
  info diff_lines "$(wc -l <"$RUN/diff.out")"
  info diff_deleted_lines "$(grep -c '^D ' "$RUN/diff.out")"
  QCTX=diff_cleanup q E rm df-1
  settle
  cmdline diff "${ECLI[@]}" diff NAME
}

phase_save() {
  local r
  say "e. save debian image ($REPS_IO reps)"
  for ((r = 1; r <= REPS_IO; r++)); do
    rm -f "$RUN/save.tar"; settle
    if [[ $ENGINE == podman ]]; then tm save_s /dev/null E save --format docker-archive -o "$RUN/save.tar" "$IMG_DEB"
    else tm save_s /dev/null E save -o "$RUN/save.tar" "$IMG_DEB"; fi
  done
  info save_tar_bytes "$(stat -c %s "$RUN/save.tar" 2>/dev/null || echo 0)"
  if [[ $ENGINE == podman ]]; then cmdline save "${ECLI[@]}" save --format docker-archive -o FILE "$IMG_DEB"
  else cmdline save "${ECLI[@]}" save -o FILE "$IMG_DEB"; fi
}

phase_load() {
  local r c
  say "e. load into an empty engine instance ($REPS_IO reps)"
  [[ -s $RUN/save.tar ]] || { err load "no save.tar (save phase failed or skipped)"; return 1; }
  load_engine_setup || return 1
  info load_tar_bytes "$(stat -c %s "$RUN/save.tar")"
  for ((r = 1; r <= REPS_IO; r++)); do
    settle
    c=$(n_images E2); [[ $c == 0 ]] || err load "load engine not empty before rep $r ($c images)"
    tm load_s /dev/null E2 load -q -i "$RUN/save.tar"
    E2 image inspect "$IMG_DEB" >/dev/null 2>>"$LOG" || err load "image $IMG_DEB missing after load rep $r"
    QCTX=load_cleanup q E2 rmi "$IMG_DEB"
  done
  settle
  cmdline load "${ECLI2[@]}" load -q -i FILE
}

phase_pull() {   # into the empty second instance: the first would find the imported layer and skip it
  local r c ref=$REGISTRY/$PULL_REF
  [[ -n $REGISTRY ]] || { say "g. pull: no --registry, skipped"; info pull_skipped "no --registry"; return 0; }
  say "g. pull $ref into an empty engine instance ($REPS_IO reps)"
  load_engine_setup || return 1
  local pull=(pull -q "$ref")
  [[ $ENGINE == podman ]] && pull=(pull -q --tls-verify=false "$ref")
  for ((r = 1; r <= REPS_IO; r++)); do
    settle
    c=$(n_images E2); [[ $c == 0 ]] || err pull "pull engine not empty before rep $r ($c images)"
    tm pull_s /dev/null E2 "${pull[@]}"
    E2 image inspect "$ref" >/dev/null 2>>"$LOG" || err pull "image $ref missing after pull rep $r"
    QCTX=pull_cleanup q E2 rmi "$ref"
  done
  settle
  cmdline pull "${ECLI2[@]}" "${pull[@]}"
}

probe_crun() {  # document why crun is not used (podman only)
  local out rc pc=("$PODMAN" --root "$RUN/crun-probe/root" --runroot "$RUN/rr3" --tmpdir "$RUN/crun-probe/tmp"
                   --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --network-config-dir "$RUN/crun-probe/net")
  "${pc[@]}" --runtime crun import -q "$RUN/busybox.tar" localhost/busybox:probe >/dev/null 2>&1
  out=$("${pc[@]}" --runtime crun run --rm --network none localhost/busybox:probe /bin/true 2>&1); rc=$?
  "${pc[@]}" --runtime runc rm -af >/dev/null 2>&1
  info probe_podman_crun "rc=$rc: $out"
  cmdline probe_crun "${pc[@]}" --runtime crun run --rm --network none localhost/busybox:probe /bin/true
  say "probe podman --runtime crun: rc=$rc: $out"
}

# ----------------------------------------------------------------------------- teardown
TORN=0
teardown() {   # stop what we started, unmount what is under $RUN, detach our loop device (idempotent)
  local pid m left d c
  [[ -n $RUN && -d $RUN ]] || return 0
  ((TORN)) && return 0; TORN=1
  say "teardown $RUN"
  if [[ $ENGINE == podman ]]; then   # remove leftover containers (frees their shm locks, unmounts rootfs)
    ((${#ECLI[@]})) && E rm -af >/dev/null 2>&1
    ((${#ECLI2[@]})) && E2 rm -af >/dev/null 2>&1
  fi
  while read -r pid; do [[ -n $pid ]] && stop_pid "$pid"; done <"$RUN/started_pids"
  # stray children of our engines (containerd, shims, conmon) carry our unique $RUN path in argv
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [[ $pid == "$$" || $pid == "$BASHPID" ]] && continue
    c=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null) || continue
    if [[ $c == *"$RUN/"* ]]; then
      say "stray process $pid: $c -> TERM"; info stray_process "$pid $c"; kill -TERM "$pid" 2>/dev/null
    fi
  done
  for m in $(findmnt -rn -o TARGET | awk -v p="$RUN/" 'index($0, p) == 1' | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
  if [[ -s $RUN/loopdev ]]; then
    losetup -d "$(cat "$RUN/loopdev")" 2>/dev/null || { say "could not detach $(cat "$RUN/loopdev")"; info teardown_problem "loop $(cat "$RUN/loopdev") not detached"; }
  fi
  left=$(findmnt -rn -o TARGET | awk -v p="$RUN/" 'index($0, p) == 1')
  if [[ -n $left ]]; then say "mounts left under $RUN: $left"; info teardown_problem "mounts left: $left"; fi
  return 0
}
remove_run() {
  [[ -n $RUN && -d $RUN ]] || return 0
  if [[ -n $(findmnt -rn -o TARGET | awk -v p="$RUN/" 'index($0, p) == 1') ]]; then say "mounts left, NOT deleting $RUN"; return 1; fi
  if ((KEEP)); then say "kept $RUN"; else rm -rf --one-file-system "$RUN"; fi
}
on_exit() { teardown; remove_run; }

# ----------------------------------------------------------------------------- output
finalize() {  # KIND JSON_OUT
  info loadavg_end "$(cat /proc/loadavg)"
  "$PY" - "$1" "$RUN" "$2" "$WRITER" "$ENGINE" "$DRIVER" "$FS" <<'PYEOF'
import json, os, statistics, sys, time
kind, run, out, writer, engine, driver, fs = sys.argv[1:8]
def tsv(name):
    rows = []
    p = os.path.join(run, name)
    if os.path.exists(p):
        for line in open(p, encoding='utf-8', errors='replace'):
            line = line.rstrip('\n')
            if line:
                k, _, v = line.partition('\t')
                rows.append((k, v))
    return rows
def stats(vals, unit):
    vals = list(vals)
    d = {"unit": unit, "n": len(vals)}
    if vals:
        d.update(median=statistics.median(vals), min=min(vals), max=max(vals),
                 mean=statistics.fmean(vals), stdev=(statistics.stdev(vals) if len(vals) > 1 else 0.0))
    for k in ("median", "min", "max", "mean", "stdev"):
        if k in d: d[k] = round(d[k], 6)
    d["samples"] = [round(v, 6) for v in vals]
    return d
samples = {}
for k, v in tsv("samples.tsv"):
    samples.setdefault(k, []).append(int(v) / 1e6)
info = dict(tsv("info.tsv"))
if "debroot_du_kib" in info: info["debroot_du_bytes"] = str(int(info["debroot_du_kib"]) * 1024)
metrics = {k: stats(v, "s") for k, v in samples.items()}
thr = {"import_s": "debroot_tar_bytes", "save_s": "save_tar_bytes", "load_s": "load_tar_bytes",
       "pull_s": "debroot_tar_bytes", "floor_skopeo_copy_dir_s": "debroot_tar_bytes",
       "fs_tar_x_s": "debroot_tar_bytes", "fs_cp_a_s": "debroot_du_bytes",
       "floor_tar_sha256_pipe_s": "debroot_tar_bytes", "floor_tar_file_sha256_s": "debroot_tar_bytes",
       "floor_tar_x_s": "debroot_tar_bytes", "floor_cp_a_s": "debroot_du_bytes"}
for m, key in thr.items():
    if m in samples and int(info.get(key, 0) or 0) > 0:
        b = int(info[key])
        metrics[m[:-2] + "_MBps"] = dict(stats([b / 1e6 / s for s in samples[m]], "MB/s (1 MB = 1e6 bytes)"), bytes=b)
if "lc_batch_total_s" in samples and "lifecycle_containers_per_batch" in info:
    n = int(info["lifecycle_containers_per_batch"])
    metrics["lc_batch_per_container_s"] = stats([s / n for s in samples["lc_batch_total_s"]], "s")
def jload(name):
    try:
        return json.load(open(os.path.join(run, name)))
    except Exception:
        return None
res = {"kind": kind, "generated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
       "engine": engine or None, "driver": driver or None, "fs": fs or None,
       "metrics": dict(sorted(metrics.items())), "info": info,
       "commands": dict(tsv("cmds.tsv")),
       "errors": [{"where": k, "what": v} for k, v in tsv("errors.tsv")]}
if kind == "bench":
    res["writer_script"] = writer
    ei, ev = jload("engine-info.json"), jload("engine-version.json")
    if ei is not None:
        if engine == "docker":
            keep = ["ServerVersion", "Driver", "DriverStatus", "DefaultRuntime", "CgroupDriver", "CgroupVersion",
                    "LoggingDriver", "KernelVersion", "OperatingSystem", "NCPU", "MemTotal", "SecurityOptions",
                    "DockerRootDir", "ContainerdCommit", "RuncCommit", "InitCommit"]
            res["engine_info"] = {k: ei.get(k) for k in keep}
        else:
            res["engine_info"] = {"host": {k: ei.get("host", {}).get(k) for k in
                                  ("cgroupManager", "cgroupVersion", "conmon", "ociRuntime", "logDriver",
                                   "eventLogger", "kernel", "security", "cpus", "memTotal")},
                                  "store": {k: ei.get("store", {}).get(k) for k in
                                  ("graphDriverName", "graphOptions", "graphRoot", "graphStatus", "runRoot")},
                                  "version": ei.get("version")}
    if ev is not None:
        res["engine_version"] = ev
json.dump(res, open(out, "w"), indent=1)
PYEOF
}

print_table() {   # JSON files...
  "$PY" - "$@" <<'PYEOF'
import json, sys
ORDER = [("run_s", "a. run --rm busybox /bin/true"), ("run_warmup_s", "   (2 warm-up runs)"),
         ("lc_batch_total_s", "b. create+start+wait+rm x N: total"), ("lc_batch_per_container_s", "   batch total / N"),
         ("lc_per_container_s", "   per container (every cycle)"),
         ("lc_create_s", "   create"), ("lc_start_s", "   start"), ("lc_wait_s", "   wait"), ("lc_rm_s", "   rm"),
         ("writer_run_s", "   (writer container run, c+d)"),
         ("commit_s", "c. commit"), ("diff_s", "d. diff"),
         ("save_s", "e. save debian image"), ("save_MBps", "   save throughput"),
         ("load_s", "e. load into empty engine"), ("load_MBps", "   load throughput"),
         ("import_s", "f. import debian rootfs tar"), ("import_MBps", "   import throughput"),
         ("pull_s", "g. pull debian from a local registry"), ("pull_MBps", "   pull throughput (tar bytes)"),
         ("fs_tar_x_s", "fs floor: tar -x debroot.tar"), ("fs_tar_x_MBps", "   throughput"),
         ("fs_cp_a_s", "fs floor: cp -a DEBROOT"), ("fs_cp_a_MBps", "   throughput (du bytes)"),
         ("floor_runc_run_s", "runc run busybox /bin/true"), ("floor_runc_warmup_s", "   (2 warm-up runs)"),
         ("floor_exec_true_s", "fork+exec /bin/true from bash"),
         ("floor_tar_sha256_pipe_s", "tar -c | sha256sum"), ("floor_tar_sha256_pipe_MBps", "   throughput"),
         ("floor_tar_file_sha256_s", "tar -c >file(host fs) && sha256sum"), ("floor_tar_file_sha256_MBps", "   throughput"),
         ("floor_tar_x_s", "tar -x of debroot.tar"), ("floor_tar_x_MBps", "   throughput"),
         ("floor_cp_a_s", "cp -a DEBROOT"), ("floor_cp_a_MBps", "   throughput (du bytes)"),
         ("floor_cp_a_sync_s", "   sync right after cp -a"),
         ("floor_skopeo_copy_dir_s", "skopeo copy docker://REF dir:"), ("floor_skopeo_copy_dir_MBps", "   throughput (tar bytes)"),
         ("floor_changes_tar_sha256_s", "tar -c | sha256sum of the writer's files"),
         ("floor_changes_find_s", "find over the writer's files")]
def fmt(m):
    if not m or not m.get("n"):
        return "-"
    if m["unit"] == "s":
        f = lambda x: f"{x*1000:.1f}ms" if x < 1 else f"{x:.2f}s"
    else:
        f = lambda x: f"{x:.0f}MB/s"
    return f"{f(m['median'])} [{f(m['min'])}..{f(m['max'])}] n={m['n']}"
def table(cols):
    names = [c[0] for c in cols]
    label = dict(ORDER)
    keys = [k for k, _ in ORDER if any(k in c[1] for c in cols)]
    keys += sorted({k for c in cols for k in c[1]} - set(label))
    rows = [[label.get(k, k)] + [fmt(c[1].get(k)) for c in cols] for k in keys]
    head = ["median [min..max] n"] + names
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "  ".join(x.ljust(w[i]) for i, x in enumerate(r)).rstrip()
    print(line(head)); print(line(["-" * x for x in w]))
    for r in rows: print(line(r))
def name(r):
    if r.get("label"):
        return r["label"]
    return f"{r.get('engine')}/{r.get('driver')}@{r.get('fs')}" if r.get("kind") == "bench" else f"floor@{r.get('fs')}"
def problems(r):
    for e in r.get("errors", []):
        print(f"  ! {name(r)}: {e['where']}: {e['what']}")
    if r.get("failure"):
        print(f"  ! {name(r)}: FAILED: {r['failure']}")
    if r.get("info", {}).get("teardown_problem"):
        print(f"  ! {name(r)}: teardown: {r['info']['teardown_problem']}")
for path in sys.argv[1:]:
    d = json.load(open(path))
    runs = d.get("runs") if "runs" in d else ([d] if d.get("kind") == "bench" else [])
    floors = d.get("floors") if "floors" in d else ([d] if d.get("kind") == "floor" else [])
    if runs:
        table([(name(r), r.get("metrics", {})) for r in runs])
        for r in runs: problems(r)
        print()
    if floors:
        table([(name(r), r.get("metrics", {})) for r in floors])
        for r in floors: problems(r)
        print()
PYEOF
}

# ----------------------------------------------------------------------------- commands
do_bench() {
  [[ -n $ENGINE && -n $DRIVER && -n $JSON_OUT ]] || usage
  case $ENGINE:$DRIVER in docker:overlay) DRIVER=overlay2;; podman:overlay2) DRIVER=overlay;; esac
  if [[ $DRIVER == btrfs ]]; then
    [[ -z $FS || $FS == btrfs ]] || { echo "--driver btrfs needs --fs btrfs" >&2; exit 2; }
    FS=btrfs
  fi
  FS=${FS:-ext4}
  new_run_dir "${ENGINE:0:1}-$DRIVER-$FS"
  info engine "$ENGINE"; info driver "$DRIVER"; info fs "$FS"
  trap 'on_exit' EXIT
  trap 'say interrupted; exit 130' INT TERM
  say "bench $ENGINE/$DRIVER@$FS in $RUN (reps: run=$REPS_RUN lifecycle=${REPS_LC}x$N_LC commit=$REPS_COMMIT diff=$REPS_DIFF io=$REPS_IO)"
  make_inputs
  if setup_datafs && engine_setup; then
    QCTX=import_busybox q E import "$RUN/busybox.tar" "$IMG_BB" || err setup "busybox import failed"
    has_phase fsfloor   && phase_fsfloor
    has_phase import    && phase_import
    img_size "$IMG_DEB" >/dev/null 2>&1 || QCTX=import q E import "$RUN/debroot.tar" "$IMG_DEB"
    info image_size_debian_bytes "$(img_size "$IMG_DEB")"
    has_phase run       && phase_run
    [[ $ENGINE == podman ]] && probe_crun
    has_phase lifecycle && phase_lifecycle
    has_phase commit    && phase_commit
    has_phase diff      && phase_diff
    has_phase save      && phase_save
    has_phase load      && phase_load
    has_phase pull      && phase_pull
  else
    err setup "setup failed; see $LOG and daemon logs"
    for f in "$RUN"/*/dockerd.log; do [[ -f $f ]] && info "daemon_log_tail_$(basename "$(dirname "$f")")" "$(tail -n 15 "$f")"; done
  fi
  teardown
  finalize bench "$JSON_OUT"
  print_table "$JSON_OUT"
}

do_floor() {
  [[ -n $JSON_OUT ]] || usage
  FS=${FS:-ext4}
  new_run_dir "floor-$FS"
  info fs "$FS"
  trap 'on_exit' EXIT
  trap 'say interrupted; exit 130' INT TERM
  make_inputs
  setup_datafs || { finalize floor "$JSON_OUT"; exit 1; }
  local B=$RUN/runc-bundle r
  say "floor: runc run of a busybox bundle (2 warm-ups + $REPS_RUN reps)"
  mkdir -p "$B" "$RUN/runc-state"
  cp -a "$RUN/busybox-rootfs" "$B/rootfs"
  ( cd "$B" && "$RUNC" spec ) || err floor "runc spec failed"
  jq '.process.args = ["/bin/true"] | .process.terminal = false | .root.readonly = false' "$B/config.json" >"$B/config.json.new" \
    && mv "$B/config.json.new" "$B/config.json"
  for r in 1 2; do tm floor_runc_warmup_s /dev/null "$RUNC" --root "$RUN/runc-state" run --bundle "$B" "pb-w$r-$$" </dev/null; done
  for ((r = 1; r <= REPS_RUN; r++)); do tm floor_runc_run_s /dev/null "$RUNC" --root "$RUN/runc-state" run --bundle "$B" "pb-$r-$$" </dev/null; done
  cmdline floor_runc "$RUNC" --root STATE run --bundle BUNDLE ID
  info runc_bundle "rootfs = the busybox rootfs (same files as the busybox image) on the host fs; config = 'runc spec' + args=[/bin/true], terminal=false, root.readonly=false (new pid/net/ipc/uts/mount namespaces, cgroup /<id>)"
  for ((r = 1; r <= REPS_RUN; r++)); do tm floor_exec_true_s /dev/null /bin/true; done

  say "floor: tar -x and cp -a into $FS, then tar -c | sha256sum and tar -c > file && sha256sum file ($REPS_FLOOR reps each)"
  # distinct targets, nothing deleted between reps (see the note on journal-less ext4 in the header)
  for ((r = 1; r <= REPS_FLOOR; r++)); do
    mkdir -p "$DATA_MNT/tarx$r"; settle
    tm floor_tar_x_s /dev/null tar --numeric-owner -C "$DATA_MNT/tarx$r" -xf "$RUN/debroot.tar"
  done
  for ((r = 1; r <= REPS_FLOOR; r++)); do
    settle
    tm floor_cp_a_s /dev/null cp -a "$DEBROOT" "$DATA_MNT/cpa$r"
    tm floor_cp_a_sync_s /dev/null sync
  done
  # the save floor writes where the engines' `save -o` writes: $RUN on the host fs (one file, removed after each rep)
  tar_pipe() { tar --numeric-owner -C "$DEBROOT" -cf - . | sha256sum >/dev/null; }
  tar_file() { tar --numeric-owner -C "$DEBROOT" -cf "$RUN/floor.tar" . && sha256sum "$RUN/floor.tar" >/dev/null; }
  for ((r = 1; r <= REPS_FLOOR; r++)); do settle; tm floor_tar_sha256_pipe_s /dev/null tar_pipe; done
  for ((r = 1; r <= REPS_FLOOR; r++)); do rm -f "$RUN/floor.tar"; settle; tm floor_tar_file_sha256_s /dev/null tar_file; done
  rm -f "$RUN/floor.tar"
  # commit / diff floors: what any engine must at least do with the writer's 5000 x 1 KiB + 200 MiB
  say "floor: tar -c | sha256sum and find over the writer's files on $FS ($REPS_FLOOR reps each)"
  if "$PY" -c "$FLOOR_WRITER" "$DATA_MNT/changes" >>"$LOG" 2>&1; then
    changes_pipe() { tar --numeric-owner -C "$DATA_MNT/changes" -cf - . | sha256sum >/dev/null; }
    for ((r = 1; r <= REPS_FLOOR; r++)); do settle; tm floor_changes_tar_sha256_s /dev/null changes_pipe; done
    for ((r = 1; r <= REPS_FLOOR; r++)); do settle; tm floor_changes_find_s /dev/null find "$DATA_MNT/changes"; done
    cmdline floor_changes_tar tar --numeric-owner -C CHANGES -cf - . '|' sha256sum
    cmdline floor_changes_find find CHANGES
  else
    err floor "the host-side writer failed: $(tail -n 2 "$LOG" | tr '\n' ' ')"
  fi
  if [[ -n $REGISTRY ]]; then
    say "floor: skopeo copy docker://$REGISTRY/$PULL_REF dir: on $FS ($REPS_FLOOR reps)"
    local skopeo=(skopeo copy -q --insecure-policy --src-tls-verify=false "docker://$REGISTRY/$PULL_REF")
    for ((r = 1; r <= REPS_FLOOR; r++)); do
      mkdir -p "$DATA_MNT/skopeo$r"; settle
      tm floor_skopeo_copy_dir_s /dev/null "${skopeo[@]}" "dir:$DATA_MNT/skopeo$r"
    done
    cmdline floor_skopeo_copy_dir "${skopeo[@]}" dir:DIR
  fi
  cmdline floor_tar_pipe tar --numeric-owner -C "$DEBROOT" -cf - . '|' sha256sum
  cmdline floor_tar_file tar --numeric-owner -C "$DEBROOT" -cf FILE_ON_HOST_FS . '&&' sha256sum FILE_ON_HOST_FS
  cmdline floor_tar_x tar --numeric-owner -C DIR -xf debroot.tar
  cmdline floor_cp_a cp -a "$DEBROOT" DIR
  teardown
  finalize floor "$JSON_OUT"
  print_table "$JSON_OUT"
}

case $CMD in
  bench) do_bench;;
  floor) do_floor;;
  table) print_table "${POSARGS[@]}";;
  *) usage;;
esac
