"""Issue #14's speed and memory targets against the figures of one `make bench` run.

Reads the JSON the benchmark steps wrote to benchmarks/out/ and prints, per target, what this run
measured, whether it is met, and where it is not, the limit this same run measured under it (CPU
a turn against what the cores allow, the encoder against the CPU's arithmetic, the table's own
COPY floor, Label Studio's own CPU). Prints; never fails the run.

    python benchmarks/summary.py benchmarks/out
"""
import json
import os
import sys
from pathlib import Path

MB = 500


def load(out: Path, name: str) -> dict | None:
    path = out / name
    if not path.exists():
        return None
    lines = [x for x in path.read_text().splitlines() if x.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def peak(what: str, mb: float) -> tuple[str, str, bool, str]:
    return (f"{what} peak ≤ {MB} MB", f"{mb} MB", mb <= MB, "")


def rows(out: Path, cores: int) -> list[tuple[str, str, bool, str]]:
    res = []
    lex, sem, enc = load(out, "signals-lexical.json"), load(out, "signals-semantic.json"), load(out, "encoder.json")
    ing, exp, push = load(out, "ingest.json"), load(out, "exports.json"), load(out, "push.json")

    if lex:
        cpu = lex.get("process_cpu_us_per_turn", 0) + lex.get("postgres_cpu_us_per_turn", 0)
        budget = cores * 1e6 / 30_000
        met, why = lex["turns_per_s"] >= 30_000, ""
        if not met and "postgres_cpu_us_per_turn" in lex:
            why = (f"CPU a turn: detect_signals {lex['process_cpu_us_per_turn']:.1f} µs + PostgreSQL "
                   f"{lex['postgres_cpu_us_per_turn']:.1f} µs = {cpu:.1f} µs; 30,000 turns/s on {cores} cores allows "
                   f"{budget:.1f} µs" + (" — more CPU than the cores have" if cpu > budget
                                          else " — it would fit: the rest is waiting"))
        res.append(("detect_signals lexical ≥ 30,000 turns/s", f"{lex['turns_per_s']:,} turns/s ({lex['turns']:,} turns)",
                    met, why))
        res.append(peak("detect_signals lexical", lex["peak_rss_mb"]))
    if sem:
        met, why = sem["turns_per_s"] >= 5_000, ""
        if not met and enc and sem.get("encoder_texts"):
            per_turn = sem["encoder_texts"] / sem["turns"]
            cap = enc["texts_per_s_at_blas_speed"] / per_turn
            why = (f"{sem['encoder_texts']:,} distinct queries reached the encoder ({per_turn:.3f} a turn): "
                   f"5,000 turns/s needs {5_000 * per_turn:,.0f} texts/s; MiniLM-L6 costs {enc['mflop_per_text']} "
                   f"MFLOP a text, so even at numpy BLAS speed on these cores ({enc['blas_gflops_same_shapes']} "
                   f"GFLOP/s; the encoder runs at {enc['encoder_share_of_blas']:.0%} of it) it embeds at most "
                   f"{enc['texts_per_s_at_blas_speed']} texts/s = {cap:,.0f} turns/s with nothing else running")
        res.append(("detect_signals semantic, every query distinct, ≥ 5,000 turns/s",
                    f"{sem['turns_per_s']:,} turns/s ({sem['turns']:,} turns)",
                    met, why))
        res.append(peak("detect_signals semantic", sem["peak_rss_mb"]))
    if ing:
        met, why = ing["ratio_vs_copy"] >= 0.5, ""
        floor = ing.get("schema_floor_copy_seconds") or {}
        if not met and floor:
            full = ing["raw_copy_seconds"] / floor["indexes_and_one_composite_foreign_key"]
            two = ing["raw_copy_seconds"] / floor["indexes_and_foreign_keys"]
            bare = ing["raw_copy_seconds"] / floor["indexes"]
            why = (f"a COPY of ingest's own rendered rows, no Python at all, into a copy of production_turn "
                   f"reaches {full:.2f} of the raw COPY with its indexes and its composite foreign key ({two:.2f} "
                   f"with the two single keys it had before, {bare:.2f} with no key)"
                   + (": no write into this table reaches 0.5, not even without its key" if bare < 0.5 else
                      ": no write into this schema reaches 0.5 while it keeps referential integrity" if full < 0.5
                      else ": the schema would allow 0.5, ingest's own work does not")
                   + f" (benchmarks/README.md, 'Ingest against a raw COPY'); ingest is at "
                   f"{ing['ratio_vs_copy'] / full:.2f} of that floor")
            if "ingest_process_cpu_seconds" in ing:
                cpu = ing["ingest_process_cpu_seconds"] + ing["ingest_postgres_cpu_seconds"]
                allowed = cores * ing["raw_copy_seconds"] / 0.5
                why += (f"; CPU during ingest: its process {ing['ingest_process_cpu_seconds']} s + PostgreSQL "
                        f"{ing['ingest_postgres_cpu_seconds']} s = {cpu:.1f} s, where 0.5 on {cores} cores allows "
                        f"{allowed:.1f} s")
        res.append(("ingest ≥ 0.5 of a raw COPY (primary key only), ~1 KB answers",
                    f"{ing['ratio_vs_copy']:.2f} ({ing['ingest_turns_per_s']:,} turns/s; COPY "
                    f"{ing['raw_copy_rows_per_s']:,} rows/s; {ing['turns']:,} turns)",
                    met, why))
        res.append(peak("ingest", ing["ingest_peak_rss_mb"]))
    if push:
        met, why = push["ratio"] <= 1.1, ""
        if not met and "cpu_evalgap_push" in push:
            alone, during = push["cpu_ls_bulk_import"]["label_studio"], push["cpu_evalgap_push"]["label_studio"]
            ours = push["cpu_evalgap_push"]["this_process"] + push["cpu_evalgap_push"]["postgres"]
            why = (f"Label Studio's own CPU for the same tasks: {alone} s in its one-request import "
                   f"({push['ls_bulk_import_s']} s wall), {during} s during the push (its imports in several "
                   f"requests, sharing {cores} cores with evalgap's {ours:.2f} s of process and PostgreSQL CPU); "
                   f"Label Studio waited for evalgap {push['push_before_first_import_s'] + push['push_between_imports_s']:.2f} s "
                   f"before and between imports and {push['push_after_last_import_s']} s after the last")
        res.append(("push 10,000 tasks ≤ 1.1× Label Studio's own import",
                    f"{push['ratio']}× ({push['evalgap_push_s']} s vs {push['ls_bulk_import_s']} s)",
                    met, why))
    if exp:
        worst = max(exp["formats"].items(), key=lambda kv: kv[1]["seconds"])
        met = worst[1]["seconds"] <= 1.0
        res.append(("every export format of a 100,000-item version ≤ 1 s",
                    ", ".join(f"{k} {v['seconds']} s" for k, v in exp["formats"].items()),
                    met, "" if met else f"slowest: {worst[0]}"))
    return res


def main(out: Path) -> None:
    cores = os.cpu_count() or 1
    table = rows(out, cores)
    if not table:
        print("no benchmark output under", out)
        return
    for target, measured, met, why in table:
        print(f"{'✔' if met else '✘'} {target}: {measured}")
        if why:
            print(f"    why not: {why}")
    print(f"({cores} cores, load average now {os.getloadavg()[0]:.2f}; every figure from this run's JSON in {out})")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent / "out"))
