using Shootdown.Hardware;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Policies;

/// <summary>
/// A TLB flush policy for pages unmapped by reclaim. It answers three questions: flush now or
/// defer (<see cref="UnmapFlush"/>)? what goes into the batch? and when is the batch flushed
/// (<see cref="FlushDirty"/>, <see cref="EndShrinkPageList"/>, <see cref="EndShrinkLruvec"/>,
/// <see cref="BatchedPending"/>)? The flush itself is done by the arch layer
/// (<see cref="Kernel.Arch.X86.TlbFlush"/>), so its cost is the same for every policy.
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

    /// <summary>Bound when the run starts.</summary>
    public Sim Sim { get; internal set; } = null!;

    /// <summary>Capacity of the per-task batch's page list (0 = no list is kept).</summary>
    public virtual int BatchPages => 0;

    /// <summary>Whether tasks need a <see cref="TlbUnmapBatch"/>.</summary>
    public virtual bool UsesBatch => false;

    /// <summary>
    /// try_to_unmap_one has just cleared the PTE of (mm, vpn), whose old value was
    /// <paramref name="oldPte"/>. Flush now (ptep_clear_flush) or add it to the task's batch.
    /// <paramref name="batchFlush"/> is TTU_BATCH_FLUSH: the caller can flush later.
    /// Returns true if the flush was deferred.
    /// </summary>
    public abstract bool UnmapFlush(Exec ex, MmStruct mm, long vpn, uint oldPte, bool batchFlush);

    /// <summary>try_to_unmap_flush_dirty: called before pageout() starts I/O on a dirty page.</summary>
    public virtual void FlushDirty(Exec ex)
    {
    }

    /// <summary>End of shrink_page_list, before the batch's pages are freed.</summary>
    public virtual void EndShrinkPageList(Exec ex)
    {
    }

    /// <summary>End of shrink_lruvec (one pass over a node's LRU at one priority).</summary>
    public virtual void EndShrinkLruvec(Exec ex)
    {
    }

    /// <summary>
    /// try_to_unmap_flush of Linux 4.3: if this CPU is in the batch's mask it leaves a lazily
    /// borrowed mm or flushes its whole TLB; every other CPU in the mask gets one IPI and flushes
    /// everything; then the batch is empty.
    /// </summary>
    protected void FlushBatchFull(Exec ex)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        if (!b.FlushRequired)
        {
            return;
        }
        Cpu cpu = ex.Cpu;
        if (b.CpuMask.Test(cpu.Id))
        {
            if (cpu.Lazy)
            {
                Sim.Arch.LeaveMm(cpu);
            }
            else
            {
                Sim.Arch.LocalFlushAll(ex);
            }
        }
        if (b.CpuMask.AnyBut(cpu.Id))
        {
            Sim.Arch.FlushTlbOthers(ex, b.CpuMask, -1, null, 0, 0, full: true);
        }
        b.Reset();
    }

    /// <summary>flush_tlb_batched_pending(mm): mprotect/munmap/madvise under the PTL (Linux 4.13).</summary>
    public virtual void BatchedPending(Exec ex, MmStruct mm)
    {
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
}

/// <summary>
/// struct tlbflush_unmap_batch (task->tlb_ubc): the CPUs that may cache an unmapped page, whether a
/// flush is owed, whether a writable (dirty) PTE was unmapped, and — for the RFC — the pages' PFNs.
/// </summary>
public sealed class TlbUnmapBatch
{
    public TlbUnmapBatch(int nrCpus, int capacity)
    {
        CpuMask = new Cpumask(nrCpus);
        Capacity = capacity;
        Pfns = new int[capacity];
    }

    public Cpumask CpuMask { get; }

    public int Capacity { get; }

    /// <summary>The RFC's pfns[]: page_to_pfn of each page unmapped into the batch.</summary>
    public readonly int[] Pfns;
    public int Count;
    public bool FlushRequired;
    public bool Writable;

    public bool IsFull => Count >= Capacity;

    public void Add(MmStruct mm, int pfn)
    {
        CpuMask.Or(mm.CpuMask);
        FlushRequired = true;
        if (Capacity > 0)
        {
            Pfns[Count++] = pfn;
        }
    }

    public void Reset()
    {
        CpuMask.ClearAll();
        Count = 0;
        FlushRequired = false;
        Writable = false;
    }
}
