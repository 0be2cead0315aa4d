using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Policies;

/// <summary>
/// The seed's RFC v1 (April 2015), patch 2 "mm: Send a single IPI to TLB flush multiple pages when
/// unmapping": with TTU_BATCH_FLUSH, try_to_unmap_one clears the PTE without flushing, ORs the mm's
/// cpumask into the task's batch and appends the page; one IPI per CPU in the mask then flushes
/// every listed page with INVLPG. The batch is flushed when full, before pageout, and at the end of
/// shrink_lruvec. Kept as posted, flaws included: dirty PTEs are batched too (the cover letter's
/// "last minute note"), and pages are freed at the end of shrink_page_list before the flush (fixed
/// in v3). With <see cref="PageSized"/>, patch 3: the list grows to a page's worth of PFNs.
/// </summary>
public class RfcPfnBatch(PolicyParams p, bool pageSized) : FlushPolicy(p)
{
    public bool PageSized { get; } = pageSized;

    public override string Name => PageSized ? "rfc-pfn-page" : "rfc-pfn32";

    public override string Summary => PageSized
        ? "RFC v1 patches 2+3 (Apr 2015): PFN list of a page's worth (~510 on 48 CPUs), flushed with INVLPG per page"
        : "RFC v1 patch 2 (Apr 2015): per-task list of 32 PFNs flushed with one IPI per CPU; dirty PTEs batched, free before flush";

    public override bool UsesBatch => true;

    /// <summary>
    /// 32 for patch 2; for patch 3 the batch structure fills one 4 KiB page:
    /// (4096 - cpumask bytes - 8-byte counter) / 8 bytes per PFN.
    /// </summary>
    public override int BatchPages => Params.BatchSize ?? (PageSized ? PagePfns(Sim.Cpus.Length) : 32);

    public static int PagePfns(int nrCpus) => (4096 - ((nrCpus + 63) / 64 * 8) - 8) / 8;

    public override bool UnmapFlush(Exec ex, MmStruct mm, long vpn, uint oldPte, bool batchFlush)
    {
        if (!batchFlush)
        {
            Sim.Arch.FlushTlbPage(ex, mm, vpn);
            return false;
        }
        TlbUnmapBatch b = ex.Task.Batch!;
        if (b.IsFull)
        {
            TryToUnmapFlush(ex);
        }
        b.Add(mm, vpn);
        if (Pte.IsDirty(oldPte))
        {
            b.Writable = true;
        }
        return true;
    }

    public override void FlushDirty(Exec ex) => TryToUnmapFlush(ex);

    public override void EndShrinkLruvec(Exec ex) => TryToUnmapFlush(ex);

    /// <summary>try_to_unmap_flush of v1: the local CPU flushes each page, the others by one IPI each.</summary>
    public void TryToUnmapFlush(Exec ex) => FlushBatch(ex, full: false);
}
