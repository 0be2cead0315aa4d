using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Policies;

/// <summary>
/// The seed's RFC v1 (April 2015), patch 2 "mm: Send a single IPI to TLB flush multiple pages when
/// unmapping", as posted, flaws included. With TTU_BATCH_FLUSH, try_to_unmap_one clears the PTE
/// without flushing when another CPU is in the mm's cpumask (should_defer_flush), ORs that mask
/// into the task's batch and appends the page's PFN; the batch is flushed when it holds 32 PFNs,
/// before pageout, and at the end of shrink_lruvec. Flaws kept: dirty PTEs are batched too (the
/// cover letter's "last minute note"); pages are freed at the end of shrink_page_list before the
/// flush (fixed in v3); try_to_unmap_flush sends the IPIs with smp_call_function_many, which never
/// runs the handler on the calling CPU, and flushes nothing locally (v2 added the local flush);
/// and the handler, percpu_flush_tlb_batch_pages, does INVLPG of <c>pfn &lt;&lt; PAGE_SHIFT</c> —
/// a physical address used as a linear one — so it does not remove the cleared user mapping from
/// any TLB (see <see cref="Kernel.Arch.X86.TlbFlush.FlushTlbOthers"/>). Stale entries then live
/// until the TLB evicts them or the CPU reloads CR3. With <see cref="PageSized"/>, patch 3: the list
/// grows to a page's worth of PFNs.
/// </summary>
public class RfcPfnBatch(PolicyParams p, bool pageSized) : FlushPolicy(p)
{
    public bool PageSized { get; } = pageSized;

    public override string Name => PageSized ? "rfc-pfn-page" : "rfc-pfn32";

    public override string Summary => PageSized
        ? "RFC v1 patches 2+3 (Apr 2015) as posted: PFN list of a page's worth (~510 on 48 CPUs); like rfc-pfn32 otherwise"
        : "RFC v1 patch 2 (Apr 2015) as posted: 32 PFNs, one IPI per other CPU doing INVLPG of each PFN as an address; dirty PTEs batched, free before flush";

    public override bool UsesBatch => true;

    /// <summary>
    /// 32 for patch 2; for patch 3 the batch structure fills one 4 KiB page:
    /// (4096 - cpumask bytes - 8-byte counter) / 8 bytes per PFN.
    /// </summary>
    public override int BatchPages => Params.BatchSize ?? (PageSized ? PagePfns(Sim.Cpus.Length) : 32);

    public static int PagePfns(int nrCpus) => (4096 - ((nrCpus + 63) / 64 * 8) - 8) / 8;

    public override bool UnmapFlush(Exec ex, MmStruct mm, long vpn, uint oldPte, bool batchFlush)
    {
        // should_defer_flush: only with TTU_BATCH_FLUSH and some other CPU in the mm's cpumask.
        if (!batchFlush || !mm.CpuMask.AnyBut(ex.Cpu.Id))
        {
            Sim.Arch.FlushTlbPage(ex, mm, vpn);
            return false;
        }
        // set_ubc_flush_pending: append the PFN; a full list is flushed at once.
        TlbUnmapBatch b = ex.Task.Batch!;
        b.Add(mm, Pte.Frame(oldPte));
        if (Pte.IsDirty(oldPte))
        {
            b.Writable = true;
        }
        if (b.IsFull)
        {
            TryToUnmapFlush(ex);
        }
        return true;
    }

    public override void FlushDirty(Exec ex) => TryToUnmapFlush(ex);

    public override void EndShrinkLruvec(Exec ex) => TryToUnmapFlush(ex);

    /// <summary>
    /// try_to_unmap_flush of v1: smp_call_function_many(&amp;ubc->cpumask,
    /// percpu_flush_tlb_batch_pages, ubc, true) — one IPI to every CPU of the mask but this one,
    /// waiting for all; nothing is flushed on this CPU.
    /// </summary>
    public void TryToUnmapFlush(Exec ex)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        if (!b.FlushRequired)
        {
            return;
        }
        if (b.CpuMask.AnyBut(ex.Cpu.Id))
        {
            Sim.Arch.FlushTlbOthers(ex, b.CpuMask, -1, b.Pfns, b.Count, 0, full: false);
        }
        b.Reset();
    }
}
