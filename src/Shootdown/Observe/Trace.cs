using System.Globalization;
using System.Text;
using Shootdown.Hardware;

namespace Shootdown.Observe;

/// <summary>enum tlb_flush_reason (include/linux/mm_types.h), with the seed's TLB_REMOTE_SEND_IPI.</summary>
public enum TlbFlushReason
{
    FlushOnTaskSwitch = 0,
    RemoteShootdown = 1,
    LocalShootdown = 2,
    LocalMmShootdown = 3,
    RemoteSendIpi = 4,
}

/// <summary>Which trace events to keep: name patterns ("tlb:*", "vmscan:mm_vmscan_kswapd_wake") and a time window.</summary>
public sealed record TraceFilter
{
    public static readonly string[] AllEvents =
    [
        "tlb:tlb_flush",
        "vmscan:mm_vmscan_kswapd_wake",
        "vmscan:mm_vmscan_kswapd_sleep",
        "vmscan:mm_vmscan_direct_reclaim_begin",
        "vmscan:mm_vmscan_direct_reclaim_end",
        "vmscan:mm_vmscan_lru_shrink_inactive",
        "exceptions:page_fault_user",
        "migrate:mm_migrate_pages",
    ];

    public IReadOnlyList<string> Patterns { get; init; } = ["*"];

    public long FromNs { get; init; }

    public long ToNs { get; init; } = long.MaxValue;

    /// <summary>Parses "tlb:*,vmscan:*"; throws <see cref="ConfigException"/> for patterns matching nothing.</summary>
    public static IReadOnlyList<string> ParsePatterns(string s)
    {
        string[] items = s.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (items.Length == 0)
        {
            throw new ConfigException($"malformed --trace-events '{ParseArg.Clip(s)}'; expected e.g. tlb:*,vmscan:*");
        }
        foreach (string p in items)
        {
            if (!AllEvents.Any(e => Matches(p, e)))
            {
                throw new ConfigException($"--trace-events pattern '{ParseArg.Clip(p)}' matches no event; events: {string.Join(", ", AllEvents)}");
            }
        }
        return items;
    }

    /// <summary>Parses "A-B" in simulated seconds (either side may be empty).</summary>
    public static (long From, long To) ParseWindow(string s)
    {
        int dash = s.IndexOf('-', StringComparison.Ordinal);
        if (dash < 0)
        {
            throw new ConfigException($"malformed --trace-window '{ParseArg.Clip(s)}'; expected FROM-TO in simulated seconds, e.g. 1.5-2");
        }
        static long Sec(string x, long dflt, string whole)
        {
            if (x.Length == 0)
            {
                return dflt;
            }
            if (double.TryParse(x, NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out double v) && v >= 0)
            {
                return v <= 1e6 ? (long)(v * 1e9)
                    : throw new ConfigException($"--trace-window times must be in 0..1000000 s, got {ParseArg.Clip(x)}");
            }
            throw new ConfigException($"malformed --trace-window '{ParseArg.Clip(whole)}'; expected FROM-TO in simulated seconds, e.g. 1.5-2");
        }
        long from = Sec(s[..dash].Trim(), 0, s), to = Sec(s[(dash + 1)..].Trim(), long.MaxValue, s);
        if (to <= from)
        {
            throw new ConfigException($"--trace-window '{ParseArg.Clip(s)}' is empty; TO must be after FROM");
        }
        return (from, to);
    }

    public static bool Matches(string pattern, string ev)
    {
        if (pattern == "*")
        {
            return true;
        }
        if (pattern.EndsWith('*'))
        {
            return ev.StartsWith(pattern[..^1], StringComparison.Ordinal);
        }
        return ev == pattern || ev.EndsWith(":" + pattern, StringComparison.Ordinal);
    }

    public bool Wants(string ev) => Patterns.Any(p => Matches(p, ev));
}

