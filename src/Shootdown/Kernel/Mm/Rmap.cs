using Shootdown.Hardware;
using Shootdown.Kernel.Arch;
using Shootdown.Kernel.Sched;
using Shootdown.Policies;

namespace Shootdown.Kernel.Mm;

/// <summary>struct rmap_walk_control's rmap_one: called for each (vma, address) that maps the page; false stops the walk.</summary>
public interface IRmapOne
{
    bool RmapOne(int frame, Vma vma, long vpn, uint pte);
}

/// <summary>
/// mm/rmap.c: the reverse map of a file page is every VMA of its mapping's i_mmap covering the
/// page's index. One walk, <see cref="RmapWalk{T}"/> (rmap_walk_file), serves try_to_unmap,
/// page_referenced and page_mkclean, each a callback (a struct, so the walk allocates nothing).
/// </summary>
public sealed class Rmap(Sim sim)
{
    /// <summary>
    /// rmap_walk_file: calls <paramref name="rwc"/> for each VMA of the page's mapping whose range
    /// covers its index and whose PTE there maps this very frame, until it returns false or the
    /// page is no longer mapped.
    /// </summary>
    public void RmapWalk<T>(int frame, ref T rwc)
        where T : struct, IRmapOne => RmapWalk(frame, ref rwc, migrationEntries: false);

    /// <summary>
    /// rmap_walk_file over the PTEs mapping <paramref name="frame"/> or, with
    /// <paramref name="migrationEntries"/>, over the migration entries naming it (remove_migration_ptes:
    /// the page is no longer mapped, so the walk does not stop at a zero mapcount).
    /// </summary>
    public void RmapWalk<T>(int frame, ref T rwc, bool migrationEntries)
        where T : struct, IRmapOne
    {
        Memory mem = sim.Memory;
        if (mem.Pages[frame].Mapping < 0)
        {
            return;
        }
        AddressSpace file = sim.Files[mem.Pages[frame].Mapping];
        long index = mem.Pages[frame].Index;
        List<Vma> vmas = file.IMmap;
        for (int i = 0; i < vmas.Count; i++)
        {
            if (!migrationEntries && mem.Pages[frame].MapCount == 0)
            {
                return; // rwc->done: page_not_mapped
            }
            Vma vma = vmas[i];
            long vpn = vma.VpnOf(index);
            if (vpn < 0)
            {
                continue;
            }
            uint pte = vma.Mm.PageTable.Get(vpn);
            if (!(migrationEntries ? Pte.IsMigration(pte) : Pte.IsMapped(pte)) || Pte.Frame(pte) != frame)
            {
                continue; // page_check_address finds no PTE for this page
            }
            if (!rwc.RmapOne(frame, vma, vpn, pte))
            {
                return;
            }
        }
    }

    /// <summary>
    /// i_mmap_lock_read/unlock around rmap_walk_file (i_mmap_rwsem, a rwsem since 3.19): both write
    /// the rwsem's count, so its line comes to this CPU from the last reclaimer of the file's pages.
    /// </summary>
    private void IMmapLockRead(Exec ex, int frame)
    {
        int mapping = sim.Memory.Pages[frame].Mapping;
        if (mapping >= 0)
        {
            ex.Sys += sim.Lines.Take(ref sim.Files[mapping].IMmapOwner, ex.Cpu.Id);
        }
    }

    /// <summary>page_referenced_one: under the PTE lock, counts young PTEs and clears their accessed bit, notes VM_EXEC.</summary>
    private struct PageReferencedOne(Exec ex, Memory mem) : IRmapOne
    {
        public int Referenced;
        public bool VmExec;

        public bool RmapOne(int frame, Vma vma, long vpn, uint pte)
        {
            // The PTE's line was last written by the CPU that faulted the mapping in or set its
            // accessed bit (or by the reclaimer that cleared it); it holds PtesPerLine PTEs, and
            // reclaim walks pages in about the order they were faulted, so one transfer (or, once
            // that CPU's cache has evicted it, one DRAM read) serves that many pages.
            long t0 = ex.Now;
            ex.Sys += ex.Lines.PteLine(mem.PteWriter[frame], mem.PteStamp[frame], vma.Mm.PageTableNode, ex.Cpu.Id) / Pte.PtesPerLine;
            ex.LockAround(vma.Mm.Ptl(vpn), t0);
            if (Pte.IsYoung(pte))
            {
                vma.Mm.PageTable.Update(vpn, pte & ~Pte.Accessed);
                mem.PteWritten(frame, ex.Cpu.Id, ex.Lines);
                Referenced++;
                VmExec |= vma.Exec;
            }
            return true;
        }
    }

