using Shootdown.Hardware;
using Shootdown.Kernel.Arch;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Policies;

/// <summary>Where a kernel version calls try_to_unmap_flush from reclaim.</summary>
public enum UnmapFlushSite
{
    /// <summary>At the end of every shrink_page_list, before its pages are freed (4.3 and later; RFC v3 and later).</summary>
    ShrinkPageList,

    /// <summary>At the end of shrink_lruvec, after the batch's pages were freed (RFC v1 as posted).</summary>
    ShrinkLruvec,
}

/// <summary>How a kernel version flushes the PTEs migrate_pages turns into migration entries.</summary>
public enum MigrateFlushSite
{
    /// <summary>try_to_unmap(TTU_MIGRATION) without TTU_BATCH_FLUSH: ptep_clear_flush, one flush per page, before the copy (every kernel before 6.4).</summary>
    PerPage,

    /// <summary>
    /// RFC v1 patch 4/4 as posted: TTU_BATCH_FLUSH; try_to_unmap_flush only before a blocking
    /// lock_page or wait_on_page_writeback, when the PFN list fills, and at the end of migrate_pages —
    /// after the pages were copied, remapped and freed.
    /// </summary>
    EndOfMigratePages,

    /// <summary>Linux 6.4 (7e12beb8ca2a): unmap a batch of up to NR_MAX_BATCHED_MIGRATION pages with TTU_BATCH_FLUSH, one try_to_unmap_flush, then move each.</summary>
    Batch,
}

/// <summary>
/// A TLB flush policy for pages unmapped by reclaim: one kernel version's mm/rmap.c batching code.
/// It speaks the kernel's verbs only — <see cref="ShouldDeferFlush"/>,
/// <see cref="SetTlbUbcFlushPending"/>, <see cref="TryToUnmapFlush"/>,
/// <see cref="TryToUnmapFlushDirty"/>, <see cref="FlushTlbBatchedPending"/> — which generic mm code
/// calls where that version does; what a flush does on the hardware is the arch layer's
/// (<see cref="IArchTlb"/>), so its cost is the same for every policy.
/// </summary>
public abstract class FlushPolicy
{
    protected FlushPolicy(PolicyParams p)
    {
        Params = p;
    }

    public PolicyParams Params { get; }

    public abstract string Name { get; }

    /// <summary>One line: what this policy is and which kernel commits it models.</summary>
    public abstract string Summary { get; }

    /// <summary>The arch layer, bound when the machine is built.</summary>
    protected IArchTlb Arch { get; private set; } = null!;

    /// <summary>CPUs of the machine (the RFC's page-sized batch depends on the cpumask's size).</summary>
    protected int NrCpus { get; private set; }

    /// <summary>Tracepoints of generic batching code; null when tracing is off.</summary>
    public Observe.Tracer? Trace { get; set; }

    /// <summary>/proc/vmstat, for the counters generic batching code keeps itself.</summary>
    protected Observe.VmStat VmStat { get; private set; } = null!;

    /// <summary>What each batch flush looked like (pages, mms, the CPUs it interrupted); empty for policies without a batch.</summary>
    public Observe.BatchFlushStats BatchFlushes { get; private set; } = null!;

    private Cpu[] _cpus = [];

    /// <summary>Binds the policy to a machine's arch layer, CPUs and counters.</summary>
    public void Bind(IArchTlb arch, Cpu[] cpus, Observe.VmStat vmstat)
    {
        Arch = arch;
        NrCpus = cpus.Length;
        _cpus = cpus;
        VmStat = vmstat;
        BatchFlushes = new Observe.BatchFlushStats(cpus.Length);
    }

    /// <summary>
    /// Records in <see cref="BatchFlushes"/> the flush of the task's batch about to be sent: its
    /// unmaps, mms and cpumask, with the other CPUs as they are now. Call before the IPIs go out.
    /// </summary>
    protected void NoteBatchFlush(Exec ex, TlbUnmapBatch b) =>
        BatchFlushes.Record(ex.FlushCause, ex.Cpu, b.CpuMask, _cpus, b.Pages, b.Mms, b.NrMms);

    /// <summary>Capacity of the per-task batch's page list (0 = no list is kept).</summary>
    public virtual int BatchPages => 0;

    /// <summary>Whether tasks need a <see cref="TlbUnmapBatch"/> (task->tlb_ubc).</summary>
    public virtual bool UsesBatch => false;

    /// <summary>Whether the policy keeps a PFN list whose length <see cref="PolicyParams.BatchSize"/> sets.</summary>
    public virtual bool HasPfnList => false;

    /// <summary>Where reclaim calls <see cref="TryToUnmapFlush"/>.</summary>
    public virtual UnmapFlushSite FlushSite => UnmapFlushSite.ShrinkPageList;

    /// <summary>How migrate_pages flushes the migration entries it makes.</summary>
    public virtual MigrateFlushSite MigrateFlush => MigrateFlushSite.PerPage;

    /// <summary>
    /// do_numa_page migrates a misplaced page with its PTE still PROT_NONE (6.4), rather than
    /// making the PTE present again first and migrating a mapped page (4.x).
    /// </summary>
    public virtual bool NumaMigrateProtNone => false;

