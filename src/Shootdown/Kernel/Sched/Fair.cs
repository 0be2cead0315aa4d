using Shootdown.Kernel.Mm;
using Shootdown.Observe;

namespace Shootdown.Kernel.Sched;

/// <summary>
/// kernel/sched/fair.c's NUMA balancing scanner. task_tick_numa queues task_numa_work, which runs
/// in the task's own context on its way back to user space: once per scan period per mm it makes
/// the next numa_balancing_scan_size of the mm's PTEs PROT_NONE (change_prot_numa, with its own
/// range flush), so that the next access to each page takes a NUMA hinting fault (do_numa_page)
/// telling the kernel which node uses it. Defaults as in the kernel: scan delay 1000 ms, scan
/// period 1000 ms (numa_balancing_scan_period_min_ms; the adaptive growth of the period towards
/// scan_period_max is not modelled), scan size 256 MB. Read-only file mappings are not scanned
/// (4591ce4f2d22, "sched/numa: Do not trap hinting faults for shared libraries", 3.13: their pages
/// are expected to be shared and not worth migrating), so lru-file-mmap-read's readers, whose files
/// are mapped PROT_READ, would take no NUMA hinting faults with NUMA balancing on.
/// </summary>
public sealed class NumaBalancing(Sim sim)
{
    /// <summary>sysctl numa_balancing_scan_delay_ms.</summary>
    public const long ScanDelayNs = 1_000_000_000;

    /// <summary>sysctl numa_balancing_scan_period_min_ms.</summary>
    public const long ScanPeriodNs = 1_000_000_000;

    /// <summary>sysctl numa_balancing_scan_size_mb = 256, in pages.</summary>
    public const long ScanSizePages = 256L << (20 - 12);

    /// <summary>task_numa_work for <paramref name="task"/>'s mm, if its scan is due.</summary>
    public void TaskNumaWork(Exec ex, SimTask task)
    {
        MmStruct mm = task.Mm!;
        if (mm.NumaNextScan < 0)
        {
            mm.NumaNextScan = ex.Now + ScanDelayNs; // the mm's first scan waits for the scan delay
            return;
        }
        if (ex.Now < mm.NumaNextScan)
        {
            return;
        }
        mm.NumaNextScan = ex.Now + ScanPeriodNs;
        FlushCause saved = ex.FlushCause;
        ex.FlushCause = FlushCause.NumaPteUpdates;
        long pages = ScanSizePages;
        long start = mm.NumaScanOffset;
        bool wrapped = false;
        while (pages > 0)
        {
            Vma? vma = NextVma(mm, start);
            if (vma is null)
            {
                if (wrapped)
                {
                    break;
                }
                wrapped = true; // reset_ptenuma_scan: start again from the first VMA
                start = 0;
                continue;
            }
            long from = Math.Max(start, vma.Start);
            long to = Math.Min(vma.End, from + pages);
            sim.Mprotect.ChangeProtNuma(ex, vma, from, to);
            pages -= to - from;
            start = to;
        }
        mm.NumaScanOffset = start;
        ex.FlushCause = saved;
    }

    /// <summary>The first VMA ending after <paramref name="start"/> that task_numa_work scans.</summary>
    private static Vma? NextVma(MmStruct mm, long start)
    {
        Vma? best = null;
        foreach (Vma v in mm.Vmas)
        {
            if (v.End > start && Scanned(v) && (best is null || v.Start < best.Start))
            {
                best = v;
            }
        }
        return best;
    }

    /// <summary>task_numa_work skips a file mapping that is readable but not writable (4591ce4f2d22).</summary>
    internal static bool Scanned(Vma v) => v.File is null || v.Writable;
}
