#!/usr/bin/env python3
"""Where a kernel's warps stall, line by line, from an ncu report.

    ncu --set full --import-source no -k regex:KERNEL -c 1 -o REPORT BIN ARGS...
    python3 bench/ncu_hot_lines.py REPORT.ncu-rep [--top N]
    python3 bench/ncu_hot_lines.py SOURCE.csv [--top N]

Reads the report's SASS source page (`ncu -i REPORT --page source --csv
--print-source sass`, or such a CSV saved before) and prints the N SASS
lines with the most warp-stall samples (share of all samples, the
instruction, and where the page has ncu's per-reason columns the line's
main stall reasons), then the samples by kind of instruction: mbarrier waits
(SYNCS), named barriers (BAR), wgmma and its waits (HGMMA, WARPGROUP),
global and shared memory, math, and then by stall reason. The branch
that closes an mbarrier's try-wait loop (a BRA or BREAK right after the
SYNCS...TRYWAIT) counts as that wait, and is printed with the mbarrier it
waits on; a line whose samples are mostly `drain` (stores still in flight
when the warp exits) as such. Barrier ids and mbarrier addresses in the
printed instructions tell which wait a line is (docs/KERNEL_BENCH.md).
With --mix, also the executed warp instructions by opcode (the mnemonic
before its first dot) with their share of the samples, and how many were
executed by warps running fewer than 16 threads (the single-thread
producer and scheduler loops; the thirty-first session found their
polling and a hoisted wgmma wait this way). With --schedule, also the
kernel's code in order as its synchronizing events -- wgmma issues (by
shape, the committing one marked), wgmma waits, named-barrier syncs and
arrives, mbarrier waits and arrives, exponentials, stmatrix, TMA copies,
exit -- each with the times it was executed (runs of the same event and
count merged into one line, with their samples; a try-wait loop's closing
branch counted with its wait): the order of a kernel's loop and what runs
once per tile, read from a profile (the thirty-second session read
cuDNN's forward schedule this way). With --counts, also the lines grouped
by the times they were executed (a loop body's lines run equally often,
a once-per-tile block's too): per group the times, its lines, their
executed instructions and share of the samples, and its opcodes by lines
-- the instructions one pass of the group runs (the thirty-third session
compared ours and cuDNN's per step and per tile this way). With
--full-warps, also the stall reasons over the lines full warps ran (16 or
more threads on average: the consumers, not the one-thread producer and
scheduler whose idle waits dilute the kernel-wide reasons), each with the
opcodes holding most of its samples, as shares of those lines' samples
(the thirty-fifth session found ours' b16 forward's consumers at `wait` on
MUFU lines, 8.4 % against cuDNN's 0.6 %, this way). Exit 2 when the page has no
stall-sampling column (a report taken without the source counters) or
the file cannot be read.
"""
import argparse
import csv
import io
import re
import subprocess
import sys

