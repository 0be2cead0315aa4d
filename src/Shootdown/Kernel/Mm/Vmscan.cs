using Shootdown.Kernel.Sched;
using Shootdown.Observe;
using Shootdown.Policies;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// struct scan_control, plus the page lists of the shrink_page_list call in progress (one per
/// reclaiming task, reused, so reclaim allocates nothing per page).
/// </summary>
public sealed class ScanControl
{
    /// <summary>kswapd_shrink_zone: the zone's lowmem_reserve[end_zone] (its reserve if a higher zone of the node is the one being balanced, else 0).</summary>
    public long KswapdReserve;

    public ScanControl(int swapClusterMax)
    {
        PageList = new int[swapClusterMax];
        FreePages = new int[swapClusterMax];
        Keep = new int[swapClusterMax];
        Activate = new int[swapClusterMax];
    }

    /// <summary>current_is_kswapd().</summary>
    public bool Kswapd;

    public int Priority;
    public long NrToReclaim;
    public long NrReclaimed;
    public long NrScanned;

    /// <summary>What the last kswapd_shrink_zone returned (true: no need to raise the priority).</summary>
    public bool ZoneShrinkDone;

    /// <summary>What the last shrink_inactive_list returned (nr_reclaimed): iterators return no values.</summary>
    public long LastReclaimed;

    /// <summary>The isolated pages (page_list) and where shrink_page_list sorts them.</summary>
    public readonly int[] PageList;
    public int NrTaken;
    public readonly int[] FreePages;
    public int NrFree;
    public readonly int[] Keep;
    public int NrKeep;
    public readonly int[] Activate;
    public int NrActivate;

    /// <summary>Dirty pages of the isolated batch not under writeback (nr_unqueued_dirty).</summary>
    public int NrUnqueuedDirty;

    /// <summary>page_check_references' verdict on the mapped page between its two steps (Vmscan.ShrinkPageListOne, then ShrinkPageListUnmap).</summary>
    internal Vmscan.PageRef UnmapRef;

    // The arguments of the reclaim call in progress, which the processes below read at each call:
    // the step accumulator, the reclaiming task, the zonelist (direct reclaim) and the zone.
    internal Exec Ex = null!;
    internal SimTask Task = null!;
    internal int[] Zonelist = [];
    internal Zone Zone = null!;

    // The task's reclaim functions as reusable processes (one each per task, built with the
    // ScanControl): a call allocates nothing, where an iterator method allocates per call.
    internal ReusableProcess TryToFreePagesProc = null!;
    internal ReusableProcess DoTryToFreePagesProc = null!;
    internal ReusableProcess ShrinkZonesProc = null!;
    internal ReusableProcess ShrinkLruvecProc = null!;
    internal ReusableProcess BalancePgdatProc = null!;
    internal ReusableProcess KswapdShrinkZoneProc = null!;
}

/// <summary>
/// mm/vmscan.c of Linux 4.0, function for function: direct reclaim (try_to_free_pages →
/// do_try_to_free_pages → shrink_zones → shrink_zone → shrink_lruvec → shrink_list →
/// shrink_inactive_list / shrink_active_list → shrink_page_list) and kswapd's balance_pgdat →
/// kswapd_shrink_zone → shrink_zone. Reclaim is written as processes (iterators) that yield where
/// the kernel may reschedule (shrink_page_list's cond_resched before each page), and at two more
/// step boundaries with no kernel counterpart — after the last page, before the tail, and after the
/// putback — where the model may preempt one short step earlier than the kernel's next point —
/// and, before an unmap that sends a shootdown at once, at a sync point that preempts nothing
/// (<see cref="Yield.Sync"/>); each function a <see cref="ReusableProcess"/> of the reclaiming
/// task, whose arguments are set in its <see cref="ScanControl"/>, so that reclaim allocates
/// nothing per call, per zone or per batch; the file LRU only (no swap: anonymous memory is not simulated, so
/// get_scan_count always scans file pages).
/// </summary>
public sealed class Vmscan(Sim sim)
{
    public const int DefPriority = 12;

    private int Scm => sim.Config.Policy.SwapClusterMax;

    /// <summary>When kswapd was first woken: the start of the steady (reclaiming) phase; -1 before.</summary>
    public long FirstKswapdWake { get; internal set; } = -1;

    private ScanControl ScOf(SimTask task) => task.Sc ??= NewScanControl();

    /// <summary>A task's scan_control with its reclaim functions as reusable processes.</summary>
    private ScanControl NewScanControl()
    {
        var sc = new ScanControl(Scm);
        sc.TryToFreePagesProc = new ReusableProcess(() => TryToFreePages(sc));
        sc.DoTryToFreePagesProc = new ReusableProcess(() => DoTryToFreePages(sc));
        sc.ShrinkZonesProc = new ReusableProcess(() => ShrinkZones(sc));
        sc.ShrinkLruvecProc = new ReusableProcess(() => ShrinkLruvec(sc));
        sc.BalancePgdatProc = new ReusableProcess(() => BalancePgdat(sc));
        sc.KswapdShrinkZoneProc = new ReusableProcess(() => KswapdShrinkZone(sc));
        return sc;
    }