    /// <summary>
    /// NUMA-balancing migration is rate-limited per destination node (numamigrate_update_ratelimit,
    /// 128 MB per 100 ms; removed in 4.19 by efaffc5e40ae).
    /// </summary>
    public virtual bool NumaMigrateRateLimited => true;

    /// <summary>
    /// should_defer_flush(mm, flags): may try_to_unmap_one clear this PTE without flushing?
    /// <paramref name="batchFlush"/> is TTU_BATCH_FLUSH. False: the PTE is cleared with
    /// ptep_clear_flush (flush_tlb_page at once).
    /// </summary>
    public virtual bool ShouldDeferFlush(Exec ex, MmStruct mm, bool batchFlush) => false;

    /// <summary>
    /// set_tlb_ubc_flush_pending(mm, writable): record in the task's batch that the CPUs of
    /// <paramref name="mm"/> owe a flush for the PTE whose old value was <paramref name="oldPte"/>.
    /// </summary>
    public virtual void SetTlbUbcFlushPending(Exec ex, MmStruct mm, uint oldPte)
    {
    }

    /// <summary>try_to_unmap_flush: flush what the task's batch owes.</summary>
    public virtual void TryToUnmapFlush(Exec ex)
    {
    }

    /// <summary>try_to_unmap_flush_dirty: before pageout() starts I/O on a dirty page.</summary>
    public virtual void TryToUnmapFlushDirty(Exec ex)
    {
    }

    /// <summary>flush_tlb_batched_pending(mm): mprotect/munmap/madvise under the PTL (Linux 4.13).</summary>
    public virtual void FlushTlbBatchedPending(Exec ex, MmStruct mm)
    {
    }

    /// <summary>
    /// percpu_flush_tlb_batch_pages as RFC v1 and v6 4/4 both posted it, on CPU <paramref name="r"/>:
    /// count a received remote flush (nr_tlb_remote_flush_received), then flush_local_tlb_addr of
    /// each listed PFN shifted by PAGE_SHIFT — INVLPG of a physical address used as a linear one,
    /// in whatever mm <paramref name="r"/> has loaded. Returns the INVLPGs' cost.
    /// </summary>
    protected long FlushListedPfnsAsAddresses(Cpu r, FlushTlbInfo info)
    {
        VmStat.Inc(Observe.VmEvent.nr_tlb_remote_flush_received);
        long cost = 0;
        for (int i = 0; i < info.NrPfns; i++)
        {
            cost += Arch.FlushLocalTlbAddr(r, info.Pfns![i]);
        }
        return cost;
    }
}

/// <summary>Parameters users vary; each defaults to the kernel's value.</summary>
public sealed record PolicyParams
{
    /// <summary>SWAP_CLUSTER_MAX: pages isolated per shrink_page_list call (include/linux/swap.h).</summary>
    public int SwapClusterMax { get; init; } = 32;

    /// <summary>tlb_single_page_flush_ceiling: above this many pages a range flush is a full flush (arch/x86/mm/tlb.c).</summary>
    public int FlushCeiling { get; init; } = 33;

    /// <summary>Page slots of a PFN batch; null = the policy's own default.</summary>
    public int? BatchSize { get; init; }

    /// <summary>
    /// linux-6.4: set_tlb_ubc_flush_pending skips a PTE that is not pte_accessible (4d4b6d66db63,
    /// "mm,unmap: avoid flushing TLB in batch if PTE is inaccessible"); on by default, as merged.
    /// </summary>
    public bool PteAccessibleCheck { get; init; } = true;

    /// <summary>
    /// Memory cgroups in the kernel (CONFIG_MEMCG=y, not disabled with cgroup_disable=memory), which
    /// puts the LRU lists in the root memcg's per-zone info instead of <c>struct zone</c> beside
    /// <c>lru_lock</c> (<see cref="Kernel.Mm.Memory.Memcg"/>). On by default: the kernels behind the
    /// published figures ran with them — Mel Gorman's 4.0 profile on linux-mm (20 May 2015, "mm,
    /// memcg: Try charging a page before setting page up to date") spends time in
    /// mem_cgroup_page_lruvec and mem_cgroup_update_lru_size with no memcg in use, and Intel LKP's
    /// 2014 boots initialise the memory cgroup subsystem; Debian's kernels of the time disabled it.
    /// </summary>
    public bool Memcg { get; init; } = true;

    /// <summary>
    /// vm.min_free_kbytes of the full-size machine, from which the zones' watermarks are set; null =
    /// the kernel's own (init_per_zone_wmark_min: sqrt(16 x lowmem in KiB), in 128..65536). A kernel
    /// with transparent huge pages enabled raises it when khugepaged starts
    /// (set_recommended_min_free_kbytes: 11 pageblocks of 2 MiB per populated zone, at most 5% of
    /// memory — 135168 on gorman-4node's six zones, 67584 on gorman-1node's three).
    /// </summary>
    public long? MinFreeKbytes { get; init; }
}
