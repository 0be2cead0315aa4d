namespace Shootdown.Observe;

/// <summary>The /proc/vmstat counters the simulator keeps, named as the kernel names them.</summary>
public enum VmEvent
{
    pgfault,
    pgmajfault,
    pgscan_kswapd,
    pgscan_direct,
    pgsteal_kswapd,
    pgsteal_direct,
    pgactivate,
    pgdeactivate,
    pgrefill,
    pgrotated,
    allocstall,
    nr_written,
    nr_vmscan_write,
    nr_vmscan_immediate_reclaim,
    nr_tlb_remote_flush,
    nr_tlb_remote_flush_received,
    nr_tlb_local_flush_one,
    nr_tlb_local_flush_all,
    pgmigrate_success,
    pgmigrate_fail,
    numa_pte_updates,
    numa_hint_faults,
    numa_hint_faults_local,
    numa_pages_migrated,
    pgscan_direct_throttle,

    /// <summary>zone_statistics (mm/vmstat.c): a page from the preferred node.</summary>
    numa_hit,

    /// <summary>A page from another node than the preferred one (counted on the zone it came from).</summary>
    numa_miss,

    /// <summary>The same allocations, counted on the preferred zone that could not serve them.</summary>
    numa_foreign,

    /// <summary>A page from the allocating CPU's own node.</summary>
    numa_local,

    /// <summary>A page from another node than the allocating CPU's.</summary>
    numa_other,
}

/// <summary>
/// What a TLB flush was for, to split the TLB IPIs by cause (tlb_ipis_by_cause): reclaim's unmaps,
/// migration's unmaps, NUMA balancing's PTE updates (change_prot_numa), anything else (mprotect,
/// page_mkclean, exit).
/// </summary>
public enum FlushCause
{
    Other,
    Reclaim,
    Migration,
    NumaPteUpdates,
}

public sealed class VmStat
{
    public static readonly VmEvent[] All = Enum.GetValues<VmEvent>();

    private readonly long[] _counts = new long[All.Length];

    public void Inc(VmEvent e) => _counts[(int)e]++;

    public void Add(VmEvent e, long n) => _counts[(int)e] += n;

    public long this[VmEvent e] => _counts[(int)e];

    /// <summary>Counter name to value, in the kernel's order.</summary>
    public SortedDictionary<string, long> ToDictionary()
    {
        var d = new SortedDictionary<string, long>(StringComparer.Ordinal);
        foreach (VmEvent e in All)
        {
            d[e.ToString()] = _counts[(int)e];
        }
        return d;
    }
}
