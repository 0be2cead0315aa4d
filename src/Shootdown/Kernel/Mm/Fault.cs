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
/// commit 8c6e50b0290c): the window's pages missing from the page cache are allocated and read
/// (a sparse file's holes: zero-filled) and every cached page of the window is mapped. A write
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
        PendingFault pf = task.PendingFault ??= NewPendingFault();
        pf.Ex = ex;
        pf.Slow = slow;
        pf.Vma = vma;
        pf.File = file;
        pf.From = from;
        pf.To = to;
        pf.WriteIndex = writeIndex;
        pf.Stash = stash;
        pf.Allocated = need;
        wait = pf.Process.Start();
        return VmFault.Done;
    }

    /// <summary>
    /// A task's fault waiting for the allocator's slow path: what <see cref="FinishFault"/> needs,
    /// and the task's <see cref="AfterAllocation"/> as a reusable process (one per task: a fault
    /// that must wait allocates nothing).
    /// </summary>
    internal sealed class PendingFault
    {
        public Exec Ex = null!;
        public IEnumerable<Yield> Slow = [];
        public Vma Vma = null!;
        public AddressSpace File = null!;
        public long From;
        public long To;
        public long WriteIndex;
        public int[] Stash = [];
        public int Allocated;
        public ReusableProcess Process = null!;
    }

    private PendingFault NewPendingFault()
    {
        var pf = new PendingFault();
        pf.Process = new ReusableProcess(() => AfterAllocation(pf));
        return pf;
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
            yield return Process.Call(pf.Slow);
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