/// <summary>
/// The simulator's tracepoints. A run without tracing has no tracer (every hook is one null
/// check); with one, each event is filtered by kind and time and handed to the writers.
/// </summary>
public sealed class Tracer : IDisposable
{
    private readonly FtraceWriter? _ftrace;
    private readonly PerfettoWriter? _perfetto;
    private readonly long _from;
    private readonly long _to;

    public Tracer(TraceFilter filter, string? ftracePath, string? perfettoPath, int nrCpus)
    {
        _from = filter.FromNs;
        _to = filter.ToNs;
        TlbFlushOn = filter.Wants("tlb:tlb_flush");
        KswapdWakeOn = filter.Wants("vmscan:mm_vmscan_kswapd_wake");
        KswapdSleepOn = filter.Wants("vmscan:mm_vmscan_kswapd_sleep");
        DirectBeginOn = filter.Wants("vmscan:mm_vmscan_direct_reclaim_begin");
        DirectEndOn = filter.Wants("vmscan:mm_vmscan_direct_reclaim_end");
        ShrinkInactiveOn = filter.Wants("vmscan:mm_vmscan_lru_shrink_inactive");
        FaultOn = filter.Wants("exceptions:page_fault_user");
        MigrateOn = filter.Wants("migrate:mm_migrate_pages");
        if (ftracePath is not null)
        {
            _ftrace = new FtraceWriter(ftracePath, nrCpus);
        }
        if (perfettoPath is not null)
        {
            _perfetto = new PerfettoWriter(perfettoPath, nrCpus);
        }
    }

    public bool TlbFlushOn { get; }
    public bool KswapdWakeOn { get; }
    public bool KswapdSleepOn { get; }
    public bool DirectBeginOn { get; }
    public bool DirectEndOn { get; }
    public bool ShrinkInactiveOn { get; }
    public bool FaultOn { get; }
    public bool MigrateOn { get; }


    private bool InWindow(long t) => t >= _from && t < _to;

    public void TlbFlush(long t, int cpu, string comm, int pid, long pages, TlbFlushReason reason)
    {
        if (TlbFlushOn && InWindow(t))
        {
            string fields = $"pages:{pages} reason:{ReasonText(reason)} ({(int)reason})";
            _ftrace?.Line(t, cpu, comm, pid, "tlb_flush", fields);
            _perfetto?.Instant(cpu, "tlb_flush", t, fields);
        }
    }

    public void KswapdWake(long t, int cpu, string comm, int pid, int nid)
    {
        if (KswapdWakeOn && InWindow(t))
        {
            _ftrace?.Line(t, cpu, comm, pid, "mm_vmscan_kswapd_wake", $"nid={nid} order=0");
        }
    }

    public void KswapdSleep(long t, int cpu, string comm, int pid, int nid)
    {
        if (KswapdSleepOn && InWindow(t))
        {
            _ftrace?.Line(t, cpu, comm, pid, "mm_vmscan_kswapd_sleep", $"nid={nid}");
        }
    }

    public void DirectReclaimBegin(long t, int cpu, string comm, int pid)
    {
        if (DirectBeginOn && InWindow(t))
        {
            _ftrace?.Line(t, cpu, comm, pid, "mm_vmscan_direct_reclaim_begin", "order=0 may_writepage=1 gfp_flags=GFP_HIGHUSER_MOVABLE");
        }
    }

    public void DirectReclaimEnd(long t, int cpu, string comm, int pid, long reclaimed)
    {
        if (DirectEndOn && InWindow(t))
        {
            _ftrace?.Line(t, cpu, comm, pid, "mm_vmscan_direct_reclaim_end", $"nr_reclaimed={reclaimed}");
        }
    }

    public void LruShrinkInactive(long t, int cpu, string comm, int pid, int nid, long scanned, long reclaimed, int priority, bool dma32 = false)
    {
        if (ShrinkInactiveOn && InWindow(t))
        {
            _ftrace?.Line(t, cpu, comm, pid, "mm_vmscan_lru_shrink_inactive",
                $"nid={nid} zid={(dma32 ? 1 : 2)} nr_scanned={scanned} nr_reclaimed={reclaimed} priority={priority} flags=RECLAIM_WB_FILE|RECLAIM_WB_ASYNC");
        }
    }

