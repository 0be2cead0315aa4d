using System.Globalization;
using Shootdown.Hardware;
using Shootdown.Policies;

namespace Shootdown;

/// <summary>
/// Everything that determines a run. Two runs of equal configs produce byte-identical results;
/// the config is printed with every result so a run can be replayed.
/// </summary>
public sealed record RunConfig
{
    public string Machine { get; init; } = "gorman-4node";

    public int Nodes { get; init; }

    public int CpusPerNode { get; init; }

    /// <summary>NUMA distances between nodes (null: 10 local, 21 remote).</summary>
    public NumaDistance? NumaDistance { get; init; }

    /// <summary>Memory of the simulated machine after scaling, in bytes.</summary>
    public long MemoryBytes { get; init; }

    /// <summary>
    /// Memory of node 0 in ZONE_DMA32 after scaling, in bytes (the machine's dma32_memory / N; 0:
    /// one zone per node; node 0's whole memory or more: node 0 is one ZONE_DMA32).
    /// </summary>
    public long Dma32Bytes { get; init; }

    /// <summary>N of --scale 1/N: memory and file sizes are divided by N, CPUs are not.</summary>
    public int ScaleDivisor { get; init; } = 1;

    public string Workload { get; init; } = "lru-file-mmap-read";

    public string PolicyName { get; init; } = "vanilla";

    public PolicyParams Policy { get; init; } = new();

    public ulong Seed { get; init; } = 1;

    /// <summary>The constants as stated (kernel paths for the reference clock); a simulation scales them by <see cref="CostModel.CoreClockMhz"/> and <see cref="CostModel.CoreIpcPct"/>. <see cref="Create"/> sets the machine's own.</summary>
    public CostModel Costs { get; init; } = CostModel.Xeon2015;

    /// <summary>Scheduler placement choices (CFS-like spreading, kswapd's first CPU).</summary>
    public Kernel.Sched.SchedParams Sched { get; init; } = new();

    /// <summary>Parameters of the workload (those that take any).</summary>
    public Workloads.WorkloadParams WorkloadParams { get; init; } = new();

    /// <summary>Whether the coherence oracle checks the run (default: on for workloads that store).</summary>
    public bool OracleOn { get; init; }

    /// <summary>End the run at the first violation the oracle finds.</summary>
    public bool StopOnViolation { get; init; }

    /// <summary>With <see cref="StopOnViolation"/>: the kind of violation that ends the run (null: any).</summary>
    public string? StopOnKind { get; init; }

    /// <summary>Width of a time-series bucket.</summary>
    public long SeriesIntervalNs { get; init; } = 100_000_000;

    public int NrCpus => Nodes * CpusPerNode;

    /// <summary>Builds a config from a preset and the user's overrides (<paramref name="costs"/>: the machine's constants to the run's); throws <see cref="ConfigException"/> on bad input.</summary>
    public static RunConfig Create(string machine = "gorman-4node", int? nodes = null, int? cpusPerNode = null,
        long? memoryBytes = null, int scaleDivisor = 1, string workload = "lru-file-mmap-read",
        string policy = "vanilla", ulong seed = 1, PolicyParams? policyParams = null, bool? oracle = null, bool stopOnViolation = false,
        string? stopOnKind = null, Func<CostModel, CostModel>? costs = null)
    {
        MachineSpec m = MachineSpec.Resolve(machine);
        int n = nodes ?? m.Nodes;
        int c = cpusPerNode ?? m.CpusPerNode;
        long mem = memoryBytes ?? m.MemoryBytes;
        if (mem <= 0 || mem > MaxMemoryBytes)
        {
            throw new ConfigException($"--memory must be in 1 byte..1 PiB, got {mem} bytes");
        }
        if (scaleDivisor <= 0 || scaleDivisor > MaxScaleDivisor)
        {
            throw new ConfigException($"--scale must be 1/N with N in 1..{MaxScaleDivisor}, got 1/{scaleDivisor}");
        }
        var cfg = new RunConfig
        {
            Machine = m.Name,
            Nodes = n,
            CpusPerNode = c,
            NumaDistance = n == m.Nodes ? m.Distance : NumaDistance.Uniform(n),
            MemoryBytes = mem / scaleDivisor,
            Dma32Bytes = m.Dma32Bytes / scaleDivisor,
            ScaleDivisor = scaleDivisor,
            Workload = workload,
            PolicyName = policy,
            Policy = policyParams ?? new PolicyParams(),
            Seed = seed,
            // The user's constants (--cost, --cpu-speed) before validation: threads_per_core=1 is
            // what makes --cpus-per-node 3 acceptable on a machine of two threads a core.
            Costs = costs is null ? m.Costs : costs(m.Costs),
            StopOnViolation = stopOnViolation || stopOnKind is not null,
            StopOnKind = stopOnKind,
        };
        if (cfg.StopOnViolation && oracle == false)
        {
            throw new ConfigException("--stop-on-violation needs the oracle; drop --oracle off");
        }
        cfg = cfg with { OracleOn = oracle ?? (Workloads.WorkloadRegistry.Create(workload).Stores || cfg.StopOnViolation) };
        cfg.Validate();
        return cfg;
    }

