using System.Globalization;
using Shootdown.Reports;
using Spectre.Console;

namespace Shootdown.Cli;

/// <summary>Human-readable tables.</summary>
internal static class Tables
{
    private static string F(double v, string fmt = "0.00") => v.ToString(fmt, CultureInfo.InvariantCulture);

    /// <summary>The run's table; <paramref name="costNote"/> (the constants the run changed, if any) goes under it.</summary>
    public static void PrintRun(RunResult r, string costNote = "")
    {
        var c = r.Config;
        var t = new Table().Border(TableBorder.Rounded)
            .Title($"{r.Workload} on {r.Machine} ({c.Nodes}x{c.CpusPerNode} CPUs, {RunConfig.FormatBytes(c.MemoryBytes)}, scale 1/{c.ScaleDivisor}), policy {r.Policy}, seed {c.Seed}");
        t.AddColumn("metric");
        t.AddColumn(new TableColumn("value").RightAligned());
        t.AddRow("elapsed (s)", F(r.ElapsedS));
        t.AddRow("  tasks' exits: first / median (s)", r.TaskExits.Exited == 0 ? "-" : $"{F(r.TaskExits.FirstS)} / {F(r.TaskExits.MedianS)}");
        t.AddRow("  tasks' elapsed: range / stddev (s)", r.TaskExits.Timed < 2 ? "-" : $"{F(r.TaskExits.TimeRangeS)} / {F(r.TaskExits.TimeStddvS)}");
        if (r.Truncate is { } tr)
        {
            t.AddRow("  closing rm: from (s) / pages freed", $"{F(tr.StartS)} / {tr.Pages:N0}");
            t.AddRow("  closing rm: system time per page (ns)", tr.Pages == 0 ? "-" : F(tr.SystemS / tr.Pages * 1e9, "N0"));
        }
        t.AddRow("user CPU (s)", F(r.UserS));
        t.AddRow("system CPU (s)", F(r.SystemS));
        t.AddRow("  spinning on locks (s)", F(r.SpinS));
        t.AddRow("  waiting for IPI acks (s)", F(r.IpiWaitS));
        t.AddRow("  in interrupt handlers (s)", F(r.IrqS));
        if (r.LoneThreadS > 0)
        {
            t.AddRow("CPU time alone on a core (s)", F(r.LoneThreadS));
        }
        IrqOffStats off = r.IpisFoundInterruptsOff;
        if (off.IpisToBusyCpus > 0)
        {
            long first = off.IpisToBusyCpus - off.RepeatIpisToBusyCpus;
            t.AddRow("IPIs finding interrupts off / wait each (us)",
                $"{F(100.0 * off.Ipis / off.IpisToBusyCpus, "0.0")}% / {(off.Ipis == 0 ? "-" : F(off.DelayS / off.Ipis * 1e6, "0.0"))}");
            t.AddRow("  repeat IPIs / off among them / off among first",
                $"{F(100.0 * off.RepeatIpisToBusyCpus / off.IpisToBusyCpus, "0.0")}% / "
                + $"{(off.RepeatIpisToBusyCpus == 0 ? "-" : F(100.0 * off.Repeat / off.RepeatIpisToBusyCpus, "0.0") + "%")} / "
                + $"{(first == 0 ? "-" : F(100.0 * (off.Ipis - off.Repeat) / first, "0.0") + "%")}");
        }
        t.AddRow("interrupts/s (steady)", F(r.InterruptsPerS, "N0"));
        t.AddRow("TLB IPIs", r.TlbIpis.ToString("N0", CultureInfo.InvariantCulture));
        t.AddRow("TLB IPIs/s (steady)", F(r.TlbIpisPerS, "N0"));
        if (r.TlbBatchFlushes is { } batches)
        {
            foreach (var (cause, b) in batches)
            {
                t.AddRow($"{cause} batch flushes / pages each", $"{b.Flushes:N0} / {F(b.PagesPerFlush, "0.0")}");
                t.AddRow("  mms each / other CPUs each", $"{F(b.MmsPerFlush, "0.00")} / {F(b.RemoteCpusPerFlush, "0.00")}");
                t.AddRow("  other CPUs: batched mm / idle or lazy / other mm", $"{F(b.RemoteRunningBatchedMmPerFlush, "0.00")} / {F(b.RemoteLazyOrIdlePerFlush, "0.00")} / {F(b.RemoteRunningOtherMmPerFlush, "0.00")}");
            }
        }
        t.AddRow("pages read", r.PagesRead.ToString("N0", CultureInfo.InvariantCulture));
        t.AddRow("pages reclaimed", r.PagesReclaimed.ToString("N0", CultureInfo.InvariantCulture));
        t.AddRow("kswapd share of reclaim", F(r.KswapdEfficiency * 100, "0.0") + "%");
        t.AddRow("direct reclaim stalls", r.DirectReclaimStalls.ToString("N0", CultureInfo.InvariantCulture));
        t.AddRow("reclaim efficiency (reclaimed / scanned)", F(r.ReclaimEfficiency * 100, "0.0") + "%");
        SteadyFaultStats sf = r.SteadyFaults;
        if (sf.Intervals > 0)
        {
            t.AddRow("steady intervals stalled", $"{sf.Stalled} of {sf.Intervals} ({F(sf.StalledShare * 100, "0")}%)");
            // The interval in the full-size machine's seconds (x the scale divisor).
            t.AddRow($"  interval (s, x{c.ScaleDivisor}) / faults mean over p90", $"{F(sf.IntervalLengthS * c.ScaleDivisor)} / {F(sf.MeanOverP90)}");
        }
        if (r.Safety is { } safety)
        {
            t.AddRow("coherence violations", safety.Violations.ToString("N0", CultureInfo.InvariantCulture));
            t.AddRow("  lost_write", safety.LostWrite.ToString("N0", CultureInfo.InvariantCulture));
            t.AddRow("  stale_access_after_free", safety.StaleAccessAfterFree.ToString("N0", CultureInfo.InvariantCulture));
            t.AddRow("  write_after_protect", safety.WriteAfterProtect.ToString("N0", CultureInfo.InvariantCulture));
        }
        t.AddRow("host wall time (s)", F(r.WallS));
        t.AddRow("simulated pages / host s", F(r.SimPagesPerWallS, "N0"));
        AnsiConsole.Write(t);
        if (costNote.Length > 0)
        {
            Console.Out.WriteLine(costNote);
        }
    }
}