    /// <summary>
    /// page_referenced: counts the PTEs mapping <paramref name="frame"/> that have the accessed bit
    /// and clears it. x86 ptep_clear_flush_young does not flush the TLB (since Linux 3.18, commit
    /// b13b1d2d8692): a CPU that keeps the entry cached keeps using it without setting the bit again.
    /// </summary>
    public int PageReferenced(Exec ex, int frame, out bool vmExec)
    {
        var one = new PageReferencedOne(ex, sim.Memory);
        if (sim.Memory.Pages[frame].MapCount > 0)
        {
            IMmapLockRead(ex, frame);
            RmapWalk(frame, ref one);
        }
        vmExec = one.VmExec;
        return one.Referenced;
    }

    /// <summary>
    /// try_to_unmap_one: clears the PTE; with TTU_BATCH_FLUSH and the policy's should_defer_flush,
    /// the flush is recorded in the task's batch (set_tlb_ubc_flush_pending), otherwise flushed at
    /// once (ptep_clear_flush). A dirty PTE transfers its dirty bit to the page (set_page_dirty).
    /// All of it under the PTE lock — an immediate flush's IPI wait included, so other CPUs
    /// wanting that page-table page wait for the shootdown too. For reclaim (not migration) a
    /// young PTE fails instead (SWAP_FAIL): its accessed bit is cleared and the walk stops.
    /// </summary>
    private struct TryToUnmapOne(Sim sim, Exec ex, bool batchFlush, bool migration) : IRmapOne
    {
        /// <summary>SWAP_FAIL: reclaim found a young PTE and left the page mapped.</summary>
        public bool Failed;

        public bool RmapOne(int frame, Vma vma, long vpn, uint pte)
        {
            MmStruct mm = vma.Mm;
            long t0 = ex.Now;
            ex.Sys += sim.Costs.UnmapPageNs;
            if (!migration && Pte.IsYoung(pte))
            {
                // 4.0's try_to_unmap_one without TTU_IGNORE_ACCESS (reclaim): a PTE referenced
                // since page_referenced is cleared of its accessed bit (ptep_clear_flush_young,
                // no flush on x86) and the page stays mapped; shrink_page_list activates it. The
                // PTE's line comes from the CPU whose page walk set the bit.
                ex.Sys += ex.Lines.PteLine(sim.Memory.PteWriter[frame], sim.Memory.PteStamp[frame], mm.PageTableNode, ex.Cpu.Id);
                mm.PageTable.Update(vpn, pte & ~Pte.Accessed);
                sim.Memory.PteWritten(frame, ex.Cpu.Id, ex.Lines);
                ex.LockAround(mm.Ptl(vpn), t0);
                Failed = true;
                return false;
            }
            // try_to_migrate_one leaves a migration entry that keeps the write and dirty bits.
            uint entry = migration ? Pte.Make(frame, Pte.Migration | (pte & (Pte.Write | Pte.Dirty))) : 0;
            // ptep_get_and_clear (or the migration entry's set_pte_at) writes the PTE's line, last
            // written by whoever cleared its accessed bit or mapped it; reclaim unmaps pages about
            // in the order they were mapped, so one transfer serves a line's PTEs, as in
            // page_referenced_one.
            ex.Sys += ex.Lines.PteLine(sim.Memory.PteWriter[frame], sim.Memory.PteStamp[frame], mm.PageTableNode, ex.Cpu.Id) / Pte.PtesPerLine;
            sim.Memory.PteWritten(frame, ex.Cpu.Id, ex.Lines);
            bool deferred = sim.Rmap.ClearPteFlushOrDefer(ex, mm, vpn, pte, batchFlush, entry);
            if (Pte.IsDirty(pte))
            {
                sim.Writeback.SetPageDirty(frame);
            }
            if (--sim.Memory.Pages[frame].MapCount == 0)
            {
                ex.Sys += sim.ZoneStats.Dec(ex.Cpu.Id, sim.Memory.ZoneOf(frame).Index, ZoneStatItem.NrFileMapped); // page_remove_rmap
            }
            if (!migration)
            {
                // dec_mm_counter(mm, MM_FILEPAGES): an atomic on the mm's rss_stat line (a file
                // page's migration entry keeps the page counted).
                ex.Sys += ex.Lines.Take(ref mm.RssLineOwner, ex.Cpu.Id);
            }
            mm.RssFile--;
            ex.LockAround(mm.Ptl(vpn), t0);
            mm.PtlDropIfEmpty(vpn);
            sim.Oracle?.Unmapped(ex, frame, mm.Id, vpn, deferred, migration);
            return true;
        }
    }

