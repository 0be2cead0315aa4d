using Shootdown.Kernel.Sched;

namespace Shootdown.Kernel.Mm;

/// <summary>
/// mm/truncate.c: dropping a file's page cache when its last link and last user are gone
/// (iput_final → evict → truncate_inode_pages_final). Linux 4.0's truncate_inode_pages_range takes
/// the cached pages a pagevec (PAGEVEC_SIZE, 14) at a time in file order; for each page:
/// pagevec_lookup_entries takes a speculative reference, trylock_page, truncate_inode_page →
/// delete_from_page_cache (radix-tree delete under mapping->tree_lock, irqs off; the page cache's
/// reference dropped), unlock_page. Then pagevec_release: lru_add_drain of this CPU's pagevec, and
/// release_pages, which drops the last reference of each page, takes each run of one zone's pages
/// off its LRU list under that zone's lru_lock (irqsave, held for at most SWAP_CLUSTER_MAX pages)
/// and hands the pages to free_hot_cold_page_list (hot); then cond_resched.
/// </summary>
/// <remarks>
/// Costs: each page's four locked read-modify-writes of its struct page line
/// (page_cache_get_speculative, trylock_page, unlock_page, put_page_testzero) are
/// <c>LockAcquireNs</c> each, the first also fetching the line (from DRAM once the page has left
/// every cache); the radix-tree delete is <c>RemoveMappingNs</c> under <c>tree_lock</c>, as in
/// reclaim's __remove_mapping; the LRU unlink <c>LruPerPageNs</c> under <c>lru_lock</c>; the free
/// <c>PageFreeNs</c>, and the buddy allocator's work when the per-CPU list overflows. The radix
/// tree's slot walk and the memcg uncharge are not charged. The file's users have exited, so no
/// page is mapped (a mapped page is refused); a page reclaim holds is left to a second pass, as
/// the kernel's first pass leaves the pages it cannot trylock_page.
/// </remarks>
public sealed class Truncate(Sim sim)
{
    /// <summary>Pages truncate_inode_pages freed in this run.</summary>
    public long PagesTruncated { get; private set; }

    /// <summary>When the run's first truncation began (ns; -1 if none did).</summary>
    public long StartedAt { get; private set; } = -1;

    /// <summary>
    /// truncate_inode_pages_final(mapping): removes every cached page of <paramref name="file"/>,
    /// one pagevec per step (cond_resched after each).
    /// </summary>
    public IEnumerable<Yield> TruncateInodePagesFinal(AddressSpace file)
    {
        int[] pvec = new int[Cpu.PagevecSize];
        int[] free = new int[Cpu.PagevecSize];
        // The first pass skips the pages reclaim holds (trylock_page fails, or, in the model, the
        // page sits isolated in a reclaimer's list, about to be locked).
        long index = 0;
        if (StartedAt < 0)
        {
            StartedAt = sim.Exec.Now;
        }
        file.Exiting = true; // truncate_inode_pages_final: mapping_set_exiting
        while (true)
        {
            Exec ex = sim.Exec;
            int n = 0;
            bool any = false;
            // pagevec_lookup_entries: up to PAGEVEC_SIZE cached pages from index on.
            for (long i = file.PageCache.NextPresent(index, file.SizePages); i >= 0 && n < pvec.Length; i = file.PageCache.NextPresent(i + 1, file.SizePages))
            {
                any = true;
                index = i + 1;
                int f = file.FindPage(i);
                ex.TakeLine(ref sim.Memory.Pages[f], sim.Memory.NodeOf(f));
                ex.Sys += sim.Costs.LockAcquireNs; // page_cache_get_speculative
                if (Busy(f))
                {
                    ex.Sys += sim.Costs.LockAcquireNs; // trylock_page fails; the reference goes
                    continue;
                }
                pvec[n++] = f;
            }
            if (!any)
            {
                break;
            }
            ex.What = "truncate";
            RemovePages(ex, file, pvec, n, free);
            yield return Yield.Resched;
        }
        // The second pass: lock_page waits for reclaim to let go of each page it still holds; a
        // page reclaim freed meanwhile has left the page cache. The wait queue's wake-up is not
        // modelled: the task sleeps and looks again every PageLockRecheckNs.
        while (true)
        {
            long i = file.PageCache.NextPresent(0, file.SizePages);
            if (i < 0)
            {
                yield break;
            }
            Exec ex = sim.Exec;
            ex.What = "truncate";
            int f = file.FindPage(i);
            ex.TakeLine(ref sim.Memory.Pages[f], sim.Memory.NodeOf(f));
            ex.Sys += sim.Costs.LockAcquireNs; // find_get_entry's reference
            if (Busy(f))
            {
                sim.Sched.WakeAt(ex.Task, ex.Now + PageLockRecheckNs);
                yield return Yield.Sleep;
                continue;
            }
            pvec[0] = f;
            RemovePages(ex, file, pvec, 1, free);
            yield return Yield.Resched;
        }
    }