MBARRIER_WAIT = "mbarrier wait (SYNCS)"
DRAIN = "stores draining at exit (drain)"
KINDS = [  # (kind, regex on the instruction), first match wins
    (MBARRIER_WAIT, r"\bSYNCS\b"),
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


def try_wait_of(rows, src, i):
    """The mbarrier operand of the try-wait whose loop line i closes (a BRA
    or BREAK right after a SYNCS...TRYWAIT), else None."""
    if i == 0 or not re.search(r"\b(BRA|BREAK)\b", rows[i][src]):
        return None
    before = rows[i - 1][src]
    if not re.search(r"\bSYNCS\.\S*TRYWAIT\b", before):
        return None
    operand = re.search(r"\[[^\]]*\]", before)
    return operand.group(0) if operand else before.strip()


def opcode(instruction):
    """The mnemonic of a SASS line before its first dot, its predicate
    dropped: 'HGMMA' for '@P0 HGMMA.64x128x16.F32.BF16 ...'."""
    words = re.sub(r"^@!?U?P\w+\s+", "", instruction.strip()).split()
    return words[0].split(".")[0] if words else "?"


def column(header, name):
    """The index of column `name`, None where the page has none."""
    return header.index(name) if name in header else None


def print_mix(rows, col, src, executed, threads, total):
    """Executed warp instructions by opcode, with their share of the stall
    samples; those of warps with fewer than 16 threads apart (`threads`:
    the page's average threads column, or None)."""
    counts, samples, narrow = {}, {}, 0.0
    for r in rows:
        op = opcode(r[src])
        counts[op] = counts.get(op, 0.0) + number(r[executed])
        samples[op] = samples.get(op, 0.0) + number(r[col])
        if threads is not None and 0 < number(r[threads]) < 16:
            narrow += number(r[executed])
    all_executed = sum(counts.values())
    if all_executed <= 0:
        print("by opcode: no executed instructions")
        return
    print(f"by opcode: {all_executed / 1e6:.2f} M warp instructions executed"
          + (f", {narrow / 1e6:.2f} M by warps of fewer than 16 threads" if threads is not None else ""))
    for op, n in sorted(counts.items(), key=lambda kv: -kv[1])[:20]:
        print(f"{n / 1e6:9.2f} M {100 * n / all_executed:6.2f} %  {op:<10} "
              f"samples {100 * samples[op] / total:6.2f} %")


SCHEDULE_EVENTS = [  # (regex on the instruction, the event's name from the match), first match wins
    (r"\bHGMMA\.(\S+)", lambda m, i: "wgmma " + m.group(1).split(".")[0]
     + (" commit" if "gsb0" in i else "")),
    (r"\bWARPGROUP\.DEPBAR\.LE\s+gsb0,\s*(\S+)", lambda m, i: "wgmma wait " + m.group(1)),
    (r"\bBAR\.SYNC\S*\s+([^,]+),", lambda m, i: "barrier sync " + m.group(1)),
    (r"\bBAR\.ARV\s+([^,]+),", lambda m, i: "barrier arrive " + m.group(1)),
    (r"\bSYNCS\.\S*TRYWAIT\b.*?(\[[^\]]*\])", lambda m, i: "mbarrier wait " + m.group(1)),
    (r"\bSYNCS\.ARRIVE\S*\s+\S+\s+(\[[^\]]*\])", lambda m, i: "mbarrier arrive " + m.group(1)),
    (r"\bMUFU\.EX2\b", lambda m, i: "exp2"),
    (r"\bSTSM\b", lambda m, i: "stmatrix"),
    (r"\b(UTMA\w+|UBLK\w+)", lambda m, i: "tma " + m.group(1)),
    (r"\bEXIT\b", lambda m, i: "exit"),
]


def schedule(rows, col, src, executed, threads):
    """The kernel's synchronizing events in code order: (times executed,
    threads, samples, event, repeats), runs of one event at one count
    merged."""
    events = []
    for i, r in enumerate(rows):
        count = number(r[executed])
        if try_wait_of(rows, src, i) and events and events[-1][3].startswith("mbarrier wait"):
            events[-1][2] += number(r[col])  # the try-wait loop's closing branch
            continue
        if count <= 0:
            continue
        name = None
        for pattern, label in SCHEDULE_EVENTS:
            m = re.search(pattern, r[src])
            if m:
                name = label(m, r[src])
                break
        if name is None:
            continue
        width = number(r[threads]) if threads is not None else 0.0
        last = events[-1] if events else None
        if last and last[3] == name and last[0] == count:
            last[2] += number(r[col])
            last[4] += 1
        else:
            events.append([count, width, number(r[col]), name, 1])
    return events


def most_first(counts):
    """A dict's (key, value) pairs, largest value first, ties by key."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def count_groups(rows, col, src, executed):
    """Lines grouped by the times they were executed, most executed
    instructions first: (times, lines, instructions, samples, opcodes as
    (opcode, lines) most lines first)."""
    groups = {}
    for r in rows:
        count = number(r[executed])
        if count <= 0:
            continue
        g = groups.setdefault(count, [0, 0.0, {}])
        g[0] += 1
        g[1] += number(r[col])
        op = opcode(r[src])
        g[2][op] = g[2].get(op, 0) + 1
    out = [(count, lines, count * lines, n, most_first(ops))
           for count, (lines, n, ops) in groups.items()]
    return sorted(out, key=lambda g: -g[2])


def full_warp_reasons(rows, col, src, threads, reasons):
    """The samples of the lines full warps ran (average threads >= 16), by
    stall reason, each with its opcodes by samples: (samples of those lines,
    [(reason, samples, [(opcode, samples), ...]), ...] most samples first)."""
    full = [(r, opcode(r[src])) for r in rows if number(r[threads]) >= 16]
    by_reason = []
    for i, name in reasons:
        ops = {}
        for r, op in full:
            n = number(r[i])
            if n > 0:
                ops[op] = ops.get(op, 0.0) + n
        if ops:
            by_reason.append((name, sum(ops.values()), most_first(ops)))
    by_reason.sort(key=lambda x: (-x[1], x[0]))
    return sum(number(r[col]) for r, _ in full), by_reason


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", help="an .ncu-rep report or a saved source-page .csv")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--mix", action="store_true",
                        help="also the executed instructions by opcode")
    parser.add_argument("--schedule", action="store_true",
                        help="also the kernel's synchronizing events in code order")
    parser.add_argument("--counts", type=int, nargs="?", const=12, default=0, metavar="N",
                        help="also the N largest groups of lines executed equally often (12)")
    parser.add_argument("--full-warps", action="store_true",
                        help="also the stall reasons of the lines full warps ran, with their opcodes")
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
    # ncu's per-reason columns (stall_long_sb, ...; not their "(Not Issued)"
    # twins), where the page has them.
    reasons = [(i, h[len("stall_"):]) for i, h in enumerate(header)
               if h.startswith("stall_") and "Not Issued" not in h]

    def main_reasons(r):
        line = number(r[col])
        counts = sorted(((number(r[i]), name) for i, name in reasons), reverse=True)
        return [(name, n / line) for n, name in counts[:2] if line > 0 and n > 0]

    print(f"{int(total)} stall samples ({header[col]}), {len(rows)} SASS lines")
    ranked = sorted(range(len(rows)), key=lambda i: -number(rows[i][col]))
    for i in ranked[:args.top]:
        r = rows[i]
        where = r[address] if address is not None else ""
        line = f"{100 * number(r[col]) / total:6.2f} %  {where:>8}  {r[src].strip()}"
        wait = try_wait_of(rows, src, i)
        if wait:
            line += f"  <- try-wait on {wait}"
        if reasons:
            line += "  [" + ", ".join(f"{name} {100 * share:.0f} %"
                                      for name, share in main_reasons(r)) + "]"
        print(line)
    by_kind = {}
    for i, r in enumerate(rows):
        top = main_reasons(r) if reasons else []
        if try_wait_of(rows, src, i):
            kind = MBARRIER_WAIT
        elif top and top[0][0] == "drain" and top[0][1] > 0.5:
            kind = DRAIN
        else:
            kind = next((k for k, pattern in KINDS if re.search(pattern, r[src])),
                        "other (math, moves)")
        by_kind[kind] = by_kind.get(kind, 0.0) + number(r[col])
    print("by kind of instruction:")
    for kind, n in sorted(by_kind.items(), key=lambda kv: -kv[1]):
        print(f"{100 * n / total:6.2f} %  {kind}")
    executed = column(header, "Instructions Executed")
    threads = column(header, "Avg. Threads Executed")
    no_counts = "the page has no 'Instructions Executed' column"
    if args.mix:
        if executed is None:
            print(f"by opcode: {no_counts}")
        else:
            print_mix(rows, col, src, executed, threads, total)
    if args.schedule:
        if executed is None:
            print(f"schedule: {no_counts}")
        else:
            print("schedule (times executed, threads, share of samples, event):")
            for count, width, n, name, repeats in schedule(rows, col, src, executed, threads):
                print(f"{int(count):>10} {width:4.0f} {100 * n / total:6.2f} %  {name}"
                      + (f" x{repeats}" if repeats > 1 else ""))
    if args.counts > 0:
        if executed is None:
            print(f"counts: {no_counts}")
        else:
            groups = count_groups(rows, col, src, executed)
            all_executed = sum(g[2] for g in groups)
            print("by times executed (times, lines, instructions, share of them and of the samples, "
                  "opcodes by lines):")
            for count, lines, instructions, n, ops in groups[:args.counts]:
                print(f"{int(count):>10} {lines:5d} {instructions / 1e6:9.2f} M "
                      f"{100 * instructions / all_executed:6.2f} % {100 * n / total:6.2f} %  "
                      + ", ".join(f"{op} {k}" for op, k in ops[:12]))
    if args.full_warps:
        if threads is None or not reasons:
            print("full warps: the page needs the 'Avg. Threads Executed' and stall_* columns")
        else:
            full, by_reason = full_warp_reasons(rows, col, src, threads, reasons)
            print(f"full warps: {int(full)} samples ({100 * full / total:.2f} % of all), "
                  "by stall reason, with the opcodes holding most of it:")
            for name, n, ops in by_reason:
                if full > 0:
                    print(f"{100 * n / full:6.2f} %  {name:<18} "
                          + ", ".join(f"{op} {100 * k / full:.1f} %" for op, k in ops[:6]))
    if reasons:
        by_reason = {name: sum(number(r[i]) for r in rows) for i, name in reasons}
        print("by stall reason:")
        for name, n in sorted(by_reason.items(), key=lambda kv: -kv[1]):
            if n > 0:
                print(f"{100 * n / total:6.2f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
