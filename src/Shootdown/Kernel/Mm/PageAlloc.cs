using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/page_alloc.c for order-0 pages: the buddy allocator (free_area[0..MAX_ORDER-1] per zone,
/// one migrate type) behind per-CPU pagesets (pcp lists of pcp->batch/pcp->high pages). An
/// allocation takes the head of this CPU's pcp list, refilled by rmqueue_bulk (pcp->batch pages
/// under zone->lock) when empty; a free puts the page on the pcp list and, once pcp->count reaches
/// pcp->high, free_pcppages_bulk returns pcp->batch pages from the list's cold end to the buddy
/// lists under zone->lock, merging each with its free buddies (__free_one_page). The struct pages
/// this touches — buddies, split halves, free-list neighbours — come from wherever their lines
/// last were (CacheLines), so the work under zone->lock grows with remote and cold memory.
/// Watermarks count buddy pages only (NR_FREE_PAGES), not pages on pcp lists.
/// The fast path (get_page_from_freelist) walks the zonelist of the
/// chosen node (that node first, then the others; zone_reclaim_mode = 0 as on a 4-socket machine
/// with node distance 21) taking pages from zones above their low watermark. The slow path
/// (__alloc_pages_slowpath) wakes every zone's kswapd that is not balanced and retries at the min
/// watermark; if that fails the task reclaims directly (try_to_free_pages) and tries again, until
/// it gets its pages — or, after 1000 direct reclaims in a row that freed nothing, gives up (out
/// of memory). A __GFP_NORETRY allocation (readahead's) gives up at the first page its one
/// direct reclaim did not produce.
/// </summary>
public sealed class PageAlloc(Sim sim)
{
    private const int MaxFruitlessReclaims = 1000;

    /// <summary>
    /// __alloc_pages_nodemask for <paramref name="need"/> pages on <paramref name="node"/>'s
    /// zonelist into <paramref name="dest"/>. Returns null when the fast path got them all;
    /// otherwise the slow path, a process the caller runs to completion (it may reclaim and so
    /// take several steps); the pages are in <paramref name="dest"/> when it ends. With
    /// <paramref name="noRetry"/> (__GFP_NORETRY, the readahead allocations of
    /// page_cache_alloc_readahead) the slow path gives up at the first page that one direct
    /// reclaim did not produce — __alloc_pages_direct_reclaim returns nothing when reclaim made no
    /// progress, and should_alloc_retry never retries a NORETRY allocation — so it may end with
    /// fewer pages than asked: <see cref="SlowpathGot"/> tells how many.
    /// </summary>
    public IEnumerable<Yield>? AllocPages(Exec ex, SimTask task, int node, int need, int[] dest, bool noRetry = false)
    {
        int[] zonelist = sim.Zonelists[node];
        ex.Sys += sim.Costs.PageAllocNs; // get_page_from_freelist's walk of the zonelist
        int have = 0;
        GetPageFromFreelist(ex, zonelist, need, dest, ref have, useLow: true);
        if (have >= need)
        {
            return null;
        }
        SlowpathArgs a = task.AllocSlowpath ??= NewSlowpathArgs();
        a.Ex = ex;
        a.Task = task;
        a.Zonelist = zonelist;
        a.Need = need;
        a.Dest = dest;
        a.Have = have;
        a.NoRetry = noRetry;
        return a.Process.Start();
    }

    /// <summary>How many pages <paramref name="task"/>'s last slow path ended with (all it asked for, unless it was __GFP_NORETRY).</summary>
    public static int SlowpathGot(SimTask task) => task.AllocSlowpath!.Have;

    /// <summary>The arguments of a task's __alloc_pages_slowpath call, and the task's slow path as a reusable process (one per task: a call allocates nothing).</summary>
    internal sealed class SlowpathArgs
    {
        public Exec Ex = null!;
        public SimTask Task = null!;
        public int[] Zonelist = [];
        public int Need;
        public int[] Dest = [];
        public int Have;
        public bool NoRetry;
        public ReusableProcess Process = null!;
    }

    private SlowpathArgs NewSlowpathArgs()
    {
        var a = new SlowpathArgs();
        a.Process = new ReusableProcess(() => AllocPagesSlowpath(a));
        return a;
    }

    /// <summary>__alloc_pages_slowpath, one call per turn (arguments in <paramref name="a"/>).</summary>
    private IEnumerable<Yield> AllocPagesSlowpath(SlowpathArgs a)
    {
        while (true)
        {
            Exec ex = a.Ex;
            SimTask task = a.Task;
            int[] zonelist = a.Zonelist;
            int need = a.Need;
            int[] dest = a.Dest;
            int have = a.Have;
            int fruitless = 0;
            while (true)
            {
                foreach (int n in zonelist)
                {
                    WakeupKswapd(ex.Now, sim.Memory.Zones[n]); // wake_all_kswapds
                }
                GetPageFromFreelist(ex, zonelist, need, dest, ref have, useLow: false);
                if (have >= need)
                {
                    break; // got them: return
                }
                // __alloc_pages_direct_reclaim
                int haveBefore = have;
                yield return Process.Call(sim.Vmscan.TryToFreePages(ex, task, sim.Memory.Zones[zonelist[0]].Node));
                fruitless = task.Sc!.NrReclaimed == 0 ? fruitless + 1 : 0;
                if (fruitless > 0 && a.NoRetry)
                {
                    break; // no progress: no page, and a NORETRY allocation does not retry
                }
                if (fruitless == 0)
                {
                    // The rest of __alloc_pages_direct_reclaim: try again; if that fails, pages
                    // may sit on per-CPU lists — drain them all and try once more.
                    ex = a.Ex;
                    GetPageFromFreelist(ex, zonelist, need, dest, ref have, useLow: false);
                    if (have < need)
                    {
                        DrainAllPages(ex);
                        GetPageFromFreelist(ex, zonelist, need, dest, ref have, useLow: false);
                    }
                    if (have >= need || (a.NoRetry && have == haveBefore))
                    {
                        break; // got them, or (NORETRY) the page this reclaim was for is not there
                    }
                }
                if (fruitless > MaxFruitlessReclaims)
                {
                    throw new SimulationException($"out of memory: {task.Comm} cannot reclaim any page (node {sim.Memory.Zones[zonelist[0]].Node})");
                }
                if (fruitless > 0 && ex.Now > ex.Start)
                {
                    // should_alloc_retry → wait_iff_congested: give other CPUs (kswapd, reclaimers
                    // about to put pages back) a chance before the next attempt.
                    yield return Yield.Resched;
                }
            }
            a.Have = have;
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>
    /// get_page_from_freelist, page by page: the first zone of the zonelist above its low (or min)
    /// watermark — plus, for a ZONE_DMA32 serving a Normal-class allocation, its lowmem_reserve.
    /// The fast path (<paramref name="useLow"/>) is ALLOC_FAIR: it takes only the preferred node's
    /// zones whose NR_ALLOC_BATCH is not used up, and if that finds nothing it refills the node's
    /// batches (reset_alloc_batches, when a zone was skipped) and scans the zonelist again without
    /// fairness, remote zones included.
    /// </summary>
    private void GetPageFromFreelist(Exec ex, int[] zonelist, int need, int[] dest, ref int have, bool useLow)
    {
        Memory mem = sim.Memory;
        int prefNode = mem.Zones[zonelist[0]].Node;
        while (have < need)
        {
            bool fair = useLow;
            int f = -1;
            while (true)
            {
                int skipped = 0;
                foreach (int zi in zonelist)
                {
                    Zone z = mem.Zones[zi];
                    if (fair)
                    {
                        if (z.Node != prefNode)
                        {
                            break;
                        }
                        if (z.FairDepleted)
                        {
                            skipped++;
                            continue;
                        }
                    }
                    long mark = (useLow ? z.WmarkLow : z.WmarkMin) + z.LowmemReserve; // 0 but in a ZONE_DMA32 below a Normal zone
                    // zone_watermark_ok reads NR_FREE_PAGES in the zone's first vm_stat line.
                    ex.Sys += sim.ZoneStats.ReadLine0(ex.Cpu.Id, z.Index);
                    if (!z.WatermarkOk(mark))
                    {
                        continue;
                    }
                    f = BufferedRmqueue(ex, z);
                    if (f >= 0)
                    {
                        break;
                    }
                }
                if (f >= 0 || !fair)
                {
                    break;
                }
                fair = false;
                if (skipped > 0)
                {
                    ResetAllocBatches(ex, prefNode);
                }
            }
            if (f < 0)
            {
                return;
            }
            ZoneStatistics(ex, mem.Zones[zonelist[0]], mem.ZoneOf(f));
            dest[have++] = f;
        }
    }

    /// <summary>
    /// zone_statistics (mm/vmstat.c, CONFIG_NUMA): a page from <paramref name="node"/> for an
    /// allocation that preferred <paramref name="preferred"/>, on a CPU of <paramref name="cpuNode"/>.
    /// </summary>
    private void ZoneStatistics(Exec ex, Zone preferred, Zone z)
    {
        Observe.VmStat v = sim.VmStat;
        ZoneStats zs = sim.ZoneStats;
        int cpu = ex.Cpu.Id;
        if (z.Node == preferred.Node)
        {
            v.Inc(Observe.VmEvent.numa_hit);
            ex.Sys += zs.Inc(cpu, z.Index, ZoneStatItem.NumaHit);
        }
        else
        {
            v.Inc(Observe.VmEvent.numa_miss);
            v.Inc(Observe.VmEvent.numa_foreign);
            ex.Sys += zs.Inc(cpu, z.Index, ZoneStatItem.NumaMiss) + zs.Inc(cpu, preferred.Index, ZoneStatItem.NumaForeign);
        }
        bool local = z.Node == ex.Cpu.Node;
        v.Inc(local ? Observe.VmEvent.numa_local : Observe.VmEvent.numa_other);
        ex.Sys += zs.Inc(cpu, z.Index, local ? ZoneStatItem.NumaLocal : ZoneStatItem.NumaOther);
    }

    /// <summary>
    /// reset_alloc_batches: every zone of the node gets its fair share (high - low) again, a
    /// mod_zone_page_state of NR_ALLOC_BATCH by what it takes to get there (a fold: the share is
    /// far above any threshold).
    /// </summary>
    private void ResetAllocBatches(Exec ex, int node)
    {
        foreach (int zi in sim.Memory.NodeZones[node])
        {
            Zone z = sim.Memory.Zones[zi];
            int refill = (int)Math.Clamp(z.WmarkHigh - z.WmarkLow - z.AllocBatch, int.MinValue, int.MaxValue);
            ex.Sys += sim.ZoneStats.Mod(ex.Cpu.Id, zi, ZoneStatItem.NrAllocBatch, refill);
            z.ResetAllocBatch();
        }
    }

    /// <summary>
    /// buffered_rmqueue for order 0: the head of this CPU's pcp list, after rmqueue_bulk refilled
    /// it under zone->lock if it was empty; then prep_new_page writes the struct page. -1 if the zone
    /// has nothing left.
    /// </summary>
    private int BufferedRmqueue(Exec ex, Zone z)
    {
        Memory mem = sim.Memory;
        int cpu = ex.Cpu.Id;
        if (z.PcpCount[cpu] == 0)
        {
            long lines = 0;
            int n = RmqueueBulk(z, cpu, z.PcpBatch, ref lines);
            if (n == 0)
            {
                return -1;
            }
            // rmqueue_bulk's NR_FREE_PAGES, by the batch, before the unlock.
            ex.LockHold(z.Lock, n * sim.Costs.ZoneLockPerPageNs + lines + sim.ZoneStats.Mod(cpu, z.Index, ZoneStatItem.NrFreePages, -n));
        }
        int f = PcpPopHead(z, cpu);
        ex.Sys += sim.ZoneStats.Mod(cpu, z.Index, ZoneStatItem.NrAllocBatch, -1);
        if (--z.AllocBatch <= 0)
        {
            z.FairDepleted = true; // NR_ALLOC_BATCH used up: ZONE_FAIR_DEPLETED
        }
        ref Page p = ref mem.Pages[f];
        p.Flags = PageFlags.None;
        ex.Sys += sim.Costs.PageAllocNs + sim.Lines.Take(ref p, cpu, z.Node);
        return f;
    }

    /// <summary>
    /// rmqueue_bulk: up to <paramref name="count"/> pages from the buddy lists onto
    /// <paramref name="cpu"/>'s pcp list, in the order taken (__rmqueue_smallest: the first block
    /// of the lowest order that has one, split by expand). Adds the line transfers to
    /// <paramref name="lines"/>; the caller holds zone->lock.
    /// </summary>
    private int RmqueueBulk(Zone z, int cpu, int count, ref long lines)
    {
        Memory mem = sim.Memory;
        Page[] pages = mem.Pages;
        int node = z.Node;
        int i = 0;
        for (; i < count; i++)
        {
            int order = 0;
            while (order < Zone.MaxOrder && z.FreeHead[order] < 0)
            {
                order++;
            }
            if (order == Zone.MaxOrder)
            {
                break;
            }
            int f = z.FreeHead[order];
            // list_del: the block's struct page and its successor's (the list's new head).
            lines += sim.Lines.Take(ref pages[f], cpu, node);
            int next = pages[f].LruNext;
            if (next >= 0)
            {
                lines += sim.Lines.Take(ref pages[next], cpu, node);
            }
            mem.FreeListDel(z, order, f);
            // expand: the upper halves go back on the lower orders' lists (list_add at the head:
            // each half's struct page and the old head's).
            for (int o = order - 1; o >= 0; o--)
            {
                int half = f + (1 << o);
                lines += sim.Lines.Take(ref pages[half], cpu, node);
                int head = z.FreeHead[o];
                if (head >= 0)
                {
                    lines += sim.Lines.Take(ref pages[head], cpu, node);
                }
                mem.FreeListAdd(z, o, half, tail: false);
            }
            PcpAddTail(z, cpu, f);
        }
        z.NrFree -= i;
        return i;
    }

    /// <summary>
    /// free_pcppages_bulk: <paramref name="count"/> pages from the cold end (tail) of
    /// <paramref name="cpu"/>'s pcp list back to the buddy lists; the caller holds zone->lock. Resets
    /// NR_PAGES_SCANNED, as 4.0's does.
    /// </summary>
    private void FreePcppagesBulk(Zone z, int cpu, int count, ref long lines)
    {
        int i = 0;
        for (; i < count && z.PcpTail[cpu] >= 0; i++)
        {
            int f = z.PcpTail[cpu];
            PcpDel(z, cpu, f);
            FreeOnePage(z, f, cpu, ref lines);
            lines += sim.ZoneStats.Mod(cpu, z.Index, ZoneStatItem.NrFreePages, 1); // __mod_zone_freepage_state, a page at a time
        }
        z.NrFree += i;
        // 4.0 subtracts what zone_page_state reads, the folded counter, and skips the update when
        // that is 0; the model's own count (z.PagesScanned, for zone_reclaimable) is exact.
        long folded = sim.ZoneStats.FoldedPagesScanned(z.Index);
        if (folded > 0)
        {
            lines += sim.ZoneStats.Mod(cpu, z.Index, ZoneStatItem.NrPagesScanned, (int)-Math.Min(folded, int.MaxValue));
        }
        z.PagesScanned = 0;
    }

    /// <summary>
    /// __free_one_page for order 0: merge with the buddy while it is free at the same order
    /// (page_is_buddy reads the buddy's struct page; a merge takes it off its list), then put the
    /// block at the head of its order's list — or at the tail when the buddy of the next larger
    /// block is free too, so it is less likely to be split again soon (2.6.35, 6dda9d55bf54: "reduce fragmentation in buddy allocator by adding buddies that are merging to the tail").
    /// </summary>
    private void FreeOnePage(Zone z, int frame, int cpu, ref long lines)
    {
        Memory mem = sim.Memory;
        Page[] pages = mem.Pages;
        int node = z.Node;
        int idx = frame - z.FirstFrame;
        int order = 0;
        int buddyIdx = -1;
        while (order < Zone.MaxOrder - 1)
        {
            buddyIdx = idx ^ (1 << order);
            if (buddyIdx >= z.Frames)
            {
                buddyIdx = -1;
                break;
            }
            int b = z.FirstFrame + buddyIdx;
            if ((pages[b].Flags & PageFlags.Buddy) == 0 || pages[b].Index != order)
            {
                lines += sim.Lines.Read(ref pages[b], cpu, node);
                break;
            }
            // A merge: the buddy's line comes here, and list_del writes its neighbours.
            lines += sim.Lines.Take(ref pages[b], cpu, node);
            int prev = pages[b].LruPrev, next = pages[b].LruNext;
            if (prev >= 0)
            {
                lines += sim.Lines.Take(ref pages[prev], cpu, node);
            }
            if (next >= 0)
            {
                lines += sim.Lines.Take(ref pages[next], cpu, node);
            }
            mem.FreeListDel(z, order, b);
            idx &= buddyIdx;
            order++;
            buddyIdx = -1;
        }
        int head = z.FirstFrame + idx;
        lines += sim.Lines.Take(ref pages[head], cpu, node);
        bool tail = false;
        if (order < Zone.MaxOrder - 2 && buddyIdx >= 0)
        {
            int combined = buddyIdx & idx;
            int higherBuddy = combined ^ (1 << (order + 1));
            if (higherBuddy < z.Frames)
            {
                ref Page hb = ref pages[z.FirstFrame + higherBuddy];
                lines += sim.Lines.Read(ref hb, cpu, node);
                tail = (hb.Flags & PageFlags.Buddy) != 0 && hb.Index == order + 1;
            }
        }
        int old = tail ? z.FreeTail[order] : z.FreeHead[order];
        if (old >= 0)
        {
            lines += sim.Lines.Take(ref pages[old], cpu, node);
        }
        mem.FreeListAdd(z, order, head, tail);
    }

    // ---- per-CPU lists (pcp->lists, one migrate type) ------------------------------------------

    private void PcpAddTail(Zone z, int cpu, int f)
    {
        sim.Memory.ListAdd(ref z.PcpHead[cpu], ref z.PcpTail[cpu], f, atTail: true);
        z.PcpCount[cpu]++;
    }

    private void PcpAddHead(Zone z, int cpu, int f)
    {
        sim.Memory.ListAdd(ref z.PcpHead[cpu], ref z.PcpTail[cpu], f, atTail: false);
        z.PcpCount[cpu]++;
    }

    private void PcpDel(Zone z, int cpu, int f)
    {
        sim.Memory.ListDel(ref z.PcpHead[cpu], ref z.PcpTail[cpu], f);
        z.PcpCount[cpu]--;
    }

    private int PcpPopHead(Zone z, int cpu)
    {
        int f = z.PcpHead[cpu];
        PcpDel(z, cpu, f);
        return f;
    }

    /// <summary>wakeup_kswapd: nothing to do if the zone is balanced or kswapd already runs.</summary>
    public void WakeupKswapd(long now, Zone z)
    {
        if (z.Balanced)
        {
            return;
        }
        SimTask k = sim.Kswapd[z.Node];
        if (k.State == TaskState.Sleeping)
        {
            if (sim.Vmscan.FirstKswapdWake < 0)
            {
                sim.Vmscan.FirstKswapdWake = now;
            }
            sim.Sched.Wake(k, now);
        }
    }

    /// <summary>
    /// free_hot_cold_page_list of <paramref name="count"/> frames: each to this CPU's pcp list of
    /// its zone, at the cold end when <paramref name="cold"/> (reclaim's shrink_page_list frees its
    /// batch cold in 4.0), else at the hot end; a list that reaches pcp->high gives pcp->batch pages
    /// back to the buddy allocator under zone->lock (free_pcppages_bulk).
    /// </summary>
    public void FreePages(Exec ex, int[] frames, int count, bool cold = false) => FreePages(ex, frames.AsSpan(0, count), cold);

    /// <summary>free_hot_cold_page_list of <paramref name="frames"/>.</summary>
    public void FreePages(Exec ex, ReadOnlySpan<int> frames, bool cold = false)
    {
        Memory mem = sim.Memory;
        int cpu = ex.Cpu.Id;
        foreach (int f in frames)
        {
            Zone z = mem.ZoneOf(f);
            ref Page p = ref mem.Pages[f];
            ex.Sys += sim.Costs.PageFreeNs + sim.Lines.Take(ref p, cpu, z.Node);
            p.Flags = PageFlags.Free;
            p.Mapping = -1;
            p.MapCount = 0;
            if (cold)
            {
                PcpAddTail(z, cpu, f);
            }
            else
            {
                PcpAddHead(z, cpu, f);
            }
            if (z.PcpCount[cpu] >= z.PcpHigh)
            {
                long lines = 0;
                int batch = z.PcpBatch;
                FreePcppagesBulk(z, cpu, batch, ref lines);
                ex.LockHold(z.Lock, batch * sim.Costs.ZoneLockPerPageNs + lines);
            }
        }
    }

    /// <summary>CPUs with pages on a pcp list of any zone (drain_all_pages' cpus_with_pcps).</summary>
    private Hardware.Cpumask CpusWithPcps(int self)
    {
        _cpusWithPcps ??= new Hardware.Cpumask(sim.Cpus.Length);
        _cpusWithPcps.ClearAll();
        foreach (Zone z in sim.Memory.Zones)
        {
            for (int c = 0; c < z.PcpCount.Length; c++)
            {
                if (z.PcpCount[c] > 0 && c != self)
                {
                    _cpusWithPcps.Set(c);
                }
            }
        }
        return _cpusWithPcps;
    }

    private Hardware.Cpumask? _cpusWithPcps;
    private long _drainEventTime;
    private Kernel.Arch.SmpCallFunc? _drainLocalPages;

    /// <summary>
    /// drain_all_pages(NULL) as 4.0's __alloc_pages_direct_reclaim calls it when the allocation
    /// after a successful reclaim still fails: on_each_cpu_mask over the CPUs that have pcp pages,
    /// waiting for all (an IPI to each other CPU, whose handler drain_local_pages frees every pcp
    /// list it has under each zone's lock), then the same on this CPU with interrupts off.
    /// </summary>
    public void DrainAllPages(Exec ex)
    {
        int self = ex.Cpu.Id;
        Hardware.Cpumask mask = CpusWithPcps(self);
        _drainLocalPages ??= new Kernel.Arch.SmpCallFunc((r, t, _) => DrainPages(r.Id, t, out long _) - t);
        _drainEventTime = ex.EventTime;
        if (mask.AnyBut(self))
        {
            sim.X86.SmpCallFunctionMany(ex, mask, _drainLocalPages, null, tlb: false);
        }
        long t0 = ex.Now;
        _drainEventTime = ex.EventTime;
        long end = DrainPages(self, t0, out long spin);
        ex.Sys += end - t0;
        ex.Spin += spin;
        ex.Cpu.AddIrqOff(t0, end);
    }

    /// <summary>drain_pages(cpu) from time <paramref name="t"/>: every zone's pcp list of the CPU back to the buddy lists under the zone's lock. Returns when it is done.</summary>
    private long DrainPages(int cpu, long t, out long spinNs)
    {
        spinNs = 0;
        foreach (Zone z in sim.Memory.Zones)
        {
            int count = z.PcpCount[cpu];
            if (count == 0)
            {
                continue;
            }
            long lines = 0;
            FreePcppagesBulk(z, cpu, count, ref lines);
            // The CPU's own constants: a receiver's are its handler's, set at the IPI's delivery.
            Hardware.CostModel c = sim.Cpus[cpu].Costs;
            t = z.Lock.Hold(_drainEventTime, t, cpu, count * c.ZoneLockPerPageNs + lines, sim.Lines, c, out long spin);
            spinNs += spin;
        }
        return t;
    }
}
