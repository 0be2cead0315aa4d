using Shootdown.Kernel.Arch;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Policies;

/// <summary>
/// What Linux 4.3 merged (commits 5b74283ab251, 72b252aed506, d950c9477d51): the batch is only
/// {cpumask, flush_required, writable}. try_to_unmap_one defers the flush only when another CPU is
/// in the mm's cpumask (should_defer_flush); a dirty PTE marks the batch writable and
/// try_to_unmap_flush_dirty flushes before pageout() starts I/O; try_to_unmap_flush runs at the
/// end of every shrink_page_list, before its pages are freed. The flush is generic code in 4.3's
/// mm/rmap.c: percpu_flush_tlb_batch_pages runs here if this CPU is in the mask and, through
/// smp_call_function_many, on every other CPU of the mask; it counts
/// nr_tlb_remote_flush_received and does flush_tlb_local() — irq_tlb_count and a full flush,
/// whatever mm the CPU runs and whether lazily or not (no leave_mm, so a lazy CPU stays in the
/// mm's cpumask), and no nr_tlb_remote_flush on the sender. Refills are paid later through the
/// TLB model. (Nadav Amit's 2016 change, in 4.6, replaced this with a counted local flush and
/// flush_tlb_others; 4.13 moved that to arch_tlbbatch_flush — see <see cref="Linux413"/>.)
/// </summary>
public class Linux43 : FlushPolicy
{
    private readonly SmpCallFunc _handler;
    private readonly FlushTlbInfo _info = new();

    public Linux43(PolicyParams p)
        : base(p)
    {
        _handler = PercpuFlushTlbBatchPages;
    }

    public override string Name => "linux-4.3";

    public override string Summary => "Linux 4.3 (72b252aed506, d950c9477d51): cpumask-only batch, full flush per IPI, flush before free and before pageout of dirty pages";

    public override bool UsesBatch => true;

    /// <summary>should_defer_flush: only with TTU_BATCH_FLUSH, and only if some other CPU may cache the mm.</summary>
    public override bool ShouldDeferFlush(Exec ex, MmStruct mm, bool batchFlush) => batchFlush && mm.CpuMask.AnyBut(ex.Cpu.Id);

    /// <summary>set_tlb_ubc_flush_pending: arch_tlbbatch_add_mm, flush_required, writable if the PTE was dirty.</summary>
    public override void SetTlbUbcFlushPending(Exec ex, MmStruct mm, uint oldPte)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        b.NoteDeferred(mm);
        Arch.ArchTlbbatchAddMm(b, mm);
        b.FlushRequired = true;
        if (Pte.IsDirty(oldPte))
        {
            b.Writable = true;
        }
        OnDeferred(mm);
    }

    /// <summary>Hook for successors (4.13 sets mm->tlb_flush_batched here).</summary>
    protected virtual void OnDeferred(MmStruct mm)
    {
    }

    public override void TryToUnmapFlushDirty(Exec ex)
    {
        if (ex.Task.Batch!.Writable)
        {
            TryToUnmapFlush(ex);
        }
    }

    /// <summary>
    /// try_to_unmap_flush of 4.3 (mm/rmap.c): trace TLB_REMOTE_SHOOTDOWN, run
    /// percpu_flush_tlb_batch_pages here if this CPU is in the mask, smp_call_function_many it on
    /// the other CPUs of the mask, and empty the batch.
    /// </summary>
    public override void TryToUnmapFlush(Exec ex)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        if (!b.FlushRequired)
        {
            return;
        }
        Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, TracedPages(b), TlbFlushReason.RemoteShootdown);
        NoteBatchFlush(ex, b);
        FlushTlbInfo info = FillInfo(_info, b);
        if (b.CpuMask.Test(ex.Cpu.Id))
        {
            ex.Sys += PercpuFlushTlbBatchPages(ex.Cpu, ex.Now, info);
        }
        if (b.CpuMask.AnyBut(ex.Cpu.Id))
        {
            Arch.SmpCallFunctionMany(ex, b.CpuMask, _handler, info);
        }
        b.Reset();
    }

    /// <summary>The pages try_to_unmap_flush's tracepoint reports: -1 (TLB_FLUSH_ALL) for 4.3's full flush.</summary>
    protected virtual int TracedPages(TlbUnmapBatch b) => -1;

    /// <summary>What the handlers are handed: 4.3's a full flush (its handler reads nothing of it).</summary>
    protected virtual FlushTlbInfo FillInfo(FlushTlbInfo info, TlbUnmapBatch b) => info.Set(null, 0, FlushTlbInfo.FlushAll);

    /// <summary>percpu_flush_tlb_batch_pages of 4.3: count a received remote flush, flush_tlb_local().</summary>
    protected virtual long PercpuFlushTlbBatchPages(Cpu r, long t, FlushTlbInfo info)
    {
        VmStat.Inc(VmEvent.nr_tlb_remote_flush_received);
        return Arch.FlushTlbLocal(r);
    }
}

/// <summary>
/// Linux 4.13 (commit 3ea277194daa): 4.3 plus mm->tlb_flush_batched, set whenever a flush of that mm
/// is deferred; mprotect, munmap, mremap and madvise call flush_tlb_batched_pending(mm) under the
/// page-table lock, which flushes the whole mm if a deferred flush may still be pending. The flush
/// itself is the arch hooks' (e73ad5ff2f76): arch_tlbbatch_add_mm and arch_tlbbatch_flush — a
/// counted full local flush and flush_tlb_others(no mm, TLB_FLUSH_ALL), as x86 did it since 4.6.
/// </summary>
public class Linux413(PolicyParams p) : Linux43(p)
{
    public override void TryToUnmapFlush(Exec ex)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        if (!b.FlushRequired)
        {
            return;
        }
        NoteBatchFlush(ex, b);
        Arch.ArchTlbbatchFlush(ex, b);
        b.Reset();
    }

    public override string Name => "linux-4.13";

    public override string Summary => "Linux 4.13 (3ea277194daa): 4.3 plus mm->tlb_flush_batched and flush_tlb_batched_pending in mprotect/munmap/madvise";

    protected override void OnDeferred(MmStruct mm) => mm.TlbFlushBatched = true;

    public override void FlushTlbBatchedPending(Exec ex, MmStruct mm)
    {
        if (!mm.TlbFlushBatched)
        {
            return;
        }
        Arch.FlushTlbMm(ex, mm);
        mm.TlbFlushBatched = false;
    }
}