    /// <summary>
    /// The heart of try_to_unmap_one: if the policy's should_defer_flush allows, ptep_get_and_clear
    /// and set_tlb_ubc_flush_pending; otherwise ptep_clear_flush, which flushes the page at once if
    /// the old PTE was pte_accessible (a PROT_NONE NUMA-hinting PTE no CPU can cache is not
    /// flushed; generic ptep_clear_flush since 3.13). The PTE becomes <paramref name="newPte"/>
    /// (0, or a migration entry). Returns whether the flush was deferred.
    /// </summary>
    public bool ClearPteFlushOrDefer(Exec ex, MmStruct mm, long vpn, uint pte, bool batchFlush, uint newPte = 0)
    {
        FlushPolicy policy = sim.Policy;
        bool deferred = policy.ShouldDeferFlush(ex, mm, batchFlush);
        if (newPte == 0)
        {
            mm.PageTable.Clear(vpn);
        }
        else
        {
            mm.PageTable.Update(vpn, newPte);
        }
        mm.PteEpoch++;
        if (deferred)
        {
            policy.SetTlbUbcFlushPending(ex, mm, pte);
        }
        else if (Pte.IsAccessible(pte, flushPending: false))
        {
            sim.Arch.FlushTlbPage(ex, mm, vpn);
        }
        return deferred;
    }

    /// <summary>
    /// Whether reclaim's try_to_unmap of <paramref name="frame"/> on this step's CPU would send a
    /// shootdown at once, from inside try_to_unmap_one, holding the PTE lock: under a policy that
    /// keeps no per-task batch (<see cref="FlushPolicy.UsesBatch"/>), when a PTE mapping the page
    /// that a CPU can cache belongs to an mm on another CPU (ptep_clear_flush); under a PFN list
    /// (<see cref="FlushPolicy.HasPfnList"/>: RFC v1, v6 4/4), when the PTEs it would defer fill the
    /// task's list, which set_tlb_ubc_flush_pending then flushes at once. The other batching
    /// policies flush later, outside the PTE lock (before pageout, at the end of shrink_page_list
    /// or, for RFC v1's list, of shrink_lruvec). Not
    /// kernel code, and it charges nothing: reclaim ends the step before such an unmap
    /// (<see cref="Sched.Yield.Sync"/>) so that the receivers have mostly been simulated up to the
    /// IPI's arrival when it is sent. It does not call the policy's should_defer_flush, which runs
    /// once per unmapped PTE, as in the kernel; it repeats its test (TTU_BATCH_FLUSH and another
    /// CPU in the mm's cpumask).
    /// </summary>
    public bool UnmapWouldShootDown(Exec ex, int frame)
    {
        FlushPolicy policy = sim.Policy;
        if (!policy.UsesBatch)
        {
            var one = new WouldShootDownOne(ex.Cpu.Id);
            RmapWalk(frame, ref one);
            return one.Found;
        }
        if (!policy.HasPfnList)
        {
            return false;
        }
        TlbUnmapBatch b = ex.Task.Batch!;
        var fill = new WouldFillPfnListOne(ex.Cpu.Id);
        RmapWalk(frame, ref fill);
        return fill.Deferred > 0 && b.Count + fill.Deferred >= b.Capacity;
    }

    private struct WouldShootDownOne(int cpu) : IRmapOne
    {
        public bool Found;

        public bool RmapOne(int frame, Vma vma, long vpn, uint pte)
        {
            Found = Pte.IsAccessible(pte, flushPending: false) && vma.Mm.CpuMask.AnyBut(cpu);
            return !Found;
        }
    }

    /// <summary>
    /// Counts the PTEs reclaim's try_to_unmap would defer under a PFN list (each appends its PFN to
    /// the list, accessible or not), up to a young PTE, where the walk fails (SWAP_FAIL) first.
    /// </summary>
    private struct WouldFillPfnListOne(int cpu) : IRmapOne
    {
        public int Deferred;

