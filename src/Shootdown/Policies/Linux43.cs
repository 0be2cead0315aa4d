using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Policies;

/// <summary>
/// What Linux 4.3 merged (commits 5b74283ab251, 72b252aed506, d950c9477d51): the batch is only
/// {cpumask, flush_required, writable}. try_to_unmap_one defers the flush only when another CPU is
/// in the mm's cpumask (should_defer_flush); a dirty PTE marks the batch writable and
/// try_to_unmap_flush_dirty flushes before pageout() starts I/O; try_to_unmap_flush runs at the
/// end of every shrink_page_list, before its pages are freed. The flush is one IPI per CPU and a
/// full TLB flush on each — refills are paid later through the TLB model.
/// </summary>
public class Linux43(PolicyParams p) : FlushPolicy(p)
{
    public override string Name => "linux-4.3";

    public override string Summary => "Linux 4.3 (72b252aed506, d950c9477d51): cpumask-only batch, full flush per IPI, flush before free and before pageout of dirty pages";

    public override bool UsesBatch => true;

    public override bool UnmapFlush(Exec ex, MmStruct mm, long vpn, uint oldPte, bool batchFlush)
    {
        if (batchFlush && ShouldDeferFlush(ex, mm))
        {
            TlbUnmapBatch b = ex.Task.Batch!;
            b.Add(mm, Pte.Frame(oldPte));
            if (Pte.IsDirty(oldPte))
            {
                b.Writable = true;
            }
            OnDeferred(mm);
            return true;
        }
        Sim.Arch.FlushTlbPage(ex, mm, vpn);
        return false;
    }

    /// <summary>should_defer_flush: only worth it if some other CPU may cache the mm.</summary>
    protected static bool ShouldDeferFlush(Exec ex, MmStruct mm) => mm.CpuMask.AnyBut(ex.Cpu.Id);

    /// <summary>Hook for successors (4.13 sets mm->tlb_flush_batched here).</summary>
    protected virtual void OnDeferred(MmStruct mm)
    {
    }

    public override void FlushDirty(Exec ex)
    {
        if (ex.Task.Batch!.Writable)
        {
            TryToUnmapFlush(ex);
        }
    }

    public override void EndShrinkPageList(Exec ex) => TryToUnmapFlush(ex);

    /// <summary>try_to_unmap_flush: a full local flush if this CPU is in the mask, one IPI per other CPU.</summary>
    public void TryToUnmapFlush(Exec ex) => FlushBatchFull(ex);
}

/// <summary>
/// Linux 4.13 (commit 3ea277194daa): 4.3 plus mm->tlb_flush_batched, set whenever a flush of that mm
/// is deferred; mprotect, munmap, mremap and madvise call flush_tlb_batched_pending(mm) under the
/// page-table lock, which flushes the whole mm if a deferred flush may still be pending.
/// </summary>
public class Linux413(PolicyParams p) : Linux43(p)
{
    public override string Name => "linux-4.13";

    public override string Summary => "Linux 4.13 (3ea277194daa): 4.3 plus mm->tlb_flush_batched and flush_tlb_batched_pending in mprotect/munmap/madvise";

    protected override void OnDeferred(MmStruct mm) => mm.TlbFlushBatched = true;

    public override void BatchedPending(Exec ex, MmStruct mm)
    {
        if (!mm.TlbFlushBatched)
        {
            return;
        }
        Sim.Arch.FlushTlbMmRange(ex, mm, 0, long.MaxValue / 2, 0);
        mm.TlbFlushBatched = false;
    }
}
