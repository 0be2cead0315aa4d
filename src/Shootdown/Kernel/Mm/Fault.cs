using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Kernel.Mm;

/// <summary>What a page fault ended in.</summary>
public enum VmFault
{
    /// <summary>The PTE is there (the access can be retried).</summary>
    Done,

    /// <summary>The access is not allowed (a store to a read-only mapping): SIGSEGV, the access does not happen.</summary>
    Sigsegv,
}

/// <summary>
/// mm/memory.c: handle_mm_fault for file mappings, the one fault path of every workload. A read
/// fault is filemap_fault plus do_fault_around (Linux 4.0 maps up to fault_around_bytes = 64 KiB,
/// commit 8c6e50b0290c). On a file with readahead (<see cref="Vma.Ra"/>) the fault maps the
/// window's cached pages, and filemap_fault reads around a missing page or reads the next window
/// ahead at a PG_readahead mark (<see cref="ReadFault"/>); on a file without, the window's pages
/// missing from the page cache are allocated and read (a sparse file's holes: zero-filled) and
/// every cached page of the window is mapped. A write
/// fault on a shared mapping is do_shared_fault (the page only, writable and dirty) or, on a
/// present read-only PTE, do_wp_page. Allocation, its slow path and direct reclaim belong to the
/// fault: when the allocator must reclaim, the fault hands back a process to run, and completes at
/// its end.
/// </summary>
public sealed class Fault(Sim sim)
{
    /// <summary>
    /// handle_mm_fault of an access to page <paramref name="index"/> of <paramref name="vma"/>'s
    /// file by <paramref name="task"/>. If <paramref name="wait"/> comes back non-null, the fault is
    /// not over: the caller runs it (<c>foreach (var y in wait) yield return y;</c>) and the PTE is
    /// there when it ends.
    /// </summary>
    public VmFault HandleMmFault(Exec ex, SimTask task, Vma vma, long index, bool write, out IEnumerable<Yield>? wait)
    {
        wait = null;
        MmStruct mm = vma.Mm;
        long vpn = vma.VpnOf(index);
        uint pte = mm.PageTable.Get(vpn);
        if (Pte.IsMigration(pte))
        {
            // do_swap_page -> migration_entry_wait: sleep until the migration unlocks the page.
            sim.VmStat.Inc(VmEvent.pgfault);
            ex.Sys += sim.Costs.FaultEntryNs;
            wait = sim.Migrate.MigrationEntryWait(task, Pte.Frame(pte));
            return VmFault.Done;
        }
        if (Pte.IsProtNone(pte))
        {
            sim.VmStat.Inc(VmEvent.pgfault);
            ex.Sys += sim.Costs.FaultEntryNs;
            wait = DoNumaPage(ex, task, vma, vpn, pte);
            return VmFault.Done;
        }
        if (Pte.IsPresent(pte))
        {
            // A store to a present read-only PTE: do_wp_page.
            return write && sim.Filemap.WpPage(ex, vma, vpn) ? VmFault.Done : VmFault.Sigsegv;
        }
        if (write && !vma.Writable)
        {
            return VmFault.Sigsegv;
        }
        sim.VmStat.Inc(VmEvent.pgfault);
        sim.Trace?.PageFault(ex.Now, ex.Cpu.Id, task.Comm, task.Pid, vpn);
        sim.Series.Add(Series.Faults, ex.Now, 1);
        sim.FaultsFine.Add(Series.Faults, ex.Now, 1);
        ex.Sys += sim.Costs.FaultEntryNs;
        AddressSpace file = vma.File!;
        // do_read_fault maps around the faulting page; do_shared_fault maps only it.
        long from = index, to = index + 1;
        if (!write && vma.FaultAroundPages > 1)
        {
            long w = vma.FaultAroundPages;
            from = Math.Max(index / w * w, vma.PgOff);
            to = Math.Min(Math.Min(from + w, vma.PgOff + (vma.End - vma.Start)), file.SizePages);
        }
        if (!write && vma.Ra is FileRaState ra)
        {
            return ReadFault(ex, task, vma, file, ra, index, from, to, out wait);
        }
        int need = sim.Filemap.CountMissing(file, from, to);
        int[] stash = task.AllocStash.Length >= need ? task.AllocStash : task.AllocStash = new int[need];
        long writeIndex = write ? index : -1;
        if (need == 0)
        {
            sim.Filemap.MapPages(ex, vma, from, to, writeIndex);
            return VmFault.Done;
        }
        IEnumerable<Yield>? slow = sim.PageAlloc.AllocPages(ex, task, task.HomeCpu.Node, need, stash);
        if (slow is null)
        {
            FinishFault(ex, vma, file, from, to, writeIndex, stash, need);
            return VmFault.Done;
        }
        wait = FinishAfter(ex, task, slow, vma, file, from, to, writeIndex, stash, need);
        return VmFault.Done;
    }