    /// <summary>How often the model's lock_page looks again at a page reclaim holds (the kernel sleeps on the page's wait queue until unlock_page).</summary>
    public const long PageLockRecheckNs = 10_000;

    /// <summary>Whether reclaim or migration holds the page (locked or isolated) or it is under writeback.</summary>
    private bool Busy(int f) => (sim.Memory.Pages[f].Flags & (PageFlags.Writeback | PageFlags.Locked | PageFlags.Isolated)) != 0;

    /// <summary>
    /// truncate_inode_page for each page of the pagevec (trylock_page, delete_from_page_cache,
    /// unlock_page), then pagevec_release: lru_add_drain and release_pages.
    /// </summary>
    private void RemovePages(Exec ex, AddressSpace file, int[] pvec, int n, int[] free)
    {
        Memory mem = sim.Memory;
        for (int k = 0; k < n; k++)
        {
            int f = pvec[k];
            ref Page p = ref mem.Pages[f];
            ex.Sys += 2 * sim.Costs.LockAcquireNs; // trylock_page, unlock_page
            if (p.MapCount > 0)
            {
                throw new InvalidOperationException($"truncate of {file.Name}: page {f} (index {p.Index}) is still mapped, which the model does not truncate");
            }
            if ((p.Flags & PageFlags.Dirty) != 0)
            {
                // cancel_dirty_page: the data is discarded with the file.
                p.Flags &= ~PageFlags.Dirty;
                file.DirtyIndices.Remove(p.Index);
            }
            ex.LockHold(file.TreeLock, sim.Costs.RemoveMappingNs + sim.ZoneStats.Dec(ex.Cpu.Id, mem.ZoneOf(f).Index, ZoneStatItem.NrFilePages)); // delete_from_page_cache
            file.PageCache.Clear(p.Index);
            sim.Workingset.PageDeleted(ex, file, p.Index, shadow: false);
            p.Mapping = -1; // page->mapping = NULL
        }
        // pagevec_release → __pagevec_release: lru_add_drain(), then release_pages.
        if (ex.Cpu.PagevecCount > 0)
        {
            sim.Swap.LruAddDrain(ex);
        }
        ReleasePages(ex, pvec, n, free);
    }

    /// <summary>
    /// release_pages of the pagevec: the last reference of each page goes; pages on an LRU list
    /// leave it under their zone's lru_lock, taken once per run of one zone (release_pages drops it
    /// after SWAP_CLUSTER_MAX pages, which a pagevec of 14 never reaches). A page still in another CPU's lru_add pagevec keeps that
    /// pagevec's reference: it is freed when that pagevec drains (<see cref="Swap.LruAddDrain"/>).
    /// </summary>
    private void ReleasePages(Exec ex, int[] pvec, int n, int[] free)
    {
        Memory mem = sim.Memory;
        int nrFree = 0;
        int k = 0;
        while (k < n)
        {
            int f = pvec[k];
            ex.Sys += sim.Costs.LockAcquireNs; // put_page_testzero
            if ((mem.Pages[f].Flags & PageFlags.Lru) == 0)
            {
                mem.Pages[f].Flags |= PageFlags.Orphaned; // in another CPU's pagevec: not the last reference
                k++;
                continue;
            }
            Zone z = mem.ZoneOf(f);
            int run = 0;
            long lines = 0;
            int lockLineWrites = 0;
            while (k < n && (mem.Pages[pvec[k]].Flags & PageFlags.Lru) != 0 && mem.ZoneOf(pvec[k]) == z)
            {
                int g = pvec[k];
                if (run > 0)
                {
                    ex.Sys += sim.Costs.LockAcquireNs; // put_page_testzero of the run's later pages
                }
                lines += sim.Lines.Take(ref mem.Pages[g], ex.Cpu.Id, z.Node);
                lines += sim.ZoneStats.Mod(ex.Cpu.Id, z.Index, ZoneStats.LruItem((mem.Pages[g].Flags & PageFlags.Active) != 0), -1);
                lockLineWrites += mem.LruDel(z, g); // __ClearPageLRU, del_page_from_lru_list
                free[nrFree++] = g;
                run++;
                k++;
            }
            ex.LockHold(z.LruLock, run * sim.Costs.LruPerPageNs + lines, lockLineWrites);
        }
        if (sim.Oracle is { } oracle)
        {
            for (int i = 0; i < nrFree; i++)
            {
                oracle.PageTruncated(ex, free[i]);
            }
        }
        sim.PageAlloc.FreePages(ex, free.AsSpan(0, nrFree)); // free_hot_cold_page_list(&pages_to_free, cold = false)
        PagesTruncated += nrFree;
    }
}