    /// <summary>
    /// Checks every value and name, so errors come before any work (a config built by
    /// <see cref="Create"/> or read from a file); throws <see cref="ConfigException"/>.
    /// </summary>
    public void Validate()
    {
        int n = Nodes, c = CpusPerNode;
        if (n <= 0 || n > 4096)
        {
            throw new ConfigException($"--nodes must be in 1..4096, got {n}", "nodes");
        }
        if (c <= 0 || c > 4096)
        {
            throw new ConfigException($"--cpus-per-node must be in 1..4096, got {c}", "cpus_per_node");
        }
        if (n * (long)c > 4096)
        {
            throw new ConfigException($"{n * (long)c} CPUs is more than the simulator's limit of 4096", "nodes");
        }
        if (Dma32Bytes < 0 || Dma32Bytes > MaxMemoryBytes)
        {
            throw new ConfigException($"dma32_bytes must be in 0..{MaxMemoryBytes} (1 PiB), got {Dma32Bytes}", "dma32_bytes");
        }
        if (ScaleDivisor <= 0 || ScaleDivisor > MaxScaleDivisor)
        {
            throw new ConfigException($"scale divisor must be in 1..{MaxScaleDivisor}, got {ScaleDivisor}", "scale_divisor");
        }
        if (MemoryBytes <= 0 || MemoryBytes > MaxMemoryBytes)
        {
            throw new ConfigException($"memory_bytes must be in 1..{MaxMemoryBytes} (1 PiB), got {MemoryBytes}", "memory_bytes");
        }
        // Each node needs room for its watermarks and a working LRU: at least 4 MiB per node.
        long perNode = MemoryBytes / n;
        if (perNode < (4L << 20))
        {
            throw new ConfigException(
                $"memory too small: {FormatBytes(MemoryBytes)}{(ScaleDivisor > 1 ? $" (after --scale 1/{ScaleDivisor})" : "")} over {n} node{(n == 1 ? "" : "s")} leaves {FormatBytes(perNode)} per node; at least 4 MiB per node is needed", "memory_bytes");
        }
        NumaDistance?.Validate(n);
        PolicyParams pp = Policy;
        if (pp.SwapClusterMax <= 0 || pp.SwapClusterMax > 4096)
        {
            throw new ConfigException($"--swap-cluster-max must be in 1..4096, got {pp.SwapClusterMax}", "policy.swap_cluster_max");
        }
        if (pp.FlushCeiling < 0)
        {
            throw new ConfigException($"--flush-ceiling must be >= 0, got {pp.FlushCeiling}", "policy.flush_ceiling");
        }
        if (pp.MinFreeKbytes is { } mf)
        {
            // A quarter of the full-size machine's memory at most: the watermarks (min, and low and
            // high a quarter and a half above it) must leave the LRU most of every zone.
            long maxKb = checked(MemoryBytes * ScaleDivisor) / 1024 / 4;
            if (mf < 128 || mf > maxKb)
            {
                throw new ConfigException($"--min-free-kbytes must be in 128..{maxKb} (a quarter of the full-size machine's memory, in KiB), got {mf}", "policy.min_free_kbytes");
            }
        }
        if (pp.BatchSize is { } bs && (bs <= 0 || bs > 65536))
        {
            throw new ConfigException($"--batch-size must be in 1..65536, got {bs}", "policy.batch_size");
        }
        if (Sched.KswapdFirstCpuOffset < 0 || Sched.KswapdFirstCpuOffset >= c)
        {
            throw new ConfigException($"sched.kswapd_first_cpu_offset must be in 0..{c - 1}, got {Sched.KswapdFirstCpuOffset}", "sched.kswapd_first_cpu_offset");
        }
        if (!IsSeriesInterval(SeriesIntervalNs))
        {
            throw new ConfigException($"series_interval_ns must divide a second (at least 1 ms) or be whole seconds up to an hour, got {SeriesIntervalNs}", "series_interval_ns");
        }
        Keyed("stop_on_kind", () => StopOnKind is null ? null : Safety.Oracle.ParseKind(StopOnKind));
        if (StopOnViolation && !OracleOn)
        {
            throw new ConfigException("stop_on_violation needs the oracle (oracle_on = true)", "stop_on_violation");
        }
        if (WorkloadParams.StorePercent is < 0 or > 100)
        {
            throw new ConfigException($"--store-percent must be in 0..100, got {WorkloadParams.StorePercent}", "workload_params.store_percent");
        }
        Costs.Validate();
        CheckCores(c, Costs.ThreadsPerCore);
        Keyed("policy_name", () => PolicyRegistry.Create(PolicyName, pp));
        Keyed("workload", () => Workloads.WorkloadRegistry.Create(Workload));
    }

