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
 * Arguments: start=ADDR, stop=ADDR (repeatable: region 0), marks=PATH (lines "start|stop
 * ADDR REGION", hex addresses), out=PATH. Writes "total N", "region I calls counted
 * unmatched_stops nested_starts active" and region 0's "call K N" lines to PATH at exit. */
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

#define MAX_MARKS 4096
#define MAX_REGIONS 1024
#define MAX_CALLS __MAX_CALLS__
/* A region counts the instructions between its start and stop marks; region 0 also keeps
 * its first MAX_CALLS calls one by one. Regions may nest inside one another. */
struct region {
    uint64_t mark, calls, counted, unmatched_stops, nested_starts;
    int active;
};
struct mark {
    uint64_t pc;
    int region, is_start;
};
static struct region regions[MAX_REGIONS];
static struct mark marks[MAX_MARKS];
static int n_marks, n_regions = 1;
static char out_path[4096];
static uint64_t total; /* every executed guest instruction (inline increments) */
static uint64_t per_call[MAX_CALLS];

static void on_start(unsigned int vcpu, void *udata)
{
    struct region *r = (struct region *)udata;
    (void)vcpu;
    if (r->active) { ++r->nested_starts; return; } /* recursion: keep the outermost call */
    r->active = 1;
    r->mark = total;
}

static void on_stop(unsigned int vcpu, void *udata)
{
    struct region *r = (struct region *)udata;
    (void)vcpu;
    if (!r->active) { ++r->unmatched_stops; return; }
    r->active = 0;
    if (r == &regions[0] && r->calls < MAX_CALLS) per_call[r->calls] = total - r->mark;
    r->counted += total - r->mark;
    ++r->calls;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    int m;
    (void)id;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        /* the same registration order at every marked instruction: the start and stop
         * callbacks see the total at the same point relative to their own increment */
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
        for (m = 0; m < n_marks; ++m)
            if (marks[m].pc == pc)
                qemu_plugin_register_vcpu_insn_exec_cb(
                    insn, marks[m].is_start ? on_start : on_stop, QEMU_PLUGIN_CB_NO_REGS,
                    &regions[marks[m].region]);
    }
}

static void write_counts(qemu_plugin_id_t id, void *udata)
{
    FILE *f = fopen(out_path, "w");
    uint64_t k;
    int i;
    (void)id; (void)udata;
    if (f == NULL) return;
    fprintf(f, "total %llu\n", (unsigned long long)total);
    for (i = 0; i < n_regions; ++i) {
        struct region *r = &regions[i];
        fprintf(f, "region %d %llu %llu %llu %llu %d\n", i, (unsigned long long)r->calls,
                (unsigned long long)r->counted, (unsigned long long)r->unmatched_stops,
                (unsigned long long)r->nested_starts, r->active);
    }
    for (k = 0; k < regions[0].calls && k < MAX_CALLS; ++k)
        fprintf(f, "call %llu %llu\n", (unsigned long long)k, (unsigned long long)per_call[k]);
    fclose(f);
}

static int add_mark(uint64_t pc, int region, int is_start)
{
    if (n_marks >= MAX_MARKS || region < 0 || region >= MAX_REGIONS) return -1;
    marks[n_marks].pc = pc;
    marks[n_marks].region = region;
    marks[n_marks].is_start = is_start;
    ++n_marks;
    if (region + 1 > n_regions) n_regions = region + 1;
    return 0;
}

