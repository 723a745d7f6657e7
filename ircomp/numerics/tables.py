"""Print the posit<4,0> and posit<4,1> code tables of `spec/numerics.md`.

Run `python -m ircomp.numerics.tables`; the spec's tables are this output, verbatim.
"""

from __future__ import annotations

import math
from fractions import Fraction

from ircomp.numerics.posit import nar_code, posit_value_table

SPEC_POSIT_TABLES: tuple[tuple[int, int], ...] = ((4, 0), (4, 1))


def _fraction_text(value: float) -> str:
    exact = Fraction(value)
    if exact.denominator == 1:
        return str(exact.numerator)
    return f"{exact.numerator}/{exact.denominator}"


def _row(code: int, value: float, n: int) -> str:
    binary = format(code, f"0{n}b")
    hex_digits = (n + 3) // 4
    hex_text = f"0x{code:0{hex_digits}X}"
    if math.isnan(value):
        return f"| `{binary}` | `{hex_text}` | NaR | NaR |"
    return f"| `{binary}` | `{hex_text}` | {_fraction_text(value)} | {value!r} |"


def posit_table_markdown(n: int, es: int) -> str:
    """A markdown table of every posit<n, es> code: binary, hex, exact fraction, decimal."""
    values = posit_value_table(n, es)
    lines = [
        f"posit<{n},{es}> (NaR = `{format(nar_code(n), f'0{n}b')}`):",
        "",
        "| code (binary) | code (hex) | value (exact) | value (decimal) |",
        "|---|---|---|---|",
    ]
    lines += [_row(code, float(values[code]), n) for code in range(1 << n)]
    return "\n".join(lines)


def spec_tables_markdown() -> str:
    """All tables that `spec/numerics.md` contains, separated by blank lines."""
    return "\n\n".join(posit_table_markdown(n, es) for n, es in SPEC_POSIT_TABLES)


def main() -> None:
    print(spec_tables_markdown())


if __name__ == "__main__":
    main()
