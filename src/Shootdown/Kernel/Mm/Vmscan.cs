using Shootdown.Kernel.Sched;
using Shootdown.Observe;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct scan_control plus the state of a reclaim in progress, so that reclaim can proceed one
/// step (one simulator event) at a time: a step either isolates and shrinks one batch of at most
/// SWAP_CLUSTER_MAX pages, or finishes it (flush, free, put back).
/// </summary>
public sealed class ScanControl
{
    public ScanControl(int swapClusterMax)
    {
        Isolated = new int[swapClusterMax];
        FreeList = new int[swapClusterMax];
        Keep = new int[swapClusterMax];
        Activate = new int[swapClusterMax];
    }

    public bool Kswapd;
    public int Priority;
    public long NrToReclaim;
    public long NrReclaimed;
    public long NrScanned;
    public int[] Zonelist = [];
    public int ZoneIdx;
    /// <summary>nr[LRU_INACTIVE_FILE] of the current shrink_lruvec call.</summary>
    public long LruvecToScan;
    public long LruvecScanned;
    public long LruvecReclaimed;
    public bool InBatch;
    public bool Finished;
    public readonly int[] Isolated;
    public int NrIsolated;
    public readonly int[] FreeList;
    public int NrFree;
    public readonly int[] Keep;
    public int NrKeep;
    public readonly int[] Activate;
    public int NrActivate;
    /// <summary>Dirty pages of the isolated batch not under writeback (nr_unqueued_dirty).</summary>
    public int NrUnqueuedDirty;

    public int Node => Zonelist[ZoneIdx];
}

/// <summary>
/// mm/vmscan.c of Linux 4.0: kswapd's balance_pgdat, direct reclaim's do_try_to_free_pages and
/// shrink_zones, shrink_lruvec, isolate_lru_pages, shrink_page_list and page_check_references.
/// </summary>
public sealed class Vmscan(Sim sim)
{
    public const int DefPriority = 12;

    private int Scm => sim.Config.Policy.SwapClusterMax;

    /// <summary>try_to_free_pages: direct reclaim of SWAP_CLUSTER_MAX pages over the zonelist.</summary>
    public ScanControl StartDirect(SimTask task, int node, Exec ex)
    {
        sim.VmStat.Inc(VmEvent.allocstall); // __alloc_pages_direct_reclaim
        sim.Trace?.DirectReclaimBegin(ex.Now, ex.Cpu.Id, task.Comm, task.Pid);
        ScanControl sc = task.Sc ?? new ScanControl(Scm);
        sc.Kswapd = false;
        sc.Priority = DefPriority;
        sc.NrToReclaim = Scm;
        sc.NrReclaimed = sc.NrScanned = 0;
        sc.Zonelist = sim.Zonelists[node];
        sc.ZoneIdx = 0;
        sc.InBatch = false;
        sc.Finished = false;
        BeginLruvec(sc);
        task.Sc = sc;
        return sc;
    }

    /// <summary>balance_pgdat: kswapd reclaims its node until the zone is above its high watermark.</summary>
    public ScanControl StartKswapd(SimTask task, int node, Exec ex)
    {
        sim.Trace?.KswapdWake(ex.Now, ex.Cpu.Id, task.Comm, task.Pid, node);
        ScanControl sc = task.Sc ?? new ScanControl(Scm);
        sc.Kswapd = true;
        sc.Priority = DefPriority;
        sc.NrToReclaim = Math.Max(Scm, sim.Memory.Zones[node].WmarkHigh);
        sc.NrReclaimed = sc.NrScanned = 0;
        sc.Zonelist = [node];
        sc.ZoneIdx = 0;
        sc.InBatch = false;
        sc.Finished = false;
        BeginLruvec(sc);
        task.Sc = sc;
        return sc;
    }

    /// <summary>get_scan_count for the file LRU: size >> priority, at least one batch.</summary>
    private void BeginLruvec(ScanControl sc)
    {
        Zone z = sim.Memory.Zones[sc.Node];
        long size = z.InactiveFile.Count;
        sc.LruvecToScan = Math.Max(size >> sc.Priority, Math.Min(size, Scm));
        if (sc.LruvecToScan == 0)
        {
            sc.LruvecToScan = Scm;
        }
        sc.LruvecScanned = 0;
        sc.LruvecReclaimed = 0;
    }

    /// <summary>
    /// One step of a task's direct reclaim. Returns true when try_to_free_pages is over; gives up
    /// with an out-of-memory error after 1000 reclaims in a row that freed nothing.
    /// </summary>
    private bool DirectReclaimStep(Exec ex, SimTask task, ref int fruitless)
    {
        if (!ReclaimStep(ex, task))
        {
            return false;
        }
        long reclaimed = task.Sc!.NrReclaimed;
        sim.Trace?.DirectReclaimEnd(ex.Now, ex.Cpu.Id, task.Comm, task.Pid, reclaimed);
        fruitless = reclaimed == 0 ? fruitless + 1 : 0;
        if (fruitless > 1000)
        {
            throw new SimulationException($"out of memory: {task.Comm} cannot reclaim any page (node {task.HomeCpu.Node})");
        }
        return true;
    }

