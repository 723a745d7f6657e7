"""Cortex-M4 target of the C backend: startup code and linker script for QEMU's mps2-an386,
the toolchain check, and `measure_cortex_m4` (build, size, run under QEMU, `report.json`).

The generated Makefile's `cortex-m4` target builds `<name>.elf` with `arm-none-eabi-gcc` and
newlib + rdimon semihosting; `run-cortex-m4` runs it with `qemu-system-arm -M mps2-an386`.
`spec/c_abi.md` describes the memory map and how to run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from ircomp.errors import InputError
from ircomp.fileio import atomic_write

ARM_CC = "arm-none-eabi-gcc"
ARM_SIZE = "arm-none-eabi-size"
QEMU = "qemu-system-arm"
ARM_CFLAGS = (
    "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -O2 -std=c99 -Wall -Wextra -Werror"
)
ARM_LDFLAGS = "-nostartfiles -T cortex_m4.ld --specs=rdimon.specs"
ARM_LIBS = "-lm -lrdimon"
QEMU_FLAGS = "-M mps2-an386 -nographic -monitor none -semihosting-config enable=on,target=native"
QEMU_TIMEOUT_S = 60
# tool -> Debian package that provides it (newlib: libc, libm and librdimon for the ARM build)
DEBIAN = {
    ARM_CC: "gcc-arm-none-eabi",
    ARM_SIZE: "binutils-arm-none-eabi",
    QEMU: "qemu-system-arm",
    "make": "make",
}
NEWLIB = "libnewlib-arm-none-eabi"
FLASH_SECTIONS = (".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".init_array", ".fini_array")
RAM_SECTIONS = (".data", ".bss")
STACK_SIZE = 0x10000

LINKER_SCRIPT = r"""/* mps2-an386 (Cortex-M4F under QEMU): 4 MiB SSRAM1 at 0x0 holds code and
 * constants (flash), 4 MiB SSRAM2/3 at 0x20000000 holds data, bss (the arena), heap and
 * stack (64 KiB at the top). */
MEMORY
{
    FLASH (rx)  : ORIGIN = 0x00000000, LENGTH = 4M
    RAM   (rwx) : ORIGIN = 0x20000000, LENGTH = 4M
}
ENTRY(Reset_Handler)
__stack_size = 0x10000;
SECTIONS
{
    .text : {
        KEEP(*(.isr_vector))
        *(.text*)
        KEEP(*(.init)) KEEP(*(.fini))
        *(.glue_7) *(.glue_7t) *(.eh_frame)
    } > FLASH
    .rodata : { *(.rodata*) . = ALIGN(8); } > FLASH
    .ARM.extab : { *(.ARM.extab* .gnu.linkonce.armextab.*) } > FLASH
    .ARM.exidx : { __exidx_start = .; *(.ARM.exidx*) __exidx_end = .; } > FLASH
    .init_array : { __init_array_start = .; KEEP(*(.init_array*)) __init_array_end = .; } > FLASH
    .fini_array : { __fini_array_start = .; KEEP(*(.fini_array*)) __fini_array_end = .; } > FLASH
    __data_load = LOADADDR(.data);
    .data : ALIGN(8) { __data_start = .; *(.data*) . = ALIGN(8); __data_end = .; } > RAM AT > FLASH
    .bss (NOLOAD) : ALIGN(8) {
        __bss_start__ = .; *(.bss*) *(COMMON) . = ALIGN(8); __bss_end__ = .;
    } > RAM
    end = .; _end = .;
    __stack_top = ORIGIN(RAM) + LENGTH(RAM);
    __stack_limit = __stack_top - __stack_size;
    __heap_limit = __stack_limit;
}
"""

STARTUP = r"""/* Minimal Cortex-M4 startup for mps2-an386 under QEMU: vector table, .data copy,
 * .bss zero, FPU on, semihosting stdio (newlib rdimon), main(); exit() reports the status
 * to QEMU (SYS_EXIT). */
