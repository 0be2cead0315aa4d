using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Shootdown.Hardware;
using Shootdown.Observe;
using Shootdown.Policies;

namespace Shootdown.Reports;

/// <summary>One metric of a comparison: how to read it from a run, and how to name it.</summary>
public sealed record Metric(string Key, string Label, Func<RunResult, double> Get, string Format = "0.00", bool OracleOnly = false);

/// <summary>Runs of one policy over one or more seeds.</summary>
public sealed record PolicyRuns(string Policy, IReadOnlyList<RunResult> Runs)
{
    public double Mean(Metric m) => Runs.Average(m.Get);

    /// <summary>Sample standard deviation (0 for a single run).</summary>
    public double StdDev(Metric m) => SeedStats.SampleStdDev(Runs.Select(m.Get).ToArray());
}

/// <summary>
/// `shootdown compare`: the same machine and workload under several policies (and seeds), laid out
/// as mmtests' compare scripts do — one row per metric, the baseline first, each candidate as
/// "value (delta%)".
/// </summary>
public sealed class Comparison
{
    public static readonly Metric[] Metrics =
    [
        new("elapsed_s", "Elapsed (s)", r => r.ElapsedS),
        new("median_exit_s", "  Median task exit (s)", r => r.TaskExits.MedianS),
        new("time_range_s", "  Tasks' elapsed: range (s)", r => r.TaskExits.TimeRangeS),
        new("time_stddv_s", "  Tasks' elapsed: stddev (s)", r => r.TaskExits.TimeStddvS),
        new("user_s", "User CPU (s)", r => r.UserS),
        new("system_s", "System CPU (s)", r => r.SystemS),
        new("benchmark_system_s", "  System CPU of the benchmark (s)", r => r.BenchmarkSystemS),
        new("interrupts_per_s", "Interrupts/sec", r => r.InterruptsPerS, "0"),
        new("tlb_ipis", "TLB IPIs", r => r.TlbIpis, "0"),
        new("tlb_ipis_per_s", "TLB IPIs/sec", r => r.TlbIpisPerS, "0"),
        new("tlb_ipis_reclaim", "  TLB IPIs for reclaim", r => r.TlbIpisByCause["reclaim"], "0"),
        new("tlb_ipis_migration", "  TLB IPIs for migration", r => r.TlbIpisByCause["migration"], "0"),
        new("tlb_ipis_numa_pte_updates", "  TLB IPIs for NUMA PTE updates", r => r.TlbIpisByCause["numa_pte_updates"], "0"),
        new("tlb_ipis_other", "  TLB IPIs, other", r => r.TlbIpisByCause["other"], "0"),
        new("batch_flushes_reclaim", "Reclaim batch flushes", r => ReclaimBatches(r)?.Flushes ?? 0, "0"),
        new("batch_pages_per_flush_reclaim", "  Pages per reclaim batch flush", r => ReclaimBatches(r)?.PagesPerFlush ?? 0, "0.0"),
        new("batch_other_cpus_per_flush_reclaim", "  Other CPUs per reclaim batch flush", r => ReclaimBatches(r)?.RemoteCpusPerFlush ?? 0),
        new("pages_migrated", "Pages migrated", r => r.PagesMigrated, "0"),
        new("pages_migrated_per_s", "Pages migrated/sec", r => r.PagesMigratedPerS, "0"),
        new("pgmigrate_fail", "pgmigrate_fail", r => r.Vmstat["pgmigrate_fail"], "0"),
        new("numa_pte_updates", "numa_pte_updates", r => r.Vmstat["numa_pte_updates"], "0"),
        new("numa_hint_faults", "numa_hint_faults", r => r.Vmstat["numa_hint_faults"], "0"),
        new("numa_pages_migrated", "numa_pages_migrated", r => r.Vmstat["numa_pages_migrated"], "0"),
        new("pages_reclaimed", "Pages reclaimed", r => r.PagesReclaimed, "0"),
        new("pgscan_kswapd", "Kswapd pages scanned", r => r.Vmstat["pgscan_kswapd"], "0"),
        new("pgscan_direct", "Direct pages scanned", r => r.Vmstat["pgscan_direct"], "0"),
        new("kswapd_efficiency", "Kswapd share of reclaim (%)", r => r.KswapdEfficiency * 100, "0.0"),
        new("direct_reclaim_stalls", "Direct reclaim stalls", r => r.DirectReclaimStalls, "0"),
        new("reclaim_efficiency", "Reclaim efficiency (%)", r => r.ReclaimEfficiency * 100, "0.0"),
        new("steady_stalled_share", "  Steady intervals with readers stalled (%)", r => r.SteadyFaults.StalledShare * 100, "0"),
        new("spin_s", "Lock spinning (s)", r => r.SpinS),
        new("ipi_wait_s", "IPI ack waits (s)", r => r.IpiWaitS),
        new("lone_thread_s", "CPU time alone on a core (s)", r => r.LoneThreadS),
        new("nr_tlb_remote_flush", "nr_tlb_remote_flush", r => r.Vmstat["nr_tlb_remote_flush"], "0"),
        new("nr_tlb_local_flush_all", "nr_tlb_local_flush_all", r => r.Vmstat["nr_tlb_local_flush_all"], "0"),
        new("nr_tlb_local_flush_one", "nr_tlb_local_flush_one", r => r.Vmstat["nr_tlb_local_flush_one"], "0"),
        new("violations", "Coherence violations (oracle)", r => r.Safety?.Violations ?? 0, "0.##", OracleOnly: true),
        new("lost_write", "  lost_write", r => r.Safety?.LostWrite ?? 0, "0.##", OracleOnly: true),
        new("stale_access_after_free", "  stale_access_after_free", r => r.Safety?.StaleAccessAfterFree ?? 0, "0.##", OracleOnly: true),
        new("write_after_protect", "  write_after_protect", r => r.Safety?.WriteAfterProtect ?? 0, "0.##", OracleOnly: true),
    ];