    /// <summary>Refuses a node of <paramref name="cpusPerNode"/> CPUs that cores of <paramref name="threadsPerCore"/> threads do not fill.</summary>
    internal static void CheckCores(int cpusPerNode, int threadsPerCore)
    {
        if (cpusPerNode % threadsPerCore != 0)
        {
            throw new ConfigException(
                $"threads_per_core = {threadsPerCore} does not divide a node's {cpusPerNode} CPUs into cores; give a multiple of it with --cpus-per-node, or --cost threads_per_core=1 (with --cost smt_throughput_pct=200 to keep each thread at the constants' speed)", "costs.threads_per_core");
        }
    }

    /// <summary>Runs a check, naming <paramref name="key"/> in the error it throws.</summary>
    private static void Keyed(string key, Func<object?> check)
    {
        try
        {
            _ = check();
        }
        catch (ConfigException e) when (e.Key is null)
        {
            throw new ConfigException(e.Message, key);
        }
    }

    /// <summary>Parses "1/16" (or "16"); throws <see cref="ConfigException"/> otherwise.</summary>
    public static int ParseScale(string s)
    {
        string t = s.Trim();
        if (t.StartsWith("1/", StringComparison.Ordinal))
        {
            t = t[2..];
        }
        if (t.Length > 0 && t.All(char.IsAsciiDigit))
        {
            return (int)ParseArg.Integer(t, "--scale 1/N: N", 1, MaxScaleDivisor);
        }
        throw new ConfigException($"malformed --scale '{ParseArg.Clip(s)}'; expected 1/N with N a positive integer, e.g. 1/16");
    }

    /// <summary>Largest N of --scale 1/N (beyond it no machine keeps 4 MiB per node).</summary>
    public const int MaxScaleDivisor = 1 << 20;

    /// <summary>Parses sizes such as 8GiB, 512MiB, 4G, 1073741824.</summary>
    public static long ParseBytes(string s)
    {
        string t = s.Trim();
        long mult = 1;
        string[] suffixes = ["KiB", "MiB", "GiB", "TiB", "K", "M", "G", "T", "KB", "MB", "GB", "TB", "B"];
        foreach (string suf in suffixes)
        {
            if (t.EndsWith(suf, StringComparison.OrdinalIgnoreCase))
            {
                mult = char.ToUpperInvariant(suf[0]) switch
                {
                    'K' => 1L << 10,
                    'M' => 1L << 20,
                    'G' => 1L << 30,
                    'T' => 1L << 40,
                    _ => 1,
                };
                t = t[..^suf.Length];
                break;
            }
        }
        if (double.TryParse(t, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) && v > 0)
        {
            if (v * mult > MaxMemoryBytes)
            {
                throw new ConfigException($"size '{ParseArg.Clip(s)}' is too large; at most 1 PiB");
            }
            return (long)(v * mult);
        }
        throw new ConfigException($"malformed size '{ParseArg.Clip(s)}'; expected a positive number with an optional unit (KiB, MiB, GiB, TiB), e.g. 8GiB");
    }

    /// <summary>A time-series interval divides a second (at least 1 ms) or is whole seconds up to an hour.</summary>
    public static bool IsSeriesInterval(long ns) =>
        ns is >= 1_000_000 and <= 3_600_000_000_000 && (1_000_000_000 % ns == 0 || ns % 1_000_000_000 == 0);

    /// <summary>Largest memory a machine may have: 1 PiB.</summary>
    public const long MaxMemoryBytes = 1L << 50;

    public static string FormatBytes(long b)
    {
        if (b >= 1L << 30 && b % (1L << 20) == 0)
        {
            return (b / (double)(1L << 30)).ToString("0.##", CultureInfo.InvariantCulture) + " GiB";
        }
        if (b >= 1L << 20)
        {
            return (b / (double)(1L << 20)).ToString("0.##", CultureInfo.InvariantCulture) + " MiB";
        }
        if (b >= 1L << 10)
        {
            return (b / (double)(1L << 10)).ToString("0.##", CultureInfo.InvariantCulture) + " KiB";
        }
        return b.ToString(CultureInfo.InvariantCulture) + (b == 1 ? " byte" : " bytes");
    }
}
