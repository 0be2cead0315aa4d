using Shootdown.Kernel.Mm;
using Shootdown.Kernel.Sched;

namespace Shootdown.Policies;

/// <summary>
/// Linux 6.4 as far as TLB batching goes: 4.13's reclaim batching (the arch hooks, 
/// mm->tlb_flush_batched) plus migration batching, commit 7e12beb8ca2a ("migrate_pages: batch
/// flushing TLB"): migrate_pages_batch unmaps up to NR_MAX_BATCHED_MIGRATION (512) pages with
/// TTU_BATCH_FLUSH, calls try_to_unmap_flush once, then moves each page; a synchronous
/// migrate_pages first tries the batch asynchronously (2ef7dbb26990). With
/// <see cref="PolicyParams.PteAccessibleCheck"/> (4d4b6d66db63), set_tlb_ubc_flush_pending ignores
/// a PTE no CPU can have cached (not pte_accessible: a NUMA-hinting PROT_NONE PTE whose
/// change_prot_numa flush is done). do_numa_page migrates with the PTE still PROT_NONE, and NUMA
/// migration is no longer rate-limited (efaffc5e40ae, 4.19). The arch layer stays 4.0's x86
/// (no lazy-CPU skipping, no PCID), so only the batching differs from <see cref="Linux413"/>.
/// </summary>
public class Linux64(PolicyParams p) : Linux413(p)
{
    public override string Name => "linux-6.4";

    public override string Summary => Params.PteAccessibleCheck
        ? "Linux 6.4 (7e12beb8ca2a): 4.13 plus migration batching (512 pages, one flush), pte_accessible check of 4d4b6d66db63"
        : "Linux 6.4 (7e12beb8ca2a): 4.13 plus migration batching (512 pages, one flush), without the pte_accessible check";

    public override MigrateFlushSite MigrateFlush => MigrateFlushSite.Batch;

    public override bool NumaMigrateProtNone => true;

    public override bool NumaMigrateRateLimited => false;

    public override void SetTlbUbcFlushPending(Exec ex, MmStruct mm, uint oldPte)
    {
        if (Params.PteAccessibleCheck && !Pte.IsAccessible(oldPte, flushPending: false))
        {
            return;
        }
        base.SetTlbUbcFlushPending(ex, mm, oldPte);
    }
}
