"""The results as a plain-text (Markdown) table."""

from __future__ import annotations


def format_table(results: dict) -> str:
    meta = results["meta"]
    lines = [f"{meta['cpu']} ({meta['cpu_count']} CPUs), torch {meta['torch']}, commit {meta['commit']}, "
             f"load average {meta['loadavg_before'][0]:.1f} before / {meta.get('loadavg_after', [0])[0]:.1f} after"
             + (f", OMP_WAIT_POLICY={meta['omp_wait_policy']}" if meta.get("omp_wait_policy") else "")]
    if results["core"]:
        lines += ["", "| synthesis core, 10 s | threads | wall median (min-max) s | RTF | CPU s | speed vs fp32 "
                  "(wall / CPU) | output vs fp32 |", "| --- | --- | --- | --- | --- | --- | --- |"]
        fp32 = {(r["device"], r["threads"]): r for r in results["core"] if r["precision"] == "fp32"}
        for r in results["core"]:
            w = r["wall"]
            quality = ""
            if "snr_db_vs_fp32" in r:
                quality = f"SNR {r['snr_db_vs_fp32']:.1f} dB"
            if r["precision"].startswith("reference"):
                quality = f"max abs {r['max_abs_vs_fp32']:.1e}"
            if r.get("peak_gpu_bytes"):
                quality += f"{', ' if quality else ''}peak GPU {r['peak_gpu_bytes'] / 1e9:.2f} GB"
            base = fp32.get((r["device"], r["threads"]))
            speed = (f"{base['wall']['median'] / w['median']:.2f}× / {base['cpu']['median'] / r['cpu']['median']:.2f}×"
                     if base else "")
            lines.append(f"| {r['device']} {r['precision']} | {r['threads']} | {_s(w['median'])} "
                         f"({_s(w['min'])}-{_s(w['max'])}) | {r['rtf']:.3g} | {_s(r['cpu']['median'])} | {speed} | "
                         f"{quality} |")
    if results["load"]:
        w = results["load"]["wall"]
        lines += ["", f"model load (full-size 4.1, warm disk): median {w['median']:.2f} s "
                      f"(min {w['min']:.2f}, max {w['max']:.2f})"]
    if results["e2e"]:
        names = sorted({n for r in results["e2e"] for n in r.get("stages", {})})
        lines += ["", "| end to end | F0 | seconds | RTF | CPU s / audio s | peak RSS GB | "
                  + " | ".join(f"{n} s" for n in names) + " |", "| --- " * (6 + len(names)) + "|"]
        for r in results["e2e"]:
            if "error" in r:
                lines.append(f"| {r['device']} {r['precision']} | {r['f0']} | {r['seconds']} | {r['error']} |")
                continue
            stages = " | ".join(f"{r['stages'].get(n, 0.0):.2f}" for n in names)
            cpu = r["cpu"]["median"] / r["audio_seconds"] if "cpu" in r else float("nan")
            peak = f"{r['peak_rss_bytes'] / 1e9:.2f}"
            if r.get("peak_gpu_bytes"):
                peak += f" (GPU {r['peak_gpu_bytes'] / 1e9:.2f})"
            lines.append(f"| {r['device']} {r['precision']} | {r['f0']} | {r['seconds']} | {r['rtf']:.3g} | "
                         f"{cpu:.3f} | {peak} | {stages} |")
    return "\n".join(lines)


def _s(seconds: float) -> str:
    """Seconds with two decimals, or four for the few-millisecond times of a GPU."""
    return f"{seconds:.2f}" if seconds >= 0.1 else f"{seconds:.4f}"