    /// <summary>The fault's rest once the allocator's slow path <paramref name="slow"/> has the pages: a process for the caller to run.</summary>
    private IEnumerable<Yield> FinishAfter(Exec ex, SimTask task, IEnumerable<Yield> slow, Vma vma, AddressSpace file, long from, long to, long writeIndex, int[] stash, int allocated)
    {
        PendingFault pf = task.PendingFault ??= NewPendingFault(task);
        pf.Ex = ex;
        pf.Slow = slow;
        pf.Vma = vma;
        pf.File = file;
        pf.From = from;
        pf.To = to;
        pf.WriteIndex = writeIndex;
        pf.Stash = stash;
        pf.Allocated = allocated;
        return pf.Process.Start();
    }

    /// <summary>
    /// A task's fault waiting for the allocator's slow path: what <see cref="FinishFault"/> needs,
    /// and the task's <see cref="AfterAllocation"/> as a reusable process (one per task: a fault
    /// that must wait allocates nothing).
    /// </summary>
    internal sealed class PendingFault
    {
        public Exec Ex = null!;
        public IEnumerable<Yield>? Slow; // null for a read-around that only steps through its pagevec drains
        public Vma Vma = null!;
        public AddressSpace File = null!;
        public long From;
        public long To;
        public long WriteIndex;
        public int[] Stash = [];
        public int Allocated;
        public ReusableProcess Process = null!;

        // A read fault whose readahead window took the slow path (ReadAroundAfterAllocation).
        public SimTask Task = null!;
        public RaRequest Ra;
        public ReusableProcess ReadAround = null!;
    }

    private PendingFault NewPendingFault(SimTask task)
    {
        var pf = new PendingFault { Task = task };
        pf.Process = new ReusableProcess(() => AfterAllocation(pf));
        pf.ReadAround = new ReusableProcess(() => ReadAroundAfterAllocation(pf));
        return pf;
    }

