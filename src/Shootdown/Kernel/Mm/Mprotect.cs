using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/mprotect.c: change_protection over a VMA. Linux 4.13 first calls flush_tlb_batched_pending
/// (3ea277194daa) under the page-table lock; then each present PTE loses its write bit and, if any
/// changed, the range is flushed. A PTE that reclaim already cleared is not there to change — so
/// without 4.13's check nothing flushes the stale writable entry a deferred reclaim flush left.
/// </summary>
public sealed class Mprotect(Sim sim)
{
    /// <summary>
    /// change_prot_numa (mm/mempolicy.c) over [start, end) of <paramref name="vma"/>:
    /// change_protection with MM_CP_PROT_NUMA makes every present PTE PROT_NONE (one already
    /// PROT_NONE is skipped, "avoid TLB flush if possible"), counts numa_pte_updates and, if any
    /// changed, flushes the range. Returns the PTEs changed.
    /// </summary>
    public long ChangeProtNuma(Exec ex, Vma vma, long start, long end)
    {
        MmStruct mm = vma.Mm;
        long changed = 0;
        for (long vpn = start; vpn < end;)
        {
            long t0 = ex.Now;
            long leafEnd = LeafEnd(vpn, end);
            bool live = mm.PageTable.LeafLive(vpn);
            for (; vpn < leafEnd; vpn++)
            {
                uint pte = mm.PageTable.Get(vpn);
                if (Pte.IsPresent(pte))
                {
                    mm.PageTable.Update(vpn, (pte & ~Pte.Present) | Pte.ProtNone);
                    sim.Memory.PteWritten(Pte.Frame(pte), ex.Cpu.Id, sim.Lines);
                    changed++;
                }
                ex.Sys += sim.Costs.MapPtePerPageNs;
            }
            if (live)
            {
                ex.LockAround(mm.Ptl(leafEnd - 1), t0); // change_pte_range under the page-table page's lock
            }
        }
        mm.PteEpoch++;
        sim.VmStat.Add(Observe.VmEvent.numa_pte_updates, changed);
        if (changed > 0)
        {
            sim.Arch.FlushTlbMmRange(ex, mm, start, end);
        }
        return changed;
    }

    /// <summary>The end of the page-table page holding <paramref name="vpn"/>, or <paramref name="end"/> if sooner.</summary>
    private static long LeafEnd(long vpn, long end) => Math.Min(end, (vpn | (RadixMap.LeafSize - 1)) + 1);

    public void ChangeProtection(Exec ex, Vma vma, bool writable)
    {
        MmStruct mm = vma.Mm;
        ex.Sys += sim.Costs.FaultEntryNs; // syscall entry, VMA lookup, mmap_sem
        sim.Policy.FlushTlbBatchedPending(ex, mm);
        bool changed = false;
        if (!writable)
        {
            for (long vpn = vma.Start; vpn < vma.End;)
            {
                long t0 = ex.Now;
                long leafEnd = LeafEnd(vpn, vma.End);
                bool live = mm.PageTable.LeafLive(vpn);
                for (; vpn < leafEnd; vpn++)
                {
                    uint pte = mm.PageTable.Get(vpn);
                    if (Pte.IsPresent(pte) && Pte.IsWrite(pte))
                    {
                        mm.PageTable.Update(vpn, pte & ~Pte.Write);
                        sim.Memory.PteWritten(Pte.Frame(pte), ex.Cpu.Id, sim.Lines);
                        mm.PteEpoch++;
                        changed = true;
                    }
                    ex.Sys += sim.Costs.MapPtePerPageNs;
                }
                if (live)
                {
                    ex.LockAround(mm.Ptl(leafEnd - 1), t0); // change_pte_range under the page-table page's lock
                }
            }
        }
        vma.Writable = writable;
        if (changed)
        {
            sim.Arch.FlushTlbMmRange(ex, mm, vma.Start, vma.End);
        }
        if (!writable)
        {
            vma.ProtectedAt = ex.Now;
            if (sim.Oracle is { } oracle && vma.File is { } file)
            {
                for (long vpn = vma.Start; vpn < vma.End; vpn++)
                {
                    int f = file.FindPage(vma.PgOff + (vpn - vma.Start));
                    if (f >= 0)
                    {
                        oracle.Protected(ex, f, mm.Id, vpn);
                    }
                }
            }
        }
    }
}
