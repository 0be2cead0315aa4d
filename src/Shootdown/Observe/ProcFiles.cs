using System.Globalization;
using System.Text;
using Shootdown.Kernel.Sched;

namespace Shootdown.Observe;

/// <summary>Final counters in the text layouts of /proc/vmstat and /proc/interrupts, and the time series as CSV.</summary>
public static class ProcFiles
{
    /// <summary>/proc/vmstat: one "name value" line per counter.</summary>
    public static string Vmstat(VmStat v)
    {
        var sb = new StringBuilder();
        foreach (VmEvent e in VmStat.All)
        {
            sb.Append(e.ToString()).Append(' ').Append(v[e].ToString(CultureInfo.InvariantCulture)).Append('\n');
        }
        return sb.ToString();
    }

    /// <summary>
    /// /proc/interrupts as arch_show_interrupts prints it on x86 (prec = 3): a header of CPU
    /// columns ("CPU%-8d" after 11 spaces), then "%*s: " and one "%10u " per CPU and the description.
    /// </summary>
    public static string Interrupts(Cpu[] cpus)
    {
        var sb = new StringBuilder();
        sb.Append(new string(' ', 11));
        foreach (Cpu c in cpus)
        {
            sb.Append(CultureInfo.InvariantCulture, $"CPU{c.Id,-8}");
        }
        sb.Append('\n');
        Row(sb, "LOC", cpus.Select(c => c.TimerTicks), "Local timer interrupts");
        Row(sb, "RES", cpus.Select(c => c.ReschedIrqs), "Rescheduling interrupts");
        Row(sb, "CAL", cpus.Select(CalShown), "Function call interrupts");
        Row(sb, "TLB", cpus.Select(c => c.TlbShootdowns), "TLB shootdowns");
        return sb.ToString();
    }

    /// <summary>
    /// The CAL column as x86's arch_show_interrupts computes it: irq_call_count - irq_tlb_count.
    /// 4.3's batched flush counts irq_tlb_count for the local flush too (no call-function IPI), and
    /// a request that rode on another IPI's interrupt (generic_exec_single) runs flush_tlb_func
    /// without an interrupt of its own, so the kernel's unsigned difference can wrap; shown here as
    /// 0 instead.
    /// </summary>
    public static long CalShown(Cpu c) => Math.Max(0, c.CallFunctionIrqs - c.TlbShootdowns);

    private static void Row(StringBuilder sb, string name, IEnumerable<long> counts, string desc)
    {
        sb.Append(CultureInfo.InvariantCulture, $"{name,3}: ");
        foreach (long n in counts)
        {
            sb.Append(CultureInfo.InvariantCulture, $"{n,10} ");
        }
        sb.Append("  ").Append(desc).Append('\n');
    }

    public static readonly string[] TimeSeriesColumns =
    [
        "time_s", "interrupts", "tlb_ipis", "timer_ticks", "pgscan_kswapd", "pgscan_direct",
        "pgsteal_kswapd", "pgsteal_direct", "pgfault", "runnable_tasks",
    ];

    /// <summary>One row per interval: counts within it, and gauges sampled at its start (free pages per node).</summary>
    public static string TimeSeriesCsv(TimeSeries ts, Kernel.Mm.Zone[] zones, long endNs)
    {
        int nodes = zones[^1].Node + 1;
        var sb = new StringBuilder(string.Join(',', TimeSeriesColumns));
        for (int n = 0; n < nodes; n++)
        {
            sb.Append(CultureInfo.InvariantCulture, $",free_pages_node{n}");
        }
        sb.Append(",wmark_min,wmark_low,wmark_high\n");
        // Node 0's watermarks, summed over its zones like its free pages.
        long min = 0, low = 0, high = 0;
        foreach (Kernel.Mm.Zone z in zones)
        {
            if (z.Node == 0)
            {
                (min, low, high) = (min + z.WmarkMin, low + z.WmarkLow, high + z.WmarkHigh);
            }
        }
        int buckets = (int)Math.Min(ts.Buckets, (endNs + ts.IntervalNs - 1) / ts.IntervalNs);
        for (int b = 0; b < buckets; b++)
        {
            double t = b * (double)ts.IntervalNs / 1e9;
            sb.Append(t.ToString("0.###", CultureInfo.InvariantCulture));
            foreach (Series s in new[] { Series.Interrupts, Series.TlbIpis, Series.TimerTicks, Series.PgscanKswapd, Series.PgscanDirect, Series.PgstealKswapd, Series.PgstealDirect, Series.Faults })
            {
                sb.Append(',').Append(ts.Get(s, b).ToString(CultureInfo.InvariantCulture));
            }
            sb.Append(',').Append(ts.RunnableAt(b).ToString(CultureInfo.InvariantCulture));
            for (int n = 0; n < nodes; n++)
            {
                sb.Append(',').Append(ts.FreeAt(b, n).ToString(CultureInfo.InvariantCulture));
            }
            sb.Append(CultureInfo.InvariantCulture, $",{min},{low},{high}\n");
        }
        return sb.ToString();
    }
}
