using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/page_alloc.c, order-0 only. The fast path (get_page_from_freelist) walks the zonelist of the
/// chosen node (that node first, then the others; zone_reclaim_mode = 0 as on a 4-socket machine
/// with node distance 21) taking pages from zones above their low watermark. The slow path
/// (__alloc_pages_slowpath) wakes every zone's kswapd that is not balanced and retries at the min
/// watermark; if that fails the task reclaims directly (try_to_free_pages) and tries again, until
/// it gets its pages — or, after 1000 direct reclaims in a row that freed nothing, gives up (out
/// of memory).
/// </summary>
public sealed class PageAlloc(Sim sim)
{
    private const int MaxFruitlessReclaims = 1000;

    /// <summary>
    /// __alloc_pages_nodemask for <paramref name="need"/> pages on <paramref name="node"/>'s
    /// zonelist into <paramref name="dest"/>. Returns null when the fast path got them all;
    /// otherwise the slow path, a process the caller runs to completion (it may reclaim and so
    /// take several steps); the pages are in <paramref name="dest"/> when it ends.
    /// </summary>
    public IEnumerable<Yield>? AllocPages(Exec ex, SimTask task, int node, int need, int[] dest)
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
        return a.Process.Start();
    }

    /// <summary>The arguments of a task's __alloc_pages_slowpath call, and the task's slow path as a reusable process (one per task: a call allocates nothing).</summary>
    internal sealed class SlowpathArgs
    {
        public Exec Ex = null!;
        public SimTask Task = null!;
        public int[] Zonelist = [];
        public int Need;
        public int[] Dest = [];
        public int Have;
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
                foreach (Yield y in sim.Vmscan.TryToFreePages(ex, task, zonelist[0]))
                {
                    yield return y;
                }
                fruitless = task.Sc!.NrReclaimed == 0 ? fruitless + 1 : 0;
                if (fruitless > MaxFruitlessReclaims)
                {
                    throw new SimulationException($"out of memory: {task.Comm} cannot reclaim any page (node {zonelist[0]})");
                }
                if (fruitless > 0 && ex.Now > ex.Start)
                {
                    // should_alloc_retry → wait_iff_congested: give other CPUs (kswapd, reclaimers
                    // about to put pages back) a chance before the next attempt.
                    yield return Yield.Resched;
                }
            }
            yield return ReusableProcess.PassEnd;
        }
    }

    /// <summary>get_page_from_freelist: take pages from each zone of the zonelist above the low (or min) watermark.</summary>
    private void GetPageFromFreelist(Exec ex, int[] zonelist, int need, int[] dest, ref int have, bool useLow)
    {
        Memory mem = sim.Memory;
        foreach (int node in zonelist)
        {
            Zone z = mem.Zones[node];
            long mark = useLow ? z.WmarkLow : z.WmarkMin;
            int taken = 0;
            long lines = 0; // struct pages last written by the CPU that freed them
            while (have < need && z.WatermarkOk(mark))
            {
                int f = z.PopFree();
                mem.Pages[f].Flags = PageFlags.None;
                lines += sim.Lines.Take(ref mem.Pages[f].Owner, ex.Cpu.Id, node);
                dest[have++] = f;
                taken++;
            }
            if (taken > 0)
            {
                ex.Sys += taken * sim.Costs.PageAllocNs;
                ex.LockHold(z.Lock, taken * sim.Costs.ZoneLockPerPageNs + lines);
            }
            if (have >= need)
            {
                return;
            }
        }
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
    /// Returns pages to the buddy allocator of their nodes (free_hot_cold_page_list); a free
    /// resets the zone's NR_PAGES_SCANNED (free_pcppages_bulk).
    /// </summary>
    public void FreePages(Exec ex, int[] frames, int count) => FreePages(ex, frames.AsSpan(0, count));

    /// <summary>free_hot_cold_page_list of <paramref name="frames"/>.</summary>
    public void FreePages(Exec ex, ReadOnlySpan<int> frames)
    {
        int count = frames.Length;
        Memory mem = sim.Memory;
        int i = 0;
        while (i < count)
        {
            int node = mem.NodeOf(frames[i]);
            Zone z = mem.Zones[node];
            int j = i;
            long lines = 0;
            while (j < count && mem.NodeOf(frames[j]) == node)
            {
                int f = frames[j];
                lines += sim.Lines.Take(ref mem.Pages[f].Owner, ex.Cpu.Id, node);
                mem.Pages[f].Flags = PageFlags.Buddy;
                mem.Pages[f].Mapping = -1;
                mem.Pages[f].MapCount = 0;
                z.PushFree(f);
                j++;
            }
            ex.Sys += (j - i) * sim.Costs.PageFreeNs;
            ex.LockHold(z.Lock, (j - i) * sim.Costs.ZoneLockPerPageNs + lines);
            z.PagesScanned = 0;
            i = j;
        }
    }
}