    /// <summary>The run's reclaim batch flushes (tlb_batch_flushes["reclaim"]), null for a policy that batched none.</summary>
    private static BatchFlushReport? ReclaimBatches(RunResult r) =>
        r.TlbBatchFlushes is { } d && d.TryGetValue("reclaim", out BatchFlushReport? b) ? b : null;

    public Comparison(IReadOnlyList<PolicyRuns> results)
    {
        Results = results;
    }

    public IReadOnlyList<PolicyRuns> Results { get; }

    public PolicyRuns Baseline => Results[0];

    /// <summary>The metrics shown: the oracle's rows only when some run had the oracle on (otherwise they would read 0).</summary>
    public IReadOnlyList<Metric> ShownMetrics =>
        Results.Any(pr => pr.Runs.Any(r => r.Safety is not null)) ? Metrics : Metrics.Where(m => !m.OracleOnly).ToArray();

    /// <summary>Parses "a,b,c"; throws <see cref="ConfigException"/> for empty items, duplicates or unknown names.</summary>
    public static IReadOnlyList<string> ParsePolicyList(string list)
    {
        string[] items = list.Split(',', StringSplitOptions.TrimEntries);
        if (items.Length == 0 || items.Any(string.IsNullOrEmpty))
        {
            throw new ConfigException($"malformed --policies '{ParseArg.Clip(list)}'; expected a comma-separated list such as vanilla,rfc-pfn32");
        }
        foreach (string p in items)
        {
            if (!PolicyRegistry.Names.Contains(p))
            {
                throw new ConfigException($"unknown policy '{ParseArg.Clip(p)}' in --policies; allowed: {string.Join(", ", PolicyRegistry.Names)}");
            }
        }
        string? dup = items.GroupBy(x => x).FirstOrDefault(g => g.Count() > 1)?.Key;
        if (dup is not null)
        {
            throw new ConfigException($"policy '{ParseArg.Clip(dup)}' appears twice in --policies");
        }
        return items;
    }

    /// <summary>
    /// Runs every (policy, seed) pair; independent runs go in parallel on the host's cores and the
    /// results are put back in a fixed order, so they equal a sequential run's.
    /// </summary>
    public static Comparison Run(RunConfig template, IReadOnlyList<string> policies, int repeat, int parallelism = 0, Action<int, int>? progress = null, Func<RunConfig, RunOutputs?>? outputsFor = null) =>
        RunMany([(template, policies)], repeat, parallelism, progress, outputsFor)[0];

