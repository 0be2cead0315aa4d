using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/rmap.c: the reverse map of a file page is every VMA of its mapping's i_mmap covering the
/// page's index; page_referenced and try_to_unmap walk it.
/// </summary>
public sealed class Rmap(Sim sim)
{
    /// <summary>
    /// page_referenced: counts the PTEs mapping <paramref name="frame"/> that have the accessed bit
    /// and clears it. x86 ptep_clear_flush_young does not flush the TLB (since Linux 3.18, commit
    /// b13b1d2d8692): a CPU that keeps the entry cached keeps using it without setting the bit again.
    /// </summary>
    public int PageReferenced(int frame, out bool vmExec)
    {
        vmExec = false;
        Memory mem = sim.Memory;
        if (mem.Pages[frame].MapCount == 0)
        {
            return 0;
        }
        AddressSpace file = sim.Files[mem.Pages[frame].Mapping];
        long index = mem.Pages[frame].Index;
        int referenced = 0;
        foreach (Vma vma in file.IMmap)
        {
            long vpn = vma.VpnOf(index);
            if (vpn < 0)
            {
                continue;
            }
            RadixMap pt = vma.Mm.PageTable;
            uint pte = pt.Get(vpn);
            if (Pte.IsPresent(pte) && Pte.Frame(pte) == frame && Pte.IsYoung(pte))
            {
                pt.Update(vpn, pte & ~Pte.Accessed);
                referenced++;
            }
        }
        return referenced;
    }

    /// <summary>
    /// try_to_unmap: clears every PTE mapping <paramref name="frame"/>; for each, try_to_unmap_one
    /// hands the flush decision to the policy (ptep_clear_flush, or defer with TTU_BATCH_FLUSH).
    /// A dirty PTE transfers its dirty bit to the page (set_page_dirty).
    /// </summary>
    public void TryToUnmap(Exec ex, int frame, bool batchFlush)
    {
        Memory mem = sim.Memory;
        AddressSpace file = sim.Files[mem.Pages[frame].Mapping];
        long index = mem.Pages[frame].Index;
        foreach (Vma vma in file.IMmap)
        {
            if (mem.Pages[frame].MapCount == 0)
            {
                break;
            }
            long vpn = vma.VpnOf(index);
            if (vpn < 0)
            {
                continue;
            }
            MmStruct mm = vma.Mm;
            uint pte = mm.PageTable.Get(vpn);
            if (!Pte.IsPresent(pte) || Pte.Frame(pte) != frame)
            {
                continue;
            }
            ex.Sys += sim.Costs.UnmapPageNs;
            mm.PageTable.Clear(vpn);
            mm.PteEpoch++;
            mem.Pages[frame].MapCount--;
            mm.RssFile--;
            if (Pte.IsDirty(pte))
            {
                sim.Writeback.SetPageDirty(frame);
            }
            bool deferred = sim.Policy.UnmapFlush(ex, mm, vpn, pte, batchFlush);
            sim.Oracle?.Unmapped(ex, frame, mm.Id, vpn, deferred);
        }
    }
}