    /// <summary>
    /// do_read_fault of Linux 4.0 on a file with readahead (<paramref name="ra"/>, the file's
    /// f_ra). do_fault_around first maps the window's cached pages (filemap_map_pages, f1820361f83d
    /// in 3.15: not those marked PG_readahead); if that mapped the faulting page the fault is over. Otherwise
    /// filemap_fault: a cached page is mapped and, if it carries the PG_readahead mark,
    /// do_async_mmap_readahead reads the next window ahead (ondemand_readahead, as for read(2));
    /// a missing page is a major fault, and do_sync_mmap_readahead reads ra_pages (32) around it,
    /// from ra_pages / 2 before it, with a lookahead of ra_pages / 4 — unless MMAP_LOTSAMISS (100)
    /// faults in a row have missed. Both windows are allocated __GFP_NORETRY and read only the
    /// pages allocated before the first failure; a page still missing after that is read alone by
    /// page_cache_read, whose allocation retries. A sequential reader thus faults once per
    /// fault-around window while the readahead keeps a window ahead (the mark falls on every
    /// other window's first page), and twice when it must read around first (the faulting page
    /// alone, then the rest of its window on the next access).
    /// </summary>
    private VmFault ReadFault(Exec ex, SimTask task, Vma vma, AddressSpace file, FileRaState ra, long index, long from, long to, out IEnumerable<Yield>? wait)
    {
        wait = null;
        Filemap filemap = sim.Filemap;
        filemap.MapPages(ex, vma, from, to, -1); // do_fault_around
        if (Pte.IsPresent(vma.Mm.PageTable.Get(vma.VpnOf(index))))
        {
            return VmFault.Done;
        }
        int f = file.FindPage(index);
        long start = index;
        int size = 0, lookahead = 0;
        if (f >= 0)
        {
            // do_async_mmap_readahead. The page gets its PTE first: the kernel's fault holds a
            // reference on it while the next window is read, so reclaim cannot take it meanwhile.
            filemap.MapPages(ex, vma, index, index + 1, -1, faultIndex: index);
            if (ra.MmapMiss > 0)
            {
                ra.MmapMiss--;
            }
            ref PageFlags flags = ref sim.Memory.Pages[f].Flags;
            if ((flags & PageFlags.Readahead) == 0)
            {
                return VmFault.Done;
            }
            flags &= ~PageFlags.Readahead; // page_cache_async_readahead
            (start, size, lookahead) = sim.Readahead.Ondemand(ra, file, index, hitMarker: true, reqSize: ra.RaPages);
        }
        else
        {
            // do_sync_mmap_readahead
            sim.VmStat.Inc(VmEvent.pgmajfault);
            if (ra.RaPages > 0 && ra.MmapMiss < 10 * FileRaState.MmapLotsaMiss)
            {
                ra.MmapMiss++;
            }
            if (ra.RaPages > 0 && ra.MmapMiss <= FileRaState.MmapLotsaMiss)
            {
                ra.Start = Math.Max(0, index - ra.RaPages / 2);
                ra.Size = ra.RaPages;
                ra.AsyncSize = ra.RaPages / 4;
                (start, size, lookahead) = (ra.Start, ra.Size, ra.AsyncSize);
            }
        }
        RaRequest req = default;
        IEnumerable<Yield>? slow = size > 0 ? sim.Readahead.Submit(ex, task, file, start, size, lookahead, out req, noRetry: true) : null;
        if (slow is null && ex.Cpu.PagevecCount + req.Allocated <= Cpu.PagevecSize)
        {
            // No slow path, and the window's pages drain this CPU's pagevec at most at its last.
            sim.Readahead.Finish(ex, task, file, req, req.Allocated);
            return PageCacheRead(ex, task, vma, file, index, out wait);
        }
        PendingFault pf = task.PendingFault ??= NewPendingFault(task);
        pf.Ex = ex;
        pf.Slow = slow;
        pf.Vma = vma;
        pf.File = file;
        pf.From = index;
        pf.Ra = req;
        wait = pf.ReadAround.Start();
        return VmFault.Done;
    }

    /// <summary>
    /// The rest of filemap_fault once its readahead is read in: map the faulting page, or, if it
    /// is still missing, page_cache_read it alone (an allocation that retries) and map it.
    /// </summary>
    private VmFault PageCacheRead(Exec ex, SimTask task, Vma vma, AddressSpace file, long index, out IEnumerable<Yield>? wait)
    {
        wait = null;
        if (file.FindPage(index) >= 0)
        {
            sim.Filemap.MapPages(ex, vma, index, index + 1, -1, faultIndex: index);
            return VmFault.Done;
        }
        int[] stash = task.AllocStash;
        IEnumerable<Yield>? slow = sim.PageAlloc.AllocPages(ex, task, task.HomeCpu.Node, 1, stash);
        if (slow is null)
        {
            FinishFault(ex, vma, file, index, index + 1, -1, stash, 1);
            return VmFault.Done;
        }
        wait = FinishAfter(ex, task, slow, vma, file, index, index + 1, -1, stash, 1);
        return VmFault.Done;
    }

