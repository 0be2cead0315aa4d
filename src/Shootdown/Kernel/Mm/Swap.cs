using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/swap.c: lru_cache_add collects new pages in a per-CPU pagevec of PAGEVEC_SIZE (14) and moves
/// them to the head of their zone's inactive list under the LRU lock when it fills. This is why
/// the LRU interleaves readers in runs of about 14 pages.
/// </summary>
public sealed class Swap(Sim sim)
{
    /// <summary>lru_cache_add: returns true if the pagevec filled and was drained onto the LRU.</summary>
    public bool LruCacheAdd(Exec ex, int frame)
    {
        Cpu cpu = ex.Cpu;
        cpu.Pagevec[cpu.PagevecCount++] = frame;
        if (cpu.PagevecCount == Cpu.PagevecSize)
        {
            LruAddDrain(ex);
            return true;
        }
        return false;
    }

    /// <summary>__pagevec_lru_add: the LRU lock is taken once per run of pages of one zone.</summary>
    public void LruAddDrain(Exec ex)
    {
        Cpu cpu = ex.Cpu;
        Memory mem = sim.Memory;
        int n = cpu.PagevecCount;
        // A page truncated while it waited here (PageFlags.Orphaned) had only this pagevec's
        // reference left: __pagevec_lru_add puts it on its list and the pagevec's release takes it
        // off again and frees it (release_pages). The model frees it at once, for the same costs.
        int kept = 0;
        for (int k = 0; k < n; k++)
        {
            int f = cpu.Pagevec[k];
            if ((mem.Pages[f].Flags & PageFlags.Orphaned) == 0)
            {
                cpu.Pagevec[kept++] = f;
                continue;
            }
            Zone tz = mem.ZoneOf(f);
            // Put at its list's head and taken off again: two writes to the head.
            bool orphanActive = (mem.Pages[f].Flags & PageFlags.Active) != 0;
            int headWrites = 2 * mem.LruLockLineWrites(orphanActive, atHead: true);
            ZoneStatItem item = ZoneStats.LruItem(orphanActive);
            long counts = sim.ZoneStats.Mod(cpu.Id, tz.Index, item, 1) + sim.ZoneStats.Mod(cpu.Id, tz.Index, item, -1);
            ex.LockHold(tz.LruLock, 2 * sim.Costs.LruPerPageNs + sim.Lines.Take(ref mem.Pages[f], cpu.Id, tz.Node) + counts, headWrites);
            sim.Oracle?.PageTruncated(ex, f);
            sim.PageAlloc.FreePages(ex, [f]);
        }
        n = cpu.PagevecCount = kept;
        int i = 0;
        while (i < n)
        {
            Zone z = mem.ZoneOf(cpu.Pagevec[i]);
            int node = z.Node;
            int j = i;
            long lines = 0;
            int lockLineWrites = 0;
            while (j < n && mem.ZoneOf(cpu.Pagevec[j]) == z)
            {
                int f = cpu.Pagevec[j];
                lines += sim.Lines.Take(ref mem.Pages[f], cpu.Id, node);
                bool active = (mem.Pages[f].Flags & PageFlags.Active) != 0;
                mem.LruAddHead(z, f, active);
                // add_page_to_lru_list: the list's NR_*_FILE, a page at a time.
                lines += sim.ZoneStats.Mod(cpu.Id, z.Index, ZoneStats.LruItem(active), 1);
                lockLineWrites += mem.LruLockLineWrites(active, atHead: true);
                j++;
            }
            ex.LockHold(z.LruLock, (j - i) * sim.Costs.LruPerPageNs + lines, lockLineWrites);
            i = j;
        }
        cpu.PagevecCount = 0;
    }

    /// <summary>
    /// mark_page_accessed (read(2) and write(2) call it for each page they copy): an inactive,
    /// evictable page already PG_referenced is activated and loses PG_referenced — at once if it
    /// is on an LRU list (activate_page; the kernel goes through a per-CPU pagevec, the simulator
    /// moves it under the LRU lock), or, if it still waits in this CPU's lru_add pagevec, by
    /// marking it active so the drain puts it on the active list (__lru_cache_activate_page);
    /// otherwise the page just becomes PG_referenced.
    /// </summary>
    public void MarkPageAccessed(Exec ex, int frame)
    {
        Memory mem = sim.Memory;
        ref Page p = ref mem.Pages[frame];
        if ((p.Flags & (PageFlags.Active | PageFlags.Unevictable | PageFlags.Referenced)) != PageFlags.Referenced)
        {
            p.Flags |= PageFlags.Referenced;
            return;
        }
        if ((p.Flags & PageFlags.Lru) != 0)
        {
            Zone z = mem.ZoneOf(frame);
            int lockLineWrites = mem.LruDel(z, frame);
            mem.LruAddHead(z, frame, active: true);
            long counts = sim.ZoneStats.Mod(ex.Cpu.Id, z.Index, ZoneStatItem.NrInactiveFile, -1) + sim.ZoneStats.Mod(ex.Cpu.Id, z.Index, ZoneStatItem.NrActiveFile, 1);
            ex.LockHold(z.LruLock, sim.Costs.LruPerPageNs + counts, lockLineWrites + mem.LruLockLineWrites(active: true, atHead: true));
            sim.VmStat.Inc(Observe.VmEvent.pgactivate);
        }
        else if (Array.IndexOf(ex.Cpu.Pagevec, frame, 0, ex.Cpu.PagevecCount) >= 0)
        {
            p.Flags |= PageFlags.Active;
        }
        p.Flags &= ~PageFlags.Referenced;
        sim.Workingset.Activation(ex, mem.ZoneOf(frame)); // every page here is a file page
    }
}
