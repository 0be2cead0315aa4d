using Shootdown.Kernel.Arch;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Policies;

/// <summary>
/// The seed series' v6 patch 4/4, "mm: Send one IPI per CPU to TLB flush pages that were recently
/// unmapped" (Mel Gorman, linux-mm, 9 Jun 2015; not merged) — the kernel its author called
/// batchunmap-v6. It is v6 patches 1–3 (the design 4.3 merged in a later revision, modelled by
/// <see cref="Linux43"/> — the batch flushed at the end of every shrink_page_list, before its
/// pages are freed, and before pageout() of a page whose PTE was dirty; v6 still allocated
/// current->tlb_ubc in shrink_lruvec and its handler called local_flush_tlb()) with the PFN list
/// put back: set_tlb_ubc_flush_pending appends the page's PFN
/// and flushes at once when BATCH_TLBFLUSH_SIZE (32) are listed; try_to_unmap_flush runs the
/// handler on this CPU if it is in the mask and, through smp_call_function_many, on the mask's
/// other CPUs; the handler counts nr_tlb_remote_flush_received and does flush_local_tlb_addr(pfn
/// &lt;&lt; PAGE_SHIFT) for each listed PFN — INVLPG of a physical address used as a linear one, as in
/// RFC v1 (<see cref="RfcPfnBatch"/>), so the cleared user mappings stay cached everywhere,
/// the sender's own CPU included. (The local call still passes &amp;tlb_ubc->cpumask, left from patch
/// 2, to a handler that now reads a struct tlbflush_unmap_batch: it works because the cpumask is
/// the struct's first member.) The posting measured it against v6 patches 1–3 on both of the
/// series' machines (README, "Cross-checks").
/// </summary>
public sealed class V6PfnBatch(PolicyParams p) : Linux43(p)
{
    public override string Name => "v6-pfn32";

    public override string Summary => "v6 patch 4/4 (Jun 2015, not merged: batchunmap-v6): linux-4.3's batch plus a 32-PFN list, INVLPG of each PFN as an address on every CPU of the mask, this one included";

    public override bool HasPfnList => true;

    /// <summary>BATCH_TLBFLUSH_SIZE: 32 ("matches SWAP_CLUSTER_MAX").</summary>
    public override int BatchPages => Params.BatchSize ?? 32;

    /// <summary>set_tlb_ubc_flush_pending of v6 4/4: 4.3's mask and writable flag, the PFN appended, a full list flushed at once.</summary>
    public override void SetTlbUbcFlushPending(Exec ex, MmStruct mm, uint oldPte)
    {
        base.SetTlbUbcFlushPending(ex, mm, oldPte);
        TlbUnmapBatch b = ex.Task.Batch!;
        b.Pfns[b.Count++] = Pte.Frame(oldPte);
        if (b.IsFull)
        {
            TryToUnmapFlush(ex);
        }
    }

    /// <summary>try_to_unmap_flush of v6 4/4 is 4.3's, traced as TLB_REMOTE_SHOOTDOWN of the list's length.</summary>
    protected override int TracedPages(TlbUnmapBatch b) => b.Count;

    /// <summary>The handlers read the task's batch: its PFNs and their count.</summary>
    protected override FlushTlbInfo FillInfo(FlushTlbInfo info, TlbUnmapBatch b)
    {
        info.Set(null, 0, 0);
        info.Pfns = b.Pfns;
        info.NrPfns = b.Count;
        return info;
    }

    /// <summary>percpu_flush_tlb_batch_pages of v6 4/4: v1's handler, unchanged.</summary>
    protected override long PercpuFlushTlbBatchPages(Cpu r, long t, FlushTlbInfo info) => FlushListedPfnsAsAddresses(r, info);
}
