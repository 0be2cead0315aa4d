using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/swap.c: lru_cache_add collects new pages in a per-CPU pagevec of PAGEVEC_SIZE (14) and moves
/// them to the head of their zone's inactive list under the LRU lock when it fills. This is why
/// the LRU interleaves readers in runs of about 14 pages.
/// </summary>
public sealed class Swap(Sim sim)
{
    public void LruCacheAdd(Exec ex, int frame)
    {
        Cpu cpu = ex.Cpu;
        cpu.Pagevec[cpu.PagevecCount++] = frame;
        if (cpu.PagevecCount == Cpu.PagevecSize)
        {
            LruAddDrain(ex);
        }
    }

    /// <summary>__pagevec_lru_add: the LRU lock is taken once per run of pages of one zone.</summary>
    public void LruAddDrain(Exec ex)
    {
        Cpu cpu = ex.Cpu;
        Memory mem = sim.Memory;
        int n = cpu.PagevecCount;
        int i = 0;
        while (i < n)
        {
            int node = mem.NodeOf(cpu.Pagevec[i]);
            Zone z = mem.Zones[node];
            int j = i;
            while (j < n && mem.NodeOf(cpu.Pagevec[j]) == node)
            {
                mem.LruAddHead(z, cpu.Pagevec[j], active: false);
                j++;
            }
            ex.LockHold(z.LruLock, (j - i) * sim.Costs.LruPerPageNs, sim.Costs);
            i = j;
        }
        cpu.PagevecCount = 0;
    }

    /// <summary>
    /// mark_page_accessed (read(2) and write(2) call it for each page they copy): an inactive page
    /// already referenced is activated (activate_page) and its PG_referenced cleared; otherwise
    /// PG_referenced is set. A page not on an LRU list (in a pagevec, or isolated by reclaim) is
    /// only marked referenced. (The kernel moves the page through a per-CPU pagevec; the simulator
    /// moves it at once, under the LRU lock.)
    /// </summary>
    public void MarkPageAccessed(Exec ex, int frame)
    {
        Memory mem = sim.Memory;
        ref Page p = ref mem.Pages[frame];
        if ((p.Flags & (PageFlags.Referenced | PageFlags.Active | PageFlags.Lru)) != (PageFlags.Referenced | PageFlags.Lru))
        {
            p.Flags |= PageFlags.Referenced;
            return;
        }
        Zone z = mem.Zones[mem.NodeOf(frame)];
        mem.LruDel(z, frame);
        mem.LruAddHead(z, frame, active: true);
        p.Flags &= ~PageFlags.Referenced;
        ex.LockHold(z.LruLock, sim.Costs.LruPerPageNs + sim.Costs.LockAcquireNs, sim.Costs);
        sim.VmStat.Inc(Observe.VmEvent.pgactivate);
    }
}