    /// <summary>
    /// The allocation slow path of a user task (__alloc_pages_slowpath): allocate
    /// <paramref name="n"/> pages into <paramref name="into"/>; if memory is short, start direct
    /// reclaim and return false — the task then calls <see cref="StepDirectReclaim"/> from its next
    /// steps, and allocates again once reclaim is over.
    /// </summary>
    public bool AllocPagesOrReclaim(Exec ex, SimTask task, int n, int[] into, ref int have)
    {
        bool ok = sim.PageAlloc.AllocPages(ex, n, into, ref have, task.AfterDirectReclaim);
        task.AfterDirectReclaim = false;
        if (!ok)
        {
            StartDirect(task, task.HomeCpu.Node, ex);
            task.InDirectReclaim = true;
        }
        return ok;
    }

    /// <summary>
    /// If the task is in direct reclaim, does one step of it and returns true (the step is the
    /// task's); otherwise returns false.
    /// </summary>
    public bool StepDirectReclaim(Exec ex, SimTask task)
    {
        if (!task.InDirectReclaim)
        {
            return false;
        }
        if (DirectReclaimStep(ex, task, ref task.FruitlessReclaims))
        {
            task.InDirectReclaim = false;
            task.AfterDirectReclaim = true;
        }
        return true;
    }

    /// <summary>Does one step of the task's reclaim. Returns true when the reclaim is over.</summary>
    public bool ReclaimStep(Exec ex, SimTask task)
    {
        ScanControl sc = task.Sc!;
        ex.What = sc.Kswapd ? "kswapd reclaim" : "direct reclaim";
        if (sc.InBatch)
        {
            FinishBatch(ex, sc);
            sc.InBatch = false;
            // Global direct reclaim leaves shrink_lruvec as soon as it has reclaimed its target;
            // kswapd scans the whole nr[] of this priority (Linux 4.0 shrink_lruvec).
            if (!sc.Kswapd && sc.LruvecReclaimed >= sc.NrToReclaim)
            {
                sc.LruvecToScan = 0;
            }
            if (sc.LruvecToScan <= 0)
            {
                EndLruvec(ex, sc);
            }
            return sc.Finished;
        }
        Zone z = sim.Memory.Zones[sc.Node];
        int want = (int)Math.Min(Scm, sc.LruvecToScan);
        sc.LruvecToScan -= want;
        int n = IsolateLruPages(ex, sc, z, want);
        if (n == 0)
        {
            if (sc.LruvecToScan <= 0)
            {
                EndLruvec(ex, sc);
            }
            return sc.Finished;
        }
        ShrinkPageList(ex, sc, z);
        sc.InBatch = true;
        return false;
    }

    private void EndLruvec(Exec ex, ScanControl sc)
    {
        sim.Policy.EndShrinkLruvec(ex);
        Zone z = sim.Memory.Zones[sc.Node];
        if (sc.Kswapd)
        {
            if (z.Balanced)
            {
                z.ZoneDirty = false; // kswapd_shrink_zone: a balanced zone clears ZONE_DIRTY
                sc.Finished = true;
                return;
            }
            // balance_pgdat: raise priority (scan more) unless this pass scanned what was asked.
            if (sc.LruvecScanned < sc.NrToReclaim || sc.LruvecReclaimed == 0)
            {
                sc.Priority = Math.Max(1, sc.Priority - 1);
            }
            BeginLruvec(sc);
            return;
        }
        sc.ZoneIdx++;
        if (sc.ZoneIdx < sc.Zonelist.Length)
        {
            BeginLruvec(sc);
            return;
        }
        // do_try_to_free_pages: a whole zonelist done; stop if the target is met, else scan harder.
        if (sc.NrReclaimed >= sc.NrToReclaim || sc.Priority == 0)
        {
            sc.Finished = true;
            return;
        }
        sc.Priority--;
        sc.ZoneIdx = 0;
        BeginLruvec(sc);
    }