/* marks file: one "start|stop ADDR REGION" per line */
static int read_marks(const char *path)
{
    char kind[8];
    unsigned long long pc;
    int region, got;
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    while ((got = fscanf(f, "%7s %llx %d", kind, &pc, &region)) == 3)
        if (add_mark(pc, region, strcmp(kind, "start") == 0) != 0) { fclose(f); return -1; }
    fclose(f);
    return got == EOF ? 0 : -1;
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
    int i, bad;
    (void)info;
    for (i = 0; i < argc; ++i) {
        const char *a = argv[i];
        if (strncmp(a, "start=", 6) == 0)
            bad = add_mark(strtoull(a + 6, NULL, 0), 0, 1);
        else if (strncmp(a, "stop=", 5) == 0)
            bad = add_mark(strtoull(a + 5, NULL, 0), 0, 0);
        else if (strncmp(a, "marks=", 6) == 0)
            bad = read_marks(a + 6);
        else if (strncmp(a, "out=", 4) == 0 && strlen(a + 4) < sizeof out_path) {
            strcpy(out_path, a + 4);
            bad = 0;
        } else
            bad = -1;
        if (bad) {
            fprintf(stderr, "icount plugin: bad or too many marks in '%s'\n", a);
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
    regions: tuple[tuple[int, int], ...] = ()  # (calls, instructions) of each extra region

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
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:  # no writable home: a per-user folder in the temporary directory
        cache = Path(tempfile.gettempdir()) / f"ircomp-{os.getuid()}"
        cache.mkdir(mode=0o700, exist_ok=True)
        so = cache / so.name
        if so.exists():
            return so
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


def _symbols(elf: Path) -> dict[str, int]:
    """{function symbol: address, the Thumb bit cleared} from `arm-none-eabi-nm`."""
    _need([ARM_NM])
    proc = subprocess.run([ARM_NM, str(elf)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{ARM_NM} {elf} failed: {proc.stderr}")
    table = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            table[parts[2]] = int(parts[0], 16) & ~1
    return table


def _calls(elf: Path) -> dict[str, list[int]]:
    """{callee: return addresses of every direct `bl <callee>`} from the disassembly."""
    _need([ARM_OBJDUMP])
    proc = subprocess.run(
        [ARM_OBJDUMP, "-d", "--no-show-raw-insn", str(elf)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{ARM_OBJDUMP} {elf} failed: {proc.stderr}")
    pattern = re.compile(r"^\s*([0-9a-f]+):\s+blx?(?:\.w)?\s+[0-9a-f]+ <([^>+]+)>\s*$")
    sites: dict[str, list[int]] = {}
    for line in proc.stdout.splitlines():
        m = pattern.match(line)
        if m:  # Thumb-2 BL is 32 bits wide
            sites.setdefault(m.group(2), []).append(int(m.group(1), 16) + 4)
    return sites


def symbol_address(elf: Path, symbol: str) -> int:
    """Address of a function symbol (the Thumb bit cleared)."""
    table = _symbols(elf)
    if symbol not in table:
        raise RuntimeError(f"{Path(elf).name} has no function symbol '{symbol}'")
    return table[symbol]


def return_sites(elf: Path, symbol: str) -> list[int]:
    """Return addresses of every `bl <symbol>` in `elf` (the instruction after each call)."""
    sites = _calls(elf).get(symbol)
    if not sites:
        raise RuntimeError(
            f"no direct call 'bl {symbol}' in {Path(elf).name}: cannot bracket it (a tail call "
            "or a call through a pointer)"
        )
    return sites


def run_counted(
    elf: Path,
    starts: Sequence[int],
    stops: Sequence[int],
    *,
    regions: Sequence[tuple[Sequence[int], Sequence[int]]] = (),
    timeout: float = QEMU_TIMEOUT_S,
    plugin: Path | None = None,
) -> Counts:
    """Run `elf` on QEMU's mps2-an386 with the plugin; count between the marked addresses.
    `regions` are further (starts, stops) pairs, counted separately into `Counts.regions`."""
    _need([QEMU])
    so = plugin or build_plugin()
    elf = Path(elf).resolve()
    with tempfile.TemporaryDirectory(prefix="ircomp-icount-") as tmp:
        out = Path(tmp) / "counts.txt"
        marks = Path(tmp) / "marks.txt"
        lines = [
            f"{kind} {addr:x} {i}"
            for i, (region_starts, region_stops) in enumerate(regions, start=1)
            for kind, addrs in (("start", region_starts), ("stop", region_stops))
            for addr in addrs
        ]
        marks.write_text("".join(line + "\n" for line in lines))
        args = [f"file={so}", *(f"start={a:#x}" for a in starts), *(f"stop={a:#x}" for a in stops)]
        args += [f"marks={marks}", f"out={out}"]
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
        total = 0
        per_call: list[int] = []
        found: dict[int, tuple[int, int]] = {}
        for line in out.read_text().splitlines():
            parts = line.split()
            if parts[0] == "call":
                per_call.append(int(parts[2]))
            elif parts[0] == "total":
                total = int(parts[1])
            elif parts[0] == "region":
                i, calls, counted, unmatched, nested, active = map(int, parts[1:])
                if unmatched or nested or active:
                    raise RuntimeError(
                        f"unbalanced start/stop marks in {elf.name} (region {i}: "
                        f"{unmatched} unmatched stops, {nested} nested starts, active {active})"
                    )
                found[i] = (calls, counted)
    calls, counted = found.get(0, (0, 0))
    return Counts(
        total=total,
        per_call=tuple(per_call),
        calls=calls,
        counted=counted,
        status=proc.returncode,
        output=proc.stdout + proc.stderr,
        regions=tuple(found.get(i, (0, 0)) for i in range(1, len(regions) + 1)),
    )


def count_function(elf: Path, symbol: str, *, timeout: float = QEMU_TIMEOUT_S) -> Counts:
    """Run `elf` under QEMU, counting each call of `symbol` from its entry to its return."""
    elf = Path(elf)
    start, stops = symbol_address(elf, symbol), return_sites(elf, symbol)
    return run_counted(elf, [start], stops, timeout=timeout)


def profile(
    elf: Path, symbol: str, callees: Sequence[str], *, timeout: float = QEMU_TIMEOUT_S
) -> tuple[Counts, dict[str, tuple[int, int]]]:
    """One run counting `symbol` (as `count_function`) and, separately, each of `callees`
    (functions `symbol` calls directly): {callee: (calls, instructions in all calls)}.
    Callees that the compiler inlined have no symbol and are left out."""
    elf = Path(elf)
    table, sites = _symbols(elf), _calls(elf)
    if symbol not in table or not sites.get(symbol):
        raise RuntimeError(f"cannot bracket '{symbol}' in {elf.name}: no symbol or no direct call")
    kept = [c for c in callees if c in table and sites.get(c)]
    regions = [([table[c]], sites[c]) for c in kept]
    counts = run_counted(elf, [table[symbol]], sites[symbol], regions=regions, timeout=timeout)
    return counts, dict(zip(kept, counts.regions, strict=True))


__all__ = [
    "PLUGIN_SOURCE",
    "Counts",
    "build_plugin",
    "check_tools",
    "count_function",
    "profile",
    "return_sites",
    "run_counted",
    "symbol_address",
]
