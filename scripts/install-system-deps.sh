#!/usr/bin/env bash
# Debian packages the tests and examples need. Installs only what is missing; needs root
# (or sudo) the first time. Add a package here when a test starts to need it.
set -euo pipefail
PACKAGES=(
    dataset-fashion-mnist   # Fashion-MNIST IDX files for ircomp.train and the reference models
    gcc                     # C backend: host builds (`make check`) and the QEMU icount plugin
    gcc-arm-none-eabi       # C backend: cross-compile for Cortex-M4 (`make cortex-m4`)
    libnewlib-arm-none-eabi # C backend: newlib C library + rdimon semihosting for Cortex-M4
    qemu-system-arm         # C backend: run Cortex-M4 builds on mps2-an386 (`make run-cortex-m4`)
    clang                   # C backend: the generated C must also be -Wall -Wextra -Werror clean
    yosys                   # fpga-lut: synthesis (synth -lut 6, synth_xilinx) and yosys-abc
    berkeley-abc            # fpga-lut: ABC logic optimization and LUT mapping
    verilator               # fpga-lut: lint and cycle-accurate simulation of the netlist
    iverilog                # fpga-lut: event-driven simulation of the netlist and testbench
)
missing=()
for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "install as root: apt-get install ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
fi
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