    /// <summary>migrate:mm_migrate_pages at the end of migrate_pages.</summary>
    public void MigratePages(long t, int cpu, string comm, int pid, long succeeded, long failed, Kernel.Mm.MigrateMode mode, Kernel.Mm.MigrateReason reason)
    {
        if (MigrateOn && InWindow(t))
        {
            string fields = $"nr_succeeded={succeeded} nr_failed={failed} mode={(mode == Kernel.Mm.MigrateMode.Async ? "MIGRATE_ASYNC" : "MIGRATE_SYNC")} reason={(reason == Kernel.Mm.MigrateReason.Syscall ? "syscall_or_cpuset" : "numa_misplaced")}";
            _ftrace?.Line(t, cpu, comm, pid, "mm_migrate_pages", fields);
            _perfetto?.Instant(cpu, "mm_migrate_pages", t, fields);
        }
    }

    public void PageFault(long t, int cpu, string comm, int pid, long vpn)
    {
        if (FaultOn && InWindow(t))
        {
            _ftrace?.Line(t, cpu, comm, pid, "page_fault_user", $"address=0x{vpn << 12:x} ip=0x400000 error_code=0x4");
        }
    }

    /// <summary>A step of a CPU: for the Perfetto timeline.</summary>
    public void Step(int cpu, string comm, string what, long start, long end, long user, long spin, long ipiWait)
    {
        if (_perfetto is not null && end > _from && start < _to)
        {
            _perfetto.Step(cpu, comm, what, start, end, user, spin, ipiWait);
        }
    }

    /// <summary>An IPI from <paramref name="sender"/> sent at <paramref name="sent"/>, handled on <paramref name="receiver"/>.</summary>
    public void Ipi(int sender, long sent, int receiver, long handled, long handlerNs)
    {
        if (_perfetto is not null && InWindow(sent))
        {
            _perfetto.Ipi(sender, sent, receiver, handled, handlerNs);
        }
    }

    public void Counter(string name, long t, long value)
    {
        if (_perfetto is not null && InWindow(t))
        {
            _perfetto.Counter(name, t, value);
        }
    }

    public static string ReasonText(TlbFlushReason r) => r switch
    {
        TlbFlushReason.FlushOnTaskSwitch => "flush on task switch",
        TlbFlushReason.RemoteShootdown => "remote shootdown",
        TlbFlushReason.LocalShootdown => "local shootdown",
        TlbFlushReason.LocalMmShootdown => "local mm shootdown",
        TlbFlushReason.RemoteSendIpi => "remote ipi send",
        _ => "unknown",
    };

    public void Dispose()
    {
        _ftrace?.Dispose();
        _perfetto?.Dispose();
    }
}

/// <summary>ftrace text as `trace-cmd report` prints it: "comm-pid [cpu] secs.usecs: event: fields".</summary>
public sealed class FtraceWriter : IDisposable
{
    private readonly StreamWriter _w;

    public FtraceWriter(string path, int nrCpus)
    {
        _w = new StreamWriter(path, false, new UTF8Encoding(false), 1 << 16) { NewLine = "\n" };
        _w.WriteLine("cpus=" + nrCpus.ToString(CultureInfo.InvariantCulture));
    }

    public void Line(long t, int cpu, string comm, int pid, string ev, string fields)
    {
        long us = t / 1000;
        string ts = $"{us / 1_000_000}.{us % 1_000_000:D6}";
        _w.Write($"{comm,16}-{pid,-5} [{cpu:D3}] {ts,12}: ");
        _w.Write((ev + ":").PadRight(22));
        _w.Write(' ');
        _w.WriteLine(fields);
    }

    public void Dispose() => _w.Dispose();
}
