"""Exact instruction counts of a Cortex-M4 ELF under QEMU, by a small TCG plugin.

    counts = count_function(Path("model.elf"), "model_run")
    counts.per_call            # instructions of each call of model_run, from its first
                               # instruction to its return (the caller's call setup excluded)

The plugin (`PLUGIN_SOURCE`, compiled with the host C compiler into a cache folder) is written
against QEMU's documented TCG plugin API (API version 1, QEMU 7.x; the few declarations it
needs are written out below, no `qemu-plugin.h` is needed). It adds one inline counter increment
before every translated guest instruction, so the total is exact even when a translation block
is left early. Two kinds of marked addresses bracket what is counted: when the instruction at a
`start` address executes, the running total is noted; when an instruction at a `stop` address
executes, the difference is recorded as one call. `count_function` finds the addresses with
binutils: `start` is the function's symbol (`arm-none-eabi-nm`), the stops are the return
addresses after each `bl <function>` in the disassembly (`arm-none-eabi-objdump`), so a call
counts exactly the instructions from the function's entry up to and including its return.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ircomp.backends.c.cortex_m4 import DEBIAN, QEMU, QEMU_FLAGS, QEMU_TIMEOUT_S, ToolchainMissing

ARM_NM = "arm-none-eabi-nm"
ARM_OBJDUMP = "arm-none-eabi-objdump"
HOST_CC = os.environ.get("CC", "cc")
MAX_CALLS = 64  # calls whose counts the plugin lists one by one (all are summed)

PLUGIN_SOURCE = r"""/* ircomp icount: exact guest instruction counts for QEMU (TCG plugin API v1).
 * Arguments: start=ADDR (repeatable), stop=ADDR (repeatable), out=PATH.
 * Writes "total N", "calls N", "counted N", "call K N" lines to PATH at exit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The declarations this plugin uses, as QEMU's plugin API documents them. */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t { const char *target_name; } qemu_info_t; /* first member only */
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_MARKS 64
#define MAX_CALLS __MAX_CALLS__
static uint64_t starts[MAX_MARKS], stops[MAX_MARKS];
static int n_starts, n_stops;
static char out_path[4096];
static uint64_t total;   /* every executed guest instruction (inline increments) */
static uint64_t mark;    /* total when the current call started */
static int active;
static uint64_t calls, counted, unmatched_stops, nested_starts;
static uint64_t per_call[MAX_CALLS];

static void on_start(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    if (active) { ++nested_starts; return; } /* recursion: keep the outermost call */
    active = 1;
    mark = total;
}

static void on_stop(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    if (!active) { ++unmatched_stops; return; }
    active = 0;
    if (calls < MAX_CALLS) per_call[calls] = total - mark;
    counted += total - mark;
    ++calls;
}

static int marked(const uint64_t *list, int n, uint64_t pc)
{
    int i;
    for (i = 0; i < n; ++i)
        if (list[i] == pc) return 1;
    return 0;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* the same registration order at every marked instruction: the start and stop
         * callbacks see the total at the same point relative to their own increment */
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
        if (marked(starts, n_starts, pc))
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_start, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (marked(stops, n_stops, pc))
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_stop, QEMU_PLUGIN_CB_NO_REGS, NULL);
    }
}