        public bool RmapOne(int frame, Vma vma, long vpn, uint pte)
        {
            if (Pte.IsYoung(pte))
            {
                return false;
            }
            if (vma.Mm.CpuMask.AnyBut(cpu))
            {
                Deferred++;
            }
            return true;
        }
    }

    /// <summary>
    /// try_to_unmap(page, TTU_UNMAP | <paramref name="batchFlush"/>): every PTE mapping
    /// <paramref name="frame"/>. Returns false for SWAP_FAIL — a PTE was young (referenced since
    /// page_referenced cleared it), so the walk stopped there and the page stays mapped.
    /// </summary>
    public bool TryToUnmap(Exec ex, int frame, bool batchFlush)
    {
        var one = new TryToUnmapOne(sim, ex, batchFlush, migration: false);
        IMmapLockRead(ex, frame);
        RmapWalk(frame, ref one);
        return !one.Failed;
    }

    /// <summary>
    /// try_to_migrate (try_to_unmap with TTU_MIGRATION before 5.15): every PTE mapping
    /// <paramref name="frame"/> becomes a migration entry, flushed at once or (with
    /// <paramref name="batchFlush"/> = TTU_BATCH_FLUSH and the policy's consent) deferred.
    /// </summary>
    public void TryToMigrate(Exec ex, int frame, bool batchFlush)
    {
        var one = new TryToUnmapOne(sim, ex, batchFlush, migration: true);
        RmapWalk(frame, ref one);
    }

    /// <summary>remove_migration_pte: the migration entry becomes an old (not young) PTE of the new frame, with the entry's write and dirty bits.</summary>
    private struct RemoveMigrationPte(Sim sim, Exec ex, int newFrame) : IRmapOne
    {
        public bool RmapOne(int frame, Vma vma, long vpn, uint pte)
        {
            MmStruct mm = vma.Mm;
            long t0 = ex.Now;
            mm.PageTable.Update(vpn, Pte.Make(newFrame, Pte.Present | (pte & (Pte.Write | Pte.Dirty))));
            sim.Memory.PteWritten(newFrame, ex.Cpu.Id, sim.Lines);
            mm.PteEpoch++;
            if (sim.Memory.Pages[newFrame].MapCount++ == 0)
            {
                ex.Sys += sim.ZoneStats.Inc(ex.Cpu.Id, sim.Memory.ZoneOf(newFrame).Index, ZoneStatItem.NrFileMapped); // page_add_file_rmap
            }
            mm.RssFile++;
            ex.Sys += sim.Costs.MapPtePerPageNs;
            ex.LockAround(mm.Ptl(vpn), t0);
            return true;
        }
    }

    /// <summary>remove_migration_ptes(old, new): every migration entry naming <paramref name="oldFrame"/> maps <paramref name="newFrame"/> (or the old frame again if the move failed).</summary>
    public void RemoveMigrationPtes(Exec ex, int oldFrame, int newFrame)
    {
        var one = new RemoveMigrationPte(sim, ex, newFrame);
        RmapWalk(oldFrame, ref one, migrationEntries: true);
    }

    /// <summary>
    /// page_mkclean_one: a writable or dirty PTE is write-protected and cleaned with
    /// ptep_clear_flush semantics (the flush happens at once); the page is being cleaned, so its
    /// dirty bit is not transferred.
    /// </summary>
    private struct PageMkcleanOne(Sim sim, Exec ex) : IRmapOne
    {
        public int Cleaned;

        public bool RmapOne(int frame, Vma vma, long vpn, uint pte)
        {
            if ((pte & (Pte.Write | Pte.Dirty)) != 0)
            {
                long t0 = ex.Now;
                vma.Mm.PageTable.Update(vpn, pte & ~(Pte.Write | Pte.Dirty));
                sim.Memory.PteWritten(frame, ex.Cpu.Id, sim.Lines);
                vma.Mm.PteEpoch++;
                sim.Arch.FlushTlbPage(ex, vma.Mm, vpn);
                ex.LockAround(vma.Mm.Ptl(vpn), t0);
                Cleaned++;
            }
            return true;
        }
    }

    /// <summary>page_mkclean: write-protects and cleans every PTE of the page; returns how many it changed.</summary>
    public int PageMkclean(Exec ex, int frame)
    {
        var one = new PageMkcleanOne(sim, ex);
        RmapWalk(frame, ref one);
        return one.Cleaned;
    }
}
