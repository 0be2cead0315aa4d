using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/page_alloc.c, order-0 only. The fast path walks the zonelist (local node first, then the
/// others; zone_reclaim_mode = 0 as on a 4-socket machine with node distance 21) taking pages from
/// zones above their low watermark. If none is, the slow path wakes every zone's kswapd that is not
/// balanced and retries at the min watermark; if that fails too the caller enters direct reclaim.
/// </summary>
public sealed class PageAlloc(Sim sim)
{
    /// <summary>
    /// Tries to bring <paramref name="have"/> up to <paramref name="need"/> pages in
    /// <paramref name="dest"/>. Returns false when the caller must reclaim directly.
    /// </summary>
    public bool AllocPages(Exec ex, int need, int[] dest, ref int have, bool afterReclaim)
    {
        int[] zonelist = sim.Zonelists[ex.Cpu.Node];
        ex.Sys += sim.Costs.PageAllocNs; // get_page_from_freelist's walk of the zonelist
        if (!afterReclaim)
        {
            TakeAbove(ex, zonelist, need, dest, ref have, useLow: true);
            if (have >= need)
            {
                return true;
            }
        }
        // __alloc_pages_slowpath: wake_all_kswapds, then retry at the min watermark.
        foreach (int node in zonelist)
        {
            WakeupKswapd(ex.Now, sim.Memory.Zones[node]);
        }
        TakeAbove(ex, zonelist, need, dest, ref have, useLow: false);
        return have >= need;
    }

    private void TakeAbove(Exec ex, int[] zonelist, int need, int[] dest, ref int have, bool useLow)
    {
        Memory mem = sim.Memory;
        foreach (int node in zonelist)
        {
            Zone z = mem.Zones[node];
            long mark = useLow ? z.WmarkLow : z.WmarkMin;
            int taken = 0;
            while (have < need && z.WatermarkOk(mark))
            {
                int f = z.PopFree();
                mem.Pages[f].Flags = PageFlags.None;
                dest[have++] = f;
                taken++;
            }
            if (taken > 0)
            {
                ex.Sys += taken * sim.Costs.PageAllocNs;
                ex.LockHold(z.Lock, taken * sim.Costs.ZoneLockPerPageNs, sim.Costs);
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
            sim.Wake(k, now);
        }
    }

    /// <summary>Returns pages to the buddy allocator of their nodes (free_hot_cold_page_list).</summary>
    public void FreePages(Exec ex, int[] frames, int count)
    {
        Memory mem = sim.Memory;
        int i = 0;
        while (i < count)
        {
            int node = mem.NodeOf(frames[i]);
            Zone z = mem.Zones[node];
            int j = i;
            while (j < count && mem.NodeOf(frames[j]) == node)
            {
                int f = frames[j];
                mem.Pages[f].Flags = PageFlags.Buddy;
                mem.Pages[f].Mapping = -1;
                z.PushFree(f);
                j++;
            }
            ex.Sys += (j - i) * sim.Costs.PageFreeNs;
            ex.LockHold(z.Lock, (j - i) * sim.Costs.ZoneLockPerPageNs, sim.Costs);
            i = j;
        }
    }
}
