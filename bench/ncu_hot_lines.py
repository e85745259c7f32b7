#!/usr/bin/env python3
"""Where a kernel's warps stall, line by line, from an ncu report.

    ncu --set full --import-source no -k regex:KERNEL -c 1 -o REPORT BIN ARGS...
    python3 bench/ncu_hot_lines.py REPORT.ncu-rep [--top N]
    python3 bench/ncu_hot_lines.py SOURCE.csv [--top N]

Reads the report's SASS source page (`ncu -i REPORT --page source --csv
--print-source sass`, or such a CSV saved before) and prints the N SASS
lines with the most warp-stall samples (share of all samples, the
instruction), then the samples by kind of instruction: mbarrier waits
(SYNCS), named barriers (BAR), wgmma and its waits (HGMMA, WARPGROUP),
global and shared memory, math. Barrier ids and mbarrier addresses in the
printed instructions tell which wait a line is (docs/KERNEL_BENCH.md).
Exit 2 when the page has no stall-sampling column (a report taken without
the source counters) or the file cannot be read.
"""
import argparse
import csv
import io
import re
import subprocess
import sys

KINDS = [  # (kind, regex on the instruction), first match wins
    ("mbarrier wait (SYNCS)", r"\bSYNCS\b"),
    ("named barrier (BAR)", r"^\s*@?!?P?\w*\s*BAR\b|\bBAR\.(SYNC|ARV|RED)"),
    ("wgmma (HGMMA)", r"\bHGMMA\b"),
    ("wgmma wait (WARPGROUP)", r"\bWARPGROUP\b"),
    ("global memory (LDG/STG/RED/ATOM/UTMA)", r"\b(LDG|STG|RED|REDG|ATOMG|ATOM|UTMA\w*|UBLKCP|UBLKRED)\b"),
    ("shared memory (LDS/STS/LDSM)", r"\b(LDS|STS|LDSM|STSM)\b"),
    ("exp2 / rcp (MUFU)", r"\bMUFU\b"),
    ("branch / exit", r"\b(BRA|EXIT|BSYNC|BSSY|WARPSYNC)\b"),
]


def read_page(path):
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            return f.read()
    return subprocess.run(
        ["ncu", "-i", path, "--page", "source", "--csv", "--print-source", "sass"],
        check=True, capture_output=True, text=True).stdout


def rows_of(text):
    """The table's header and rows: the first line naming a Source column
    starts it (ncu may print lines before)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if '"Source"' in line or line.startswith("Source,") or ",Source," in line:
            reader = csv.reader(io.StringIO("\n".join(lines[i:])))
            header = next(reader)
            return header, [r for r in reader if len(r) == len(header)]
    return None, []


def number(text):
    try:
        return float(text.replace(",", "")) if text.strip() else 0.0
    except ValueError:
        return 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="an .ncu-rep report or a saved source-page .csv")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    try:
        text = read_page(args.report)
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"ncu_hot_lines: cannot read {args.report}: {e}", file=sys.stderr)
        return 2
    header, rows = rows_of(text)
    if header is None:
        print("ncu_hot_lines: no source table (expected a 'Source' column)", file=sys.stderr)
        return 2
    samples = [i for i, h in enumerate(header) if "Stall Sampling" in h and "All" in h]
    if not samples:
        samples = [i for i, h in enumerate(header) if "Sampling" in h]
    if not samples:
        print("ncu_hot_lines: no warp-stall sampling column; the columns are: "
              + ", ".join(header) + " (take the report with --set full or "
              "--section SourceCounters)", file=sys.stderr)
        return 2
    col, src = samples[0], header.index("Source")
    address = next((i for i, h in enumerate(header) if "Address" in h), None)
    total = sum(number(r[col]) for r in rows)
    if total <= 0:
        print("ncu_hot_lines: no stall samples in the report", file=sys.stderr)
        return 2
    print(f"{int(total)} stall samples ({header[col]}), {len(rows)} SASS lines")
    ranked = sorted(rows, key=lambda r: -number(r[col]))
    for r in ranked[:args.top]:
        where = r[address] if address is not None else ""
        print(f"{100 * number(r[col]) / total:6.2f} %  {where:>8}  {r[src].strip()}")
    by_kind = {}
    for r in rows:
        kind = next((k for k, pattern in KINDS if re.search(pattern, r[src])), "other (math, moves)")
        by_kind[kind] = by_kind.get(kind, 0.0) + number(r[col])
    print("by kind of instruction:")
    for kind, n in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"{100 * n / total:6.2f} %  {kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