    /// <summary>
    /// isolate_lru_pages under the LRU lock, from the tail of the inactive file list; first, if the
    /// inactive list is smaller than the active one, shrink_active_list moves a batch across.
    /// </summary>
    private int IsolateLruPages(Exec ex, ScanControl sc, Zone z, int want)
    {
        Memory mem = sim.Memory;
        int moved = 0;
        if (z.InactiveFile.Count < z.ActiveFile.Count)
        {
            moved = ShrinkActiveList(z, Scm);
        }
        int n = 0;
        while (n < want)
        {
            int f = mem.LruTakeTail(z, active: false);
            if (f < 0)
            {
                break;
            }
            mem.Pages[f].Flags |= PageFlags.Isolated;
            sc.Isolated[n++] = f;
        }
        ex.LockHold(z.LruLock, (n + moved) * sim.Costs.LruPerPageNs + sim.Costs.LockAcquireNs, sim.Costs);
        sc.NrIsolated = n;
        z.NrIsolatedFile += n;
        sc.NrScanned += n;
        sc.LruvecScanned += n;
        sim.VmStat.Add(sc.Kswapd ? VmEvent.pgscan_kswapd : VmEvent.pgscan_direct, n);
        sim.Series.Add(sc.Kswapd ? Series.PgscanKswapd : Series.PgscanDirect, ex.Now, n);
        return n;
    }

    /// <summary>
    /// shrink_active_list: file pages leave the active list for the inactive one unless they are
    /// referenced executable pages (Linux 4.0 keeps only VM_EXEC file pages active).
    /// </summary>
    public int ShrinkActiveList(Zone z, int nr)
    {
        Memory mem = sim.Memory;
        int moved = 0;
        for (int i = 0; i < nr; i++)
        {
            int f = mem.LruTakeTail(z, active: true);
            if (f < 0)
            {
                break;
            }
            // page_referenced clears the accessed bits; PG_referenced stays as it is.
            if (sim.Rmap.PageReferenced(f, out bool vmExec) > 0 && vmExec)
            {
                mem.LruAddHead(z, f, active: true); // referenced executable file pages get another trip
                continue;
            }
            mem.LruAddHead(z, f, active: false);
            moved++;
        }
        sim.VmStat.Add(VmEvent.pgdeactivate, moved);
        return moved;
    }

    private enum PageRef
    {
        Activate,
        Keep,
        Reclaim,
        ReclaimClean,
    }

    /// <summary>page_check_references of Linux 4.0, for file pages.</summary>
    private PageRef PageCheckReferences(int frame)
    {
        Memory mem = sim.Memory;
        int referencedPtes = sim.Rmap.PageReferenced(frame, out bool vmExec);
        bool referencedPage = (mem.Pages[frame].Flags & PageFlags.Referenced) != 0;
        mem.Pages[frame].Flags &= ~PageFlags.Referenced;
        if (referencedPtes > 0)
        {
            mem.Pages[frame].Flags |= PageFlags.Referenced;
            if (referencedPage || referencedPtes > 1 || vmExec)
            {
                return PageRef.Activate;
            }
            return PageRef.Keep;
        }
        return referencedPage ? PageRef.ReclaimClean : PageRef.Reclaim;
    }

    /// <summary>
    /// shrink_page_list: decide each isolated page's fate; unmap the ones to reclaim (the policy
    /// flushes or defers), and take them out of the page cache. Freeing and putback happen in
    /// <see cref="FinishBatch"/>, the next step.
    /// </summary>
    private void ShrinkPageList(Exec ex, ScanControl sc, Zone z)
    {
        Memory mem = sim.Memory;
        sc.NrFree = sc.NrKeep = sc.NrActivate = 0;
        sc.NrUnqueuedDirty = 0;
        for (int i = 0; i < sc.NrIsolated; i++)
        {
            int f = sc.Isolated[i];
            ex.Sys += sim.Costs.ScanPageNs;
            PageFlags flags = mem.Pages[f].Flags;
            if ((flags & PageFlags.Dirty) != 0 && (flags & PageFlags.Writeback) == 0)
            {
                sc.NrUnqueuedDirty++; // page_check_dirty_writeback
            }
            if ((flags & PageFlags.Writeback) != 0)
            {
                // Under writeback: mark it so end_page_writeback rotates it to the tail.
                mem.Pages[f].Flags |= PageFlags.Reclaim;
                sc.Keep[sc.NrKeep++] = f;
                continue;
            }
            if ((flags & PageFlags.Locked) != 0)
            {
                sc.Keep[sc.NrKeep++] = f;
                continue;
            }
            PageRef r = PageCheckReferences(f);
            if (r == PageRef.Activate)
            {
                sc.Activate[sc.NrActivate++] = f;
                continue;
            }
            if (r == PageRef.Keep)
            {
                sc.Keep[sc.NrKeep++] = f;
                continue;
            }
            if (mem.Pages[f].MapCount > 0)
            {
                sim.Rmap.TryToUnmap(ex, f, batchFlush: true);
                if (mem.Pages[f].MapCount > 0)
                {
                    sc.Activate[sc.NrActivate++] = f;
                    continue;
                }
            }
            if ((mem.Pages[f].Flags & PageFlags.Dirty) != 0 && !Pageout(ex, sc, z, f, r))
            {
                sc.Keep[sc.NrKeep++] = f;
                continue;
            }
            // __remove_mapping under mapping->tree_lock.
            AddressSpace file = sim.Files[mem.Pages[f].Mapping];
            ex.LockHold(file.TreeLock, sim.Costs.RemoveMappingNs, sim.Costs);
            file.PageCache.Clear(mem.Pages[f].Index);
            sc.FreeList[sc.NrFree++] = f;
        }
    }