    // ---- direct reclaim ------------------------------------------------------------------------

    /// <summary>
    /// try_to_free_pages: direct reclaim of SWAP_CLUSTER_MAX pages over the zonelist of
    /// <paramref name="node"/>, by a task whose allocation failed. The result is in the task's
    /// <see cref="ScanControl.NrReclaimed"/>.
    /// </summary>
    public IEnumerable<Yield> TryToFreePages(Exec ex, SimTask task, int node)
    {
        ScanControl sc = ScOf(task);
        sc.Ex = ex;
        sc.Task = task;
        sc.Zonelist = sim.Zonelists[node];
        return sc.TryToFreePagesProc.Start();
    }

    /// <summary>try_to_free_pages, one call per turn (arguments: <see cref="ScanControl.Ex"/>, Task, Zonelist).</summary>
    private IEnumerable<Yield> TryToFreePages(ScanControl sc)
    {
        while (true)
        {
            Exec ex = sc.Ex;
            SimTask task = sc.Task;
            sc.NrReclaimed = 0;
            // throttle_direct_reclaim: a user task whose first node (ZONE_NORMAL or lower) is
            // below half its min watermark waits, asleep, until kswapd has brought it back
            // (wait_event_killable on pgdat->pfmemalloc_wait; page cache allocations may enter
            // the filesystem). Then it reclaims: try_to_free_pages returns 1 without reclaiming
            // only for a task with a fatal signal pending ("mm: vmscan: Check for fatal signals
            // iff the process was throttled", Mel Gorman, linux-mm, 1 November 2012, a fix of
            // 5515061d22f0 that 4.0 has), and no simulated task gets one.
            Zone first = sim.Memory.Zones[sc.Zonelist[0]];
            if (task.Mm is not null && !PfmemallocWatermarkOk(ex.Now, first))
            {
                sim.VmStat.Inc(VmEvent.pgscan_direct_throttle);
                ex.What = "throttled";
                do
                {
                    sim.Memory.PfmemallocWaitOf(first.Node).Add(task);
                    yield return Yield.Sleep;
                    ex = sc.Ex = sim.Exec;
                }
                while (!PfmemallocWatermarkOk(ex.Now, first));
            }
            sim.VmStat.Inc(VmEvent.allocstall); // do_try_to_free_pages, global reclaim
            ex.What = "direct reclaim";
            sim.Trace?.DirectReclaimBegin(ex.Now, ex.Cpu.Id, task.Comm, task.Pid);
            sc.Kswapd = false;
            sc.NrToReclaim = Scm;
            yield return Process.Call(sc.DoTryToFreePagesProc.Start()); // do_try_to_free_pages(zonelist, sc)
            sim.Trace?.DirectReclaimEnd(ex.Now, ex.Cpu.Id, task.Comm, task.Pid, sc.NrReclaimed);
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>do_try_to_free_pages: shrink every zone of the zonelist at rising priority until the target is met.</summary>
    private static IEnumerable<Yield> DoTryToFreePages(ScanControl sc)
    {
        while (true)
        {
            sc.Priority = DefPriority;
            do
            {
                sc.NrScanned = 0;
                yield return Process.Call(sc.ShrinkZonesProc.Start()); // shrink_zones(zonelist, sc)
                if (sc.NrReclaimed >= sc.NrToReclaim)
                {
                    break;
                }
            }
            while (--sc.Priority >= 0);
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>
    /// shrink_zones: every zone of the zonelist (zone_reclaim_mode = 0), skipping those that look
    /// unreclaimable below DEF_PRIORITY. 4.0 does not stop early when enough was reclaimed.
    /// </summary>
    private IEnumerable<Yield> ShrinkZones(ScanControl sc)
    {
        while (true)
        {
            foreach (int zi in sc.Zonelist)
            {
                Zone z = sim.Memory.Zones[zi];
                if (sc.Priority != DefPriority && !ZoneReclaimable(z))
                {
                    continue;
                }
                sc.Zone = z;
                yield return Process.Call(ShrinkZone(sc)); // shrink_zone(zone, sc)
            }
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>
    /// zone_reclaimable: fewer pages scanned since the last free than 6x the reclaimable ones — of
    /// the full-size zone (x <see cref="Zone.SizingScale"/>), since scans are sized for it too.
    /// </summary>
    public static bool ZoneReclaimable(Zone z) => z.PagesScanned < (z.InactiveFile.Count + z.ActiveFile.Count) * 6 * z.SizingScale;

    /// <summary>shrink_zone: the root memcg's lruvec only (should_continue_reclaim is false for order 0).</summary>
    private static IEnumerable<Yield> ShrinkZone(ScanControl sc) => sc.ShrinkLruvecProc.Start(); // shrink_lruvec(lruvec of sc.Zone, sc)

    /// <summary>
    /// shrink_lruvec: get_scan_count gives nr[] = list size &gt;&gt; priority for the two file lists
    /// (of the full-size list: (size x <see cref="Zone.SizingScale"/>) &gt;&gt; priority, at most the list);
    /// they are scanned SWAP_CLUSTER_MAX at a time, inactive then active. Global direct reclaim at
    /// DEF_PRIORITY sets scan_adjusted and scans the whole nr[]; otherwise (kswapd, lower
    /// priorities) the loop stops once nr_to_reclaim is reclaimed, since the anon lists are empty.
    /// </summary>
    private IEnumerable<Yield> ShrinkLruvec(ScanControl sc)
    {
        while (true)
        {
            Exec ex = sc.Ex;
            Zone z = sc.Zone;
            GetScanCount(sc, z, out long nrInactive, out long nrActive);
            bool scanAdjusted = !sc.Kswapd && sc.Priority == DefPriority;
            long nrReclaimed = 0;
            while (nrInactive > 0 || nrActive > 0)
            {
                if (nrInactive > 0)
                {
                    long n = Math.Min(nrInactive, Scm);
                    nrInactive -= n;
                    // shrink_list of LRU_INACTIVE_FILE: shrink_inactive_list isolates the batch;
                    // shrink_page_list's loop calls cond_resched before each page, so each page is
                    // a step of its own — two, with a sync point before an unmap that shoots down
                    // at once. The tail (flush, free) and the putback are one more step, between
                    // two step boundaries the kernel has no cond_resched at (the class comment).
                    if (ShrinkInactiveList(ex, sc, z, (int)n))
                    {
                        for (int i = 0; i < sc.NrTaken; i++)
                        {
                            yield return Yield.Resched; // shrink_page_list's cond_resched
                            if (ShrinkPageListOne(ex, sc, z, i))
                            {
                                yield return Yield.Sync; // the simulation catches up before the unmap's shootdown
                                ShrinkPageListUnmap(ex, sc, z, i);
                            }
                        }
                        yield return Yield.Resched;
                        ShrinkInactiveListEnd(ex, sc, z);
                        yield return Yield.Resched;
                    }
                    nrReclaimed += sc.LastReclaimed;
                }
                if (nrActive > 0)
                {
                    long n = Math.Min(nrActive, Scm);
                    nrActive -= n;
                    if (InactiveFileIsLow(z))
                    {
                        ShrinkActiveList(ex, sc.PageList, z, (int)n); // shrink_list of LRU_ACTIVE_FILE
                    }
                }
                if (nrReclaimed < sc.NrToReclaim || scanAdjusted)
                {
                    continue;
                }
                break; // nr_anon == 0: nothing to rebalance
            }
            sc.NrReclaimed += nrReclaimed;
            if (sim.Policy.FlushSite == UnmapFlushSite.ShrinkLruvec)
            {
                ex.FlushCause = FlushCause.Reclaim;
                sim.Policy.TryToUnmapFlush(ex);
            }
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>
    /// get_scan_count with no swap (SCAN_FILE): size &gt;&gt; priority of each file list (the full-size
    /// list's, (size x <see cref="Zone.SizingScale"/>) &gt;&gt; priority, at most the whole list); if that is 0
    /// for both, kswapd on a zone that looks unreclaimable forces min(size, SWAP_CLUSTER_MAX).
    /// </summary>
    private void GetScanCount(ScanControl sc, Zone z, out long nrInactive, out long nrActive)
    {
        long inactive = z.InactiveFile.Count, active = z.ActiveFile.Count;
        // size >> priority of the full-size zone (Zone.SizingScale), at most the whole list.
        int n = z.SizingScale;
        nrInactive = Math.Min(inactive, inactive * n >> sc.Priority);
        nrActive = Math.Min(active, active * n >> sc.Priority);
        // force_scan is used only on a second pass, when size >> priority was 0 for every list.
        if (nrInactive == 0 && nrActive == 0 && sc.Kswapd && !ZoneReclaimable(z))
        {
            nrInactive = Math.Min(inactive, Scm);
            nrActive = Math.Min(active, Scm);
        }
    }

    /// <summary>inactive_file_is_low (4.0): more active than inactive file pages.</summary>
    private static bool InactiveFileIsLow(Zone z) => z.ActiveFile.Count > z.InactiveFile.Count;

    /// <summary>
    /// shrink_inactive_list, up to the first cond_resched of shrink_page_list's loop: drain this
    /// CPU's pagevec and isolate up to <paramref name="nrToScan"/> pages from the tail under the LRU
    /// lock. Returns false if nothing was isolated (the function returns at once); otherwise the
    /// caller runs shrink_page_list's loop a page per step (<see cref="ShrinkPageListOne"/> after
    /// each cond_resched, and <see cref="ShrinkPageListUnmap"/> after a sync point where it asks
    /// for one), ends the step once more and calls <see cref="ShrinkInactiveListEnd"/>,
    /// then ends the step again. The result is in <see cref="ScanControl.LastReclaimed"/>.
    /// </summary>
    private bool ShrinkInactiveList(Exec ex, ScanControl sc, Zone z, int nrToScan)
    {
        sc.LastReclaimed = 0;
        ex.What = sc.Kswapd ? "kswapd reclaim" : "direct reclaim";
        sim.Swap.LruAddDrain(ex);
        int nrTaken = IsolateLruPages(ex, sc, z, nrToScan);
        z.PagesScanned += nrTaken;
        sim.VmStat.Add(sc.Kswapd ? VmEvent.pgscan_kswapd : VmEvent.pgscan_direct, nrTaken);
        sim.Series.Add(sc.Kswapd ? Series.PgscanKswapd : Series.PgscanDirect, ex.Now, nrTaken);
        if (nrTaken == 0)
        {
            return false;
        }
        ShrinkPageListBegin(sc);
        return true;
    }

    /// <summary>
    /// The rest of shrink_inactive_list, after shrink_page_list's loop: the tail of
    /// shrink_page_list (flush, free), put the survivors back under the lock, and note ZONE_DIRTY
    /// when the batch was nothing but dirty pages not yet queued for writeback.
    /// </summary>
    private void ShrinkInactiveListEnd(Exec ex, ScanControl sc, Zone z)
    {
        int nrTaken = sc.NrTaken;
        ShrinkPageListTail(ex, sc);
        long nrReclaimed = sc.NrFree;
        sim.VmStat.Add(sc.Kswapd ? VmEvent.pgsteal_kswapd : VmEvent.pgsteal_direct, nrReclaimed);
        sim.Series.Add(sc.Kswapd ? Series.PgstealKswapd : Series.PgstealDirect, ex.Now, nrReclaimed);
        PutbackInactivePages(ex, sc, z);
        z.NrIsolatedFile -= nrTaken;
        if (sc.NrUnqueuedDirty == nrTaken)
        {
            z.ZoneDirty = true;
        }
        sim.Trace?.LruShrinkInactive(ex.Now, ex.Cpu.Id, ex.Task.Comm, ex.Task.Pid, z.Node, nrTaken, nrReclaimed, sc.Priority, z.IsDma32);
        sc.LastReclaimed = nrReclaimed;
    }

    /// <summary>
    /// One shrink_lruvec of <paramref name="node"/>'s zone by <paramref name="task"/> at
    /// <paramref name="priority"/>, with the target its caller would set (kswapd_shrink_zone's
    /// max(SWAP_CLUSTER_MAX, high watermark) for kswapd, SWAP_CLUSTER_MAX for direct reclaim), on its
    /// own, for tests. The result is in the task's <see cref="ScanControl.NrReclaimed"/>.
    /// </summary>
    internal IEnumerable<Yield> ShrinkLruvec(Exec ex, SimTask task, int node, int priority)
    {
        ScanControl sc = ScOf(task);
        Zone z = sim.Memory.TopZone(node);
        sc.Kswapd = task is KswapdTask;
        sc.Priority = priority;
        sc.NrToReclaim = sc.Kswapd ? Math.Max(Scm, z.WmarkHigh) : Scm;
        sc.NrReclaimed = 0;
        sc.Ex = ex;
        sc.Zone = z;
        return sc.ShrinkLruvecProc.Start();
    }

    /// <summary>
    /// One shrink_inactive_list of <paramref name="node"/>'s zone by <paramref name="task"/> (with
    /// kswapd's rules if it is kswapd) at DEF_PRIORITY, on its own, for tests and benchmarks that
    /// drive reclaim a step at a time: the first step isolates, each of the next ones runs
    /// shrink_page_list's loop for one page (after its cond_resched; a page whose unmap shoots
    /// down at once takes two, split at a sync point), the last flushes (where the policy does),
    /// frees and puts back.
    /// </summary>
    internal IEnumerable<Yield> ShrinkInactiveList(Exec ex, SimTask task, int node, int nrToScan)
    {
        ScanControl sc = ScOf(task);
        sc.Kswapd = task is KswapdTask;
        sc.Priority = DefPriority;
        sc.NrToReclaim = Scm;
        sc.NrReclaimed = 0;
        return ShrinkInactiveListSteps(ex, sc, sim.Memory.TopZone(node), nrToScan);
    }

    private IEnumerable<Yield> ShrinkInactiveListSteps(Exec ex, ScanControl sc, Zone z, int nrToScan)
    {
        if (ShrinkInactiveList(ex, sc, z, nrToScan))
        {
            for (int i = 0; i < sc.NrTaken; i++)
            {
                yield return Yield.Resched;
                if (ShrinkPageListOne(ex, sc, z, i))
                {
                    yield return Yield.Sync;
                    ShrinkPageListUnmap(ex, sc, z, i);
                }
            }
            yield return Yield.Resched;
            ShrinkInactiveListEnd(ex, sc, z);
            yield return Yield.Resched;
        }
    }

    /// <summary>isolate_lru_pages under the LRU lock (spin_lock_irq), from the tail of the inactive file list.</summary>
    private int IsolateLruPages(Exec ex, ScanControl sc, Zone z, int nrToScan)
    {
        Memory mem = sim.Memory;
        int n = 0;
        long lines = 0; // struct pages pulled to this CPU under the lock
        while (n < nrToScan)
        {
            int f = mem.LruTakeTail(z, active: false);
            if (f < 0)
            {
                break;
            }
            mem.Pages[f].Flags |= PageFlags.Isolated;
            lines += sim.Lines.Take(ref mem.Pages[f], ex.Cpu.Id, z.Node);
            sc.PageList[n++] = f;
        }
        // shrink_inactive_list, still under the lock: the list's count, NR_ISOLATED_FILE and
        // NR_PAGES_SCANNED, each by the batch.
        int c = ex.Cpu.Id;
        lines += sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrInactiveFile, -n) + sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrIsolatedFile, n)
            + sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrPagesScanned, n);
        ex.LockHold(z.LruLock, n * sim.Costs.LruPerPageNs + lines, n * mem.LruLockLineWrites(active: false, atHead: false));
        sc.NrTaken = n;
        z.NrIsolatedFile += n;
        return n;
    }

    /// <summary>putback_inactive_pages under the LRU lock: kept pages to the inactive head, activated ones to the active head.</summary>
    private void PutbackInactivePages(Exec ex, ScanControl sc, Zone z)
    {
        Memory mem = sim.Memory;
        int back = sc.NrKeep + sc.NrActivate;
        long lines = 0;
        int c = ex.Cpu.Id;
        // add_page_to_lru_list per page (its list's NR_*_FILE too), then NR_ISOLATED_FILE by the
        // batch, before the unlock.
        for (int i = 0; i < sc.NrKeep; i++)
        {
            int f = sc.Keep[i];
            mem.Pages[f].Flags &= ~PageFlags.Isolated;
            lines += sim.Lines.Take(ref mem.Pages[f], c, z.Node);
            mem.LruAddHead(z, f, active: false);
            lines += sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrInactiveFile, 1);
        }
        for (int i = 0; i < sc.NrActivate; i++)
        {
            int f = sc.Activate[i];
            mem.Pages[f].Flags &= ~PageFlags.Isolated;
            lines += sim.Lines.Take(ref mem.Pages[f], c, z.Node);
            mem.LruAddHead(z, f, active: true);
            lines += sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrActiveFile, 1);
        }
        lines += sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrIsolatedFile, -sc.NrTaken);
        ex.LockHold(z.LruLock, back * sim.Costs.LruPerPageNs + lines,
            sc.NrKeep * mem.LruLockLineWrites(active: false, atHead: true) + sc.NrActivate * mem.LruLockLineWrites(active: true, atHead: true));
        sim.VmStat.Add(VmEvent.pgactivate, sc.NrActivate);
        sc.NrKeep = sc.NrActivate = sc.NrFree = sc.NrTaken = 0;
    }

    /// <summary>
    /// shrink_active_list: drain the pagevec, isolate up to <paramref name="nrToScan"/> pages from
    /// the active tail, and move each to the inactive list unless page_referenced finds it used
    /// through a VM_EXEC mapping; both moves under the LRU lock. page_referenced clears the
    /// accessed bits; PG_referenced stays as it is.
    /// </summary>
    public int ShrinkActiveList(Exec ex, int[] hold, Zone z, int nrToScan)
    {
        Memory mem = sim.Memory;
        sim.Swap.LruAddDrain(ex);
        int n = 0;
        long lines = 0;
        while (n < nrToScan && n < hold.Length)
        {
            int f = mem.LruTakeTail(z, active: true);
            if (f < 0)
            {
                break;
            }
            lines += sim.Lines.Take(ref mem.Pages[f], ex.Cpu.Id, z.Node);
            hold[n++] = f;
        }
        int c = ex.Cpu.Id;
        lines += sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrPagesScanned, n) + sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrActiveFile, -n)
            + sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrIsolatedFile, n);
        ex.LockHold(z.LruLock, n * sim.Costs.LruPerPageNs + lines, n * mem.LruLockLineWrites(active: true, atHead: false));
        z.PagesScanned += n;
        sim.VmStat.Add(VmEvent.pgrefill, n);
        int deactivated = 0;
        int lockLineWrites = 0;
        int kept = 0;
        for (int i = 0; i < n; i++)
        {
            int f = hold[i];
            ex.Sys += sim.Costs.ScanPageNs;
            if (sim.Rmap.PageReferenced(ex, f, out bool vmExec) > 0 && vmExec)
            {
                mem.LruAddHead(z, f, active: true); // referenced executable file pages get another trip
                lockLineWrites += mem.LruLockLineWrites(active: true, atHead: true);
                kept++;
                continue;
            }
            mem.LruAddHead(z, f, active: false);
            lockLineWrites += mem.LruLockLineWrites(active: false, atHead: true);
            deactivated++;
        }
        // move_active_pages_to_lru: each list's count by the pages it got, then NR_ISOLATED_FILE.
        long counts = sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrActiveFile, kept) + sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrInactiveFile, deactivated)
            + sim.ZoneStats.Mod(c, z.Index, ZoneStatItem.NrIsolatedFile, -n);
        ex.LockHold(z.LruLock, n * sim.Costs.LruPerPageNs + counts, lockLineWrites);
        sim.VmStat.Add(VmEvent.pgdeactivate, deactivated);
        return deactivated;
    }

    internal enum PageRef
    {
        Activate,
        Keep,
        Reclaim,
        ReclaimClean,
    }

    /// <summary>page_check_references of Linux 4.0, for file pages.</summary>
    private PageRef PageCheckReferences(Exec ex, int frame)
    {
        Memory mem = sim.Memory;
        int referencedPtes = sim.Rmap.PageReferenced(ex, frame, out bool vmExec);
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
    /// The end of shrink_page_list, after its loop: try_to_unmap_flush where the policy's kernel
    /// calls it there, then free_hot_cold_page_list of the reclaimed pages.
    /// </summary>
    private void ShrinkPageListTail(Exec ex, ScanControl sc)
    {
        if (sim.Policy.FlushSite == UnmapFlushSite.ShrinkPageList)
        {
            ex.FlushCause = FlushCause.Reclaim;
            sim.Policy.TryToUnmapFlush(ex);
        }
        Memory mem = sim.Memory;
        if (sim.Oracle is { } oracle)
        {
            for (int i = 0; i < sc.NrFree; i++)
            {
                ref Page p = ref mem.Pages[sc.FreePages[i]];
                oracle.PageFreed(ex, sc.FreePages[i], p.Mapping, p.Index);
            }
        }
        sim.PageAlloc.FreePages(ex, sc.FreePages, sc.NrFree, cold: true); // free_hot_cold_page_list(&free_pages, true)
    }

    /// <summary>shrink_page_list's lists, empty before its loop.</summary>
    private static void ShrinkPageListBegin(ScanControl sc)
    {
        sc.NrFree = sc.NrKeep = sc.NrActivate = 0;
        sc.NrUnqueuedDirty = 0;
    }

    /// <summary>
    /// One turn of shrink_page_list's loop, over the <paramref name="i"/>-th isolated page, after
    /// the loop's cond_resched (4.0 calls it at the top of every turn; the caller ends the step
    /// before each page, where other CPUs may use entries whose flush was deferred): decide the
    /// page's fate and, if it is to be reclaimed, go on with <see cref="ShrinkPageListUnmap"/> —
    /// unless unmapping it would send a shootdown at once (<see cref="Rmap.UnmapWouldShootDown"/>:
    /// vanilla, another CPU caches the mm; a PFN list (RFC v1, v6 4/4), the page's PTEs fill it). Then it returns true, and the caller ends the step
    /// with <see cref="Yield.Sync"/> — no kernel preemption point — and runs the unmap as the next
    /// step. In between the page stays isolated, off the LRU, so no other reclaimer, migration or
    /// the flusher takes it; other CPUs may still act on its PTEs, as in the kernel, whose page
    /// lock does not keep them off — its owner may exit (exit_mmap zaps the PTE) or touch it again
    /// after a TLB miss (the PTE turns young, and try_to_unmap fails) — so the unmap step looks at
    /// the page afresh. Unlike 4.0, whose fault path skips or waits for a locked page, the model's
    /// (Filemap) may also map it into another mm meanwhile. Only vanilla, and a PFN list once per
    /// full list, have this window: the batching policies otherwise check and unmap in one step.
    /// After the last page the caller ends the step again and runs
    /// <see cref="ShrinkPageListTail"/>.
    /// </summary>
    private bool ShrinkPageListOne(Exec ex, ScanControl sc, Zone z, int i)
    {
        Memory mem = sim.Memory;
        int f = sc.PageList[i];
        ex.Sys += sim.Costs.ScanPageNs;
        // sc->nr_scanned counts each page, and a mapped page twice ("double the slab pressure
        // for mapped and swapcache pages"): what kswapd_shrink_zone compares with its target.
        sc.NrScanned += mem.Pages[f].MapCount > 0 ? 2 : 1;
        PageFlags flags = mem.Pages[f].Flags;
        if ((flags & PageFlags.Dirty) != 0 && (flags & PageFlags.Writeback) == 0)
        {
            sc.NrUnqueuedDirty++; // page_check_dirty_writeback
        }
        if ((flags & PageFlags.Locked) != 0)
        {
            sc.Keep[sc.NrKeep++] = f; // trylock_page failed
            return false;
        }
        if ((flags & PageFlags.Writeback) != 0)
        {
            // Under writeback: mark it so end_page_writeback rotates it to the tail.
            mem.Pages[f].Flags |= PageFlags.Reclaim;
            sc.Keep[sc.NrKeep++] = f;
            return false;
        }
        PageRef r = PageCheckReferences(ex, f);
        if (r == PageRef.Activate)
        {
            sc.Activate[sc.NrActivate++] = f;
            return false;
        }
        if (r == PageRef.Keep)
        {
            sc.Keep[sc.NrKeep++] = f;
            return false;
        }
        sc.UnmapRef = r;
        if (mem.Pages[f].MapCount > 0 && sim.Rmap.UnmapWouldShootDown(ex, f))
        {
            return true;
        }
        ShrinkPageListUnmap(ex, sc, z, i);
        return false;
    }

    /// <summary>
    /// The rest of shrink_page_list's turn for a page to reclaim: try_to_unmap with TTU_BATCH_FLUSH
    /// if it is mapped (the policy flushes or defers; a young PTE fails it, SWAP_FAIL, and the page
    /// is activated; a PTE left mapped keeps it, SWAP_AGAIN), then write it if dirty or leave it to the
    /// flusher, or take a clean one out of the page cache (__remove_mapping under
    /// mapping->tree_lock) for the free list. When the unmap sends a shootdown at once, this is a
    /// step of its own that starts right before it, so when the IPI arrives its receivers have
    /// mostly been simulated up to that time: their state there (interrupts off or on) is known
    /// when it is sent, and the sender's wait — spent holding the PTE lock — is charged where the
    /// kernel spends it, not after the step.
    /// </summary>
    private void ShrinkPageListUnmap(Exec ex, ScanControl sc, Zone z, int i)
    {
        Memory mem = sim.Memory;
        int f = sc.PageList[i];
        if (mem.Pages[f].MapCount > 0)
        {
            ex.FlushCause = FlushCause.Reclaim;
            if (!sim.Rmap.TryToUnmap(ex, f, batchFlush: true))
            {
                sc.Activate[sc.NrActivate++] = f; // SWAP_FAIL: activate_locked
                return;
            }
            if (mem.Pages[f].MapCount > 0)
            {
                sc.Keep[sc.NrKeep++] = f; // SWAP_AGAIN: keep_locked
                return;
            }
        }
        if ((mem.Pages[f].Flags & PageFlags.Dirty) != 0 && !Pageout(ex, sc, z, f, sc.UnmapRef))
        {
            sc.Keep[sc.NrKeep++] = f;
            return;
        }
        AddressSpace file = sim.Files[mem.Pages[f].Mapping];
        // __remove_mapping → workingset_eviction (the zone's inactive_age, unless the mapping is
        // exiting), then __delete_from_page_cache: the radix-tree delete, leaving the shadow entry,
        // and NR_FILE_PAGES, all under tree_lock.
        bool shadow = !file.Exiting;
        long eviction = shadow ? sim.Workingset.Eviction(ex.Cpu.Id, z) : 0; // z: the zone whose list the page came from
        ex.LockHold(file.TreeLock, eviction + sim.Costs.RemoveMappingNs + sim.ZoneStats.Dec(ex.Cpu.Id, z.Index, ZoneStatItem.NrFilePages));
        file.PageCache.Clear(mem.Pages[f].Index);
        sim.Workingset.PageDeleted(ex, file, mem.Pages[f].Index, shadow);
        sc.FreePages[sc.NrFree++] = f;
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
        ex.FlushCause = FlushCause.Reclaim;
        sim.Policy.TryToUnmapFlushDirty(ex);
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

    // ---- kswapd --------------------------------------------------------------------------------

    /// <summary>
    /// balance_pgdat (4.0, order 0): starting at DEF_PRIORITY, find end_zone (the highest zone of
    /// the node below its high watermark), kswapd_shrink_zone each zone from the lowest up to it
    /// (nr_scanned reset per zone); lower the priority when no zone scanned its target or nothing
    /// was reclaimed; stop when the node is balanced or at priority 0.
    /// </summary>
    public IEnumerable<Yield> BalancePgdat(Exec ex, SimTask kswapd, int node)
    {
        ScanControl sc = ScOf(kswapd);
        sc.Ex = ex;
        sc.Task = kswapd;
        sc.Zone = sim.Memory.TopZone(node);
        return sc.BalancePgdatProc.Start();
    }

    /// <summary>
    /// balance_pgdat, one call per turn (arguments: <see cref="ScanControl.Ex"/>, Zone = the node's
    /// top zone). Each pass finds end_zone — the highest zone of the node below its high watermark
    /// — and runs kswapd_shrink_zone on the zones from the lowest up to it; the priority drops
    /// unless some zone's shrink met its target; it stops when every zone is balanced.
    /// </summary>
    private IEnumerable<Yield> BalancePgdat(ScanControl sc)
    {
        while (true)
        {
            int node = sc.Zone.Node;
            int[] nz = sim.Memory.NodeZones[node];
            sc.Kswapd = true;
            sc.Priority = DefPriority;
            do
            {
                sc.NrReclaimed = 0;
                int end = -1;
                for (int k = nz.Length - 1; k >= 0; k--)
                {
                    Zone z = sim.Memory.Zones[nz[k]];
                    if (sc.Priority != DefPriority && !ZoneReclaimable(z))
                    {
                        continue;
                    }
                    if (!KswapdBalanced(z))
                    {
                        end = k;
                        break;
                    }
                    z.ZoneDirty = false; // balance_pgdat clears ZONE_DIRTY of a zone it finds balanced
                }
                if (end < 0)
                {
                    break; // no zone needs balancing
                }
                bool raisePriority = true;
                for (int k = 0; k <= end; k++)
                {
                    Zone z = sim.Memory.Zones[nz[k]];
                    if (sc.Priority != DefPriority && !ZoneReclaimable(z))
                    {
                        continue;
                    }
                    sc.Zone = z;
                    sc.NrScanned = 0; // per zone, as 4.0's balance_pgdat resets it before each kswapd_shrink_zone
                    // classzone_idx = end_zone: a lower zone keeps its lowmem_reserve from the test.
                    sc.KswapdReserve = k < end ? z.LowmemReserve : 0;
                    yield return Process.Call(sc.KswapdShrinkZoneProc.Start()); // kswapd_shrink_zone(zone, sc)
                    if (sc.ZoneShrinkDone)
                    {
                        raisePriority = false;
                    }
                }
                // Throttled direct reclaimers may go on once the node is above its reserve.
                if (sim.Memory.PfmemallocWaitOf(node).Count > 0 && sim.Memory.NodeReserveOk(node))
                {
                    WakePfmemallocWaiters(sc.Ex.Now, node);
                }
                // The analyzer cannot see kswapd_shrink_zone, a called process, add to sc.NrReclaimed.
#pragma warning disable CA1508
                if (raisePriority || sc.NrReclaimed == 0)
#pragma warning restore CA1508
                {
                    sc.Priority--;
                }
            }
            while (sc.Priority >= 1 && !NodeBalanced(node));
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>pgdat_balanced for order 0: every zone of the node balanced (or unreclaimable).</summary>
    public bool NodeBalanced(int node)
    {
        foreach (int zi in sim.Memory.NodeZones[node])
        {
            if (!KswapdBalanced(sim.Memory.Zones[zi]))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// pgdat_balanced / prepare_kswapd_sleep for one zone: above the high watermark, or not
    /// reclaimable at all (an unreclaimable zone counts as balanced, so kswapd sleeps).
    /// </summary>
    public static bool KswapdBalanced(Zone z) => z.Balanced || !ZoneReclaimable(z);

    /// <summary>pfmemalloc_watermark_ok: if the node is below the reserve, kswapd must be awake (it is woken).</summary>
    private bool PfmemallocWatermarkOk(long now, Zone z)
    {
        bool ok = sim.Memory.NodeReserveOk(z.Node);
        if (!ok)
        {
            SimTask k = sim.Kswapd[z.Node];
            if (k.State == TaskState.Sleeping)
            {
                sim.Sched.Wake(k, now);
            }
        }
        return ok;
    }

    /// <summary>wake_up(&amp;pgdat->pfmemalloc_wait): every throttled task becomes runnable (each re-checks the watermark).</summary>
    public void WakePfmemallocWaiters(long now, int node)
    {
        List<SimTask> wait = sim.Memory.PfmemallocWaitOf(node);
        foreach (SimTask t in wait)
        {
            sim.Sched.Wake(t, now);
        }
        wait.Clear();
    }

    /// <summary>
    /// kswapd_shrink_zone: nr_to_reclaim = max(SWAP_CLUSTER_MAX, high_wmark_pages); a zone above
    /// high + balance_gap needs nothing; otherwise one shrink_zone. Done (no priority raise) if it
    /// scanned at least nr_to_reclaim. A reclaimable zone found balanced loses ZONE_DIRTY.
    /// </summary>
    private IEnumerable<Yield> KswapdShrinkZone(ScanControl sc)
    {
        while (true)
        {
            Zone z = sc.Zone;
            sc.NrToReclaim = Math.Max(Scm, z.WmarkHigh);
            long balanceGap = Math.Min(z.WmarkLow, ((long)z.Frames * z.SizingScale + 99) / 100); // KSWAPD_ZONE_BALANCE_GAP_RATIO, of the full-size zone
            if (z.WatermarkOk(z.WmarkHigh + balanceGap + sc.KswapdReserve))
            {
                sc.ZoneShrinkDone = true;
                yield return ReusableProcess.PassEnd; // return true
                continue;
            }
            yield return Process.Call(ShrinkZone(sc));
            if (ZoneReclaimable(z) && z.WatermarkOk(z.WmarkHigh + sc.KswapdReserve))
            {
                z.ZoneDirty = false;
            }
            sc.ZoneShrinkDone = sc.NrScanned >= sc.NrToReclaim;
            yield return ReusableProcess.PassEnd;
        }
    }
}
