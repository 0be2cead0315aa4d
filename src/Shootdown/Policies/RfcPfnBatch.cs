using Shootdown.Kernel.Arch;
using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;
using Shootdown.Observe;

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
/// and the handler, percpu_flush_tlb_batch_pages, does flush_local_tlb_addr(pfn &lt;&lt; PAGE_SHIFT)
/// — INVLPG of a physical address used as a linear one — so it does not remove the cleared user
/// mapping from any TLB. Stale entries then live until the TLB evicts them or the CPU reloads CR3.
/// With <see cref="PageSized"/>, patch 3: the list grows to a page's worth of PFNs.
/// </summary>
public class RfcPfnBatch : FlushPolicy
{
    private readonly SmpCallFunc _handler;
    private readonly FlushTlbInfo _info = new();

    public RfcPfnBatch(PolicyParams p, bool pageSized)
        : base(p)
    {
        PageSized = pageSized;
        _handler = PercpuFlushTlbBatchPages;
    }

    public bool PageSized { get; }

    public override string Name => PageSized ? "rfc-pfn-page" : "rfc-pfn32";

    public override string Summary => PageSized
        ? "RFC v1 patches 2+3 (Apr 2015) as posted: PFN list of a page's worth (~510 on 48 CPUs); like rfc-pfn32 otherwise"
        : "RFC v1 patch 2 (Apr 2015) as posted: 32 PFNs, one IPI per other CPU doing INVLPG of each PFN as an address; dirty PTEs batched, free before flush";

    public override bool UsesBatch => true;

    public override bool HasPfnList => true;

    public override UnmapFlushSite FlushSite => UnmapFlushSite.ShrinkLruvec;

    /// <summary>
    /// Patch 4/4 ("mm: migrate: Batch TLB flushing when unmapping pages for migration"), as posted:
    /// __unmap_and_move passes TTU_BATCH_FLUSH, migrate_pages flushes only at its end.
    /// </summary>
    public override MigrateFlushSite MigrateFlush => MigrateFlushSite.EndOfMigratePages;

    /// <summary>
    /// 32 for patch 2; for patch 3 the batch structure fills one 4 KiB page:
    /// (4096 - cpumask bytes - 8-byte counter) / 8 bytes per PFN.
    /// </summary>
    public override int BatchPages => Params.BatchSize ?? (PageSized ? PagePfns(NrCpus) : 32);

    public static int PagePfns(int nrCpus) => (4096 - ((nrCpus + 63) / 64 * 8) - 8) / 8;

    /// <summary>should_defer_flush: only with TTU_BATCH_FLUSH and some other CPU in the mm's cpumask.</summary>
    public override bool ShouldDeferFlush(Exec ex, MmStruct mm, bool batchFlush) => batchFlush && mm.CpuMask.AnyBut(ex.Cpu.Id);

    /// <summary>set_ubc_flush_pending: OR the mm's cpumask in, append the PFN; a full list is flushed at once.</summary>
    public override void SetTlbUbcFlushPending(Exec ex, MmStruct mm, uint oldPte)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        b.NoteDeferred(mm);
        b.CpuMask.Or(mm.CpuMask);
        b.FlushRequired = true;
        b.Pfns[b.Count++] = Pte.Frame(oldPte); // v1 kept no writable flag: dirty PTEs are batched like clean ones
        if (b.IsFull)
        {
            TryToUnmapFlush(ex);
        }
    }

    /// <summary>v1 flushes the batch before pageout() whatever the PTEs were.</summary>
    public override void TryToUnmapFlushDirty(Exec ex) => TryToUnmapFlush(ex);

    /// <summary>
    /// try_to_unmap_flush of v1: smp_call_function_many(&amp;ubc->cpumask,
    /// percpu_flush_tlb_batch_pages, ubc, true) — one IPI to every CPU of the mask but this one,
    /// waiting for all; nothing is flushed on this CPU; traced as TLB_REMOTE_SHOOTDOWN of the
    /// list's length.
    /// </summary>
    public override void TryToUnmapFlush(Exec ex)
    {
        TlbUnmapBatch b = ex.Task.Batch!;
        if (!b.FlushRequired)
        {
            return;
        }
        Trace?.TlbFlush(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, b.Count, TlbFlushReason.RemoteShootdown);
        NoteBatchFlush(ex, b);
        if (b.CpuMask.AnyBut(ex.Cpu.Id))
        {
            _info.Set(null, 0, 0);
            _info.Pfns = b.Pfns;
            _info.NrPfns = b.Count;
            Arch.SmpCallFunctionMany(ex, b.CpuMask, _handler, _info);
        }
        b.Reset();
    }

    /// <summary>
    /// percpu_flush_tlb_batch_pages of v1 on a receiver: counts a received remote flush, then
    /// flush_local_tlb_addr (INVLPG) of each listed PFN shifted by PAGE_SHIFT — an address in
    /// whatever mm is loaded, with no lazy-TLB check. It does not count irq_tlb_count: the IPI
    /// shows in /proc/interrupts as a function-call interrupt (CAL), not a TLB shootdown.
    /// </summary>
    private long PercpuFlushTlbBatchPages(Cpu r, long t, FlushTlbInfo info) => FlushListedPfnsAsAddresses(r, info);
}