    /// <summary>
    /// A dirty page reclaim wants to free. Linux 4.0: only kswapd writes file pages from reclaim,
    /// and only once ZONE_DIRTY says the LRU tail is all dirty; otherwise the page is left to the
    /// flusher with PG_reclaim set, so that it is rotated to the tail when its writeback ends. A
    /// page that was referenced (PAGEREF_RECLAIM_CLEAN) is not written from reclaim either.
    /// Returns true if the page can be freed now: pageout's write completed before writepage
    /// returned (PAGE_SUCCESS on a ramdisk), leaving the page clean and not under writeback.
    /// </summary>
    private bool Pageout(Exec ex, ScanControl sc, Zone z, int f, PageRef r)
    {
        ref Page p = ref sim.Memory.Pages[f];
        if (!sc.Kswapd || !z.ZoneDirty)
        {
            p.Flags |= PageFlags.Reclaim;
            sim.VmStat.Inc(VmEvent.nr_vmscan_immediate_reclaim);
            return false;
        }
        if (r == PageRef.ReclaimClean)
        {
            return false;
        }
        sim.Policy.FlushDirty(ex); // try_to_unmap_flush_dirty
        sim.Writeback.ClearPageDirtyForIo(ex, f);
        p.Flags |= PageFlags.Reclaim; // pageout() sets PG_reclaim before writepage
        sim.Writeback.StartWriteback(ex, f);
        sim.VmStat.Inc(VmEvent.nr_vmscan_write);
        if ((p.Flags & (PageFlags.Writeback | PageFlags.Dirty)) != 0)
        {
            return false;
        }
        p.Flags &= ~PageFlags.Reclaim; // pageout: a synchronous write clears PG_reclaim
        return true;
    }

    /// <summary>
    /// The end of shrink_page_list and shrink_inactive_list: the policy's flush before freeing,
    /// free_hot_cold_page_list, then putback_inactive_pages under the LRU lock.
    /// </summary>
    private void FinishBatch(Exec ex, ScanControl sc)
    {
        Memory mem = sim.Memory;
        Zone z = mem.Zones[sc.Node];
        sim.Policy.EndShrinkPageList(ex);
        // shrink_inactive_list: a batch of nothing but dirty pages not yet queued for writeback
        // lets kswapd write pages from reclaim.
        if (sc.NrIsolated > 0 && sc.NrUnqueuedDirty == sc.NrIsolated)
        {
            z.ZoneDirty = true;
        }
        if (sim.Oracle is { } oracle)
        {
            for (int i = 0; i < sc.NrFree; i++)
            {
                ref Page p = ref mem.Pages[sc.FreeList[i]];
                oracle.PageFreed(ex, sc.FreeList[i], p.Mapping, p.Index);
            }
        }
        sim.PageAlloc.FreePages(ex, sc.FreeList, sc.NrFree);
        int back = sc.NrKeep + sc.NrActivate;
        for (int i = 0; i < sc.NrKeep; i++)
        {
            int f = sc.Keep[i];
            mem.Pages[f].Flags &= ~PageFlags.Isolated;
            mem.LruAddHead(z, f, active: false);
        }
        for (int i = 0; i < sc.NrActivate; i++)
        {
            int f = sc.Activate[i];
            mem.Pages[f].Flags &= ~PageFlags.Isolated;
            mem.LruAddHead(z, f, active: true);
        }
        if (back > 0)
        {
            ex.LockHold(z.LruLock, back * sim.Costs.LruPerPageNs + sim.Costs.LockAcquireNs, sim.Costs);
        }
        sim.VmStat.Add(VmEvent.pgactivate, sc.NrActivate);
        z.NrIsolatedFile -= sc.NrIsolated;
        sim.VmStat.Add(sc.Kswapd ? VmEvent.pgsteal_kswapd : VmEvent.pgsteal_direct, sc.NrFree);
        sim.Trace?.LruShrinkInactive(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, sc.Node, sc.NrIsolated, sc.NrFree, sc.Priority);
        sim.Series.Add(sc.Kswapd ? Series.PgstealKswapd : Series.PgstealDirect, ex.Now, sc.NrFree);
        sc.NrReclaimed += sc.NrFree;
        sc.LruvecReclaimed += sc.NrFree;
        sc.NrIsolated = sc.NrFree = sc.NrKeep = sc.NrActivate = 0;
    }
}