    /// <summary>
    /// A read fault's readahead window that took the allocator's slow path or fills this CPU's
    /// pagevec before its last page: run the slow path if any, read the window in a pagevec at a
    /// time with a sync point after each drain (<see cref="Readahead.ReadPages"/>), then finish as
    /// <see cref="PageCacheRead"/>.
    /// </summary>
    private IEnumerable<Yield> ReadAroundAfterAllocation(PendingFault pf)
    {
        while (true)
        {
            SimTask task = pf.Task;
            int got = pf.Ra.Allocated;
            if (pf.Slow is not null)
            {
                yield return Process.Call(pf.Slow);
                got = PageAlloc.SlowpathGot(task);
            }
            Exec ex = pf.Ex;
            ex.What = "fault";
            Vma vma = pf.Vma;
            long index = pf.From;
            var cursor = new RaCursor(pf.Ra, got);
            while (!sim.Readahead.ReadPages(ex, task, pf.File, ref cursor))
            {
                yield return Yield.Sync;
                ex = pf.Ex;
                ex.What = "fault";
            }
            // PageCacheRead may reuse pf for its own slow path: nothing of pf is read after it.
            PageCacheRead(ex, task, vma, pf.File, index, out IEnumerable<Yield>? wait);
            if (wait is not null)
            {
                yield return Process.Call(wait);
            }
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>
    /// do_numa_page: a NUMA hinting fault on a PROT_NONE PTE. A page on the faulting CPU's node
    /// gets its PTE back (numa_hint_faults_local); a misplaced one is migrated to that node
    /// (migrate_misplaced_page). Linux 4.x makes the PTE present again first and migrates a mapped
    /// page (whose unmap then needs a flush); 6.4 migrates with the PTE still PROT_NONE and
    /// restores it only if the page stays. Returns the migration process, or null.
    /// </summary>
    public IEnumerable<Yield>? DoNumaPage(Exec ex, SimTask task, Vma vma, long vpn, uint pte)
    {
        MmStruct mm = vma.Mm;
        int frame = Pte.Frame(pte);
        int node = ex.Cpu.Node;
        sim.VmStat.Inc(VmEvent.numa_hint_faults);
        uint restored = (pte & ~Pte.ProtNone) | Pte.Present | Pte.Accessed;
        if (sim.Memory.NodeOf(frame) == node)
        {
            sim.VmStat.Inc(VmEvent.numa_hint_faults_local);
            mm.PageTable.Update(vpn, restored);
            sim.Memory.PteWritten(frame, ex.Cpu.Id, sim.Lines);
            return null;
        }
        bool protNone = sim.Policy.NumaMigrateProtNone;
        if (!protNone)
        {
            mm.PageTable.Update(vpn, restored);
            sim.Memory.PteWritten(frame, ex.Cpu.Id, sim.Lines);
        }
        IEnumerable<Yield>? migration = sim.Migrate.MigrateMisplacedPage(ex, task, frame, node);
        if (migration is null && protNone)
        {
            mm.PageTable.Update(vpn, restored); // out_map: the page stays, make it present again
            sim.Memory.PteWritten(frame, ex.Cpu.Id, sim.Lines);
        }
        return migration;
    }

    /// <summary>The rest of a fault whose allocation took the slow path: run it, then finish the fault (one call per turn).</summary>
    private IEnumerable<Yield> AfterAllocation(PendingFault pf)
    {
        while (true)
        {
            yield return Process.Call(pf.Slow!);
            Exec ex = pf.Ex;
            ex.What = "fault";
            FinishFault(ex, pf.Vma, pf.File, pf.From, pf.To, pf.WriteIndex, pf.Stash, pf.Allocated);
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>The pages are allocated: read the missing ones into the page cache and map the window.</summary>
    private void FinishFault(Exec ex, Vma vma, AddressSpace file, long from, long to, long writeIndex, int[] stash, int allocated)
    {
        int used = sim.Filemap.AddMissingPages(ex, file, from, to, stash, allocated);
        if (used < allocated)
        {
            // Another task read some of the window in meanwhile: the spare pages go back.
            sim.PageAlloc.FreePages(ex, stash.AsSpan(used, allocated - used));
        }
        sim.Filemap.MapPages(ex, vma, from, to, writeIndex);
    }
}
