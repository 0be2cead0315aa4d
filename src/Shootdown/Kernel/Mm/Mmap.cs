using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>mm/mmap.c: exit_mmap, the teardown of an address space when its last user exits.</summary>
public sealed class Mmap(Sim sim)
{
    /// <summary>
    /// exit_mmap (4.0): tlb_gather_mmu for the full mm, unmap_vmas (zap_pte_range clears every PTE,
    /// drops the page's mapcount and moves a dirty bit to the page), free_pgtables, and
    /// tlb_finish_mmu, whose flush is flush_tlb_mm_range(mm, 0, TLB_FLUSH_ALL): the exiting CPU,
    /// lazy since exit_mm, leave_mm()s, and every other CPU still in the mm's cpumask gets a full
    /// flush (or leaves it, if lazy). The VMAs leave their files' i_mmap, so reclaim no longer
    /// finds the mm; the anonymous pages (text, stack) are freed after the flush, and the release of
    /// the unmapped pages drains this CPU's lru_add pagevec first (free_pages_and_swap_cache).
    /// </summary>
    public void ExitMmap(Exec ex, MmStruct mm)
    {
        Memory mem = sim.Memory;
        RadixMap pt = mm.PageTable;
        foreach (Vma vma in mm.Vmas)
        {
            for (long vpn = pt.NextPresent(vma.Start, vma.End); vpn >= 0; vpn = pt.NextPresent(vpn + 1, vma.End))
            {
                uint pte = pt.Get(vpn);
                int f = Pte.Frame(pte);
                pt.Clear(vpn);
                ex.Sys += sim.Costs.MapPtePerPageNs;
                if (Pte.IsDirty(pte))
                {
                    sim.Writeback.SetPageDirty(f);
                }
                if (--mem.Pages[f].MapCount == 0)
                {
                    ex.Sys += sim.ZoneStats.Dec(ex.Cpu.Id, mem.ZoneOf(f).Index, ZoneStatItem.NrFileMapped); // page_remove_rmap
                }
                mm.RssFile--;
                sim.Oracle?.Unmapped(ex, f, mm.Id, vpn, deferred: false);
            }
            vma.File?.IMmap.Remove(vma);
        }
        mm.PteEpoch++;
        int nrAnon = 0;
        int[] anon = mm.FixedHigh > mm.FixedLow ? new int[mm.FixedHigh - mm.FixedLow] : [];
        for (long vpn = pt.NextPresent(mm.FixedLow, mm.FixedHigh); vpn >= 0; vpn = pt.NextPresent(vpn + 1, mm.FixedHigh))
        {
            anon[nrAnon++] = Pte.Frame(pt.Get(vpn));
            pt.Clear(vpn);
            ex.Sys += sim.Costs.MapPtePerPageNs;
        }
        sim.Arch.FlushTlbMm(ex, mm); // tlb_finish_mmu
        // tlb_flush_mmu_free → free_pages_and_swap_cache: lru_add_drain() of this CPU's pagevec,
        // then release_pages drops the mapping's references (the page cache keeps the file pages).
        if (ex.Cpu.PagevecCount > 0)
        {
            sim.Swap.LruAddDrain(ex);
        }
        sim.PageAlloc.FreePages(ex, anon.AsSpan(0, nrAnon));
    }
}
