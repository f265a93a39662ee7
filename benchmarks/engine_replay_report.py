"""The replay's table (simulated vs measured) and chart, from the result benchmarks/engine_replay.py computed."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"mean": "mean", "p90": "p90", "p99": "p99", "ttft": "first chunk (mean)", "max_wait": "longest wait"}


def cell(figure, key="mean"):
    """mean (low-high over seeds) in seconds."""
    return f"{figure[key]['mean']:.2f} ({figure[key]['low']:.2f}-{figure[key]['high']:.2f})"


def ratio(figure, key):
    return f"{figure[key]['vs_fcfs']:.2f}"


def markdown(result):
    s, e, c = result["settings"], result["engine"], result["calibration"]
    lines = [
        "# The serving claim in the real engine: simulated vs measured", "",
        f"Made by `make replay` (benchmarks/engine_replay.py) at {result['machine']['commit']} on "
        f"{result['machine']['cpus']} CPU cores ({result['machine']['processor']}), {result['wall_s'] / 60:.1f} min. "
        f"{result['workload']['requests']} test traces of make real ({result['workload']['models']} model names), "
        f"output tokens = trace characters / 4 x {s['scale']} (mean {result['workload']['output_tokens']['mean']:.0f}, "
        f"median {result['workload']['output_tokens']['median']:.0f}, "
        f"max {result['workload']['output_tokens']['max']}); "
        f"vLLM's CPU build with the tiny model, --max-num-seqs {s['batch']}, KV cache {e['kv_tokens']:,} tokens; "
        f"arrival sequences (seeds) {', '.join(map(str, s['seeds']))}: each figure is the mean over them, with the "
        "range in brackets.", "",
        "Capacity measured first, straight to the engine in fcfs: the "
        f"{result['workload']['requests']} requests sent at once "
        f"took {c['burst_s']:.1f} s (the median of {len(c['bursts_s'])}: "
        f"{', '.join(f'{b:.1f}' for b in c['bursts_s'])}) ({c['burst_tokens_per_s']:.0f} output tokens/s): "
        f"{result['capacity_requests_per_s']:.2f} requests/s, and the loads are of that. A decode step of one "
        f"sequence alone took {c['single_step_ms']:.2f} ms; fitted to both, the engine model steps in "
        f"{e['step_ms']:.2f} ms + {e['decode_ms_per_seq']:.2f} ms per running sequence (prefill 0).", ""]
    for load, policies in result["policies"].items():
        lines += [f"## Load {load}", "",
                  "| policy | mean s measured | simulated | p90 measured | simulated | p99 measured | simulated | "
                  "first chunk measured | simulated | longest wait measured | simulated |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for name, f in policies.items():
            lines.append(f"| {name} | " + " | ".join(f"{cell(f['measured'], k)} | {cell(f['simulated'], k)}"
                                                   for k in LABELS) + " |")
        lines += ["", "Relative to first come first served on the same sequences (the mean of the per-sequence "
                  "ratios):", "", "| policy | mean measured | simulated | p90 measured | simulated | p99 measured | "
                  "simulated |", "|---|---|---|---|---|---|---|"]
        for name, f in policies.items():
            lines.append(f"| {name} | " + " | ".join(f"{ratio(f['measured'], k)} | {ratio(f['simulated'], k)}"
                                                   for k in ("mean", "p90", "p99")) + " |")
        lines.append("")
    lines += sequence_table(result)
    lines += ["Requests per policy (all loads and seeds): " + "; ".join(
        f"{name} {v['requests']} sent, {v['failed']} failed, {v['short']} answered short, {v['unscored']} unscored"
        for name, v in result["checks"].items()) + ".", ""]
    return "\n".join(lines)


def sequence_table(result):
    """Each arrival sequence's mean latency, measured / simulated, and its mean first chunk (measured)."""
    if "sequences" not in result:
        return []
    loads = list(result["policies"])
    seeds = result["settings"]["seeds"]
    lines = ["## Per arrival sequence", "", "Mean latency measured / simulated, s, and the mean first chunk measured "
             "(tenths of a second where the engine kept up; seconds where its queue grew):", "",
             "| policy | " + " | ".join(f"load {load}, seed {seed}" for load in loads for seed in seeds) + " |",
             "|---|" + "---|" * (len(loads) * len(seeds))]
    for name, by_load in result["sequences"].items():
        lines.append(f"| {name} | " + " | ".join(f"{v['measured']:.2f} / {v['simulated']:.2f} ({v['first_chunk']:.2f})"
                                                for load in loads for v in by_load[load]) + " |")
    return lines + [""]


def chart(result, path):
    """Mean latency relative to fcfs per policy, measured beside simulated, one panel per load."""
    loads = list(result["policies"])
    fig, axes = plt.subplots(1, len(loads), figsize=(5 * len(loads), 4), sharey=True, squeeze=False)
    for ax, load in zip(axes[0], loads):
        policies = [p for p in result["policies"][load] if p != "fcfs"]
        for offset, kind, color in ((-0.2, "measured", "tab:blue"), (0.2, "simulated", "tab:gray")):
            values = [result["policies"][load][p][kind]["mean"]["vs_fcfs"] for p in policies]
            ax.bar([i + offset for i in range(len(policies))], values, width=0.4, label=kind, color=color)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(policies)), policies, rotation=20)
        ax.set_title(f"load {load}")
    axes[0][0].set_ylabel("mean latency / first come first served")
    axes[0][0].legend()
    fig.suptitle("vLLM CPU engine, tiny model: measured vs the engine model")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