    /// <summary>
    /// Several comparisons at once (e.g. one per machine, or one per perturbed cost model): every
    /// (set, policy, seed) run goes into one pool, so the host's cores stay busy across sets. The
    /// results are put back in a fixed order and equal a sequential run's.
    /// </summary>
    public static IReadOnlyList<Comparison> RunMany(IReadOnlyList<(RunConfig Template, IReadOnlyList<string> Policies)> sets, int repeat, int parallelism = 0, Action<int, int>? progress = null, Func<RunConfig, RunOutputs?>? outputsFor = null)
    {
        if (repeat <= 0)
        {
            throw new ConfigException($"--repeat must be a positive integer, got {repeat}");
        }
        var jobs = new List<(int Set, int P, RunConfig Cfg)>();
        for (int k = 0; k < sets.Count; k++)
        {
            var (template, policies) = sets[k];
            for (int p = 0; p < policies.Count; p++)
            {
                for (int s = 0; s < repeat; s++)
                {
                    jobs.Add((k, p, template with { PolicyName = policies[p], Seed = template.Seed + (ulong)s }));
                }
            }
        }
        var results = new RunResult[jobs.Count];
        int done = 0;
        var opts = new ParallelOptions { MaxDegreeOfParallelism = parallelism > 0 ? parallelism : Environment.ProcessorCount };
        try
        {
            Parallel.For(0, jobs.Count, opts, i =>
            {
                results[i] = Runner.Run(jobs[i].Cfg, outputs: outputsFor?.Invoke(jobs[i].Cfg));
                progress?.Invoke(Interlocked.Increment(ref done), jobs.Count);
            });
        }
        catch (AggregateException e) when (e.InnerExceptions.Count > 0)
        {
            // A run's own error (e.g. a SimulationException), not the wrapper: the CLI reports it as it would for one run.
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(e.InnerExceptions[0]).Throw();
        }
        var comparisons = new List<Comparison>();
        for (int k = 0; k < sets.Count; k++)
        {
            var list = new List<PolicyRuns>();
            for (int p = 0; p < sets[k].Policies.Count; p++)
            {
                list.Add(new PolicyRuns(sets[k].Policies[p], jobs.Select((j, i) => (j, i)).Where(x => x.j.Set == k && x.j.P == p).Select(x => results[x.i]).ToArray()));
            }
            comparisons.Add(new Comparison(list));
        }
        return comparisons;
    }

    public static double DeltaPct(double value, double baseline) => baseline == 0 ? 0 : (value - baseline) / baseline * 100;

    /// <summary>The mmtests-style text table.</summary>
    public string ToText()
    {
        var sb = new StringBuilder();
        int labelW = ShownMetrics.Max(m => m.Label.Length) + 2;
        const int colW = 24;
        sb.Append(new string(' ', labelW));
        foreach (PolicyRuns pr in Results)
        {
            sb.Append(pr.Policy.PadLeft(colW));
        }
        sb.AppendLine();
        foreach (Metric m in ShownMetrics)
        {
            sb.Append(m.Label.PadRight(labelW));
            double b = Baseline.Mean(m);
            foreach (PolicyRuns pr in Results)
            {
                double v = pr.Mean(m);
                string cell = v.ToString(m.Format, CultureInfo.InvariantCulture) + " (" + DeltaPct(v, b).ToString("+0.00;-0.00;0.00", CultureInfo.InvariantCulture).PadLeft(7) + "%)";
                sb.Append(cell.PadLeft(colW));
            }
            sb.AppendLine();
            if (Results[0].Runs.Count > 1)
            {
                sb.Append(("  stddev").PadRight(labelW));
                foreach (PolicyRuns pr in Results)
                {
                    sb.Append(pr.StdDev(m).ToString(m.Format, CultureInfo.InvariantCulture).PadLeft(colW));
                }
                sb.AppendLine();
            }
        }
        return sb.ToString();
    }

    /// <summary>CSV: one row per (metric, policy) with mean, stddev, delta against the baseline and run count.</summary>
    public string ToCsv()
    {
        var sb = new StringBuilder("metric,policy,mean,stddev,delta_pct,runs\n");
        foreach (Metric m in ShownMetrics)
        {
            double b = Baseline.Mean(m);
            foreach (PolicyRuns pr in Results)
            {
                double v = pr.Mean(m);
                sb.Append(CultureInfo.InvariantCulture, $"{m.Key},{pr.Policy},{v.ToString("R", CultureInfo.InvariantCulture)},{pr.StdDev(m).ToString("R", CultureInfo.InvariantCulture)},{DeltaPct(v, b).ToString("0.####", CultureInfo.InvariantCulture)},{pr.Runs.Count}\n");
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// JSON: {"baseline": entry, "results": [entry, ...]}; an entry holds the fields of its first
    /// run (as `shootdown run` prints them), plus "mean"/"stddev" per metric and the seeds used.
    /// </summary>
    public string ToJson() => ToJsonNode().ToJsonString(new JsonSerializerOptions { WriteIndented = true });

    /// <summary>The object <see cref="ToJson"/> prints.</summary>
    public JsonObject ToJsonNode() => new()
    {
        ["baseline"] = Entry(Baseline),
        ["results"] = new JsonArray(Results.Select(Entry).ToArray<JsonNode?>()),
    };

    private JsonObject Entry(PolicyRuns pr)
    {
        var o = JsonNode.Parse(pr.Runs[0].ToJson())!.AsObject();
        o["policy"] = pr.Policy;
        var mean = new JsonObject();
        var sd = new JsonObject();
        foreach (Metric m in ShownMetrics)
        {
            mean[m.Key] = pr.Mean(m);
            sd[m.Key] = pr.StdDev(m);
        }
        o["mean"] = mean;
        o["stddev"] = sd;
        o["seeds"] = new JsonArray(pr.Runs.Select(r => (JsonNode?)JsonValue.Create(r.Config.Seed)).ToArray());
        return o;
    }
}