#include <stdint.h>
#include <stdlib.h>

extern uint32_t __data_load[], __data_start[], __data_end[], __bss_start__[], __bss_end__[];
extern uint32_t __stack_top[], __stack_limit[];
extern void initialise_monitor_handles(void);
extern int main(void);

void Reset_Handler(void);
static void fault_handler(void);

__attribute__((section(".isr_vector"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))__stack_top, Reset_Handler, fault_handler, fault_handler,
    fault_handler, fault_handler, fault_handler, 0, 0, 0, 0,
    fault_handler, fault_handler, 0, fault_handler, fault_handler,
};

static void fault_handler(void)
{
    exit(3);
}

void Reset_Handler(void)
{
    uint32_t *src = __data_load, *dst = __data_start;
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    while (dst < __data_end)
        *dst++ = *src++;
    for (dst = __bss_start__; dst < __bss_end__; ++dst)
        *dst = 0;
    *cpacr |= 0xFu << 20; /* CP10, CP11 full access: enable the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    initialise_monitor_handles();
    exit(main());
}

/* Stack high-water mark for main.c: paint the free stack below the caller's frame, and after
 * the measured call find the lowest word that changed. */
#define STACK_PAINT 0xA5A5A5A5u
unsigned long ircomp_stack_paint(void);
unsigned long ircomp_stack_used(unsigned long top);

__attribute__((noinline)) unsigned long ircomp_stack_paint(void)
{
    volatile uint32_t marker = 0;
    volatile uint32_t *p = __stack_limit;
    uint32_t here = (uint32_t)(uintptr_t)&marker;
    while ((uint32_t)(uintptr_t)p < here - 32u) /* below this function's own frame */
        *p++ = STACK_PAINT;
    return here + marker;
}

__attribute__((noinline)) unsigned long ircomp_stack_used(unsigned long top)
{
    const volatile uint32_t *p = __stack_limit;
    while ((uint32_t)(uintptr_t)p < top && *p == STACK_PAINT)
        ++p;
    return top - (uint32_t)(uintptr_t)p;
}

/* -nostartfiles drops crti/crtn; newlib's init/fini arrays still call these. */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}
"""


class ToolchainMissing(InputError):
    """The ARM cross toolchain or QEMU is not installed; the message names the Debian packages."""


def check_toolchain(run: bool = True) -> None:
    """Raise `ToolchainMissing` naming the Debian packages when a needed tool is not on PATH."""
    tools = [ARM_CC, ARM_SIZE, "make"] + ([QEMU] if run else [])
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        packages = sorted({DEBIAN[t] for t in missing} | ({NEWLIB} if ARM_CC in missing else set()))
        raise ToolchainMissing(
            f"Cortex-M4 build needs {', '.join(missing)}: install the Debian packages "
            f"{' '.join(packages)} (apt-get install {' '.join(packages)}, or run "
            "scripts/install-system-deps.sh)"
        )


def _tool(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as err:
        raise RuntimeError(f"{' '.join(cmd)} timed out after {timeout} s") from err


def section_sizes(elf: Path) -> dict[str, int]:
    """{section: bytes} from `arm-none-eabi-size -A`."""
    elf = Path(elf).resolve()
    proc = _tool([ARM_SIZE, "-A", elf.name], elf.parent, 30)
    if proc.returncode != 0:
        raise RuntimeError(f"{ARM_SIZE} failed:\n{proc.stdout}{proc.stderr}")
    sizes: dict[str, int] = {}
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def _arena_size(out_dir: Path, name: str) -> int:
    m = re.search(r"#define \w+_ARENA_SIZE (\d+)", (out_dir / f"{name}.h").read_text())
    return int(m.group(1)) if m else 0


def _model_only(out_dir: Path, name: str) -> dict:
    """Footprint of the model alone: `<name>.c` compiled with the harness's flags into
    `<name>.o`, and linked into `<name>_model.elf` from the entry `<name>_run` with
    `--gc-sections`, so the image holds the model and exactly the library code it calls (libm,
    libgcc), without the harness, its reference vectors, stdio or the startup code."""
    obj, elf = out_dir / f"{name}.o", out_dir / f"{name}_model.elf"
    cflags = ARM_CFLAGS.split()
    mflags = [f for f in cflags if f.startswith(("-mcpu", "-mthumb", "-mfloat-abi", "-mfpu"))]
    steps = [
        [ARM_CC, *cflags, "-c", "-o", obj.name, f"{name}.c"],
        [ARM_CC, *mflags, "-nostartfiles", "-T", "cortex_m4.ld", "-Wl,--gc-sections",
         f"-Wl,-e,{name}_run", "-o", elf.name, obj.name, "-lm"],
    ]  # fmt: skip
    for cmd in steps:
        proc = _tool(cmd, out_dir, 300)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout}{proc.stderr}")
    sizes = section_sizes(elf)
    objects = section_sizes(obj)

    def total(table: dict[str, int], prefix: str) -> int:
        return sum(v for k, v in table.items() if k == prefix or k.startswith(prefix + "."))

    return {
        "elf": elf.name,
        "text": sizes.get(".text", 0),
        "rodata": sizes.get(".rodata", 0),
        "data": sizes.get(".data", 0),
        "bss": sizes.get(".bss", 0),
        "object": {s: total(objects, s) for s in (".text", ".rodata", ".data", ".bss")},
    }


def measure_cortex_m4(
    out_dir: Path,
    name: str = "model",
    *,
    run: bool = True,
    count: bool = True,
    timeout: float = QEMU_TIMEOUT_S,
) -> dict:
    """Build `<name>.elf` in a folder written by `build` (`make cortex-m4`), size it, and (with
    `run`) run the harness under QEMU. Writes (atomically) and returns the report
    (`report.json`):

    flash = text + rodata (`flash_image` adds exception tables, init arrays and the .data load
    image), ram = data + bss (the arena is in bss) of the whole harness ELF (newlib stdio
    included); the `model_*` keys are the model alone (`model_flash` = text + rodata,
    `model_ram` = data + bss + the run's stack high-water mark, `model_sections` the image and
    `<name>.o` section sizes; see `_model_only`). The run adds the harness's `status` (QEMU's
    exit status, 0 = every output matched), `passed`, `checksum` (FNV-1a of the outputs'
    bytes), `stack_bytes` (painted-stack high-water mark of `<name>_run`) and `output`; with
    `count`, `instructions` (exactly those of the `<name>_run` call, entry to return, counted
    by a QEMU plugin: `icount.py`) and `instructions_total` (the whole run).
    `timeout` bounds the QEMU run in seconds. Raises `ToolchainMissing` naming the Debian
    packages when the ARM toolchain or QEMU is not installed, `RuntimeError` when the build
    fails.
    """
    out_dir = Path(out_dir).resolve()
    check_toolchain(run)
    proc = _tool(["make", "-s", "cortex-m4"], out_dir, 300)
    if proc.returncode != 0:
        raise RuntimeError(f"make cortex-m4 failed:\n{proc.stdout}{proc.stderr}")
    elf = out_dir / f"{name}.elf"
    sizes = section_sizes(elf)
    model = _model_only(out_dir, name)
    report: dict = {
        "target": "cortex-m4",
        "board": "mps2-an386",
        "elf": elf.name,
        "cflags": ARM_CFLAGS,
        "text": sizes.get(".text", 0),
        "rodata": sizes.get(".rodata", 0),
        "data": sizes.get(".data", 0),
        "bss": sizes.get(".bss", 0),
        "flash": sizes.get(".text", 0) + sizes.get(".rodata", 0),
        "flash_image": sum(sizes.get(s, 0) for s in FLASH_SECTIONS) + sizes.get(".data", 0),
        "ram": sum(sizes.get(s, 0) for s in RAM_SECTIONS),
        "arena": _arena_size(out_dir, name),
        "sections": {k: v for k, v in sizes.items() if not k.startswith((".debug", ".comment"))},
        "model_flash": model["text"] + model["rodata"],
        "model_sections": model,
    }
    if run:
        if count:
            from ircomp.backends.c import icount

            counts = icount.count_function(elf, f"{name}_run", timeout=timeout)
            status, text = counts.status, counts.output
            report["instructions"] = counts.per_inference
            report["instructions_total"] = counts.total
        else:
            cmd = [QEMU, *QEMU_FLAGS.split(), "-kernel", elf.name]
            proc = _tool(cmd, out_dir, timeout)
            status, text = proc.returncode, proc.stdout + proc.stderr
        checksum = re.search(r"checksum (0x[0-9a-f]{8})", text)
        stack = re.search(r"stack (\d+) bytes", text)
        report.update(
            status=status,
            passed=status == 0 and " PASS" in text,
            checksum=checksum.group(1) if checksum else None,
            stack_bytes=int(stack.group(1)) if stack else None,
            output=text,
        )
        if stack:
            report["model_ram"] = model["data"] + model["bss"] + int(stack.group(1))
    write_report(out_dir / "report.json", report)
    return report


def profile_ops(out_dir: Path, name: str = "model", *, timeout: float = QEMU_TIMEOUT_S) -> dict:
    """Instructions per generated op function of one `<name>_run`, in one QEMU run.

    The generated op functions are `noinline, noclone` already (`IRCOMP_OP`); this builds a
    separate `<name>_profile.elf` from a copy of `<name>.c` whose op functions are marked so
    explicitly (also for sources with plain `static` ones, which gcc inlines, each being called
    once), otherwise as `make cortex-m4`. Returns
    {"total": instructions of `<name>_run` in that build, "ops": [(function, instructions)] in
    call order, "other": the rest (the run's own code and copies)}.
    """
    from ircomp.backends.c import icount

    out_dir = Path(out_dir).resolve()
    check_toolchain(True)
    source = (out_dir / f"{name}.c").read_text()
    pattern = re.compile(r"^(?:static|IRCOMP_OP) (void|int) (op\d+_\w+)\(", re.M)
    ops = [m.group(2) for m in pattern.finditer(source)]
    marked = pattern.sub(r"static __attribute__((noinline, noclone)) \1 \2(", source)
    (out_dir / f"{name}_profile.c").write_text(marked)
    elf = f"{name}_profile.elf"
    cmd = [ARM_CC, *ARM_CFLAGS.split(), "-DIRCOMP_CORTEX_M4", *ARM_LDFLAGS.split(), "-o", elf]
    cmd += ["main.c", f"{name}_profile.c", "startup_cortex_m4.c", *ARM_LIBS.split()]
    proc = _tool(cmd, out_dir, 300)
    if proc.returncode != 0:
        raise RuntimeError(f"profile build failed:\n{proc.stdout}{proc.stderr}")
    counts, per_op = icount.profile(out_dir / elf, f"{name}_run", ops, timeout=timeout)
    if counts.status != 0:
        raise RuntimeError(f"profile run failed (status {counts.status}):\n{counts.output}")
    rows = [(op, per_op[op][1]) for op in ops if op in per_op]
    total = counts.per_inference
    return {"total": total, "ops": rows, "other": total - sum(n for _, n in rows)}


def write_report(path: Path, report: dict) -> None:
    """Write `report` as sorted, indented JSON through a temporary file renamed onto `path`."""
    text = json.dumps(report, indent=2, sort_keys=True) + "\n"
    atomic_write(Path(path), lambda tmp: tmp.write_text(text))


__all__ = [
    "ToolchainMissing",
    "check_toolchain",
    "measure_cortex_m4",
    "profile_ops",
    "section_sizes",
    "write_report",
]
