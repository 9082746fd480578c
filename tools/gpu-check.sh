#!/usr/bin/env bash
# The CUDA check of pml-rs on a lent GPU machine: the PML parity suite and every bench workload
# with `--backend cuda`, from binaries built here (no Rust toolchain is needed there).
#
#   tools/gpu-check.sh build   # here, no GPU needed: `xtask` + the bench binary with the `cuda`
#                              # feature, stripped, into target/gpu-check/ (prints their sizes;
#                              # they must stay under the device tool's 64 MiB transfer)
#   tools/gpu-check.sh run     # there, from the repository root: parity + benches, one table
#
# With the device tool, in one call (the binaries travel as an ignored, carried folder):
#   run(command="tools/gpu-check.sh run", carry=["target/gpu-check"], timeout_s=540)
# What it prints is also written to $OUT (gpu-check.txt, bench-cuda.json) when $OUT is set.
#
# The build is CI's (`cargo build -p xtask -p pml-benches --bins --benches --features wgpu,cuda`,
# dev profile, dependencies at opt-level 2) with the workspace's own crates at opt-level 2 too
# (CARGO_PROFILE_DEV_OPT_LEVEL), so it reuses CI's compiled dependencies instead of a cold release
# build of burn; the host-side code is optimized, the GPU kernels are the same in any profile.
#
# Environment: GPU_CHECK_FILTER=<text> runs only the bench workloads whose id contains it.
# CUDARC_CUDA_VERSION=13000 (build) pins the CUDA API level cudarc is built for; unset, without
# nvcc, cudarc takes the newest it knows. burn 0.21's CUDA backend loads the driver
# (libcuda.so.1) and NVRTC (libnvrtc.so.13) at run time; `run` adds the usual CUDA and NVRTC
# folders to LD_LIBRARY_PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=target/gpu-check

build() {
    # CI's folder for the GPU features (.ci/run): burn and its dependencies with `wgpu,cuda` are
    # compiled there already; the ndarray folder has none of them.
    export CARGO_TARGET_DIR="${PML_GPU_TARGET_DIR:-$HOME/.cache/pml-rs/target-gpu}"
    local log
    log="$(mktemp)"
    # One cargo invocation, so that xtask and the bench share every compiled dependency.
    CARGO_PROFILE_DEV_OPT_LEVEL=2 cargo build -p xtask -p pml-benches --bins --benches \
        --features wgpu,cuda --message-format=json-render-diagnostics >"$log"
    mkdir -p "$dest"
    python3 - "$log" "$dest" <<'PY'
import json, shutil, sys
log, dest = sys.argv[1], sys.argv[2]
found = {}
for line in open(log):
    try:
        m = json.loads(line)
    except ValueError:
        continue
    name = m.get("target", {}).get("name")
    if m.get("reason") == "compiler-artifact" and m.get("executable") and name in ("xtask", "workloads"):
        found[name] = m["executable"]
missing = {"xtask", "workloads"} - set(found)
if missing:
    sys.exit(f"cargo reported no executable for {sorted(missing)}")
for name, exe in found.items():
    shutil.copyfile(exe, f"{dest}/{name}")
PY
    rm -f "$log"
    chmod +x "$dest/xtask" "$dest/workloads"
    strip "$dest/xtask" "$dest/workloads"
    du -b "$dest/xtask" "$dest/workloads" | awk '{ printf "%-28s %6.1f MiB\n", $2, $1 / 1048576; t += $1 }
        END { printf "%-28s %6.1f MiB (the device tool carries at most 64 MiB)\n", "total", t / 1048576;
              if (t > 60 * 1048576) { print "too large to carry"; exit 1 } }'
}

run() {
    for f in "$dest/xtask" "$dest/workloads"; do
        [[ -x $f ]] || { echo "missing $f: run \`tools/gpu-check.sh build\` here and carry $dest" >&2; exit 2; }
    done
    shopt -s nullglob
    local dirs=(/usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib
        /usr/local/nvidia/lib64 /opt/*/.venv/lib/python3*/site-packages/nvidia/*/lib
        /usr/local/lib/python3*/dist-packages/nvidia/*/lib /usr/lib/python3*/site-packages/nvidia/*/lib)
    shopt -u nullglob
    local d extra=""
    for d in "${dirs[@]}"; do
        if compgen -G "$d/libnvrtc.so*" >/dev/null || compgen -G "$d/libcuda.so*" >/dev/null; then
            extra="$extra:$d"
        fi
    done
    export LD_LIBRARY_PATH="${extra#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local out="${OUT:-$(mktemp -d)}"
    local gpu
    gpu="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"

    local t0 t1 parity_rc=0 bench_rc=0
    t0=$(date +%s)
    "$dest/xtask" parity --backend cuda --cases testdata/parity >"$out/parity-cuda.txt" 2>&1 || parity_rc=$?
    t1=$(date +%s)
    "$dest/xtask" bench --backend cuda --exe "$dest/workloads" --workloads benches/workloads.json \
        ${GPU_CHECK_FILTER:+--filter "$GPU_CHECK_FILTER"} --json "$out/bench-cuda.json" \
        >"$out/bench-cuda.txt" 2>"$out/bench-cuda.err" || bench_rc=$?
    local t2
    t2=$(date +%s)

    {
        echo "== pml-rs on CUDA: ${gpu:-no nvidia-smi}; NVRTC/driver folders: ${extra#:}"
        grep '^FAIL' "$out/parity-cuda.txt" || true
        printf '%-44s %s (%d s, exit %d)\n' "parity testdata/parity" \
            "$(tail -n 1 "$out/parity-cuda.txt")" $((t1 - t0)) "$parity_rc"
        printf '%-44s %d s, exit %d\n' "benches" $((t2 - t1)) "$bench_rc"
        cat "$out/bench-cuda.txt"
        [[ $bench_rc -eq 0 ]] || tail -n 20 "$out/bench-cuda.err"
    } | tee "$out/gpu-check.txt"
    [[ $parity_rc -eq 0 && $bench_rc -eq 0 ]]
}

case "${1:-}" in
    build) build ;;
    run) run ;;
    *) echo "usage: $0 build|run" >&2; exit 2 ;;
esac