static void write_counts(qemu_plugin_id_t id, void *udata)
{
    FILE *f = fopen(out_path, "w");
    uint64_t k;
    (void)id; (void)udata;
    if (f == NULL) return;
    fprintf(f, "total %llu\ncalls %llu\ncounted %llu\nunmatched_stops %llu\n",
            (unsigned long long)total, (unsigned long long)calls,
            (unsigned long long)counted, (unsigned long long)unmatched_stops);
    fprintf(f, "nested_starts %llu\nactive %d\n", (unsigned long long)nested_starts, active);
    for (k = 0; k < calls && k < MAX_CALLS; ++k)
        fprintf(f, "call %llu %llu\n", (unsigned long long)k, (unsigned long long)per_call[k]);
    fclose(f);
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        const char *a = argv[i];
        if (strncmp(a, "start=", 6) == 0 && n_starts < MAX_MARKS)
            starts[n_starts++] = strtoull(a + 6, NULL, 0);
        else if (strncmp(a, "stop=", 5) == 0 && n_stops < MAX_MARKS)
            stops[n_stops++] = strtoull(a + 5, NULL, 0);
        else if (strncmp(a, "out=", 4) == 0 && strlen(a + 4) < sizeof out_path)
            strcpy(out_path, a + 4);
        else {
            fprintf(stderr, "icount plugin: bad argument '%s'\n", a);
            return -1;
        }
    }
    if (out_path[0] == 0) {
        fprintf(stderr, "icount plugin: needs out=PATH\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
""".replace("__MAX_CALLS__", str(MAX_CALLS))


@dataclass(frozen=True)
class Counts:
    """What one QEMU run counted: every instruction, and each bracketed call."""

    total: int  # instructions executed in the whole run (reset to exit)
    per_call: tuple[int, ...]  # instructions of each bracketed call (the first MAX_CALLS)
    calls: int  # bracketed calls completed
    counted: int  # instructions of all bracketed calls
    status: int  # QEMU's exit status (the program's, through semihosting)
    output: str  # the program's stdout + stderr

    @property
    def per_inference(self) -> int:
        """Instructions of one call; raises when there was none or calls differ."""
        if not self.calls:
            raise RuntimeError("the counted function was never called")
        if len(set(self.per_call)) != 1:
            raise RuntimeError(f"calls executed different counts: {list(self.per_call)}")
        return self.per_call[0]


def _need(tools: Sequence[str]) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        debian = {**DEBIAN, HOST_CC: "gcc", ARM_NM: "binutils-arm-none-eabi"}
        debian[ARM_OBJDUMP] = "binutils-arm-none-eabi"
        packages = sorted({debian.get(t, t) for t in missing})
        raise ToolchainMissing(
            f"instruction counting needs {', '.join(missing)}: install the Debian packages "
            f"{' '.join(packages)} (or run scripts/install-system-deps.sh)"
        )


def check_tools() -> None:
    """Raise `ToolchainMissing` (naming Debian packages) unless counting can run here."""
    _need([HOST_CC, ARM_NM, ARM_OBJDUMP, QEMU])


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ircomp"


def build_plugin(cache: Path | None = None) -> Path:
    """Compile the plugin (once per source and compiler) and return the shared object's path."""
    _need([HOST_CC])
    digest = hashlib.sha256((PLUGIN_SOURCE + HOST_CC).encode()).hexdigest()[:16]
    cache = Path(cache) if cache else _cache_dir()
    so = cache / f"icount-{digest}.so"
    if so.exists():
        return so
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".icount-") as tmp:
        src = Path(tmp) / "icount.c"
        src.write_text(PLUGIN_SOURCE)
        built = Path(tmp) / "icount.so"
        cmd = [HOST_CC, "-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o", str(built), str(src)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"building the QEMU plugin failed:\n{proc.stderr}")
        os.replace(built, so)  # atomic: a concurrent builder writes the same bytes
    return so


def symbol_address(elf: Path, symbol: str) -> int:
    """Address of a function symbol (the Thumb bit cleared)."""
    _need([ARM_NM])
    proc = subprocess.run([ARM_NM, str(elf)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{ARM_NM} {elf} failed: {proc.stderr}")
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == symbol and parts[1] in "tTwW":
            return int(parts[0], 16) & ~1
    raise RuntimeError(f"{elf.name} has no function symbol '{symbol}'")


def return_sites(elf: Path, symbol: str) -> list[int]:
    """Return addresses of every `bl <symbol>` in `elf` (the instruction after each call)."""
    _need([ARM_OBJDUMP])
    proc = subprocess.run(
        [ARM_OBJDUMP, "-d", "--no-show-raw-insn", str(elf)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{ARM_OBJDUMP} {elf} failed: {proc.stderr}")
    pattern = re.compile(rf"^\s*([0-9a-f]+):\s+blx?(?:\.w)?\s+[0-9a-f]+ <{re.escape(symbol)}>\s*$")
    sites = []
    for line in proc.stdout.splitlines():
        m = pattern.match(line)
        if m:
            sites.append(int(m.group(1), 16) + 4)  # Thumb-2 BL is 32 bits wide
    if not sites:
        raise RuntimeError(
            f"no direct call 'bl {symbol}' in {elf.name}: cannot bracket it (a tail call or a "
            "call through a pointer)"
        )
    return sites


def run_counted(
    elf: Path,
    starts: Sequence[int],
    stops: Sequence[int],
    *,
    timeout: float = QEMU_TIMEOUT_S,
    plugin: Path | None = None,
) -> Counts:
    """Run `elf` on QEMU's mps2-an386 with the plugin; count between the marked addresses."""
    _need([QEMU])
    so = plugin or build_plugin()
    elf = Path(elf).resolve()
    with tempfile.TemporaryDirectory(prefix="ircomp-icount-") as tmp:
        out = Path(tmp) / "counts.txt"
        args = [f"file={so}", *(f"start={a:#x}" for a in starts), *(f"stop={a:#x}" for a in stops)]
        args.append(f"out={out}")
        if any("," in a for a in args):
            raise RuntimeError(f"a plugin path has a comma, which QEMU cannot parse: {args}")
        cmd = [QEMU, *QEMU_FLAGS.split(), "-plugin", ",".join(args), "-kernel", str(elf)]
        try:
            proc = subprocess.run(
                cmd,
                cwd=elf.parent,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as err:
            raise RuntimeError(f"{QEMU} on {elf.name} timed out after {timeout} s") from err
        if not out.exists():
            raise RuntimeError(
                f"{QEMU} wrote no counts (status {proc.returncode}):\n{proc.stdout}{proc.stderr}"
            )
        fields: dict[str, int] = {}
        per_call: list[int] = []
        for line in out.read_text().splitlines():
            parts = line.split()
            if parts[0] == "call":
                per_call.append(int(parts[2]))
            else:
                fields[parts[0]] = int(parts[1])
    if fields["unmatched_stops"] or fields["nested_starts"] or fields["active"]:
        raise RuntimeError(f"unbalanced start/stop marks in {elf.name}: {fields}")
    return Counts(
        total=fields["total"],
        per_call=tuple(per_call),
        calls=fields["calls"],
        counted=fields["counted"],
        status=proc.returncode,
        output=proc.stdout + proc.stderr,
    )


def count_function(elf: Path, symbol: str, *, timeout: float = QEMU_TIMEOUT_S) -> Counts:
    """Run `elf` under QEMU, counting each call of `symbol` from its entry to its return."""
    elf = Path(elf)
    start, stops = symbol_address(elf, symbol), return_sites(elf, symbol)
    return run_counted(elf, [start], stops, timeout=timeout)


__all__ = [
    "PLUGIN_SOURCE",
    "Counts",
    "build_plugin",
    "check_tools",
    "count_function",
    "return_sites",
    "run_counted",
    "symbol_address",
]
